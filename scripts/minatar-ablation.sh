#!/usr/bin/env bash
# Issue 16's ablation on MinAtar: every variant of the step control on the CNN, per game and seed,
# with train_detach; runs land under docs/results/minatar_ablation/logs/<game>/<variant>/ (not
# committed), and scripts/summarise-runs.py turns them into summary.csv and curves.csv.
#
#   scripts/minatar-ablation.sh [--frames 1000000] [--games breakout,space_invaders] \
#       [--seeds 1,2] [--variants rat,rat_target_kl_0.01,...] [--jobs 2]
#
# Variants (each adds keys to the published settings: configs/rat_cnn_reference.yaml with its issue-16 step
# control taken back to the reference's: absolute λ = 0.1, lr ceiling = lr, KL band
# [0.004, 0.016], no entropy bonus):
#   rat                    published
#   rat_chosen             configs/rat_cnn_reference.yaml as it is (the settings this ablation chose;
#                          configs/rat_cnn.yaml adds the exact Kaczmarz mode chosen after it)
#   rat_max_kl_{1e-5,3e-5,1e-4}  per-step bound under the exact Fisher (a published RAT step
#                          on Breakout is ≈ 1e-4, and 32 aligned steps compound to ≈ 32² times it)
#   rat_target_kl_{0.01,0.02}       per-rollout stop
#   rat_relative_{0.0001,0.001,0.01}  damping_mode relative, λ sweep: λ·tr(K)/b; on the CNN
#                          tr(K)/b ≈ 18 at the start, so the published λ = 0.1 is ≈ 0.0055 relative
#   rat_relative_{λ}_ceiling_{c}  relative λ with the KL rule's learning-rate ceiling raised to c
#                          (the published ceiling 0.05 holds the per-rollout KL near 1e-3 on
#                          Space Invaders, under the rule's lower target 0.004)
#   rat_relative_{λ}_ceiling_{c}_kl_{low}_{high}  and the KL rule's targets (published 0.004 / 0.016)
#   rat_1x8, rat_1x2       1 epoch x 8 minibatches, 1 epoch x 2 minibatches
#   kfac, fvp              the same CNN and published settings with --algo, with max_kl 3e-5
#   pg                     SGD, no preconditioning (the same)
#   ppo                    configs/ppo_cnn.yaml (CleanRL's settings)
# Every run logs the step diagnostics (step_diagnostics True).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
frames=1000000 games=breakout,space_invaders seeds=1,2 jobs=2
variants=rat,rat_chosen,rat_max_kl_0.00001,rat_max_kl_0.00003,rat_max_kl_0.0001,rat_target_kl_0.01,rat_target_kl_0.02,rat_relative_0.0001,rat_relative_0.001,rat_relative_0.01,rat_1x8,rat_1x2,kfac,fvp,pg,ppo
while [ $# -gt 0 ]; do
  case "$1" in
    --frames) frames=$2; shift 2 ;;
    --games) games=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --variants) variants=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
bin="$root/target/release/examples/train_detach"
[ -x "$bin" ] || cargo build --release --example train_detach

# The keys a variant adds to its config.
published="--config rat_cnn_reference.yaml --damping_mode absolute --cg_damping 0.1 --lr_ceiling 0.05 --kl_low 0.004 --kl_high 0.016 --ent_coef 0 --ent_mode gradient"
args_of() {
  case "$1" in
    rat) echo "$published" ;;
    rat_chosen) echo "--config rat_cnn_reference.yaml" ;;
    rat_max_kl_*) echo "$published --max_kl ${1#rat_max_kl_}" ;;
    rat_target_kl_*) echo "$published --target_kl ${1#rat_target_kl_}" ;;
    rat_relative_*_ceiling_*_kl_*_*) v=${1#rat_relative_}; c=${v#*_ceiling_}; k=${c#*_kl_}
      echo "$published --damping_mode relative --cg_damping ${v%%_ceiling_*} --lr_ceiling ${c%%_kl_*} --kl_low ${k%_*} --kl_high ${k#*_}" ;;
    rat_relative_*_ceiling_*) v=${1#rat_relative_}; echo "$published --damping_mode relative --cg_damping ${v%_ceiling_*} --lr_ceiling ${v#*_ceiling_}" ;;
    rat_relative_*) echo "$published --damping_mode relative --cg_damping ${1#rat_relative_}" ;;
    rat_1x8) echo "$published --pi_epochs 1 --pi_minibatches 8" ;;
    rat_1x2) echo "$published --pi_epochs 1 --pi_minibatches 2" ;;
    kfac) echo "$published --algo kfac --optimizer kfac --lr_pi 0.01 --max_kl 0.00003" ;;
    fvp) echo "$published --algo fvp --max_kl 0.00003" ;;
    pg) echo "$published --algo pg" ;;
    ppo) echo "--config ppo_cnn.yaml" ;;
    *) echo "unknown variant $1" >&2; return 2 ;;
  esac
}

commands=()
for game in ${games//,/ }; do
  for variant in ${variants//,/ }; do
    for seed in ${seeds//,/ }; do
      dir="docs/results/minatar_ablation/logs/$game/$variant"
      commands+=("$bin $(args_of "$variant") --env_name minatar:$game --seed $seed --timesteps_per_proc $frames --step_diagnostics True --log_dir $dir --quiet")
    done
  done
done
printf '%s\n' "${commands[@]}" | xargs -P "$jobs" -I{} sh -c '{} || echo "failed: {}" >&2'
python3 scripts/summarise-runs.py docs/results/minatar_ablation

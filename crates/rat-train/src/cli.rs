//! The one command-line parser of every example (`train_detach`, `train_shared`, `evaluate`,
//! `suite`), on `lexopt`, with the same rules everywhere:
//!
//! * `--key value` and `--key=value`; `-` and `_` are the same in a key (`--env-name`,
//!   `--env_name`);
//! * a value that starts with `--` is an error naming the flag that wanted it (`--lr_pi --seed 1`
//!   does not swallow `--seed`);
//! * `--help` / `-h` anywhere asks for the usage text;
//! * each program names its switches (flags without a value); every other flag takes one.
//!
//! [`parse`] is the training examples' command line: a config, any config key as
//! `--key value`, and the run options.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use candle_core::Device;

use crate::config::Config;
use crate::error::{Result, invalid};
use crate::io::checkpoint;
use crate::loops::RunOptions;

/// The usage text of `train_detach`.
pub const USAGE: &str = "\
usage: train_detach | train_shared --config <file> [--<key> <value>]... [options]

  --config <file>          a YAML config; a bare name resolves under configs/ (rat_mlp.yaml)
  --<key> <value>          override any config key, e.g. --env_name CartPole-v1 --lr_pi 0.05 (--lr 0.05)
                           (--env-name works too); --no_karzmarz sets is_karzmarz False
  --seed <n>               the seed (default: random in [0, 1e6))
  --device <k>             -1: CUDA if built with `cuda` and a GPU is present, else CPU; k >= 0: GPU k
  --resume <checkpoint>    continue a run from its model.safetensors, in its own directory, with its
                           config and seed; only --timesteps_per_proc (a larger budget) and
                           --log_interval may change: any other setting, or another --seed, is an
                           error naming the difference (start a new run to change them); the logs
                           are cut back to the checkpoint's iteration first
  --log_dir <dir>          root of the run directories (default: logs)
  --checkpoint_every <n>   save every n iterations (default 50; 0 = only at the end)
  --video_every <k>        render one evaluation episode every k iterations into the run's
                           videos/iter_NNNNNN.gif and TensorBoard (eval/video): every
                           family, MuJoCo through EGL (default 0: never)
  --quiet                  no tables or progress lines
  --dist mpi               one run on R ranks: `mpirun -np R <program> ... --dist mpi` in a build
                           with --features mpi; num_envs is the total, each rank steps its share,
                           every rank computes the same update, rank 0 alone writes
  --dist nccl              the same over NCCL (a CUDA build with --features nccl, and mpi to
                           launch R > 1 ranks under mpirun): one GPU per rank, the networks on
                           the rank's GPU when --device names a GPU
  Ctrl-C / SIGTERM         finish the iteration, save a checkpoint and the logs, exit 130
                           (a second one exits at once)
  --n_proc 1, --port_num   accepted for compatibility (several processes: --dist mpi)";

/// A parsed command line.
#[derive(Debug, Clone)]
pub struct Cli {
    /// The config after overrides.
    pub config: Config,
    /// Everything else.
    pub options: RunOptions,
}

/// The device named by the environment variable `var`: a `--device` value (`-1`: CUDA when
/// available, `k`: GPU k), `cuda` (GPU 0) or `cpu`; the CPU when `var` is unset (benches,
/// tests and tools).
pub fn device_from_env(var: &str) -> Result<Device> {
    let Ok(v) = std::env::var(var) else {
        return Ok(Device::Cpu);
    };
    match v.trim() {
        "" | "cpu" => Ok(Device::Cpu),
        "cuda" => device(0),
        s => device(s.parse::<i64>().map_err(|_| {
            crate::Error::Invalid(format!(
                "{var}={v}: expected cpu, cuda or a --device value (-1, 0, 1, ...)"
            ))
        })?),
    }
}

/// The device the workspace's tests run on: `RAT_TEST_DEVICE` as in [`device_from_env`] (the
/// CPU when unset; a GPU needs a build with `--features cuda`). Made once per process, because
/// candle tells devices apart by instance: tensors from two `Device::new_cuda(0)` calls cannot
/// meet.
pub fn test_device() -> Result<Device> {
    static DEVICE: std::sync::OnceLock<Device> = std::sync::OnceLock::new();
    if let Some(d) = DEVICE.get() {
        return Ok(d.clone());
    }
    let d = device_from_env("RAT_TEST_DEVICE")?;
    Ok(DEVICE.get_or_init(|| d).clone())
}

/// The device for the reference's `--device` value.
pub fn device(k: i64) -> Result<Device> {
    if k < 0 {
        return Ok(Device::cuda_if_available(0)?);
    }
    Device::new_cuda(k as usize).map_err(|e| {
        crate::Error::Invalid(format!(
            "--device {k}: no CUDA device ({e}); build with --features cuda on a GPU machine, or use --device -1"
        ))
    })
}

/// One item of a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// `--help` or `-h`.
    Help,
    /// A flag the program declared as a switch, by its key (`quiet`).
    Switch(String),
    /// A flag and its value, the key with `-` read as `_` (`env_name`, `CartPole-v1`).
    Flag(String, String),
    /// An argument that is not a flag (a checkpoint path).
    Positional(String),
}

/// Splits `args` (without the program name) into [`Item`]s by the rules above; `switches` are
/// the keys that take no value.
pub fn items(args: impl IntoIterator<Item = String>, switches: &[&str]) -> Result<Vec<Item>> {
    use lexopt::{Arg, ValueExt};
    let mut parser = lexopt::Parser::from_args(args);
    let mut out = Vec::new();
    let err = |e: lexopt::Error| crate::Error::Invalid(e.to_string());
    while let Some(arg) = parser.next().map_err(err)? {
        match arg {
            Arg::Long("help") | Arg::Short('h') => out.push(Item::Help),
            Arg::Long(name) => {
                let name = name.to_string();
                let key = name.replace('-', "_");
                if switches.contains(&key.as_str()) {
                    out.push(Item::Switch(key));
                    continue;
                }
                let value = parser
                    .value()
                    .map_err(|_| crate::Error::Invalid(format!("--{name} needs a value")))?
                    .into_string()
                    .map_err(|v| crate::Error::Invalid(format!("--{name}: {v:?} is not UTF-8")))?;
                if value.starts_with("--") {
                    return invalid(format!(
                        "--{name} needs a value, but the next argument is the flag '{value}'"
                    ));
                }
                out.push(Item::Flag(key, value));
            }
            Arg::Short(c) => {
                return invalid(format!("unknown flag '-{c}' (flags are --key value)"));
            }
            Arg::Value(v) => out.push(Item::Positional(v.string().map_err(err)?)),
        }
    }
    Ok(out)
}

/// An integer flag value, or an error naming the flag.
pub fn integer<T: std::str::FromStr>(key: &str, value: &str) -> Result<T> {
    value
        .parse()
        .map_err(|_| crate::Error::Invalid(format!("--{key}: '{value}' is not an integer")))
}

/// Parses the training examples' `args` (without the program name). `Ok(None)` means `--help`
/// was asked for.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Cli>> {
    let mut config_path: Option<String> = None;
    let mut overrides: Vec<(String, String)> = Vec::new();
    let mut options = RunOptions::default();
    for item in items(args, &["quiet", "no_karzmarz", "no_kaczmarz"])? {
        let (key, value) = match item {
            Item::Help => return Ok(None),
            Item::Switch(s) if s == "quiet" => {
                options.verbose = false;
                continue;
            }
            Item::Switch(_) => {
                overrides.push(("is_karzmarz".into(), "false".into()));
                continue;
            }
            Item::Positional(p) => return invalid(format!("unexpected argument '{p}'\n{USAGE}")),
            Item::Flag(k, v) => (k, v),
        };
        match key.as_str() {
            "config" => config_path = Some(value),
            "seed" => options.seed = Some(integer::<i64>(&key, &value)?.max(0) as u64),
            "device" => options.device = device(integer(&key, &value)?)?,
            "resume" => options.resume = Some(PathBuf::from(value)),
            "log_dir" => options.log_root = PathBuf::from(value),
            "checkpoint_every" => {
                options.checkpoint_every = integer::<i64>(&key, &value)?.max(0) as usize
            }
            "video_every" => options.video_every = integer::<i64>(&key, &value)?.max(0) as usize,
            "dist" => options.comm = communicator(Some(&value))?,
            "n_proc" if integer::<i64>(&key, &value)? != 1 => {
                return invalid(
                    "--n_proc: the reference's extra processes are independent runs (start \
                     several instead); for one run on R processes use \
                     `mpirun -np R ... --dist mpi`",
                );
            }
            "n_proc" | "port_num" => {}
            _ => overrides.push((key, value)),
        }
    }
    #[cfg(feature = "nccl")]
    if options.comm.name() == "nccl" && options.device.is_cuda() {
        // Each rank's networks on the GPU its NCCL rank uses.
        options.device = device(nccl_gpu()? as i64)?;
    }
    let mut config = match (&config_path, &options.resume) {
        (Some(p), _) => Config::load(p)?,
        (None, Some(ckpt)) => checkpoint::load(ckpt)?.config()?,
        (None, None) => return invalid(format!("--config is required\n{USAGE}")),
    };
    for (k, v) in &overrides {
        config.set(k, v)?;
    }
    Ok(Some(Cli { config, options }))
}

/// A training run's result as an example reports it under `--dist`: `Some` on rank 0 (the one
/// that reports, for every rank), `None` on the others; an error on any rank of several ends every
/// rank's process (MPI_Abort, status 1) after printing it, since the others would wait for that
/// rank in their next collective forever.
pub fn on_ranks(
    comm: &dyn rat_core::dist::Communicator,
    result: Result<crate::loops::Outcome>,
) -> Result<Option<crate::loops::Outcome>> {
    match result {
        Ok(out) => Ok(comm.is_root().then_some(out)),
        Err(e) if comm.size() > 1 => {
            eprintln!("error on rank {} of {}: {e}", comm.rank(), comm.size());
            comm.abort(1)
        }
        Err(e) => Err(e),
    }
}

/// The exit status of a run stopped by SIGINT or SIGTERM (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

/// A flag that the first SIGINT (Ctrl-C) or SIGTERM sets, for [`RunOptions::stop`]: the run then
/// finishes its iteration, writes a final checkpoint and its logs, and returns with
/// `interrupted` set. A second signal exits at once with status 130.
pub fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag before this signal sets it: the second signal
        // of either kind ends the process.
        signal_hook::flag::register_conditional_shutdown(
            sig,
            i32::from(EXIT_INTERRUPTED),
            stop.clone(),
        )
        .and_then(|_| signal_hook::flag::register(sig, stop.clone()))
        .map_err(|e| crate::Error::Invalid(format!("cannot install a signal handler: {e}")))?;
    }
    Ok(stop)
}

/// The communicator `--dist` names: `single` (the default: one process), `mpi` (a build with
/// the `mpi` feature, started by `mpirun`) or `nccl` (a build with the `nccl` feature: under
/// `mpirun` with `mpi` too, one rank per GPU, GPU = the rank's local rank modulo the GPUs; else
/// one rank on GPU 0); anything else, or an engine the build lacks, is an error saying what to do.
pub fn communicator(dist: Option<&str>) -> Result<Arc<dyn rat_core::dist::Communicator>> {
    match dist {
        None | Some("single") => Ok(Arc::new(rat_core::dist::Single)),
        #[cfg(feature = "mpi")]
        Some("mpi") => Ok(Arc::new(mpi_world("mpi")?)),
        #[cfg(not(feature = "mpi"))]
        Some("mpi") => invalid(
            "--dist mpi: this build has no MPI; build with `--features mpi` (Debian: apt install \
             libopenmpi-dev openmpi-bin libclang-dev) and start it with `mpirun -np <R> ...`",
        ),
        #[cfg(feature = "nccl")]
        Some("nccl") => nccl(),
        #[cfg(not(feature = "nccl"))]
        Some("nccl") => invalid(
            "--dist nccl: this build has no NCCL; build it with scripts/build-cuda.sh (features \
             cuda and nccl; add mpi to launch more than one rank with `mpirun`)",
        ),
        Some(other) => invalid(format!(
            "--dist {other}: not an engine (single; mpi and nccl in builds with those features)"
        )),
    }
}

#[cfg(feature = "mpi")]
fn mpi_world(flag: &str) -> Result<rat_core::dist::Mpi> {
    rat_core::dist::Mpi::init().map_err(|e| crate::Error::Invalid(format!("--dist {flag}: {e}")))
}

/// The GPU of this process's NCCL rank: its local rank on the node (0 outside a launcher)
/// modulo the node's GPUs.
#[cfg(feature = "nccl")]
fn nccl_gpu() -> Result<usize> {
    let local = [
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "MPI_LOCALRANKID",
        "SLURM_LOCALID",
    ]
    .iter()
    .find_map(|v| std::env::var(v).ok()?.parse::<usize>().ok())
    .unwrap_or(0);
    let gpus = rat_core::dist::Nccl::gpus()
        .map_err(|e| crate::Error::Invalid(format!("--dist nccl: {e}")))?;
    Ok(local % gpus)
}

/// NCCL over the ranks `mpirun` started (the unique id broadcast over MPI), or one rank.
#[cfg(feature = "nccl")]
fn nccl() -> Result<Arc<dyn rat_core::dist::Communicator>> {
    let boot: Box<dyn rat_core::dist::Communicator> = if rat_core::dist::launched_by_mpi() {
        #[cfg(feature = "mpi")]
        {
            Box::new(mpi_world("nccl")?)
        }
        #[cfg(not(feature = "mpi"))]
        return invalid(
            "--dist nccl under an MPI launcher: this build has no MPI to share NCCL's id; build \
             with the features nccl and mpi",
        );
    } else {
        Box::new(rat_core::dist::Single)
    };
    let nccl = rat_core::dist::Nccl::new(boot, nccl_gpu()?)
        .map_err(|e| crate::Error::Invalid(format!("--dist nccl: {e}")))?;
    Ok(Arc::new(nccl))
}

//! The command line of the training examples: the reference's flags in either spelling
//! (`--env_name` / `--env-name`), any config key as `--key value`, and this port's run options.

use std::path::PathBuf;

use candle_core::Device;

use crate::config::Config;
use crate::detach::RunOptions;
use crate::error::{Result, invalid};

/// The usage text of `train_detach`.
pub const USAGE: &str = "\
usage: train_detach | train_shared --config <file> [--<key> <value>]... [options]

  --config <file>          a YAML config; a bare name resolves under configs/ (rat_mlp.yaml)
  --<key> <value>          override any config key, e.g. --env_name CartPole-v1 --lr_pi 0.05 (--lr 0.05)
                           (--env-name works too); --no_karzmarz sets is_karzmarz False
  --seed <n>               the seed (default: random in [0, 1e6))
  --device <k>             -1: CUDA if built with `cuda` and a GPU is present, else CPU; k >= 0: GPU k
  --resume <checkpoint>    continue a run from its model.safetensors (config from the checkpoint;
                           overrides such as --timesteps_per_proc still apply)
  --log_dir <dir>          root of the run directories (default: logs)
  --checkpoint_every <n>   save every n iterations (default 50; 0 = only at the end)
  --quiet                  no tables or progress lines
  --n_proc 1, --port_num   accepted for compatibility; only one process is supported";

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

/// Parses `args` (without the program name). `Ok(None)` means `--help` was asked for.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Cli>> {
    let mut config_path: Option<String> = None;
    let mut overrides: Vec<(String, String)> = Vec::new();
    let mut options = RunOptions::default();
    let mut args = args.into_iter().peekable();
    while let Some(arg) = args.next() {
        let Some(flag) = arg.strip_prefix("--") else {
            return invalid(format!("unexpected argument '{arg}'\n{USAGE}"));
        };
        let (key, inline) = match flag.split_once('=') {
            Some((k, v)) => (k.replace('-', "_"), Some(v.to_string())),
            None => (flag.replace('-', "_"), None),
        };
        match key.as_str() {
            "help" | "h" => return Ok(None),
            "quiet" => {
                options.verbose = false;
                continue;
            }
            "no_karzmarz" | "no_kaczmarz" => {
                overrides.push(("is_karzmarz".into(), "false".into()));
                continue;
            }
            _ => {}
        }
        let value = match inline {
            Some(v) => v,
            None => args
                .next()
                .ok_or_else(|| crate::Error::Invalid(format!("--{key} needs a value")))?,
        };
        let number = |v: &str| -> Result<i64> {
            v.parse()
                .map_err(|_| crate::Error::Invalid(format!("--{key}: '{v}' is not an integer")))
        };
        match key.as_str() {
            "config" => config_path = Some(value),
            "seed" => options.seed = Some(number(&value)?.max(0) as u64),
            "device" => options.device = device(number(&value)?)?,
            "resume" => options.resume = Some(PathBuf::from(value)),
            "log_dir" => options.log_root = PathBuf::from(value),
            "checkpoint_every" => options.checkpoint_every = number(&value)?.max(0) as usize,
            "n_proc" if number(&value)? != 1 => {
                return invalid(
                    "--n_proc: only one process is supported (the reference's extra \
                                processes are independent runs; start several instead)",
                );
            }
            "n_proc" | "port_num" => {}
            _ => overrides.push((key, value)),
        }
    }
    let mut config = match (&config_path, &options.resume) {
        (Some(p), _) => Config::load(p)?,
        (None, Some(ckpt)) => crate::checkpoint::config(&crate::checkpoint::load(ckpt)?)?,
        (None, None) => return invalid(format!("--config is required\n{USAGE}")),
    };
    for (k, v) in &overrides {
        config.set(k, v)?;
    }
    Ok(Some(Cli { config, options }))
}

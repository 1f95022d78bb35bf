//! Checkpoints as safetensors files: named tensors, with the few non-tensor values (config text,
//! RNG position, counters) stored as small tensors so the file stays self-describing.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use rand_chacha::ChaCha8Rng;

use crate::config::Config;
use crate::error::{Result, invalid};

/// Writes `tensors` (moved to the CPU) to `path`, atomically (a temporary file then a rename),
/// so an interrupted save never leaves a truncated checkpoint.
pub fn save(path: &Path, tensors: Vec<(String, Tensor)>) -> Result<()> {
    let map = tensors
        .into_iter()
        .map(|(k, t)| Ok((k, t.to_device(&Device::Cpu)?)))
        .collect::<Result<HashMap<_, _>>>()?;
    let tmp = path.with_extension("safetensors.tmp");
    candle_core::safetensors::save(&map, &tmp)?;
    std::fs::rename(&tmp, path).map_err(crate::error::io(path))
}

/// Reads every tensor of a checkpoint onto the CPU.
pub fn load(path: &Path) -> Result<HashMap<String, Tensor>> {
    if !path.is_file() {
        return invalid(format!("no checkpoint at {}", path.display()));
    }
    Ok(candle_core::safetensors::load(path, &Device::Cpu)?)
}

/// Text as a u8 tensor.
pub fn text_tensor(s: &str) -> Result<Tensor> {
    Ok(Tensor::new(s.as_bytes(), &Device::Cpu)?)
}

/// The text of a u8 tensor.
pub fn tensor_text(t: &Tensor) -> Result<String> {
    String::from_utf8(t.flatten_all()?.to_vec1::<u8>()?)
        .or_else(|_| invalid("checkpoint text is not UTF-8"))
}

/// The run's configuration stored in a checkpoint.
pub fn config(t: &HashMap<String, Tensor>) -> Result<Config> {
    let text = t
        .get("train.config")
        .ok_or_else(|| crate::Error::Invalid("checkpoint has no train.config".into()))?;
    let mut config = Config::from_yaml(&tensor_text(text)?, "checkpoint")?;
    // A stored config lists every key; none of them was given by the user of this run.
    config.given.clear();
    Ok(config)
}

/// A ChaCha8 generator's exact position: seed (8 words), stream (2), word position (4).
pub fn rng_tensor(rng: &ChaCha8Rng) -> Result<Tensor> {
    let mut words: Vec<u32> = rng
        .get_seed()
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let stream = rng.get_stream();
    words.extend([stream as u32, (stream >> 32) as u32]);
    let pos = rng.get_word_pos();
    words.extend((0..4).map(|k| (pos >> (32 * k)) as u32));
    Ok(Tensor::new(words.as_slice(), &Device::Cpu)?)
}

/// The generator saved by [`rng_tensor`].
pub fn tensor_rng(t: &Tensor) -> Result<ChaCha8Rng> {
    use rand::SeedableRng;
    let w = t.to_dtype(DType::U32)?.flatten_all()?.to_vec1::<u32>()?;
    if w.len() != 14 {
        return invalid("checkpoint RNG state must be 14 words");
    }
    let mut seed = [0u8; 32];
    for (i, x) in w[..8].iter().enumerate() {
        seed[4 * i..4 * i + 4].copy_from_slice(&x.to_le_bytes());
    }
    let mut rng = ChaCha8Rng::from_seed(seed);
    rng.set_stream(u64::from(w[8]) | (u64::from(w[9]) << 32));
    rng.set_word_pos((0..4).fold(0u128, |acc, k| acc | (u128::from(w[10 + k]) << (32 * k))));
    Ok(rng)
}

/// The tensor `name` of a checkpoint, or an error naming it.
pub fn checkpoint_tensor<'a>(t: &'a HashMap<String, Tensor>, name: &str) -> Result<&'a Tensor> {
    t.get(name).ok_or_else(|| {
        crate::Error::Invalid(format!(
            "checkpoint has no tensor '{name}' (another config?)"
        ))
    })
}

/// Network parameters as checkpoint entries `{prefix}.{i}`.
pub fn param_tensors(prefix: &str, params: &[Var]) -> Vec<(String, Tensor)> {
    params
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("{prefix}.{i}"), p.as_tensor().clone()))
        .collect()
}

/// Restores what [`param_tensors`] saved; every entry must be present and of the right shape.
pub fn load_params(t: &HashMap<String, Tensor>, prefix: &str, params: &[Var]) -> Result<()> {
    for (i, p) in params.iter().enumerate() {
        let v = checkpoint_tensor(t, &format!("{prefix}.{i}"))?;
        if v.shape() != p.shape() {
            return invalid(format!(
                "checkpoint tensor {prefix}.{i} is {:?}, the network's is {:?} (another config?)",
                v.shape(),
                p.shape()
            ));
        }
        p.set(&v.to_dtype(p.dtype())?.to_device(p.device())?)?;
    }
    Ok(())
}

/// Entries renamed `{prefix}{name}` (an optimiser's state under `optim.actor.`, …).
pub fn with_prefix(prefix: &str, entries: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
    entries
        .into_iter()
        .map(|(k, v)| (format!("{prefix}{k}"), v))
        .collect()
}

//! Checkpoints as safetensors files: the networks' and optimisers' tensors by name, and the
//! run's non-tensor values (seed, RNG position, config) as text in the file's metadata, with a
//! SHA-256 of every tensor so that a corrupted file is refused rather than loaded.
//!
//! Network parameters are named by their place (`actor.trunk.0.weight`, `critic.head.bias`) and
//! restored by name with their shapes checked. Checkpoints of the first format (no `rat.format`
//! in the metadata: positional names, values as tensors, no checksum) still load.

use std::collections::{BTreeMap, HashMap};
use std::ops::Deref;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use rand_chacha::ChaCha8Rng;
use safetensors::SafeTensors;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::{Result, invalid};

/// The format this module writes (`rat.format` in the metadata).
pub const FORMAT: &str = "2";

/// A loaded checkpoint: its tensors (on the CPU) and its metadata. Derefs to the tensors.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The file it was read from.
    pub path: PathBuf,
    /// Every tensor by name.
    pub tensors: HashMap<String, Tensor>,
    /// The text metadata (`train.seed`, `train.config`, `train.rng`, `rat.format`, …).
    pub meta: HashMap<String, String>,
}

impl Deref for Checkpoint {
    type Target = HashMap<String, Tensor>;

    fn deref(&self) -> &Self::Target {
        &self.tensors
    }
}

impl Checkpoint {
    fn bad(&self, msg: impl std::fmt::Display) -> crate::Error {
        crate::Error::Invalid(format!("checkpoint {}: {msg}", self.path.display()))
    }

    /// The metadata value `key` (or, in a first-format file, the tensor of that name as text).
    fn text(&self, key: &str) -> Result<String> {
        if let Some(v) = self.meta.get(key) {
            return Ok(v.clone());
        }
        match self.tensors.get(key) {
            Some(t) => tensor_text(t),
            None => Err(self.bad(format!("no '{key}' (not a rat checkpoint?)"))),
        }
    }

    /// The run's configuration.
    pub fn config(&self) -> Result<Config> {
        let mut config = Config::from_yaml(&self.text("train.config")?, "checkpoint")?;
        // A stored config lists every key; none of them was given by the user of this run.
        config.given.clear();
        Ok(config)
    }

    /// The run's seed (exact for every u64).
    pub fn seed(&self) -> Result<u64> {
        if let Some(v) = self.meta.get("train.seed") {
            return v
                .parse()
                .map_err(|_| self.bad(format!("train.seed '{v}' is not a whole number")));
        }
        let t = self
            .tensors
            .get("train.seed")
            .ok_or_else(|| self.bad("no train.seed"))?;
        Ok(t.to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1::<f64>()?
            .first()
            .copied()
            .unwrap_or(0.0) as u64)
    }

    /// The run's RNG at the checkpoint's position.
    pub fn rng(&self) -> Result<ChaCha8Rng> {
        let words: Vec<u32> = match self.meta.get("train.rng") {
            Some(v) => v
                .split(',')
                .map(|w| u32::from_str_radix(w, 16))
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| self.bad("train.rng is not 14 hexadecimal words"))?,
            None => {
                let t = self
                    .tensors
                    .get("train.rng")
                    .ok_or_else(|| self.bad("no train.rng"))?;
                t.to_dtype(DType::U32)?.flatten_all()?.to_vec1::<u32>()?
            }
        };
        rng_from_words(&words)
    }
}

/// A SHA-256 over every tensor in name order: its name, dtype, shape and bytes.
fn digest<'a>(tensors: impl Iterator<Item = (&'a str, String, &'a [usize], &'a [u8])>) -> String {
    let mut sorted: Vec<_> = tensors.collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = Sha256::new();
    for (name, dtype, shape, data) in sorted {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update(dtype.as_bytes());
        h.update((shape.len() as u64).to_le_bytes());
        for d in shape {
            h.update((*d as u64).to_le_bytes());
        }
        h.update((data.len() as u64).to_le_bytes());
        h.update(data);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `tensors` (moved to the CPU) and the text `meta` to `path` with a checksum of the
/// tensors, atomically (a temporary file then a rename, so an interrupted save never leaves a
/// truncated checkpoint), readable by all (0644) like the run's other outputs.
pub fn save(
    path: &Path,
    tensors: Vec<(String, Tensor)>,
    meta: Vec<(String, String)>,
) -> Result<()> {
    let cpu: BTreeMap<String, Tensor> = tensors
        .into_iter()
        .map(|(k, t)| Ok((k, t.to_device(&Device::Cpu)?.contiguous()?)))
        .collect::<Result<_>>()?;
    let bytes: Vec<(String, Vec<u8>)> = cpu
        .iter()
        .map(|(k, t)| Ok((k.clone(), safetensors::View::data(t).into_owned())))
        .collect::<Result<_>>()?;
    let sum = digest(cpu.iter().zip(&bytes).map(|((k, t), (_, b))| {
        (
            k.as_str(),
            format!("{:?}", safetensors::View::dtype(t)),
            t.dims(),
            b.as_slice(),
        )
    }));
    let mut info: HashMap<String, String> = meta.into_iter().collect();
    info.insert("rat.format".into(), FORMAT.into());
    info.insert("rat.sha256".into(), sum);
    let tmp = path.with_extension("safetensors.tmp");
    safetensors::serialize_to_file(cpu.iter(), Some(info), &tmp)
        .map_err(|e| crate::Error::Invalid(format!("{}: {e}", tmp.display())))?;
    set_readable(&tmp)?;
    std::fs::rename(&tmp, path).map_err(crate::error::io(path))
}

#[cfg(unix)]
fn set_readable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        .map_err(crate::error::io(path))
}

#[cfg(not(unix))]
fn set_readable(_: &Path) -> Result<()> {
    Ok(())
}

/// Reads a checkpoint onto the CPU, refusing a file whose tensors do not match their checksum;
/// every error names the file.
pub fn load(path: &Path) -> Result<Checkpoint> {
    let bad = |msg: String| crate::Error::Invalid(format!("checkpoint {}: {msg}", path.display()));
    if !path.is_file() {
        return invalid(format!("no checkpoint at {}", path.display()));
    }
    let data = std::fs::read(path).map_err(crate::error::io(path))?;
    let st = SafeTensors::deserialize(&data).map_err(|e| {
        bad(format!(
            "not a readable safetensors file ({e}); truncated or damaged?"
        ))
    })?;
    let (_, header) =
        SafeTensors::read_metadata(&data).map_err(|e| bad(format!("unreadable header ({e})")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let views = st.tensors();
    if let Some(want) = meta.get("rat.sha256") {
        let got = digest(
            views
                .iter()
                .map(|(k, v)| (k.as_str(), format!("{:?}", v.dtype()), v.shape(), v.data())),
        );
        if &got != want {
            return Err(bad(
                "its tensors do not match the checksum stored with them: the file is corrupted"
                    .into(),
            ));
        }
    }
    let tensors = candle_core::safetensors::load_buffer(&data, &Device::Cpu)
        .map_err(|e| bad(e.to_string()))?;
    Ok(Checkpoint {
        path: path.to_path_buf(),
        tensors,
        meta,
    })
}

/// Text as a u8 tensor (first-format checkpoints kept text this way).
pub fn text_tensor(s: &str) -> Result<Tensor> {
    Ok(Tensor::new(s.as_bytes(), &Device::Cpu)?)
}

/// The text of a u8 tensor.
pub fn tensor_text(t: &Tensor) -> Result<String> {
    String::from_utf8(t.flatten_all()?.to_vec1::<u8>()?)
        .or_else(|_| invalid("checkpoint text is not UTF-8"))
}

/// A ChaCha8 generator's exact position as text: seed (8 words), stream (2), word position (4),
/// in hexadecimal, comma-separated.
pub fn rng_text(rng: &ChaCha8Rng) -> String {
    let mut words: Vec<u32> = rng
        .get_seed()
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let stream = rng.get_stream();
    words.extend([stream as u32, (stream >> 32) as u32]);
    let pos = rng.get_word_pos();
    words.extend((0..4).map(|k| (pos >> (32 * k)) as u32));
    words
        .iter()
        .map(|w| format!("{w:x}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The generator of [`rng_text`]'s 14 words.
fn rng_from_words(w: &[u32]) -> Result<ChaCha8Rng> {
    use rand::SeedableRng;
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

/// Network parameters as checkpoint entries `{prefix}.{name}` (`actor.trunk.0.weight`).
pub fn param_tensors(prefix: &str, params: &[(String, Var)]) -> Vec<(String, Tensor)> {
    params
        .iter()
        .map(|(name, p)| (format!("{prefix}.{name}"), p.as_tensor().clone()))
        .collect()
}

/// Restores what [`param_tensors`] saved, by name; every entry must be present and of the
/// network's shape. A first-format checkpoint stored them by position (`actor.0`, `actor.1`, …):
/// those are read in order, with the same shape checks.
pub fn load_params(
    t: &HashMap<String, Tensor>,
    prefix: &str,
    params: &[(String, Var)],
) -> Result<()> {
    let positional = !params.is_empty()
        && !t.contains_key(&format!("{prefix}.{}", params[0].0))
        && t.contains_key(&format!("{prefix}.0"));
    for (i, (name, p)) in params.iter().enumerate() {
        let key = if positional {
            format!("{prefix}.{i}")
        } else {
            format!("{prefix}.{name}")
        };
        let v = checkpoint_tensor(t, &key)?;
        if v.shape() != p.shape() {
            return invalid(format!(
                "checkpoint tensor {key} is {:?}, the network's {prefix}.{name} is {:?} (another config?)",
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

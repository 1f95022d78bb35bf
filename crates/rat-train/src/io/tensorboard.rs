//! A TensorBoard event-file writer for scalars and images: TFRecord framing (length, masked
//! CRC-32C, data, masked CRC-32C) around hand-encoded `Event` protocol buffers. No protobuf
//! dependency: a scalar event is five fields, an image one a few more.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Result, io};

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
pub fn crc32c(data: &[u8]) -> u32 {
    const POLY: u32 = 0x82F6_3B78;
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            }
            *slot = c;
        }
        t
    });
    !data.iter().fold(!0u32, |c, &b| {
        table[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8)
    })
}

/// TFRecord's masked CRC: rotate right by 15 and add a constant.
pub fn masked_crc(data: &[u8]) -> u32 {
    crc32c(data).rotate_right(15).wrapping_add(0xA282_EAD8)
}

fn varint(mut x: u64, out: &mut Vec<u8>) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

fn bytes_field(field: u64, data: &[u8], out: &mut Vec<u8>) {
    varint(field << 3 | 2, out);
    varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

/// An `Event` with wall time, step and either a file version or one scalar summary value.
fn event(wall_time: f64, step: i64, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    varint(1 << 3 | 1, &mut out); // wall_time: double
    out.extend_from_slice(&wall_time.to_le_bytes());
    varint(2 << 3, &mut out); // step: int64
    varint(step as u64, &mut out);
    body(&mut out);
    out
}

fn scalar_event(wall_time: f64, step: i64, tag: &str, value: f32) -> Vec<u8> {
    event(wall_time, step, |out| {
        let mut v = Vec::with_capacity(tag.len() + 8);
        bytes_field(1, tag.as_bytes(), &mut v); // Summary.Value.tag
        varint(2 << 3 | 5, &mut v); // Summary.Value.simple_value: float
        v.extend_from_slice(&value.to_le_bytes());
        let mut summary = Vec::with_capacity(v.len() + 4);
        bytes_field(1, &v, &mut summary); // Summary.value
        bytes_field(5, &summary, out); // Event.summary
    })
}

/// An `Image` summary (`Summary.Value.image`): height, width, colour space and the encoded
/// bytes (PNG, or a GIF, which TensorBoard plays as an animation, as tensorboardX's videos).
fn image_event(
    wall_time: f64,
    step: i64,
    tag: &str,
    size: (usize, usize),
    encoded: &[u8],
) -> Vec<u8> {
    event(wall_time, step, |out| {
        let mut image = Vec::with_capacity(encoded.len() + 16);
        varint(1 << 3, &mut image); // height
        varint(size.1 as u64, &mut image);
        varint(2 << 3, &mut image); // width
        varint(size.0 as u64, &mut image);
        varint(3 << 3, &mut image); // colorspace: RGB
        varint(3, &mut image);
        bytes_field(4, encoded, &mut image); // encoded_image_string
        let mut v = Vec::with_capacity(image.len() + tag.len() + 8);
        bytes_field(1, tag.as_bytes(), &mut v);
        bytes_field(4, &image, &mut v); // Summary.Value.image
        let mut summary = Vec::with_capacity(v.len() + 4);
        bytes_field(1, &v, &mut summary);
        bytes_field(5, &summary, out);
    })
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Writes `events.out.tfevents.<time>.<host>` in a directory; `tensorboard --logdir` reads it.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Creates the event file in `dir` and writes the version record.
    pub fn create(dir: &Path) -> Result<Self> {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        // A new file for every session, never an earlier one's: two sessions of a run (a
        // resume) can start within the same second.
        let base = format!("events.out.tfevents.{}.{host}", now() as u64);
        let mut k = 0;
        let (path, file) = loop {
            let path = dir.join(if k == 0 {
                base.clone()
            } else {
                format!("{base}.{k}")
            });
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => break (path, file),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && k < 1000 => k += 1,
                Err(e) => return Err(io(&path)(e)),
            }
        };
        let mut w = Self {
            path,
            out: BufWriter::new(file),
        };
        let version = event(now(), 0, |out| bytes_field(3, b"brain.Event:2", out));
        w.record(&version)?;
        Ok(w)
    }

    fn record(&mut self, data: &[u8]) -> Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        let mut buf = Vec::with_capacity(data.len() + 16);
        buf.extend_from_slice(&len);
        buf.extend_from_slice(&masked_crc(&len).to_le_bytes());
        buf.extend_from_slice(data);
        buf.extend_from_slice(&masked_crc(data).to_le_bytes());
        self.out.write_all(&buf).map_err(io(&self.path))
    }

    /// One scalar at `step`.
    pub fn scalar(&mut self, tag: &str, value: f64, step: i64) -> Result<()> {
        self.record(&scalar_event(now(), step, tag, value as f32))
    }

    /// One image at `step`: `encoded` is a PNG or GIF of `size` = (width, height) pixels.
    pub fn image(
        &mut self,
        tag: &str,
        size: (usize, usize),
        encoded: &[u8],
        step: i64,
    ) -> Result<()> {
        self.record(&image_event(now(), step, tag, size, encoded))
    }

    /// Flushes to disk.
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(io(&self.path))
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The records of an event file (each an `Event` message), checking every CRC.
fn records(path: &Path) -> Result<Vec<Vec<u8>>> {
    let data = std::fs::read(path).map_err(io(path))?;
    let bad = |msg: &str| crate::Error::Invalid(format!("{}: {msg}", path.display()));
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let header = data
            .get(pos..pos + 12)
            .ok_or_else(|| bad("truncated record header"))?;
        let len = le_u64(&header[..8]) as usize;
        if le_u32(&header[8..12]) != masked_crc(&header[..8]) {
            return Err(bad("length CRC mismatch"));
        }
        let body = data
            .get(pos + 12..pos + 12 + len)
            .ok_or_else(|| bad("truncated record"))?;
        let crc = data
            .get(pos + 12 + len..pos + 16 + len)
            .ok_or_else(|| bad("truncated CRC"))?;
        if le_u32(crc) != masked_crc(body) {
            return Err(bad("data CRC mismatch"));
        }
        out.push(body.to_vec());
        pos += 16 + len;
    }
    Ok(out)
}

/// Reads back the scalars of an event file as (tag, step, value), checking every CRC; for
/// tests and tools.
pub fn read_scalars(path: &Path) -> Result<Vec<(String, i64, f32)>> {
    Ok(records(path)?
        .iter()
        .filter_map(|r| parse_scalar(r))
        .collect())
}

/// An image summary read back from an event file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Its tag.
    pub tag: String,
    /// Its step.
    pub step: i64,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// The encoded image (PNG or GIF).
    pub encoded: Vec<u8>,
}

/// Reads back the images of an event file.
pub fn read_images(path: &Path) -> Result<Vec<Image>> {
    Ok(records(path)?
        .iter()
        .filter_map(|r| parse_image(r))
        .collect())
}

/// Drops the summaries (scalars and images) of steps ≥ `step` from an event file (rewritten
/// atomically), so that a resumed run does not log the iterations after its checkpoint twice.
pub fn truncate(path: &Path, step: i64) -> Result<()> {
    let kept: Vec<Vec<u8>> = records(path)?
        .into_iter()
        .filter(|r| summary_step(r).is_none_or(|s| s < step))
        .collect();
    let tmp = path.with_extension("truncating");
    let file = File::create(&tmp).map_err(io(&tmp))?;
    let mut w = EventWriter {
        path: tmp.clone(),
        out: BufWriter::new(file),
    };
    for r in &kept {
        w.record(r)?;
    }
    w.flush()?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Little-endian value of up to 8 bytes.
fn le_u64(b: &[u8]) -> u64 {
    b.iter()
        .take(8)
        .rev()
        .fold(0, |acc, &x| acc << 8 | u64::from(x))
}

/// Little-endian value of up to 4 bytes.
fn le_u32(b: &[u8]) -> u32 {
    le_u64(&b[..b.len().min(4)]) as u32
}

fn read_varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut x = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        x |= u64::from(byte & 0x7F) << shift;
        if byte < 0x80 {
            return Some(x);
        }
    }
    None
}

/// Visits the fields of a message as (field number, wire type, payload).
fn fields(b: &[u8]) -> Option<Fields<'_>> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < b.len() {
        let key = read_varint(b, &mut pos)?;
        let (field, wire) = (key >> 3, key & 7);
        let start = pos;
        let end = match wire {
            0 => {
                read_varint(b, &mut pos)?;
                pos
            }
            1 => pos + 8,
            2 => {
                let len = read_varint(b, &mut pos)? as usize;
                let s = pos;
                pos = s + len;
                out.push((field, wire, b.get(s..pos)?));
                continue;
            }
            5 => pos + 4,
            _ => return None,
        };
        out.push((field, wire, b.get(start..end)?));
        pos = end;
    }
    Some(out)
}

/// A message's fields as (field number, wire type, payload).
type Fields<'a> = Vec<(u64, u64, &'a [u8])>;

/// The step and the first summary value's fields (tag, …) of an event with a summary.
fn summary_value(event: &[u8]) -> Option<(i64, Fields<'_>)> {
    let f = fields(event)?;
    let step = f.iter().find(|x| x.0 == 2).map_or(Some(0), |x| {
        let mut p = 0;
        read_varint(x.2, &mut p).map(|v| v as i64)
    })?;
    let summary = f.iter().find(|x| x.0 == 5)?.2;
    let value = fields(summary)?.into_iter().find(|x| x.0 == 1)?.2;
    Some((step, fields(value)?))
}

fn summary_step(event: &[u8]) -> Option<i64> {
    summary_value(event).map(|(step, _)| step)
}

fn tag_of(vf: &[(u64, u64, &[u8])]) -> Option<String> {
    String::from_utf8(vf.iter().find(|x| x.0 == 1)?.2.to_vec()).ok()
}

fn parse_scalar(event: &[u8]) -> Option<(String, i64, f32)> {
    let (step, vf) = summary_value(event)?;
    let v = f32::from_le_bytes(vf.iter().find(|x| x.0 == 2)?.2.try_into().ok()?);
    Some((tag_of(&vf)?, step, v))
}

fn parse_image(event: &[u8]) -> Option<Image> {
    let (step, vf) = summary_value(event)?;
    let image = fields(vf.iter().find(|x| x.0 == 4)?.2)?;
    let int = |k: u64| {
        let mut p = 0;
        read_varint(image.iter().find(|x| x.0 == k)?.2, &mut p)
    };
    let (h, w) = (int(1)? as usize, int(2)? as usize);
    Some(Image {
        tag: tag_of(&vf)?,
        step,
        width: w,
        height: h,
        encoded: image.iter().find(|x| x.0 == 4)?.2.to_vec(),
    })
}

//! Episodes as animated GIFs (nothing to install): the frames an environment renders
//! ([`rat_envs::Frame`]) with a caption row underneath (the episode's return), in a small
//! built-in pixel font.

use std::path::Path;

use rat_envs::Frame;

use crate::error::{Result, io};

/// Height of the caption row in pixels.
pub const CAPTION_HEIGHT: usize = 14;
/// The font's scale: each glyph pixel is a `SCALE x SCALE` square.
const SCALE: usize = 2;

/// 3 x 5 glyphs, one row per byte (bit 2 = left column), for the characters a caption uses.
fn glyph(c: char) -> [u8; 5] {
    match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 3, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 2, 2],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '.' => [0, 0, 0, 0, 2],
        '-' => [0, 0, 7, 0, 0],
        '+' => [0, 2, 7, 2, 0],
        ':' => [0, 2, 0, 2, 0],
        'e' => [0, 7, 7, 4, 7],
        'i' => [2, 0, 2, 2, 2],
        'n' => [0, 6, 5, 5, 5],
        'p' => [0, 7, 5, 7, 4],
        'r' => [0, 6, 4, 4, 4],
        's' => [0, 3, 6, 1, 6],
        't' => [2, 7, 2, 2, 3],
        'u' => [0, 5, 5, 5, 7],
        _ => [0; 5],
    }
}

/// `frame` with a white caption row of `text` (black) underneath.
pub fn with_caption(frame: &Frame, text: &str) -> Frame {
    let mut out = Frame::filled(frame.width, frame.height + CAPTION_HEIGHT, [255, 255, 255]);
    out.rgb[..frame.rgb.len()].copy_from_slice(&frame.rgb);
    let top = frame.height + (CAPTION_HEIGHT - 5 * SCALE) / 2;
    for (k, c) in text.chars().enumerate() {
        let left = 4 + k * 4 * SCALE;
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..3 {
                if bits & (4 >> col) != 0 {
                    let (x, y) = (left + col * SCALE, top + row * SCALE);
                    out.fill_rect(x, y, SCALE, SCALE, [0, 0, 0]);
                }
            }
        }
    }
    out
}

/// `frame` shrunk by `factor` in each direction, each pixel the mean of a `factor x factor`
/// block (a remainder row or column is dropped).
pub fn downsample(frame: &Frame, factor: usize) -> Frame {
    let f = factor.max(1);
    let (w, h) = (frame.width / f, frame.height / f);
    let mut out = Frame::filled(w, h, [0, 0, 0]);
    for y in 0..h {
        for x in 0..w {
            let mut sum = [0u32; 3];
            for dy in 0..f {
                for dx in 0..f {
                    let p = frame.pixel(x * f + dx, y * f + dy);
                    for (s, v) in sum.iter_mut().zip(p) {
                        *s += u32::from(v);
                    }
                }
            }
            let n = (f * f) as u32;
            let i = 3 * (y * w + x);
            for (o, s) in out.rgb[i..i + 3].iter_mut().zip(sum) {
                *o = ((s + n / 2) / n) as u8;
            }
        }
    }
    out
}

/// The frames as an endlessly looping GIF, `delay_cs` hundredths of a second each. Frames of
/// at most 256 colours keep their colours exactly.
pub fn gif_bytes(frames: &[Frame], delay_cs: u16) -> Result<Vec<u8>> {
    let first = frames
        .first()
        .ok_or_else(|| crate::Error::Invalid("a video needs at least one frame".into()))?;
    let size = |f: &Frame| (f.width, f.height);
    if frames.iter().any(|f| size(f) != size(first))
        || first.width > 65_535
        || first.height > 65_535
    {
        return Err(crate::Error::Invalid(
            "a video's frames must all have one size, at most 65535 pixels a side".into(),
        ));
    }
    let (w, h) = (first.width as u16, first.height as u16);
    let gif_err = |e: gif::EncodingError| crate::Error::Invalid(format!("GIF encoding: {e}"));
    let mut bytes = Vec::new();
    {
        let mut encoder = gif::Encoder::new(&mut bytes, w, h, &[]).map_err(gif_err)?;
        encoder.set_repeat(gif::Repeat::Infinite).map_err(gif_err)?;
        for f in frames {
            let mut frame = gif::Frame::from_rgb_speed(w, h, &f.rgb, 10);
            frame.delay = delay_cs;
            encoder.write_frame(&frame).map_err(gif_err)?;
        }
    }
    Ok(bytes)
}

/// The GIF frame delay (hundredths of a second) closest to `fps` frames a second; GIF players
/// treat delays under 2 as slow, so at most 50 frames a second.
pub fn delay_cs(fps: u32) -> u16 {
    (100 / fps.max(1)).max(2) as u16
}

/// Writes [`gif_bytes`] to `path`.
pub fn write_gif(path: &Path, frames: &[Frame], delay_cs: u16) -> Result<()> {
    let bytes = gif_bytes(frames, delay_cs)?;
    std::fs::write(path, bytes).map_err(io(path))
}

/// Writes the frames as an H.264 MP4 at `fps` by piping them to `ffmpeg` (which must be on the
/// PATH; the error says so when it is not).
pub fn write_mp4(path: &Path, frames: &[Frame], fps: u32) -> Result<()> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let first = frames
        .first()
        .ok_or_else(|| crate::Error::Invalid("a video needs at least one frame".into()))?;
    // H.264 in yuv420p needs even sides: pad with the last row and column.
    let (w, h) = (
        first.width + first.width % 2,
        first.height + first.height % 2,
    );
    let mut child = Command::new("ffmpeg")
        .args([
            "-loglevel",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
        ])
        .args(["-s", &format!("{}x{}", first.width, first.height)])
        .args(["-r", &fps.to_string(), "-i", "-"])
        .args(["-vf", &format!("pad={w}:{h}"), "-pix_fmt", "yuv420p"])
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| {
            crate::Error::Invalid(format!(
                "writing {}: cannot run ffmpeg ({e}); install it or write a .gif",
                path.display()
            ))
        })?;
    if let Some(stdin) = child.stdin.as_mut() {
        for f in frames {
            stdin.write_all(&f.rgb).map_err(io(path))?;
        }
    }
    drop(child.stdin.take());
    let status = child.wait().map_err(io(path))?;
    if !status.success() {
        return Err(crate::Error::Invalid(format!(
            "ffmpeg failed writing {} ({status})",
            path.display()
        )));
    }
    Ok(())
}

/// Writes `frames` to `path` as a GIF, or an MP4 when the path ends in `.mp4`, at `fps`.
pub fn write_video(path: &Path, frames: &[Frame], fps: u32) -> Result<()> {
    let mp4 = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("mp4"));
    if mp4 {
        write_mp4(path, frames, fps)
    } else {
        write_gif(path, frames, delay_cs(fps))
    }
}

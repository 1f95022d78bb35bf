//! A dependency-free PNG line plot for learning curves: RGB raster, lines, shaded bands, axes
//! with tick labels and a legend in a built-in 3x5 pixel font (scaled), written as a PNG.

use std::path::Path;

use crate::error::{Result, invalid, io};

/// One curve: its label, colour, x values and (mean, std) per x.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text (lower-case letters, digits, `.` `-` `_` `(` `)` and spaces).
    pub label: String,
    /// RGB.
    pub color: [u8; 3],
    /// x values, increasing.
    pub x: Vec<f64>,
    /// Mean per x.
    pub mean: Vec<f64>,
    /// Standard deviation per x (a shaded band of ± std).
    pub std: Vec<f64>,
}

/// Distinct colours for up to eight series.
pub const PALETTE: [[u8; 3]; 8] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
];

/// 3x5 glyphs, rows top to bottom, 3 bits each (MSB left).
fn glyph(c: char) -> [u8; 5] {
    match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        'a' => [2, 5, 7, 5, 5],
        'b' => [6, 5, 6, 5, 6],
        'c' => [3, 4, 4, 4, 3],
        'd' => [6, 5, 5, 5, 6],
        'e' => [7, 4, 6, 4, 7],
        'f' => [7, 4, 6, 4, 4],
        'g' => [3, 4, 5, 5, 3],
        'h' => [5, 5, 7, 5, 5],
        'i' => [7, 2, 2, 2, 7],
        'j' => [1, 1, 1, 5, 2],
        'k' => [5, 5, 6, 5, 5],
        'l' => [4, 4, 4, 4, 7],
        'm' => [5, 7, 7, 5, 5],
        'n' => [6, 5, 5, 5, 5],
        'o' => [2, 5, 5, 5, 2],
        'p' => [6, 5, 6, 4, 4],
        'q' => [2, 5, 5, 6, 3],
        'r' => [6, 5, 6, 5, 5],
        's' => [3, 4, 2, 1, 6],
        't' => [7, 2, 2, 2, 2],
        'u' => [5, 5, 5, 5, 7],
        'v' => [5, 5, 5, 5, 2],
        'w' => [5, 5, 7, 7, 5],
        'x' => [5, 5, 2, 5, 5],
        'y' => [5, 5, 2, 2, 2],
        'z' => [7, 1, 2, 4, 7],
        '.' => [0, 0, 0, 0, 2],
        '-' => [0, 0, 7, 0, 0],
        '_' => [0, 0, 0, 0, 7],
        '(' => [1, 2, 2, 2, 1],
        ')' => [4, 2, 2, 2, 4],
        '+' => [0, 2, 7, 2, 0],
        _ => [0; 5],
    }
}

struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Self {
        Self {
            w,
            h,
            px: vec![255; w * h * 3],
        }
    }

    fn blend(&mut self, x: i64, y: i64, c: [u8; 3], alpha: f64) {
        if x < 0 || y < 0 || x as usize >= self.w || y as usize >= self.h {
            return;
        }
        let i = (y as usize * self.w + x as usize) * 3;
        for (p, &target) in self.px[i..i + 3].iter_mut().zip(&c) {
            let old = f64::from(*p);
            *p = (old + (f64::from(target) - old) * alpha).round() as u8;
        }
    }

    fn line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), c: [u8; 3]) {
        let n = ((x1 - x0).abs().max((y1 - y0).abs()) * 2.0).ceil().max(1.0) as usize;
        for k in 0..=n {
            let t = k as f64 / n as f64;
            let (x, y) = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1)] {
                self.blend(x.round() as i64 + dx, y.round() as i64 + dy, c, 1.0);
            }
        }
    }

    fn text(&mut self, s: &str, x: i64, y: i64, scale: i64, c: [u8; 3]) {
        for (k, ch) in s.chars().enumerate() {
            let g = glyph(ch.to_ascii_lowercase());
            for (row, bits) in g.iter().enumerate() {
                for col in 0..3 {
                    if bits & (4 >> col) != 0 {
                        for sy in 0..scale {
                            for sx in 0..scale {
                                let px = x + (k as i64 * 4 + col) * scale + sx;
                                self.blend(px, y + row as i64 * scale + sy, c, 1.0);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// CRC-32 (IEEE), PNG's chunk checksum.
fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        t
    });
    !data.iter().fold(!0u32, |c, &b| {
        table[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8)
    })
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
}

/// An RGB image as PNG bytes (filter 0 rows, zlib by `miniz_oxide`).
pub fn encode_png(w: usize, h: usize, rgb: &[u8]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(h * (w * 3 + 1));
    for row in rgb.chunks(w * 3) {
        raw.push(0);
        raw.extend_from_slice(row);
    }
    let z = miniz_oxide::deflate::compress_to_vec_zlib(&raw, 9);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&(w as u32).to_be_bytes());
    ihdr.extend_from_slice(&(h as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// A compact tick label: 1.5m, 250k, 3000, 0.5.
fn tick_label(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}m", trim(v / 1e6))
    } else if a >= 1e4 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A "nice" step for about `n` ticks over `span`.
fn nice_step(span: f64, n: f64) -> f64 {
    let raw = span / n;
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

/// Draws mean ± std curves with a title, axes and legend, and writes a PNG (900 x 560).
pub fn plot_curves(path: &Path, title: &str, x_label: &str, series: &[Series]) -> Result<()> {
    let finite = |v: &f64| v.is_finite();
    let xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.x.iter().copied())
        .filter(finite)
        .collect();
    let ys: Vec<f64> = series
        .iter()
        .flat_map(|s| s.mean.iter().zip(&s.std).flat_map(|(m, d)| [m - d, m + d]))
        .filter(finite)
        .collect();
    if xs.is_empty() || ys.is_empty() {
        return invalid("plot_curves: no finite points to plot");
    }
    let (w, h, left, right, top, bottom) = (900usize, 560usize, 80.0, 190.0, 50.0, 60.0);
    let mut cv = Canvas::new(w, h);
    let fold = |v: &[f64], f: fn(f64, f64) -> f64, init: f64| v.iter().fold(init, |a, &b| f(a, b));
    let (x0, x1) = (
        fold(&xs, f64::min, f64::INFINITY),
        fold(&xs, f64::max, f64::NEG_INFINITY),
    );
    let (mut y0, mut y1) = (
        fold(&ys, f64::min, f64::INFINITY),
        fold(&ys, f64::max, f64::NEG_INFINITY),
    );
    if y1 - y0 < 1e-9 {
        (y0, y1) = (y0 - 1.0, y1 + 1.0);
    }
    let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
    let (pw, ph) = (w as f64 - left - right, h as f64 - top - bottom);
    let sx = |x: f64| left + (x - x0) / (x1 - x0) * pw;
    let sy = |y: f64| top + (1.0 - (y - y0) / (y1 - y0)) * ph;
    let grey = [200, 200, 200];
    let black = [0, 0, 0];
    let step = nice_step(y1 - y0, 6.0);
    let mut t = (y0 / step).ceil() * step;
    while t <= y1 {
        cv.line((left, sy(t)), (left + pw, sy(t)), grey);
        let label = tick_label(t);
        cv.text(
            &label,
            left as i64 - 8 - label.len() as i64 * 8,
            sy(t) as i64 - 5,
            2,
            black,
        );
        t += step;
    }
    let step = nice_step(x1 - x0, 6.0);
    let mut t = (x0 / step).ceil() * step;
    while t <= x1 {
        cv.line((sx(t), top + ph), (sx(t), top + ph + 5.0), black);
        let label = tick_label(t);
        cv.text(
            &label,
            sx(t) as i64 - label.len() as i64 * 4,
            (top + ph) as i64 + 10,
            2,
            black,
        );
        t += step;
    }
    cv.line((left, top), (left, top + ph), black);
    cv.line((left, top + ph), (left + pw, top + ph), black);
    cv.text(title, left as i64, 15, 3, black);
    cv.text(
        x_label,
        (left + pw / 2.0) as i64 - x_label.len() as i64 * 4,
        h as i64 - 25,
        2,
        black,
    );
    for s in series {
        // The ± std band, column by column between consecutive points.
        for k in 1..s.x.len() {
            let (xa, xb) = (sx(s.x[k - 1]), sx(s.x[k]));
            // Half-open columns, so that a column shared by two segments is shaded once.
            let last = k + 1 == s.x.len();
            let end = xb.round() as i64 + i64::from(last);
            for px in xa.round() as i64..end {
                let f = if xb > xa {
                    (px as f64 - xa) / (xb - xa)
                } else {
                    0.0
                };
                let m = s.mean[k - 1] + (s.mean[k] - s.mean[k - 1]) * f;
                let d = s.std[k - 1] + (s.std[k] - s.std[k - 1]) * f;
                if !(m.is_finite() && d.is_finite()) || d <= 0.0 {
                    continue;
                }
                for py in sy(m + d).round() as i64..=sy(m - d).round() as i64 {
                    cv.blend(px, py, s.color, 0.18);
                }
            }
        }
        for k in 1..s.x.len() {
            let (a, b) = ((s.x[k - 1], s.mean[k - 1]), (s.x[k], s.mean[k]));
            if a.1.is_finite() && b.1.is_finite() {
                cv.line((sx(a.0), sy(a.1)), (sx(b.0), sy(b.1)), s.color);
            }
        }
    }
    for (k, s) in series.iter().enumerate() {
        let y = top + 10.0 + k as f64 * 24.0;
        let x = left + pw + 20.0;
        for dy in -2..=2 {
            cv.line((x, y + dy as f64), (x + 24.0, y + dy as f64), s.color);
        }
        cv.text(&s.label, x as i64 + 32, y as i64 - 5, 2, black);
    }
    std::fs::write(path, encode_png(w, h, &cv.px)).map_err(io(path))
}

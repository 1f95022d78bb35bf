//! Frames for watching an agent: an environment that can draw itself returns an RGB [`Frame`]
//! from [`Env::render`](crate::Env::render). MinAtar draws its grid ([`grid_frame`]), classic
//! control draws its bodies with `tiny-skia` ([`classic`]).

pub mod classic;

/// How much an environment draws: everything (the default), or what a frequent training video
/// can afford (MuJoCo: 240 x 240 without shadows or reflections, a quarter of the time of a
/// full frame on a software renderer). Environments that draw the same either way ignore it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Detail {
    /// Everything the environment's reference renderer draws.
    #[default]
    Full,
    /// The bodies and the scene, without the costly effects.
    Fast,
}

/// An RGB image, row-major, three bytes per pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width · height · 3` bytes, row by row.
    pub rgb: Vec<u8>,
}

impl Frame {
    /// A frame of one colour.
    pub fn filled(width: usize, height: usize, colour: [u8; 3]) -> Self {
        Self {
            width,
            height,
            rgb: colour.repeat(width * height),
        }
    }

    /// The colour at column `x`, row `y`.
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = 3 * (y * self.width + x);
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// Paints the `w x h` rectangle at (`x`, `y`), clipped to the frame.
    pub fn fill_rect(&mut self, x: usize, y: usize, w: usize, h: usize, colour: [u8; 3]) {
        for row in y..(y + h).min(self.height) {
            for col in x..(x + w).min(self.width) {
                let i = 3 * (row * self.width + col);
                self.rgb[i..i + 3].copy_from_slice(&colour);
            }
        }
    }
}

/// Background of a grid frame (an empty cell).
pub const GRID_BACKGROUND: [u8; 3] = [0, 0, 0];

/// One colour per channel of a MinAtar grid (up to ten channels, Seaquest's count), distinct on
/// black.
pub const GRID_PALETTE: [[u8; 3]; 10] = [
    [230, 230, 230],
    [230, 80, 60],
    [80, 180, 240],
    [250, 200, 40],
    [110, 210, 90],
    [200, 110, 220],
    [250, 140, 30],
    [40, 210, 200],
    [160, 120, 70],
    [240, 120, 170],
];

/// A `[height, width, channels]` grid (row-major, channel last, values 0 or 1) as a frame of
/// `cell x cell` pixel squares: an empty cell is [`GRID_BACKGROUND`]; an occupied one takes the
/// [`GRID_PALETTE`] colour of its last occupied channel (channels are drawn in order, so a later
/// one covers an earlier one, as MinAtar's own display does).
pub fn grid_frame(grid: &[f64], shape: [usize; 3], cell: usize) -> Frame {
    let [h, w, c] = shape;
    let mut frame = Frame::filled(w * cell, h * cell, GRID_BACKGROUND);
    for row in 0..h {
        for col in 0..w {
            let cellv = &grid[(row * w + col) * c..(row * w + col + 1) * c];
            if let Some(ch) = (0..c).rev().find(|&k| cellv[k] > 0.5) {
                let colour = GRID_PALETTE[ch % GRID_PALETTE.len()];
                frame.fill_rect(col * cell, row * cell, cell, cell, colour);
            }
        }
    }
    frame
}

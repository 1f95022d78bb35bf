//! Classic control drawn as Gymnasium draws it (same geometry, half Gymnasium's 600-pixel
//! width), with `tiny-skia`: white background, y up.

use tiny_skia::{Color, FillRule, LineCap, Paint, PathBuilder, Pixmap, Rect, Stroke, Transform};

use super::Frame;
use crate::error::{Error, Result};

/// A canvas with y pointing up (as Gymnasium's pygame drawing, before its final flip).
struct Canvas {
    pixmap: Pixmap,
}

fn rgb(c: [u8; 3]) -> Paint<'static> {
    let mut paint = Paint::default();
    paint.set_color_rgba8(c[0], c[1], c[2], 255);
    paint.anti_alias = true;
    paint
}

impl Canvas {
    fn new(width: u32, height: u32) -> Result<Self> {
        let mut pixmap = Pixmap::new(width, height).ok_or(Error::InvalidArgument {
            op: "render",
            msg: format!("cannot allocate a {width} x {height} canvas"),
        })?;
        pixmap.fill(Color::WHITE);
        Ok(Self { pixmap })
    }

    fn flip(&self, y: f32) -> f32 {
        self.pixmap.height() as f32 - y
    }

    fn line(&mut self, from: (f32, f32), to: (f32, f32), width: f32, colour: [u8; 3]) {
        let mut pb = PathBuilder::new();
        pb.move_to(from.0, self.flip(from.1));
        pb.line_to(to.0, self.flip(to.1));
        if let Some(path) = pb.finish() {
            let stroke = Stroke {
                width,
                line_cap: LineCap::Round,
                ..Stroke::default()
            };
            let paint = rgb(colour);
            self.pixmap
                .stroke_path(&path, &paint, &stroke, Transform::identity(), None);
        }
    }

    fn polyline(&mut self, points: &[(f32, f32)], width: f32, colour: [u8; 3]) {
        for pair in points.windows(2) {
            self.line(pair[0], pair[1], width, colour);
        }
    }

    fn circle(&mut self, centre: (f32, f32), radius: f32, colour: [u8; 3]) {
        if let Some(path) = PathBuilder::from_circle(centre.0, self.flip(centre.1), radius) {
            let paint = rgb(colour);
            self.pixmap.fill_path(
                &path,
                &paint,
                FillRule::Winding,
                Transform::identity(),
                None,
            );
        }
    }

    /// The rectangle with lower-left corner (`x`, `y`).
    fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, colour: [u8; 3]) {
        if let Some(r) = Rect::from_xywh(x, self.flip(y + h), w, h) {
            let paint = rgb(colour);
            self.pixmap
                .fill_rect(r, &paint, Transform::identity(), None);
        }
    }

    fn frame(self) -> Frame {
        // Opaque everywhere (white background), so the premultiplied RGBA is the RGB.
        let rgb = self
            .pixmap
            .data()
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        Frame {
            width: self.pixmap.width() as usize,
            height: self.pixmap.height() as usize,
            rgb,
        }
    }
}

const BLACK: [u8; 3] = [0, 0, 0];
const POLE: [u8; 3] = [202, 152, 101];
const AXLE: [u8; 3] = [129, 132, 203];
const ROD: [u8; 3] = [204, 77, 77];
const LINK: [u8; 3] = [0, 204, 204];
const FLAG: [u8; 3] = [204, 204, 0];

/// CartPole at `[x, ẋ, θ, θ̇]`: the track, the cart and the pole (θ = 0 upright), 300 x 200.
pub fn cartpole(state: &[f64]) -> Result<Frame> {
    let (w, h) = (300.0f32, 200.0f32);
    let scale = w / 4.8;
    let mut c = Canvas::new(w as u32, h as u32)?;
    let (x, theta) = (state[0] as f32, state[2] as f32);
    let (cart_w, cart_h, track) = (25.0, 15.0, 50.0);
    let cx = x * scale + w / 2.0;
    c.line((0.0, track), (w, track), 1.0, BLACK);
    c.rect(
        cx - cart_w / 2.0,
        track - cart_h / 2.0,
        cart_w,
        cart_h,
        BLACK,
    );
    let len = scale * 1.0;
    let top = (cx + len * theta.sin(), track + len * theta.cos());
    c.line((cx, track), top, 5.0, POLE);
    c.circle((cx, track), 2.5, AXLE);
    Ok(c.frame())
}

/// Pendulum at angle `theta` (0 upright): the rod from the pivot, 250 x 250.
pub fn pendulum(theta: f64) -> Result<Frame> {
    let s = 250.0f32;
    let mut c = Canvas::new(s as u32, s as u32)?;
    let (centre, len) = ((s / 2.0, s / 2.0), s * 0.4);
    let t = theta as f32;
    let end = (centre.0 + len * t.sin(), centre.1 + len * t.cos());
    c.line(centre, end, 0.08 * s, ROD);
    c.circle(end, 0.04 * s, ROD);
    c.circle(centre, 0.02 * s, BLACK);
    Ok(c.frame())
}

/// Acrobot at joint angles `theta1`, `theta2` (0, 0 hanging down): two links from the pivot and
/// the height line it must swing above, 250 x 250.
pub fn acrobot(theta1: f64, theta2: f64) -> Result<Frame> {
    let s = 250.0f32;
    let mut c = Canvas::new(s as u32, s as u32)?;
    let scale = s / 4.4;
    let (t1, t2) = (theta1 as f32, theta2 as f32);
    let pivot = (s / 2.0, s / 2.0);
    let p1 = (pivot.0 + scale * t1.sin(), pivot.1 - scale * t1.cos());
    let p2 = (
        p1.0 + scale * (t1 + t2).sin(),
        p1.1 - scale * (t1 + t2).cos(),
    );
    c.line((0.0, pivot.1 + scale), (s, pivot.1 + scale), 1.0, BLACK);
    c.polyline(&[pivot, p1, p2], 0.04 * s, LINK);
    c.circle(pivot, 0.025 * s, FLAG);
    c.circle(p1, 0.025 * s, FLAG);
    Ok(c.frame())
}

/// The mountain car at `position` on the hill y = 0.45 sin(3x) + 0.55, x ∈ [−1.2, 0.6], with
/// the goal flag at `goal`, 300 x 200.
pub fn mountain_car(position: f64, goal: f64) -> Result<Frame> {
    let (w, h) = (300.0f32, 200.0f32);
    let (lo, hi) = (-1.2f32, 0.6f32);
    let scale = w / (hi - lo);
    let height = |x: f32| (3.0 * x).sin() * 0.45 + 0.55;
    let at = |x: f32| ((x - lo) * scale, height(x) * scale);
    let mut c = Canvas::new(w as u32, h as u32)?;
    let hill: Vec<(f32, f32)> = (0..=100)
        .map(|i| at(lo + (hi - lo) * i as f32 / 100.0))
        .collect();
    c.polyline(&hill, 1.5, BLACK);
    let p = position as f32;
    let (x, y) = at(p);
    // The car body sits on the slope, tilted with it.
    let slope = (3.0 * p).cos() * 0.45 * 3.0;
    let (ux, uy) = (
        1.0 / (1.0 + slope * slope).sqrt(),
        slope / (1.0 + slope * slope).sqrt(),
    );
    let (nx, ny) = (-uy, ux);
    let (half, lift) = (10.0, 6.0);
    c.line(
        (x - half * ux + lift * nx, y - half * uy + lift * ny),
        (x + half * ux + lift * nx, y + half * uy + lift * ny),
        9.0,
        BLACK,
    );
    let g = at(goal as f32);
    c.line(g, (g.0, g.1 + 25.0), 1.5, BLACK);
    c.rect(g.0, g.1 + 17.0, 12.0, 8.0, FLAG);
    Ok(c.frame())
}

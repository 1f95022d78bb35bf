//! Offscreen rendering of a MuJoCo task, as Gymnasium's `render_mode="rgb_array"`: MuJoCo's own
//! renderer (`mjv_updateScene`, `mjr_render`, `mjr_readPixels`) into an OpenGL context that EGL
//! opens without a window — on a GPU's device, or on Mesa's software device (llvmpipe) where
//! there is none (Debian: `libegl1 libegl-mesa0 libgl1-mesa-dri`). EGL is loaded at run time, so
//! nothing is needed to build, and a machine without it gets one error saying what to install.
//!
//! The camera is Gymnasium's default per task (`DEFAULT_CAMERA_CONFIG`: a free camera looking at
//! the median geom position from the model's extent, then the task's distance, look-at point and
//! elevation). Gymnasium sets `trackbodyid` on that free camera, which MuJoCo ignores, so a
//! running agent leaves its picture after a second; here the look-at point follows the named
//! body (the root body where the task names none) horizontally, and keeps its height.

use std::ffi::c_int;
use std::num::NonZeroU32;

use glutin::api::egl::context::NotCurrentContext;
use glutin::api::egl::device::Device;
use glutin::api::egl::display::Display;
use glutin::api::egl::surface::Surface;
use glutin::config::{ConfigSurfaceTypes, ConfigTemplateBuilder};
use glutin::context::{ContextApi, ContextAttributesBuilder, GlProfile, Version};
use glutin::prelude::{GlDisplay, NotCurrentGlContext, PossiblyCurrentGlContext};
use glutin::surface::{PbufferSurface, SurfaceAttributesBuilder};
use mujoco_rs::mujoco_c::{
    mjr_defaultContext, mjr_freeContext, mjr_makeContext, mjr_readPixels, mjr_render,
    mjr_setBuffer, mjrContext, mjrRect, mjtCamera, mjtCatBit, mjtFontScale, mjtFramebuffer,
    mjtRndFlag, mjv_defaultCamera, mjv_defaultOption, mjv_defaultPerturb, mjv_defaultScene,
    mjv_freeScene, mjv_makeScene, mjv_updateScene, mjvCamera, mjvOption, mjvPerturb, mjvScene,
};

use super::sim::Sim;
use super::tasks::Kind;
use crate::error::{Error, Result};
use crate::render::{Detail, Frame};

/// Gymnasium's `DEFAULT_SIZE`: frames are 480 x 480.
pub const RENDER_SIZE: usize = 480;
/// The side of a [`Detail::Fast`] frame.
pub const FAST_RENDER_SIZE: usize = 240;

/// What to install when EGL is missing.
const EGL_HELP: &str = "MuJoCo renders offscreen through EGL: install a GPU driver's EGL or \
                        Mesa's software one (Debian: apt install libegl1 libegl-mesa0 libgl1-mesa-dri)";

/// Geoms MuJoCo may add to the scene beyond the model's own (contact points, tendons).
const EXTRA_GEOMS: i32 = 1000;

/// A task's `DEFAULT_CAMERA_CONFIG` in Gymnasium 1.4.0 (v4 and v5 agree).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CameraConfig {
    /// The body the look-at point follows horizontally (0, the world, for a fixed camera).
    pub follow_body: usize,
    /// Distance from the look-at point (None: the model's extent).
    pub distance: Option<f64>,
    /// Look-at point (None: the median geom position).
    pub lookat: Option<[f64; 3]>,
    /// Elevation in degrees (None: MuJoCo's default, −45).
    pub elevation: Option<f64>,
}

impl CameraConfig {
    /// Gymnasium's camera for `kind`; `follow_body` is its `trackbodyid`, or the root body (1)
    /// for the locomotion tasks that name none.
    pub fn gymnasium(kind: Kind) -> Self {
        let cam = |follow_body, distance, lookat, elevation| Self {
            follow_body,
            distance,
            lookat,
            elevation,
        };
        match kind {
            Kind::Hopper => cam(2, Some(3.0), Some([0.0, 0.0, 1.15]), Some(-20.0)),
            Kind::Walker2d => cam(2, Some(4.0), Some([0.0, 0.0, 1.15]), Some(-20.0)),
            Kind::HalfCheetah | Kind::Ant => cam(1, Some(4.0), None, None),
            Kind::Humanoid => cam(1, Some(4.0), Some([0.0, 0.0, 2.0]), Some(-20.0)),
            Kind::HumanoidStandup => cam(1, Some(4.0), Some([0.0, 0.0, 0.8925]), Some(-20.0)),
            Kind::Swimmer => cam(1, None, None, None),
            Kind::Reacher => cam(0, None, None, None),
            Kind::InvertedPendulum => cam(0, Some(2.04), None, None),
            Kind::InvertedDoublePendulum => cam(
                0,
                Some(4.1225),
                Some([0.0, 0.0, 0.122_500_000_000_000_05]),
                None,
            ),
        }
    }
}

/// An EGL context with a pbuffer surface, not current between frames (so that the environment
/// owning it can move between threads).
struct Gl {
    context: Option<NotCurrentContext>,
    surface: Surface<PbufferSurface>,
}

// SAFETY: the context is made current only inside `Gl::with_current`, which releases it before
// returning, so no thread holds it current while the `Gl` moves; EGL allows a released context
// and its surface to be made current on any thread.
unsafe impl Send for Gl {}

impl Gl {
    /// A context on the first EGL device that opens one (a GPU, else Mesa's software device).
    fn open(width: usize, height: usize) -> Result<Self> {
        let size = |n: usize| {
            u32::try_from(n)
                .ok()
                .and_then(NonZeroU32::new)
                .ok_or_else(|| Error::Mujoco(format!("bad render size {width} x {height}")))
        };
        let (w, h) = (size(width)?, size(height)?);
        let devices = Device::query_devices()
            .map_err(|e| Error::MujocoUnavailable(format!("no EGL ({e}): {EGL_HELP}")))?;
        let mut last = String::from("no EGL device");
        for device in devices {
            match Self::on_device(&device, w, h) {
                Ok(gl) => return Ok(gl),
                Err(e) => last = e.to_string(),
            }
        }
        Err(Error::MujocoUnavailable(format!(
            "no EGL device opened an OpenGL context ({last}): {EGL_HELP}"
        )))
    }

    fn on_device(device: &Device, w: NonZeroU32, h: NonZeroU32) -> glutin::error::Result<Self> {
        // SAFETY: `device` came from query_devices; no native display is involved.
        let display = unsafe { Display::with_device(device, None)? };
        let template = ConfigTemplateBuilder::new()
            .with_surface_type(ConfigSurfaceTypes::PBUFFER)
            .with_alpha_size(0)
            .with_depth_size(24)
            .with_stencil_size(8)
            .build();
        // SAFETY: a valid display and template.
        let config = unsafe { display.find_configs(template)? }
            .next()
            .ok_or(glutin::error::ErrorKind::NotSupported("no pbuffer config"))?;
        // MuJoCo's renderer needs the compatibility profile (fixed-function calls).
        let attrs = ContextAttributesBuilder::new()
            .with_profile(GlProfile::Compatibility)
            .with_context_api(ContextApi::OpenGl(Some(Version::new(2, 0))))
            .build(None);
        // SAFETY: a valid display and config.
        let context = unsafe { display.create_context(&config, &attrs)? };
        let surface_attrs = SurfaceAttributesBuilder::<PbufferSurface>::new().build(w, h);
        // SAFETY: a valid display and config, non-zero size.
        let surface = unsafe { display.create_pbuffer_surface(&config, &surface_attrs)? };
        Ok(Self {
            context: Some(context),
            surface,
        })
    }

    /// Runs `f` with the context current on this thread, then releases it.
    fn with_current<T>(&mut self, f: impl FnOnce() -> T) -> Result<T> {
        let gl_err = |e: glutin::error::Error| Error::Mujoco(format!("EGL: {e}"));
        let context = self
            .context
            .take()
            .ok_or_else(|| Error::Mujoco("EGL: the context was lost by an earlier error".into()))?;
        let current = context.make_current(&self.surface).map_err(gl_err)?;
        let out = f();
        self.context = Some(current.make_not_current().map_err(gl_err)?);
        Ok(out)
    }
}

/// MuJoCo's visualisation state for one model: scene, GPU resources, camera.
pub(crate) struct Renderer {
    gl: Gl,
    scene: Box<mjvScene>,
    context: Box<mjrContext>,
    option: mjvOption,
    perturb: mjvPerturb,
    camera: mjvCamera,
    follow_body: usize,
    /// Frames are `side x side`.
    side: usize,
}

// SAFETY: the scene and context are plain data owned here (their GPU objects belong to `gl`,
// used only while current, see `Gl`); nothing is shared with another owner.
unsafe impl Send for Renderer {}

impl Renderer {
    /// A renderer for `sim`'s model at `detail` ([`RENDER_SIZE`] frames with shadows and
    /// reflections, or [`FAST_RENDER_SIZE`] ones without), with `camera` placed from the current
    /// state (as Gymnasium places it at the first `render`).
    pub fn new(sim: &mut Sim, camera: CameraConfig, detail: Detail) -> Result<Self> {
        let side = match detail {
            Detail::Full => RENDER_SIZE,
            Detail::Fast => FAST_RENDER_SIZE,
        };
        let (offw, offh) = sim.offscreen_size();
        if side > offw || side > offh {
            return Err(Error::Mujoco(format!(
                "a {side} x {side} frame exceeds the model's offscreen buffer ({offw} x {offh})"
            )));
        }
        let mut gl = Gl::open(side, side)?;
        let (m, _) = sim.raw();
        // SAFETY: the structs are plain C data initialised by MuJoCo's default functions
        // (zeroed first, as those functions expect writable memory only); the context calls
        // run with the GL context current.
        let (scene, context, option, perturb) = unsafe {
            let mut scene: Box<mjvScene> = Box::new(std::mem::zeroed());
            let mut context: Box<mjrContext> = Box::new(std::mem::zeroed());
            let mut option: mjvOption = std::mem::zeroed();
            let mut perturb: mjvPerturb = std::mem::zeroed();
            mjv_defaultOption(&mut option);
            mjv_defaultPerturb(&mut perturb);
            mjr_defaultContext(context.as_mut());
            gl.with_current(|| {
                mjr_makeContext(m, context.as_mut(), mjtFontScale::mjFONTSCALE_150 as c_int);
                mjr_setBuffer(mjtFramebuffer::mjFB_OFFSCREEN as c_int, context.as_mut());
            })?;
            // Made last: nothing after it can fail, so `Drop` always frees it.
            mjv_defaultScene(scene.as_mut());
            mjv_makeScene(m, scene.as_mut(), sim.ngeom() as c_int + EXTRA_GEOMS);
            // Shadows and reflections are most of a software-rendered frame.
            let effects = u8::from(detail == Detail::Full);
            scene.flags[mjtRndFlag::mjRND_SHADOW as usize] = effects;
            scene.flags[mjtRndFlag::mjRND_REFLECTION as usize] = effects;
            (scene, context, option, perturb)
        };
        Ok(Self {
            gl,
            scene,
            context,
            option,
            perturb,
            camera: gymnasium_camera(sim, &camera),
            follow_body: camera.follow_body,
            side,
        })
    }

    /// Keeps the look-at point over the followed body.
    fn follow(&mut self, sim: &Sim) {
        if self.follow_body > 0 {
            let xpos = sim.xpos();
            let i = 3 * self.follow_body;
            if i + 1 < xpos.len() {
                self.camera.lookat[0] = xpos[i];
                self.camera.lookat[1] = xpos[i + 1];
            }
        }
    }

    /// The current state as a frame.
    pub fn render(&mut self, sim: &mut Sim) -> Result<Frame> {
        self.follow(sim);
        let (m, d) = sim.raw();
        let side = self.side;
        let viewport = mjrRect {
            left: 0,
            bottom: 0,
            width: side as c_int,
            height: side as c_int,
        };
        let mut frame = Frame::filled(side, side, [0, 0, 0]);
        let Self {
            gl,
            scene,
            context,
            option,
            perturb,
            camera,
            ..
        } = self;
        // SAFETY: model and data belong together and outlive the call; the scene and context
        // were made for this model; the frame holds side × side × 3 bytes; the GL context is
        // current while MuJoCo draws and reads.
        gl.with_current(|| unsafe {
            mjv_updateScene(
                m,
                d,
                option,
                perturb,
                camera,
                mjtCatBit::mjCAT_ALL as c_int,
                scene.as_mut(),
            );
            mjr_setBuffer(mjtFramebuffer::mjFB_OFFSCREEN as c_int, context.as_mut());
            mjr_render(viewport, scene.as_mut(), context.as_ref());
            mjr_readPixels(
                frame.rgb.as_mut_ptr(),
                std::ptr::null_mut(),
                viewport,
                context.as_ref(),
            );
        })?;
        // OpenGL's rows run bottom-up: swap them in place.
        let row = 3 * side;
        for y in 0..side / 2 {
            let (top, bottom) = frame.rgb.split_at_mut((side - 1 - y) * row);
            top[y * row..(y + 1) * row].swap_with_slice(&mut bottom[..row]);
        }
        Ok(frame)
    }
}

impl Drop for Renderer {
    fn drop(&mut self) {
        let Self {
            gl, scene, context, ..
        } = self;
        // SAFETY: both were made by MuJoCo and are freed once; the GPU resources are freed with
        // the GL context current. If it cannot be made current they leak with the context.
        let _ = gl.with_current(|| unsafe { mjr_freeContext(context.as_mut()) });
        unsafe { mjv_freeScene(scene.as_mut()) };
    }
}

/// Gymnasium's `OffScreenViewer._init_camera` followed by `_set_cam_config`.
fn gymnasium_camera(sim: &Sim, config: &CameraConfig) -> mjvCamera {
    // SAFETY: mjvCamera is plain data; mjv_defaultCamera initialises every field.
    let mut cam: mjvCamera = unsafe { std::mem::zeroed() };
    unsafe { mjv_defaultCamera(&mut cam) };
    cam.type_ = mjtCamera::mjCAMERA_FREE as c_int;
    cam.fixedcamid = -1;
    let xpos = sim.geom_xpos();
    for (axis, lookat) in cam.lookat.iter_mut().enumerate() {
        let mut v: Vec<f64> = xpos.iter().skip(axis).step_by(3).copied().collect();
        *lookat = median(&mut v);
    }
    cam.distance = sim.extent();
    if let Some(d) = config.distance {
        cam.distance = d;
    }
    if let Some(l) = config.lookat {
        cam.lookat = l;
    }
    if let Some(e) = config.elevation {
        cam.elevation = e;
    }
    cam
}

/// NumPy's median (the mean of the two middle values for an even count); 0 for none.
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

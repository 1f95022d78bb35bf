//! Procgen (Cobbe et al. 2020) over its prebuilt library: 16 procedurally generated games with
//! 64 x 64 RGB observations and 15 discrete actions, stepped as a batch by the library's own
//! threads through gym3's libenv C API.
//!
//! The library (`libenv.so` of the `procgen==0.10.7` wheel) and its assets are fetched by
//! `scripts/fetch-procgen.sh` into `.procgen/` (or `RAT_PROCGEN_DIR`) and loaded at run time;
//! nothing is needed to build. Without them, making a Procgen environment is one clear error.
//!
//! * Ids: `procgen:<game>`, optionally with options as a query:
//!   `procgen:starpilot?distribution_mode=easy&num_levels=200&start_level=0&threads=2`
//!   (see [`ProcgenOptions`]).
//! * Observation: the 64 x 64 x 3 frame row-major in (row, column, channel), each `u8` scaled
//!   to [0, 1] (divided by 255); [`image_shape`](crate::BatchEnv::image_shape) is `[64, 64, 3]`.
//! * Actions: 15, the library's button combinations (left-down, left, left-up, down, none,
//!   up, right-down, right, right-up, D, A, W, S, Q, E).
//! * Episodes end inside the library, which resets them at once and reports only that the
//!   next observation is a first one. Its time-outs are not told apart from terminal states,
//!   so every end counts as terminal (as in gym3 and the Procgen baselines).

mod ffi;

use std::ffi::c_void;

use crate::batch::BatchEnv;
use crate::error::{Error, Result};
use crate::space::Space;

pub use ffi::procgen_dir;

/// Whether `scripts/fetch-procgen.sh` has put the library in [`procgen_dir`] (it may still fail
/// to load; making an environment says why).
pub fn is_fetched() -> bool {
    procgen_dir().join("libenv.so").is_file()
}

/// The games.
pub const GAMES: &[&str] = &[
    "bigfish",
    "bossfight",
    "caveflyer",
    "chaser",
    "climber",
    "coinrun",
    "dodgeball",
    "fruitbot",
    "heist",
    "jumper",
    "leaper",
    "maze",
    "miner",
    "ninja",
    "plunder",
    "starpilot",
];

/// Side of the square frame.
pub const FRAME: usize = 64;
/// The number of actions.
pub const NUM_ACTIONS: usize = 15;
const OBS_DIM: usize = FRAME * FRAME * 3;

/// Pixels a side per observation pixel in [`BatchEnv::render`]'s frames (256 x 256).
pub const RENDER_SCALE: usize = 4;

/// A `FRAME x FRAME` RGB image, each pixel a `scale x scale` square.
fn scaled_frame(rgb: &[u8], scale: usize) -> crate::Frame {
    let mut frame = crate::Frame::filled(FRAME * scale, FRAME * scale, [0, 0, 0]);
    for (k, px) in rgb.chunks_exact(3).enumerate() {
        let (y, x) = (k / FRAME, k % FRAME);
        frame.fill_rect(x * scale, y * scale, scale, scale, [px[0], px[1], px[2]]);
    }
    frame
}

/// Level distribution (Procgen's `distribution_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DistributionMode {
    /// Easier levels, for limited compute (the Procgen paper's "easy").
    Easy,
    /// The full distribution (the library's default).
    Hard,
    /// Extreme levels (some games only).
    Extreme,
    /// Memory levels (some games only).
    Memory,
}

impl DistributionMode {
    fn code(self) -> i32 {
        match self {
            Self::Easy => 0,
            Self::Hard => 1,
            Self::Extreme => 2,
            Self::Memory => 10,
        }
    }
}

/// The options of a Procgen batch.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcgenOptions {
    /// Number of distinct levels; 0 (default) for unlimited.
    pub num_levels: u32,
    /// The first level seed (default 0).
    pub start_level: u32,
    /// Level distribution (default [`Easy`](DistributionMode::Easy), the setting of the
    /// Procgen paper's limited-compute benchmark; the library's Python wrapper defaults to hard).
    pub distribution_mode: DistributionMode,
    /// The library's stepping threads (default: the available cores, at most 4, as the Python
    /// wrapper's 4). 0 steps on the calling thread.
    pub threads: usize,
    /// Play levels in order instead of at random (default false).
    pub use_sequential_levels: bool,
    /// Centre the view on the agent (default true).
    pub center_agent: bool,
    /// Draw backgrounds (default true).
    pub use_backgrounds: bool,
    /// Paint the agent's velocity in the frame's corner (default false).
    pub paint_vel_info: bool,
}

impl Default for ProcgenOptions {
    fn default() -> Self {
        Self {
            num_levels: 0,
            start_level: 0,
            distribution_mode: DistributionMode::Easy,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
            use_sequential_levels: false,
            center_agent: true,
            use_backgrounds: true,
            paint_vel_info: false,
        }
    }
}

impl ProcgenOptions {
    /// Parses `key=value` pairs joined by `&` (the query of an id) over the defaults.
    pub fn parse(query: &str) -> Result<Self> {
        let mut o = Self::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| bad(pair, "expected key=value"))?;
            let int = || {
                value
                    .parse::<u32>()
                    .map_err(|_| bad(pair, "expected a non-negative integer"))
            };
            let flag = || match value {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(bad(pair, "expected true or false")),
            };
            match key {
                "num_levels" => o.num_levels = int()?,
                "start_level" => o.start_level = int()?,
                "threads" => o.threads = int()? as usize,
                "distribution_mode" => {
                    o.distribution_mode = match value {
                        "easy" => DistributionMode::Easy,
                        "hard" => DistributionMode::Hard,
                        "extreme" => DistributionMode::Extreme,
                        "memory" => DistributionMode::Memory,
                        _ => return Err(bad(pair, "expected easy, hard, extreme or memory")),
                    }
                }
                "use_sequential_levels" => o.use_sequential_levels = flag()?,
                "center_agent" => o.center_agent = flag()?,
                "use_backgrounds" => o.use_backgrounds = flag()?,
                "paint_vel_info" => o.paint_vel_info = flag()?,
                _ => {
                    return Err(bad(
                        pair,
                        "unknown option (num_levels, start_level, distribution_mode, threads, \
                         use_sequential_levels, center_agent, use_backgrounds, paint_vel_info)",
                    ));
                }
            }
        }
        if o.num_levels > i32::MAX as u32 || o.start_level > i32::MAX as u32 {
            return Err(bad(query, "levels must fit in 31 bits"));
        }
        Ok(o)
    }
}

fn bad(what: &str, msg: &str) -> Error {
    Error::InvalidArgument {
        op: "procgen options",
        msg: format!("'{what}': {msg}"),
    }
}

/// Splits `procgen:<game>[?options]` into the game and its options; `None` for other ids.
pub fn parse_id(id: &str) -> Option<Result<(&'static str, ProcgenOptions)>> {
    let rest = id.strip_prefix("procgen:")?;
    let (game, query) = rest.split_once('?').unwrap_or((rest, ""));
    Some(match GAMES.iter().find(|g| **g == game) {
        None => Err(Error::InvalidArgument {
            op: "procgen",
            msg: format!("unknown game '{game}'; known: {}", GAMES.join(", ")),
        }),
        Some(g) => ProcgenOptions::parse(query).map(|o| (*g, o)),
    })
}

/// A libenv handle with the buffers it writes into. The buffers are heap allocations that the
/// handle keeps pointers to, so they are never resized while it lives.
struct Handle {
    lib: &'static ffi::Lib,
    env: *mut c_void,
    ob: Vec<u8>,
    rew: Vec<f32>,
    first: Vec<u8>,
    ac: Vec<i32>,
    info: Vec<i32>,
    ob_ptrs: Vec<*mut c_void>,
    ac_ptrs: Vec<*mut c_void>,
    info_ptrs: Vec<*mut c_void>,
    buffers: Box<ffi::Buffers>,
}

// SAFETY: libenv environments may be used from any thread, one thread at a time (libenv.h);
// `Handle` is only reached through `&mut`.
unsafe impl Send for Handle {}

impl Handle {
    fn new(game: &str, n: usize, o: &ProcgenOptions, seed: i32) -> Result<Self> {
        let lib = ffi::lib()?;
        let fail = |msg: String| Error::ProcgenUnavailable(format!("procgen:{game}: {msg}"));
        let root = format!("{}/", lib.dir.join("assets").display());
        let mut opts = ffi::OptionList::default();
        opts.string("env_name", game);
        opts.int("num_levels", o.num_levels as i32);
        opts.int("start_level", o.start_level as i32);
        opts.int("num_actions", NUM_ACTIONS as i32);
        opts.bool("use_sequential_levels", o.use_sequential_levels);
        opts.int("debug_mode", 0);
        opts.int("rand_seed", seed);
        opts.int("num_threads", o.threads as i32);
        opts.bool("render_human", false);
        opts.string("resource_root", &root);
        opts.bool("center_agent", o.center_agent);
        opts.bool("use_generated_assets", false);
        opts.bool("use_monochrome_assets", false);
        opts.bool("restrict_themes", false);
        opts.bool("use_backgrounds", o.use_backgrounds);
        opts.bool("paint_vel_info", o.paint_vel_info);
        opts.int("distribution_mode", o.distribution_mode.code());
        let mut items = opts.items();
        let options = ffi::EnvOptions {
            items: items.as_mut_ptr(),
            count: items.len() as i32,
        };
        let num = i32::try_from(n).map_err(|_| fail(format!("{n} environments is too many")))?;
        // SAFETY: `options` points into `items` and `opts`, alive for the call; the library
        // copies what it keeps.
        let env = unsafe { (lib.make)(num, options) };
        if env.is_null() {
            return Err(fail("libenv_make failed".into()));
        }
        let mut h = Self {
            lib,
            env,
            ob: vec![0; n * OBS_DIM],
            rew: vec![0.0; n],
            first: vec![0; n],
            ac: vec![0; n],
            info: Vec::new(),
            ob_ptrs: Vec::new(),
            ac_ptrs: Vec::new(),
            info_ptrs: Vec::new(),
            buffers: Box::new(ffi::Buffers {
                ob: std::ptr::null_mut(),
                rew: std::ptr::null_mut(),
                first: std::ptr::null_mut(),
                info: std::ptr::null_mut(),
                ac: std::ptr::null_mut(),
            }),
        };
        // From here on `Drop` closes the handle on any error.
        let ob = h.spaces(ffi::SPACE_OBSERVATION)?;
        let ac = h.spaces(ffi::SPACE_ACTION)?;
        let info = h.spaces(ffi::SPACE_INFO)?;
        let ob_ok = matches!(ob.as_slice(), [t] if t.dtype == ffi::DTYPE_UINT8 && t.shape() == [FRAME, FRAME, 3]);
        // SAFETY: reading the union field that `dtype` names.
        let ac_ok = matches!(ac.as_slice(), [t] if t.dtype == ffi::DTYPE_INT32 && t.shape().iter().product::<usize>() == 1
            && unsafe { t.high.int32 } as usize + 1 == NUM_ACTIONS);
        // Infos are scalars of at most 4 bytes (the level seeds and a completion flag); the
        // library writes each into its own 4-byte slot.
        let info_ok = info.iter().all(|t| {
            (t.dtype == ffi::DTYPE_INT32 || t.dtype == ffi::DTYPE_UINT8)
                && t.shape().iter().product::<usize>() == 1
        });
        if !(ob_ok && ac_ok && info_ok) {
            return Err(fail(format!(
                "unexpected spaces (observation {:?}, action {:?}, info {:?}); expected the libenv of procgen 0.10.7",
                ob.iter().map(|t| (t.name(), t.shape())).collect::<Vec<_>>(),
                ac.iter().map(|t| (t.name(), t.shape())).collect::<Vec<_>>(),
                info.iter()
                    .map(|t| (t.name(), t.shape()))
                    .collect::<Vec<_>>(),
            )));
        }
        h.info = vec![0; n * info.len()];
        h.ob_ptrs =
            h.ob.chunks_mut(OBS_DIM)
                .map(|c| c.as_mut_ptr().cast())
                .collect();
        h.ac_ptrs = h.ac.iter_mut().map(|a| (a as *mut i32).cast()).collect();
        // Structure of arrays: all environments' first info entry, then the second, ...
        h.info_ptrs = h.info.iter_mut().map(|v| (v as *mut i32).cast()).collect();
        *h.buffers = ffi::Buffers {
            ob: h.ob_ptrs.as_mut_ptr(),
            rew: h.rew.as_mut_ptr(),
            first: h.first.as_mut_ptr(),
            info: h.info_ptrs.as_mut_ptr(),
            ac: h.ac_ptrs.as_mut_ptr(),
        };
        // SAFETY: every pointer is into a buffer of the size the spaces ask for, owned by `h`
        // and never reallocated while the handle lives.
        unsafe {
            (lib.set_buffers)(h.env, &mut *h.buffers);
            (lib.observe)(h.env);
        }
        Ok(h)
    }

    fn spaces(&self, which: i32) -> Result<Vec<ffi::TensorType>> {
        // SAFETY: a NULL array asks for the count; then the array has that many entries.
        unsafe {
            let count = (self.lib.get_tensortypes)(self.env, which, std::ptr::null_mut());
            let mut types = Vec::with_capacity(count.max(0) as usize);
            (self.lib.get_tensortypes)(self.env, which, types.as_mut_ptr());
            types.set_len(count.max(0) as usize);
            Ok(types)
        }
    }

    fn step(&mut self) {
        // SAFETY: the handle is open and its buffers are set.
        unsafe {
            (self.lib.act)(self.env);
            (self.lib.observe)(self.env);
        }
    }

    fn write_obs(&self, obs: &mut [f64]) {
        for (o, b) in obs.iter_mut().zip(&self.ob) {
            *o = f64::from(*b) / 255.0;
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: closed once, here; the buffers outlive the call.
        unsafe { (self.lib.close)(self.env) }
    }
}

/// A batch of one Procgen game.
pub struct Procgen {
    id: String,
    game: &'static str,
    n: usize,
    options: ProcgenOptions,
    seed: u64,
    /// Made by the first reset (the library cannot restart episodes, so a reset makes a new one).
    handle: Option<Handle>,
}

impl Procgen {
    /// `n` environments of `id` (`procgen:<game>[?options]`).
    pub fn from_id(id: &str, n: usize) -> Result<Self> {
        let Some(parsed) = parse_id(id) else {
            return Err(Error::InvalidArgument {
                op: "procgen",
                msg: format!("'{id}' is not a procgen:<game> id"),
            });
        };
        let (game, options) = parsed?;
        let mut env = Self::new(game, n, options)?;
        env.id = id.to_string();
        Ok(env)
    }

    /// `n` environments of `game` with `options`, started by the first
    /// [`reset`](BatchEnv::reset). Fails at once when the library is missing.
    pub fn new(game: &str, n: usize, options: ProcgenOptions) -> Result<Self> {
        let game = GAMES
            .iter()
            .find(|g| **g == game)
            .ok_or_else(|| Error::InvalidArgument {
                op: "procgen",
                msg: format!("unknown game '{game}'; known: {}", GAMES.join(", ")),
            })?;
        if n == 0 {
            return Err(Error::InvalidArgument {
                op: "procgen",
                msg: "need at least one environment".into(),
            });
        }
        ffi::lib()?;
        Ok(Self {
            id: format!("procgen:{game}"),
            game,
            n,
            options,
            seed: 0,
            handle: None,
        })
    }

    /// The options.
    pub fn options(&self) -> &ProcgenOptions {
        &self.options
    }
}

impl BatchEnv for Procgen {
    fn id(&self) -> &str {
        &self.id
    }

    fn num_envs(&self) -> usize {
        self.n
    }

    fn threads(&self) -> usize {
        self.options.threads
    }

    fn observation_space(&self) -> Space {
        Space::uniform_box(OBS_DIM, 0.0, 1.0)
    }

    fn action_space(&self) -> Space {
        Space::Discrete { n: NUM_ACTIONS }
    }

    fn image_shape(&self) -> Option<[usize; 3]> {
        Some([FRAME, FRAME, 3])
    }

    /// The library's own 64 x 64 frame of environment `i` (the observation, before scaling to
    /// [0, 1]), each pixel drawn as a [`RENDER_SCALE`]-pixel square. After an episode's last
    /// step it is already the next episode's first frame (the library resets by itself).
    fn render(&self, i: usize) -> Result<crate::Frame> {
        let err = |msg: String| Error::InvalidArgument {
            op: "Procgen::render",
            msg: format!("{}: {msg}", self.id),
        };
        let Some(h) = &self.handle else {
            return Err(err("the batch has not been reset yet".into()));
        };
        if i >= self.n {
            return Err(err(format!("environment {i} of {}", self.n)));
        }
        Ok(scaled_frame(
            &h.ob[i * OBS_DIM..(i + 1) * OBS_DIM],
            RENDER_SCALE,
        ))
    }

    /// The library cannot restart an episode, so this makes a new batch: seeded with `seed`,
    /// or with the next seed of this batch's stream for `None`.
    fn reset(&mut self, seed: Option<u64>, obs: &mut [f64]) -> Result<()> {
        check(obs.len(), self.n * OBS_DIM, "observations")?;
        self.seed = seed.unwrap_or_else(|| splitmix64(self.seed));
        // The library takes a 31-bit seed.
        let s = (self.seed % (1 << 31)) as i32;
        // The old batch goes first: two live batches would double the library's threads.
        self.handle = None;
        let h = self
            .handle
            .insert(Handle::new(self.game, self.n, &self.options, s)?);
        h.write_obs(obs);
        Ok(())
    }

    fn step(
        &mut self,
        actions: &[f32],
        obs: &mut [f64],
        rewards: &mut [f64],
        done: &mut [bool],
    ) -> Result<()> {
        check(actions.len(), self.n, "actions")?;
        check(obs.len(), self.n * OBS_DIM, "observations")?;
        check(rewards.len(), self.n, "rewards")?;
        check(done.len(), self.n, "done flags")?;
        let Some(h) = self.handle.as_mut() else {
            return Err(Error::InvalidArgument {
                op: "procgen",
                msg: format!("{}: step before the first reset", self.id),
            });
        };
        for (slot, a) in h.ac.iter_mut().zip(actions) {
            if !(a.fract() == 0.0 && *a >= 0.0 && (*a as usize) < NUM_ACTIONS) {
                return Err(Error::InvalidAction {
                    env: self.id.clone(),
                    msg: format!("expected an integer in [0, {NUM_ACTIONS}), got {a}"),
                });
            }
            *slot = *a as i32;
        }
        h.step();
        h.write_obs(obs);
        for i in 0..self.n {
            rewards[i] = f64::from(h.rew[i]);
            done[i] = h.first[i] != 0;
        }
        Ok(())
    }
}

/// The next seed of a batch's stream (SplitMix64's output function), so that the seeds after
/// s do not run into those of a run seeded s + 1.
fn splitmix64(s: u64) -> u64 {
    let mut z = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn check(got: usize, want: usize, what: &str) -> Result<()> {
    if got != want {
        return Err(Error::Shape {
            op: "procgen",
            msg: format!("{what}: {got} values, need {want}"),
        });
    }
    Ok(())
}

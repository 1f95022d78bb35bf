//! MinAtar (Young & Tian 2019): miniature Atari games on a 10 x 10 grid with C boolean channels,
//! written from the rules in `../shared/spec/ENVS.md` §2 (not from the GPL Python package, which
//! the tests use only as a black box).
//!
//! * Observation: the 10 x 10 x C grid, row-major in (row, column, channel) as the Python
//!   package's `state()`, each cell 0.0 or 1.0.
//! * Actions: the full set of 6 (`[noop, left, up, right, down, fire]`) or the game's minimal
//!   set (an index into it).
//! * Sticky actions: with probability p (0.1) the previous action repeats; difficulty ramping on
//!   (the wrapper's defaults). One RNG drives the sticky draw and the game.
//! * Reward +1 per event (Seaquest also scores ⌊oxygen / 20⌋ for surfacing with 6 divers); no
//!   time limit (Freeway ends itself after 2501 steps; the others end on losing).
//! * Games: Asterix, Breakout, Freeway, Seaquest, Space Invaders (each in its own file; a game
//!   struct's `start(...)` builds a known state for tests).
//!
//! Ids: `minatar:<game>` (full action set, as the MinAtar baselines), `minatar:<game>-minimal`,
//! and Gymnasium's `MinAtar/<Game>-v0` (full) and `MinAtar/<Game>-v1` (minimal).

mod asterix;
mod breakout;
mod freeway;
mod seaquest;
mod space_invaders;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::env::{Env, Step, check_obs, discrete_action};
use crate::error::Result;
use crate::space::Space;

pub use asterix::{Asterix, Entity};
pub use breakout::Breakout;
pub use freeway::{Car, Freeway};
pub use seaquest::{Bullet, Seaquest, Swimmer};
pub use space_invaders::SpaceInvaders;

/// Grid side.
pub const SIZE: usize = 10;
/// The full action set's meaning: no-op, left, up, right, down, fire.
pub const ACTIONS: [char; 6] = ['n', 'l', 'u', 'r', 'd', 'f'];
/// The wrapper's sticky-action probability.
pub const STICKY: f64 = 0.1;

/// One MinAtar game's rules, without the sticky-action wrapper.
pub trait Game: Send + serde::Serialize + serde::de::DeserializeOwned {
    /// The game's name (`breakout`, …).
    fn name(&self) -> &'static str;
    /// The number of observation channels C.
    fn channels(&self) -> usize;
    /// The minimal action set, as indices into the full set.
    fn minimal_actions(&self) -> &'static [usize];
    /// Starts a new game.
    fn reset(&mut self, rng: &mut ChaCha8Rng);
    /// Applies a full-set action (0..6); returns the reward and whether the game is over.
    fn act(&mut self, action: usize, rng: &mut ChaCha8Rng) -> (f64, bool);
    /// Sets the cells of the 10 x 10 x C grid (`obs` is zeroed first by the caller).
    fn render(&self, obs: &mut [f64]);
}

/// Sets cell (row, col) of channel `ch` in a (row, col, channel) grid of C channels.
pub(crate) fn set(obs: &mut [f64], channels: usize, row: usize, col: usize, ch: usize) {
    obs[(row * SIZE + col) * channels + ch] = 1.0;
}

/// A game behind the MinAtar wrapper: sticky actions, action set, episode bookkeeping.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(bound = "G: serde::Serialize + serde::de::DeserializeOwned")]
pub struct MinAtar<G> {
    id: String,
    game: G,
    minimal: bool,
    sticky: f64,
    last_action: usize,
    over: bool,
    rng: ChaCha8Rng,
}

impl<G: Game> MinAtar<G> {
    /// `game` with the wrapper's defaults (sticky 0.1), the minimal action set if `minimal`.
    pub fn new(id: &str, game: G, minimal: bool) -> Self {
        Self::with_sticky(id, game, minimal, STICKY)
    }

    /// As [`new`](Self::new) with sticky-action probability `sticky` (0 for deterministic play).
    pub fn with_sticky(id: &str, game: G, minimal: bool, sticky: f64) -> Self {
        Self {
            id: id.to_string(),
            game,
            minimal,
            sticky,
            last_action: 0,
            over: true,
            rng: ChaCha8Rng::from_rng(&mut rand::rng()),
        }
    }

    /// The game (to inspect or set its state in tests).
    pub fn game_mut(&mut self) -> &mut G {
        &mut self.game
    }

    fn num_actions(&self) -> usize {
        if self.minimal {
            self.game.minimal_actions().len()
        } else {
            ACTIONS.len()
        }
    }

    fn observe(&self, obs: &mut [f64]) -> Result<()> {
        check_obs("MinAtar", obs, SIZE * SIZE * self.game.channels())?;
        obs.fill(0.0);
        self.game.render(obs);
        Ok(())
    }
}

impl<G: Game> Env for MinAtar<G> {
    crate::env::serde_state!();

    fn id(&self) -> &str {
        &self.id
    }

    fn observation_space(&self) -> Space {
        Space::uniform_box(SIZE * SIZE * self.game.channels(), 0.0, 1.0)
    }

    fn action_space(&self) -> Space {
        Space::Discrete {
            n: self.num_actions(),
        }
    }

    fn image_shape(&self) -> Option<[usize; 3]> {
        Some([SIZE, SIZE, self.game.channels()])
    }

    /// The grid, [`CELL_PIXELS`] pixels a cell, one colour per channel.
    fn render(&mut self) -> Result<crate::Frame> {
        let shape = [SIZE, SIZE, self.game.channels()];
        let mut grid = vec![0.0; SIZE * SIZE * self.game.channels()];
        self.observe(&mut grid)?;
        Ok(crate::render::grid_frame(&grid, shape, CELL_PIXELS))
    }

    fn reset(&mut self, seed: Option<u64>, obs: &mut [f64]) -> Result<()> {
        if let Some(s) = seed {
            self.rng = ChaCha8Rng::seed_from_u64(s);
        }
        self.game.reset(&mut self.rng);
        self.last_action = 0;
        self.over = false;
        self.observe(obs)
    }

    fn step(&mut self, action: &[f32], obs: &mut [f64]) -> Result<Step> {
        let a = discrete_action(&self.id, action, self.num_actions())?;
        let mut a = if self.minimal {
            self.game.minimal_actions()[a]
        } else {
            a
        };
        if self.rng.random::<f64>() < self.sticky {
            a = self.last_action;
        }
        self.last_action = a;
        let (reward, terminated) = if self.over {
            (0.0, true)
        } else {
            self.game.act(a, &mut self.rng)
        };
        self.over |= terminated;
        self.observe(obs)?;
        Ok(Step {
            reward,
            terminated,
            truncated: false,
        })
    }
}

/// Pixels per grid cell in a rendered frame (160 x 160 for the 10 x 10 grid).
pub const CELL_PIXELS: usize = 16;

/// The games by name.
pub const GAMES: &[&str] = &[
    "asterix",
    "breakout",
    "freeway",
    "seaquest",
    "space_invaders",
];

/// The MinAtar ids [`make`] knows: per game, `minatar:<game>`, `minatar:<game>-minimal`,
/// `MinAtar/<Game>-v0` and `MinAtar/<Game>-v1`.
pub const IDS: &[&str] = &[
    "minatar:asterix",
    "minatar:asterix-minimal",
    "MinAtar/Asterix-v0",
    "MinAtar/Asterix-v1",
    "minatar:breakout",
    "minatar:breakout-minimal",
    "MinAtar/Breakout-v0",
    "MinAtar/Breakout-v1",
    "minatar:freeway",
    "minatar:freeway-minimal",
    "MinAtar/Freeway-v0",
    "MinAtar/Freeway-v1",
    "minatar:seaquest",
    "minatar:seaquest-minimal",
    "MinAtar/Seaquest-v0",
    "MinAtar/Seaquest-v1",
    "minatar:space_invaders",
    "minatar:space_invaders-minimal",
    "MinAtar/SpaceInvaders-v0",
    "MinAtar/SpaceInvaders-v1",
];

fn gym_name(game: &str) -> String {
    game.split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

/// A MinAtar environment by id (see the module docs); `None` for other ids.
pub fn make(id: &str) -> Option<Box<dyn Env>> {
    let (game, minimal) = if let Some(rest) = id.strip_prefix("minatar:") {
        match rest.strip_suffix("-minimal") {
            Some(g) => (g.to_string(), true),
            None => (rest.to_string(), false),
        }
    } else if let Some(rest) = id.strip_prefix("MinAtar/") {
        let (name, version) = rest.rsplit_once('-')?;
        let game = GAMES.iter().find(|g| gym_name(g) == name)?;
        match version {
            "v0" => (game.to_string(), false),
            "v1" => (game.to_string(), true),
            _ => return None,
        }
    } else {
        return None;
    };
    Some(match game.as_str() {
        "asterix" => Box::new(MinAtar::new(id, Asterix::default(), minimal)),
        "breakout" => Box::new(MinAtar::new(id, Breakout::default(), minimal)),
        "freeway" => Box::new(MinAtar::new(id, Freeway::default(), minimal)),
        "seaquest" => Box::new(MinAtar::new(id, Seaquest::default(), minimal)),
        "space_invaders" => Box::new(MinAtar::new(id, SpaceInvaders::default(), minimal)),
        _ => return None,
    })
}

//! MinAtar Breakout: channels [paddle, ball, trail, brick]; minimal actions [n, l, r].

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{Game, SIZE, set};

const LAST: i32 = SIZE as i32 - 1;

/// The paddle on row 9 (moves ±1), a ball moving one diagonal cell per step, three rows of
/// bricks (rows 1–3). The ball starts on row 3 at column 0 moving down-right or column 9 moving
/// down-left (½ each). Walls reflect it; a brick hit gives +1, removes the brick, puts the ball
/// back on its previous row and reverses its vertical direction, and sets a "strike" flag under
/// which further brick contacts pass through (cleared on a step without contact). On reaching
/// row 9: the bricks respawn if none remain; the ball bounces off the paddle if its old column
/// is the paddle's (vertical reflection) or its new column is (both reflected); else the game
/// ends.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Breakout {
    /// Ball (row, column) and its direction (±1, ±1).
    pub ball: (i32, i32),
    /// (dy, dx).
    pub dir: (i32, i32),
    /// The previous ball cell (the trail channel).
    pub last: (i32, i32),
    /// Paddle column.
    pub paddle: i32,
    /// Brick cells, row-major.
    pub bricks: [[bool; SIZE]; SIZE],
    /// Set by a brick hit, cleared by a step without brick contact.
    pub strike: bool,
}

impl Breakout {
    /// The starting state with the ball on the left (column 0, moving right) or the right.
    pub fn start(left: bool) -> Self {
        let mut b = Self {
            ball: (3, if left { 0 } else { LAST }),
            dir: (1, if left { 1 } else { -1 }),
            paddle: 4,
            ..Self::default()
        };
        b.last = b.ball;
        b.fill_bricks();
        b
    }

    fn fill_bricks(&mut self) {
        for row in &mut self.bricks[1..4] {
            row.fill(true);
        }
    }
}

impl Game for Breakout {
    fn name(&self) -> &'static str {
        "breakout"
    }

    fn channels(&self) -> usize {
        4
    }

    fn minimal_actions(&self) -> &'static [usize] {
        &[0, 1, 3]
    }

    fn reset(&mut self, rng: &mut ChaCha8Rng) {
        *self = Self::start(rng.random_bool(0.5));
    }

    fn act(&mut self, action: usize, _rng: &mut ChaCha8Rng) -> (f64, bool) {
        match action {
            1 => self.paddle = (self.paddle - 1).max(0),
            3 => self.paddle = (self.paddle + 1).min(LAST),
            _ => {}
        }
        let mut reward = 0.0;
        let mut over = false;
        self.last = self.ball;
        let (y, x) = self.ball;
        let (mut ny, mut nx) = (y + self.dir.0, x + self.dir.1);
        if !(0..=LAST).contains(&nx) {
            self.dir.1 = -self.dir.1;
            nx = nx.clamp(0, LAST);
        }
        if ny < 0 {
            self.dir.0 = -self.dir.0;
            ny = 0;
        }
        let cell = &mut self.bricks[ny as usize][nx as usize];
        if *cell {
            if !self.strike {
                reward += 1.0;
                self.strike = true;
                *cell = false;
                ny = y;
                self.dir.0 = -self.dir.0;
            }
        } else {
            self.strike = false;
        }
        if ny == LAST {
            if self.bricks.iter().all(|r| r.iter().all(|b| !b)) {
                self.fill_bricks();
            }
            if x == self.paddle {
                self.dir.0 = -self.dir.0;
                ny = y;
            } else if nx == self.paddle {
                self.dir = (-self.dir.0, -self.dir.1);
                ny = y;
            } else {
                over = true;
            }
        }
        self.ball = (ny, nx);
        (reward, over)
    }

    fn render(&self, obs: &mut [f64]) {
        let c = self.channels();
        set(obs, c, LAST as usize, self.paddle as usize, 0);
        set(obs, c, self.ball.0 as usize, self.ball.1 as usize, 1);
        set(obs, c, self.last.0 as usize, self.last.1 as usize, 2);
        for (r, row) in self.bricks.iter().enumerate() {
            for (col, &b) in row.iter().enumerate() {
                if b {
                    set(obs, c, r, col, 3);
                }
            }
        }
    }
}

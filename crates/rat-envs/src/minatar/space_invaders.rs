//! MinAtar Space Invaders: channels [cannon, alien, alien_left, alien_right, f_bullet,
//! e_bullet]; minimal actions [n, l, r, f].

use rand_chacha::ChaCha8Rng;

use super::{Game, SIZE, set};

type Grid = [[bool; SIZE]; SIZE];
const LAST: usize = SIZE - 1;
const SHOT_COOLDOWN: u32 = 5;
const ENEMY_SHOT_INTERVAL: u32 = 10;
const MOVE_INTERVAL: u32 = 12;
const MIN_MOVE_INTERVAL: u32 = 6;

/// A cannon on row 9 (starts at column 5) against a block of aliens (rows 0–3, columns 2–7)
/// that shifts sideways every min(#aliens, move interval) steps, reversing and dropping a row
/// at an edge. The cannon fires upward (cooldown 5); every 10 steps the lowest alien in the
/// column nearest the cannon fires downward. +1 per alien hit; the game ends when an alien or an
/// enemy bullet reaches the cannon, or the block must drop while on row 9. A cleared wave
/// respawns with the move interval one lower (down to 6) when ramping.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SpaceInvaders {
    /// Cannon column.
    pub pos: usize,
    /// Alien cells.
    pub aliens: Grid,
    /// −1 moving left, +1 moving right.
    pub dir: i32,
    /// Friendly and enemy bullets.
    pub f_bullets: Grid,
    /// Enemy bullets.
    pub e_bullets: Grid,
    /// Steps until the cannon may fire again.
    pub shot_timer: u32,
    /// Steps until the aliens move.
    pub move_timer: u32,
    /// Steps until the aliens fire.
    pub enemy_timer: u32,
    /// The current move interval.
    pub move_interval: u32,
    /// Difficulty ramping.
    pub ramping: bool,
}

impl Default for SpaceInvaders {
    fn default() -> Self {
        Self::start(true)
    }
}

fn block() -> Grid {
    let mut g = [[false; SIZE]; SIZE];
    for row in &mut g[0..4] {
        row[2..8].fill(true);
    }
    g
}

fn count(g: &Grid) -> u32 {
    g.iter().flatten().filter(|b| **b).count() as u32
}

impl SpaceInvaders {
    /// The starting state (deterministic).
    pub fn start(ramping: bool) -> Self {
        Self {
            pos: 5,
            aliens: block(),
            dir: -1,
            f_bullets: [[false; SIZE]; SIZE],
            e_bullets: [[false; SIZE]; SIZE],
            shot_timer: 0,
            move_timer: MOVE_INTERVAL,
            enemy_timer: ENEMY_SHOT_INTERVAL,
            move_interval: MOVE_INTERVAL,
            ramping,
        }
    }

    /// Removes aliens hit by friendly bullets (and those bullets); returns the hits.
    fn hits(&mut self) -> f64 {
        let mut r = 0.0;
        for (arow, brow) in self.aliens.iter_mut().zip(self.f_bullets.iter_mut()) {
            for (a, b) in arow.iter_mut().zip(brow.iter_mut()) {
                if *a && *b {
                    *a = false;
                    *b = false;
                    r += 1.0;
                }
            }
        }
        r
    }

    /// The aliens' move: one column sideways, or, when the block already touches the edge it
    /// moves towards, reverse and drop a row. Returns true when it must drop while on row 9.
    fn move_aliens(&mut self) -> bool {
        let edge = if self.dir < 0 { 0 } else { LAST };
        if self.aliens.iter().any(|row| row[edge]) {
            self.dir = -self.dir;
            if self.aliens[LAST].iter().any(|a| *a) {
                return true;
            }
            self.aliens.rotate_right(1);
            self.aliens[0] = [false; SIZE];
            return false;
        }
        for row in &mut self.aliens {
            if self.dir < 0 {
                row.rotate_left(1);
            } else {
                row.rotate_right(1);
            }
        }
        false
    }

    /// The lowest alien in the column nearest the cannon fires.
    fn enemy_fire(&mut self) {
        let cols = (0..SIZE).filter(|&c| (0..SIZE).any(|r| self.aliens[r][c]));
        let Some(col) = cols.min_by_key(|&c| c.abs_diff(self.pos)) else {
            return;
        };
        if let Some(row) = (0..SIZE).rev().find(|&r| self.aliens[r][col]) {
            self.e_bullets[row][col] = true;
        }
    }
}

impl Game for SpaceInvaders {
    fn name(&self) -> &'static str {
        "space_invaders"
    }

    fn channels(&self) -> usize {
        6
    }

    fn minimal_actions(&self) -> &'static [usize] {
        &[0, 1, 3, 5]
    }

    fn reset(&mut self, _rng: &mut ChaCha8Rng) {
        *self = Self::start(self.ramping);
    }

    fn act(&mut self, action: usize, _rng: &mut ChaCha8Rng) -> (f64, bool) {
        match action {
            1 => self.pos = self.pos.saturating_sub(1),
            3 => self.pos = (self.pos + 1).min(LAST),
            5 if self.shot_timer == 0 => {
                self.f_bullets[LAST][self.pos] = true;
                self.shot_timer = SHOT_COOLDOWN;
            }
            _ => {}
        }
        // The cannon may move onto an alien before the aliens move away.
        let mut over = self.aliens[LAST][self.pos];
        // Bullets move: friendly up, enemy down (off the grid they vanish).
        self.f_bullets.rotate_left(1);
        self.f_bullets[LAST] = [false; SIZE];
        self.e_bullets.rotate_right(1);
        self.e_bullets[0] = [false; SIZE];
        over |= self.e_bullets[LAST][self.pos];
        // Both timers act at 0, are reset, and count down every step. Hits are checked after
        // the aliens moved and fired (a bullet and an alien that swap cells do not meet).
        if self.move_timer == 0 {
            self.move_timer = count(&self.aliens).min(self.move_interval);
            over |= self.move_aliens();
        }
        self.move_timer = self.move_timer.saturating_sub(1);
        if self.enemy_timer == 0 {
            self.enemy_timer = ENEMY_SHOT_INTERVAL;
            self.enemy_fire();
        }
        self.enemy_timer = self.enemy_timer.saturating_sub(1);
        let reward = self.hits();
        self.shot_timer = self.shot_timer.saturating_sub(1);
        over |= self.aliens[LAST][self.pos];
        if count(&self.aliens) == 0 {
            if self.ramping && self.move_interval > MIN_MOVE_INTERVAL {
                self.move_interval -= 1;
            }
            self.aliens = block();
        }
        (reward, over)
    }

    fn render(&self, obs: &mut [f64]) {
        let c = self.channels();
        set(obs, c, LAST, self.pos, 0);
        let side = if self.dir < 0 { 2 } else { 3 };
        for r in 0..SIZE {
            for col in 0..SIZE {
                if self.aliens[r][col] {
                    set(obs, c, r, col, 1);
                    set(obs, c, r, col, side);
                }
                if self.f_bullets[r][col] {
                    set(obs, c, r, col, 4);
                }
                if self.e_bullets[r][col] {
                    set(obs, c, r, col, 5);
                }
            }
        }
    }
}

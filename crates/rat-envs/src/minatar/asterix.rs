//! MinAtar Asterix: channels [player, enemy, trail, gold]; minimal actions [n, l, u, r, d].

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{Game, SIZE, set};

const LAST: i32 = SIZE as i32 - 1;
/// Lanes are rows 1–8; lane i is row i + 1.
const LANES: usize = 8;
const SPAWN_SPEED: i32 = 10;
const MOVE_SPEED: i32 = 5;
const RAMP_INTERVAL: i32 = 100;

/// An enemy or a piece of gold crossing its lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entity {
    /// Column (off the grid it is removed).
    pub x: i32,
    /// Moving right (else left).
    pub right: bool,
    /// Gold (+1 when touched) rather than an enemy (touching one ends the game).
    pub gold: bool,
}

/// The player (starts at row 5, column 5; confined to rows 1–8) among entities crossing the
/// eight lanes, at most one per lane. Every `spawn_speed` steps an entity enters a random free
/// lane from the left (moving right) or the right (½ each), gold with probability ⅓; all
/// entities move one column every `move_speed` steps. Gold touched gives +1 and vanishes; an
/// enemy touched ends the game. With ramping, about every 102 steps `spawn_speed` drops by one
/// and, every second time, `move_speed` too (both down to 1; ramping stops there).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Asterix {
    /// Player (row, column).
    pub player: (i32, i32),
    /// The entity in each lane (lane i is row i + 1).
    pub lanes: [Option<Entity>; LANES],
    /// Steps between spawns.
    pub spawn_speed: i32,
    /// Steps until the next spawn.
    pub spawn_timer: i32,
    /// Steps between entity moves.
    pub move_speed: i32,
    /// Steps until the entities move.
    pub move_timer: i32,
    /// Counts down; the difficulty ramps on the step after it went below 0.
    pub ramp_timer: i32,
    /// How many times the difficulty ramped.
    pub ramp_index: u32,
    /// Difficulty ramping.
    pub ramping: bool,
}

impl Default for Asterix {
    fn default() -> Self {
        Self::start(true)
    }
}

impl Asterix {
    /// The starting state (deterministic: the first spawn is the first random draw).
    pub fn start(ramping: bool) -> Self {
        Self {
            player: (5, 5),
            lanes: [None; LANES],
            spawn_speed: SPAWN_SPEED,
            spawn_timer: SPAWN_SPEED,
            move_speed: MOVE_SPEED,
            move_timer: MOVE_SPEED,
            ramp_timer: RAMP_INTERVAL,
            ramp_index: 0,
            ramping,
        }
    }

    /// An entity enters a random free lane (none if all are taken).
    fn spawn(&mut self, rng: &mut ChaCha8Rng) {
        let right = rng.random_bool(0.5);
        let gold = rng.random_bool(1.0 / 3.0);
        let free: Vec<usize> = (0..LANES).filter(|&i| self.lanes[i].is_none()).collect();
        if free.is_empty() {
            return;
        }
        let lane = free[rng.random_range(0..free.len())];
        let x = if right { 0 } else { LAST };
        self.lanes[lane] = Some(Entity { x, right, gold });
    }

    /// The entity on the player's cell, if any: gold is collected (+1), an enemy ends the game.
    /// Returns (reward, over).
    fn collide(&mut self) -> (f64, bool) {
        let (row, col) = self.player;
        let lane = &mut self.lanes[(row - 1) as usize];
        match *lane {
            Some(e) if e.x == col && e.gold => {
                *lane = None;
                (1.0, false)
            }
            Some(e) if e.x == col => (0.0, true),
            _ => (0.0, false),
        }
    }

    fn move_entities(&mut self) {
        for lane in &mut self.lanes {
            if let Some(e) = lane {
                e.x += if e.right { 1 } else { -1 };
                if !(0..=LAST).contains(&e.x) {
                    *lane = None;
                }
            }
        }
    }

    /// The package ramps only while a speed can still drop; the timer then waits one step
    /// below 0 before firing.
    fn ramp(&mut self) {
        if !self.ramping || (self.spawn_speed <= 1 && self.move_speed <= 1) {
            return;
        }
        if self.ramp_timer >= 0 {
            self.ramp_timer -= 1;
            return;
        }
        if self.move_speed > 1 && self.ramp_index % 2 == 1 {
            self.move_speed -= 1;
        }
        if self.spawn_speed > 1 {
            self.spawn_speed -= 1;
        }
        self.ramp_index += 1;
        self.ramp_timer = RAMP_INTERVAL;
    }
}

impl Game for Asterix {
    fn name(&self) -> &'static str {
        "asterix"
    }

    fn channels(&self) -> usize {
        4
    }

    fn minimal_actions(&self) -> &'static [usize] {
        &[0, 1, 2, 3, 4]
    }

    fn reset(&mut self, _rng: &mut ChaCha8Rng) {
        *self = Self::start(self.ramping);
    }

    fn act(&mut self, action: usize, rng: &mut ChaCha8Rng) -> (f64, bool) {
        let (row, col) = &mut self.player;
        match action {
            1 => *col = (*col - 1).max(0),
            2 => *row = (*row - 1).max(1),
            3 => *col = (*col + 1).min(LAST),
            4 => *row = (*row + 1).min(LANES as i32),
            _ => {}
        }
        // A spawn lands before the contact check (it can hit the player at once); the game
        // goes on updating on the step that ends it, as the package's frames show.
        if self.spawn_timer == 0 {
            self.spawn(rng);
            self.spawn_timer = self.spawn_speed;
        }
        let (mut reward, mut over) = self.collide();
        if self.move_timer == 0 {
            self.move_entities();
            self.move_timer = self.move_speed;
            let (r, o) = self.collide();
            reward += r;
            over |= o;
        }
        self.spawn_timer -= 1;
        self.move_timer -= 1;
        self.ramp();
        (reward, over)
    }

    fn render(&self, obs: &mut [f64]) {
        let c = self.channels();
        set(obs, c, self.player.0 as usize, self.player.1 as usize, 0);
        for (i, lane) in self.lanes.iter().enumerate() {
            let Some(e) = lane else { continue };
            let row = i + 1;
            set(obs, c, row, e.x as usize, if e.gold { 3 } else { 1 });
            let behind = e.x + if e.right { -1 } else { 1 };
            if (0..=LAST).contains(&behind) {
                set(obs, c, row, behind as usize, 2);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn first_spawn_enters_on_step_eleven_and_moves_at_once() {
        let mut g = Asterix::default();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for _ in 0..10 {
            g.act(0, &mut rng);
        }
        assert!(g.lanes.iter().all(Option::is_none));
        g.act(0, &mut rng);
        let e = g.lanes.iter().flatten().next().copied();
        // Both timers fire on this step: the new entity is already one column in.
        assert!(matches!(
            e,
            Some(Entity {
                x: 1,
                right: true,
                ..
            }) | Some(Entity {
                x: 8,
                right: false,
                ..
            })
        ));
    }

    #[test]
    fn gold_is_collected_and_enemies_end_the_game() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut g = Asterix::default();
        g.lanes[4] = Some(Entity {
            x: 6,
            right: false,
            gold: true,
        });
        assert_eq!(g.act(3, &mut rng), (1.0, false));
        assert_eq!(g.lanes[4], None);
        g.lanes[4] = Some(Entity {
            x: 5,
            right: true,
            gold: false,
        });
        g.move_timer = 0;
        assert_eq!(g.act(1, &mut rng), (0.0, true));
    }
}

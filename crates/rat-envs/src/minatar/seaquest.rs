//! MinAtar Seaquest: channels [sub_front, sub_back, f_bullet, trail, e_bullet, e_fish, e_sub,
//! oxygen_gauge, diver_gauge, diver]; minimal actions: all six.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{Game, SIZE, set};

const LAST: i32 = SIZE as i32 - 1;
/// The sub's lowest row (row 9 holds the gauges).
const BOTTOM: i32 = 8;
const MAX_OXYGEN: i32 = 200;
const FULL_DIVERS: i32 = 6;
const SHOT_COOLDOWN: i32 = 5;
const ENEMY_SHOT_INTERVAL: i32 = 10;
const ENEMY_SPAWN_SPEED: i32 = 20;
const DIVER_SPAWN_SPEED: i32 = 30;
const DIVER_MOVE_SPEED: i32 = 5;
const MOVE_SPEED: i32 = 5;
const MIN_MOVE_SPEED: i32 = 2;

/// A horizontal bullet; it moves one cell per step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bullet {
    /// Column.
    pub x: i32,
    /// Row.
    pub y: i32,
    /// Moving right (else left).
    pub right: bool,
}

/// A fish, an enemy sub or a diver: it moves one cell when its timer is 0 (which then
/// restarts), else the timer counts down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Swimmer {
    /// Column.
    pub x: i32,
    /// Row.
    pub y: i32,
    /// Moving right (else left).
    pub right: bool,
    /// Steps until the next move.
    pub move_timer: i32,
    /// Steps until an enemy sub fires (unused by fish and divers).
    pub shot_timer: i32,
}

impl Swimmer {
    fn new(right: bool, y: i32, move_timer: i32, shot_timer: i32) -> Self {
        let x = if right { 0 } else { LAST };
        Self {
            x,
            y,
            right,
            move_timer,
            shot_timer,
        }
    }

    fn dir(&self) -> i32 {
        if self.right { 1 } else { -1 }
    }

    /// Counts down or moves; returns whether it is still on the grid.
    fn advance(&mut self, speed: i32) -> bool {
        if self.move_timer == 0 {
            self.x += self.dir();
            self.move_timer = speed;
        } else {
            self.move_timer -= 1;
        }
        (0..=LAST).contains(&self.x)
    }

    fn at(&self, x: i32, y: i32) -> bool {
        self.x == x && self.y == y
    }
}

/// The player's sub (starts on the surface, row 0, column 5, facing left; rows 0–8) shoots
/// fish and enemy subs (+1 each) with horizontal bullets (cooldown 5) and collects divers (up
/// to 6). Enemies enter a random row 1–8 from a random side every `e_spawn_speed` steps (⅓
/// subs, which fire every 10 steps; skipped if the row holds an enemy moving the other way)
/// and move every `move_speed` + 1 steps; divers enter every 30 steps and move every 6.
/// Oxygen (200) drops each submerged step; the game ends when it is gone, on touching an enemy
/// or enemy bullet, or on surfacing without divers. Surfacing with 6 divers scores
/// ⌊oxygen / 20⌋; every surfacing refills oxygen, uses up a diver (6 go to −1, the package's
/// quirk) and ramps the difficulty (spawns and, every second time, moves get faster).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Seaquest {
    /// Sub column.
    pub sub_x: i32,
    /// Sub row.
    pub sub_y: i32,
    /// Sub facing right (else left).
    pub sub_right: bool,
    /// Oxygen left.
    pub oxygen: i32,
    /// Divers collected.
    pub divers_held: i32,
    /// The player's bullets.
    pub f_bullets: Vec<Bullet>,
    /// The enemy subs' bullets.
    pub e_bullets: Vec<Bullet>,
    /// Enemy fish.
    pub fish: Vec<Swimmer>,
    /// Enemy subs.
    pub subs: Vec<Swimmer>,
    /// Divers to collect.
    pub divers: Vec<Swimmer>,
    /// Steps between enemy spawns.
    pub e_spawn_speed: i32,
    /// Steps until the next enemy spawn.
    pub e_spawn_timer: i32,
    /// Steps until the next diver spawn.
    pub d_spawn_timer: i32,
    /// An enemy's move interval (it moves every `move_speed + 1` steps).
    pub move_speed: i32,
    /// How many times the difficulty ramped.
    pub ramp_index: u32,
    /// Steps until the sub may fire again.
    pub shot_timer: i32,
    /// On the surface since the last surfacing (surfacing counts once).
    pub surface: bool,
    /// Difficulty ramping.
    pub ramping: bool,
}

impl Default for Seaquest {
    fn default() -> Self {
        Self::start(true)
    }
}

impl Seaquest {
    /// The starting state (deterministic: spawns are the first random draws).
    pub fn start(ramping: bool) -> Self {
        Self {
            sub_x: 5,
            sub_y: 0,
            sub_right: false,
            oxygen: MAX_OXYGEN,
            divers_held: 0,
            f_bullets: Vec::new(),
            e_bullets: Vec::new(),
            fish: Vec::new(),
            subs: Vec::new(),
            divers: Vec::new(),
            e_spawn_speed: ENEMY_SPAWN_SPEED,
            e_spawn_timer: ENEMY_SPAWN_SPEED,
            d_spawn_timer: DIVER_SPAWN_SPEED,
            move_speed: MOVE_SPEED,
            ramp_index: 0,
            shot_timer: 0,
            surface: true,
            ramping,
        }
    }

    fn sub_at(&self, x: i32, y: i32) -> bool {
        self.sub_x == x && self.sub_y == y
    }

    /// An enemy enters a random row from a random side, unless the row holds an enemy moving
    /// the other way.
    fn spawn_enemy(&mut self, rng: &mut ChaCha8Rng) {
        let right = rng.random_bool(0.5);
        let is_sub = rng.random_bool(1.0 / 3.0);
        let y = rng.random_range(1..=BOTTOM);
        let blocked = self
            .fish
            .iter()
            .chain(&self.subs)
            .any(|e| e.y == y && e.right != right);
        if blocked {
            return;
        }
        if is_sub {
            let s = Swimmer::new(right, y, self.move_speed, ENEMY_SHOT_INTERVAL);
            self.subs.push(s);
        } else {
            self.fish.push(Swimmer::new(right, y, self.move_speed, 0));
        }
    }

    fn spawn_diver(&mut self, rng: &mut ChaCha8Rng) {
        let right = rng.random_bool(0.5);
        let y = rng.random_range(1..=BOTTOM);
        self.divers
            .push(Swimmer::new(right, y, DIVER_MOVE_SPEED, 0));
    }

    /// Removes the first friendly bullet on (x, y); returns whether there was one.
    fn shot_at(&mut self, x: i32, y: i32) -> bool {
        let hit = self.f_bullets.iter().position(|b| b.x == x && b.y == y);
        hit.map(|i| self.f_bullets.remove(i)).is_some()
    }

    /// Moves the friendly bullets; one reaching an enemy removes both (+1 each).
    fn move_f_bullets(&mut self) -> f64 {
        let mut reward = 0.0;
        let bullets = std::mem::take(&mut self.f_bullets);
        for mut b in bullets {
            b.x += if b.right { 1 } else { -1 };
            if !(0..=LAST).contains(&b.x) {
                continue;
            }
            let hit = |e: &Swimmer| e.at(b.x, b.y);
            if let Some(i) = self.fish.iter().position(hit) {
                self.fish.remove(i);
                reward += 1.0;
            } else if let Some(i) = self.subs.iter().position(hit) {
                self.subs.remove(i);
                reward += 1.0;
            } else {
                self.f_bullets.push(b);
            }
        }
        reward
    }

    /// Moves the enemy bullets; one on the sub before or after its move ends the game.
    fn move_e_bullets(&mut self) -> bool {
        let mut over = false;
        let bullets = std::mem::take(&mut self.e_bullets);
        for mut b in bullets {
            over |= self.sub_at(b.x, b.y);
            b.x += if b.right { 1 } else { -1 };
            if (0..=LAST).contains(&b.x) {
                over |= self.sub_at(b.x, b.y);
                self.e_bullets.push(b);
            }
        }
        over
    }

    /// Moves the fish (or the enemy subs, which also fire); an enemy touching the sub before or
    /// after its move ends the game, one moving onto a friendly bullet dies (+1).
    fn move_enemies(&mut self, subs: bool) -> (f64, bool) {
        let (mut reward, mut over) = (0.0, false);
        let enemies = std::mem::take(if subs { &mut self.subs } else { &mut self.fish });
        let mut kept = Vec::with_capacity(enemies.len());
        for mut e in enemies {
            over |= self.sub_at(e.x, e.y);
            if !e.advance(self.move_speed) {
                continue;
            }
            if self.shot_at(e.x, e.y) {
                reward += 1.0;
                continue;
            }
            over |= self.sub_at(e.x, e.y);
            if subs {
                if e.shot_timer == 0 {
                    // The shot appears in front of the enemy and can hit the sub at once.
                    let x = e.x + e.dir();
                    over |= self.sub_at(x, e.y);
                    if (0..=LAST).contains(&x) {
                        let (y, right) = (e.y, e.right);
                        self.e_bullets.push(Bullet { x, y, right });
                    }
                    e.shot_timer = ENEMY_SHOT_INTERVAL;
                } else {
                    e.shot_timer -= 1;
                }
            }
            kept.push(e);
        }
        *(if subs { &mut self.subs } else { &mut self.fish }) = kept;
        (reward, over)
    }

    /// Moves the divers; the sub collects one it touches (before or after its move) while it
    /// holds fewer than 6.
    fn move_divers(&mut self) {
        let divers = std::mem::take(&mut self.divers);
        for mut d in divers {
            if self.sub_at(d.x, d.y) && self.divers_held < FULL_DIVERS {
                self.divers_held += 1;
                continue;
            }
            if !d.advance(DIVER_MOVE_SPEED) {
                continue;
            }
            if self.sub_at(d.x, d.y) && self.divers_held < FULL_DIVERS {
                self.divers_held += 1;
                continue;
            }
            self.divers.push(d);
        }
    }

    /// Surfacing: ends the game without divers; else scores a full load, refills the oxygen,
    /// uses a diver and ramps. Returns (reward, over).
    fn surfacing(&mut self) -> (f64, bool) {
        if self.divers_held == 0 {
            return (0.0, true);
        }
        let mut reward = 0.0;
        if self.divers_held == FULL_DIVERS {
            reward = f64::from(self.oxygen * 10 / MAX_OXYGEN);
            self.divers_held = 0;
        }
        self.divers_held -= 1;
        self.oxygen = MAX_OXYGEN;
        self.surface = true;
        self.ramp();
        (reward, false)
    }

    /// Spawns get faster (down to every step) and, every second time, enemies too (down to
    /// every 3 steps); the count only advances while something can still speed up.
    fn ramp(&mut self) {
        if !self.ramping || (self.e_spawn_speed <= 1 && self.move_speed <= MIN_MOVE_SPEED) {
            return;
        }
        if self.move_speed > MIN_MOVE_SPEED && self.ramp_index % 2 == 1 {
            self.move_speed -= 1;
        }
        if self.e_spawn_speed > 1 {
            self.e_spawn_speed -= 1;
        }
        self.ramp_index += 1;
    }
}

impl Game for Seaquest {
    fn name(&self) -> &'static str {
        "seaquest"
    }

    fn channels(&self) -> usize {
        10
    }

    fn minimal_actions(&self) -> &'static [usize] {
        &[0, 1, 2, 3, 4, 5]
    }

    fn reset(&mut self, _rng: &mut ChaCha8Rng) {
        *self = Self::start(self.ramping);
    }

    fn act(&mut self, action: usize, rng: &mut ChaCha8Rng) -> (f64, bool) {
        match action {
            1 => {
                self.sub_x = (self.sub_x - 1).max(0);
                self.sub_right = false;
            }
            3 => {
                self.sub_x = (self.sub_x + 1).min(LAST);
                self.sub_right = true;
            }
            2 => self.sub_y = (self.sub_y - 1).max(0),
            4 => self.sub_y = (self.sub_y + 1).min(BOTTOM),
            5 if self.shot_timer == 0 => {
                let (x, y, right) = (self.sub_x, self.sub_y, self.sub_right);
                self.f_bullets.push(Bullet { x, y, right });
                self.shot_timer = SHOT_COOLDOWN;
            }
            _ => {}
        }
        // New arrivals are placed before anything moves, so they take part in this step.
        if self.e_spawn_timer == 0 {
            self.spawn_enemy(rng);
            self.e_spawn_timer = self.e_spawn_speed;
        }
        self.e_spawn_timer -= 1;
        if self.d_spawn_timer == 0 {
            self.spawn_diver(rng);
            self.d_spawn_timer = DIVER_SPAWN_SPEED;
        }
        self.d_spawn_timer -= 1;
        let mut reward = self.move_f_bullets();
        let mut over = self.move_e_bullets();
        for subs in [false, true] {
            let (r, o) = self.move_enemies(subs);
            reward += r;
            over |= o;
        }
        self.move_divers();
        self.shot_timer = (self.shot_timer - 1).max(0);
        // Out of oxygen: the check precedes this step's use, so the game ends one step after
        // the gauge empties (or on surfacing with an empty gauge).
        over |= self.oxygen <= 0;
        if self.sub_y > 0 {
            self.oxygen -= 1;
            self.surface = false;
        } else if !self.surface {
            let (r, o) = self.surfacing();
            reward += r;
            over |= o;
        }
        (reward, over)
    }

    fn render(&self, obs: &mut [f64]) {
        let c = self.channels();
        let cell = |obs: &mut [f64], x: i32, y: i32, ch: usize| {
            if (0..=LAST).contains(&x) && (0..=LAST).contains(&y) {
                set(obs, c, y as usize, x as usize, ch);
            }
        };
        cell(obs, self.sub_x, self.sub_y, 0);
        // Behind a right-facing sub on column 0 the package's index −1 wraps to column 9.
        let back = self.sub_x + if self.sub_right { -1 } else { 1 };
        cell(obs, back.rem_euclid(SIZE as i32), self.sub_y, 1);
        for b in &self.f_bullets {
            cell(obs, b.x, b.y, 2);
        }
        for b in &self.e_bullets {
            cell(obs, b.x, b.y, 4);
        }
        for (list, ch) in [(&self.fish, 5), (&self.subs, 6), (&self.divers, 9)] {
            for e in list {
                cell(obs, e.x, e.y, ch);
                cell(obs, e.x - e.dir(), e.y, 3);
            }
        }
        for x in 0..self.oxygen.max(0) * 10 / MAX_OXYGEN {
            cell(obs, x, LAST, 7);
        }
        for x in LAST - self.divers_held.max(0)..LAST {
            cell(obs, x, LAST, 8);
        }
    }
}

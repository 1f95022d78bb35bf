//! MinAtar Freeway: channels [chicken, car, speed1, …, speed5]; minimal actions [n, u, d].

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{Game, SIZE, set};

const LAST: i32 = SIZE as i32 - 1;
/// The chicken's column.
const COLUMN: i32 = 4;
/// Steps between chicken moves.
const MOVE_COOLDOWN: i32 = 3;
/// Steps in an episode, minus one: the game ends when this count drops below 0.
const TIME_LIMIT: i32 = 2500;
/// One car per road row 1–8.
const ROADS: usize = 8;

/// A car on its road row; it moves one cell every |speed| + 1 steps, wrapping around.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Car {
    /// Column.
    pub x: i32,
    /// Steps until the next move.
    pub timer: i32,
    /// ±1..±5: the sign is the direction, a smaller magnitude is faster.
    pub speed: i32,
}

/// The chicken crosses eight lanes of traffic (rows 1–8) from row 9 to row 0 in column 4; up
/// and down move it one row at most once per 3 steps. Reaching row 0 gives +1, returns it to
/// row 9 and gives the cars new random speeds; a car hitting it sends it back to row 9. The
/// game ends after 2501 steps.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Freeway {
    /// The chicken's row.
    pub pos: i32,
    /// Steps until the chicken may move again.
    pub move_timer: i32,
    /// The car on each road (road i is row i + 1).
    pub cars: [Car; ROADS],
    /// Counts down every step; the game ends when it drops below 0.
    pub terminate_timer: i32,
}

impl Default for Freeway {
    fn default() -> Self {
        Self::start([1; ROADS])
    }
}

impl Freeway {
    /// The starting state with these car speeds (±1..±5 per road): every car at column 0,
    /// the chicken at row 9.
    pub fn start(speeds: [i32; ROADS]) -> Self {
        let mut g = Self {
            pos: LAST,
            move_timer: MOVE_COOLDOWN,
            cars: [Car {
                x: 0,
                timer: 0,
                speed: 1,
            }; ROADS],
            terminate_timer: TIME_LIMIT,
        };
        g.set_speeds(speeds);
        g
    }

    /// New speeds (positions kept); each car's timer restarts at |speed|.
    pub fn set_speeds(&mut self, speeds: [i32; ROADS]) {
        for (car, v) in self.cars.iter_mut().zip(speeds) {
            car.speed = v;
            car.timer = v.abs();
        }
    }

    fn random_speeds(rng: &mut ChaCha8Rng) -> [i32; ROADS] {
        std::array::from_fn(|_| {
            let v = rng.random_range(1..=5);
            if rng.random_bool(0.5) { -v } else { v }
        })
    }
}

impl Game for Freeway {
    fn name(&self) -> &'static str {
        "freeway"
    }

    fn channels(&self) -> usize {
        7
    }

    fn minimal_actions(&self) -> &'static [usize] {
        &[0, 2, 4]
    }

    fn reset(&mut self, rng: &mut ChaCha8Rng) {
        *self = Self::start(Self::random_speeds(rng));
    }

    fn act(&mut self, action: usize, rng: &mut ChaCha8Rng) -> (f64, bool) {
        if self.move_timer == 0 && matches!(action, 2 | 4) {
            let step = if action == 2 { -1 } else { 1 };
            self.pos = (self.pos + step).clamp(0, LAST);
            self.move_timer = MOVE_COOLDOWN;
        }
        // Scoring comes before the cars move, so a car cannot stop a chicken on row 0.
        let mut reward = 0.0;
        if self.pos == 0 {
            reward = 1.0;
            self.pos = LAST;
            self.set_speeds(Self::random_speeds(rng));
        }
        // A car hits the chicken on its cell before or after its move (so they cannot pass
        // through each other).
        for (i, car) in self.cars.iter_mut().enumerate() {
            let row = i as i32 + 1;
            let mut hit = car.x == COLUMN && row == self.pos;
            if car.timer == 0 {
                car.x = (car.x + car.speed.signum()).rem_euclid(SIZE as i32);
                car.timer = car.speed.abs();
            } else {
                car.timer -= 1;
            }
            hit |= car.x == COLUMN && row == self.pos;
            if hit {
                self.pos = LAST;
            }
        }
        self.move_timer = (self.move_timer - 1).max(0);
        self.terminate_timer -= 1;
        (reward, self.terminate_timer < 0)
    }

    fn render(&self, obs: &mut [f64]) {
        let c = self.channels();
        set(obs, c, self.pos as usize, COLUMN as usize, 0);
        for (i, car) in self.cars.iter().enumerate() {
            let row = i + 1;
            set(obs, c, row, car.x as usize, 1);
            let behind = (car.x - car.speed.signum()).rem_euclid(SIZE as i32);
            set(
                obs,
                c,
                row,
                behind as usize,
                1 + car.speed.unsigned_abs() as usize,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn a_speed_one_car_moves_every_second_step_and_wraps() {
        let mut g = Freeway::start([-1; ROADS]);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        g.act(0, &mut rng);
        assert_eq!(g.cars[0].x, 0);
        g.act(0, &mut rng);
        assert_eq!(g.cars[0].x, LAST);
    }

    #[test]
    fn the_episode_lasts_2501_steps() {
        let mut g = Freeway::default();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let steps = (1..).find(|_| g.act(0, &mut rng).1);
        assert_eq!(steps, Some(2501));
    }
}

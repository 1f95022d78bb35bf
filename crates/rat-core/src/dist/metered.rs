//! A communicator that measures what passes through it: the wall time spent inside the
//! collectives and the bytes this rank received from them, for the scaling table of
//! DISTRIBUTED.md §5 (communication against compute per step).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::Communicator;
use crate::Result;

/// Totals of a [`Metered`] communicator since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Traffic {
    /// Collectives called.
    pub calls: usize,
    /// Seconds spent inside them (waiting for the slowest rank included).
    pub seconds: f64,
    /// Bytes this rank received: a gather's whole result, a reduction's vector, a broadcast's
    /// bytes.
    pub bytes: usize,
}

/// `inner` with every collective timed and its received bytes counted; clones share the totals.
#[derive(Debug, Clone)]
pub struct Metered {
    inner: Arc<dyn Communicator>,
    totals: Arc<Mutex<Traffic>>,
}

impl Metered {
    /// Measures the collectives called through the result.
    pub fn new(inner: Arc<dyn Communicator>) -> Self {
        Self {
            inner,
            totals: Arc::default(),
        }
    }

    /// The totals so far.
    pub fn traffic(&self) -> Traffic {
        *self.totals.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn time<T>(
        &self,
        bytes: impl FnOnce(&T) -> usize,
        op: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let t0 = Instant::now();
        let out = op()?;
        let mut totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        totals.calls += 1;
        totals.seconds += t0.elapsed().as_secs_f64();
        totals.bytes += bytes(&out);
        Ok(out)
    }
}

impl Communicator for Metered {
    fn rank(&self) -> usize {
        self.inner.rank()
    }
    fn size(&self) -> usize {
        self.inner.size()
    }
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn all_reduce_sum_f64(&self, x: &mut [f64]) -> Result<()> {
        let n = 8 * x.len();
        self.time(|_| n, || self.inner.all_reduce_sum_f64(x))
    }
    fn all_reduce_sum_f32(&self, x: &mut [f32]) -> Result<()> {
        let n = 4 * x.len();
        self.time(|_| n, || self.inner.all_reduce_sum_f32(x))
    }
    fn all_gather_v_f64(&self, mine: &[f64]) -> Result<(Vec<f64>, Vec<usize>)> {
        self.time(
            |o: &(Vec<f64>, _)| 8 * o.0.len(),
            || self.inner.all_gather_v_f64(mine),
        )
    }
    fn all_gather_v_f32(&self, mine: &[f32]) -> Result<(Vec<f32>, Vec<usize>)> {
        self.time(
            |o: &(Vec<f32>, _)| 4 * o.0.len(),
            || self.inner.all_gather_v_f32(mine),
        )
    }
    fn all_gather_v_bytes(&self, mine: &[u8]) -> Result<(Vec<u8>, Vec<usize>)> {
        self.time(
            |o: &(Vec<u8>, _)| o.0.len(),
            || self.inner.all_gather_v_bytes(mine),
        )
    }
    fn broadcast_bytes(&self, root: usize, bytes: &mut Vec<u8>) -> Result<()> {
        let t0 = Instant::now();
        self.inner.broadcast_bytes(root, bytes)?;
        let mut totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        totals.calls += 1;
        totals.seconds += t0.elapsed().as_secs_f64();
        totals.bytes += bytes.len();
        Ok(())
    }
    fn abort(&self, code: i32) -> ! {
        self.inner.abort(code)
    }
}

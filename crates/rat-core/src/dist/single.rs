//! One process: rank 0 of 1, every collective the identity.

use super::Communicator;
use crate::Result;

/// The communicator of a single process (the default): rank 0 of size 1; reductions and
/// gathers return their input, a broadcast leaves it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Single;

impl Communicator for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn name(&self) -> &'static str {
        "single"
    }
    fn all_reduce_sum_f64(&self, _x: &mut [f64]) -> Result<()> {
        Ok(())
    }
    fn all_reduce_sum_f32(&self, _x: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn all_gather_v_f64(&self, mine: &[f64]) -> Result<(Vec<f64>, Vec<usize>)> {
        Ok((mine.to_vec(), vec![mine.len()]))
    }
    fn all_gather_v_f32(&self, mine: &[f32]) -> Result<(Vec<f32>, Vec<usize>)> {
        Ok((mine.to_vec(), vec![mine.len()]))
    }
    fn all_gather_v_bytes(&self, mine: &[u8]) -> Result<(Vec<u8>, Vec<usize>)> {
        Ok((mine.to_vec(), vec![mine.len()]))
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
    fn broadcast_bytes(&self, root: usize, _bytes: &mut Vec<u8>) -> Result<()> {
        if root == 0 {
            Ok(())
        } else {
            Err(crate::Error::InvalidArgument {
                op: "broadcast",
                msg: format!("root rank {root} of a single process"),
            })
        }
    }
}

//! MPI through the `mpi` crate (rsmpi): host buffers, MPI_COMM_WORLD, launched by `mpirun`.

use std::sync::Mutex;

use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::{Communicator as _, SimpleCommunicator};
use mpi::traits::*;

use super::Communicator;
use crate::{Error, Result};

/// MPI_COMM_WORLD. Created once per process ([`Mpi::init`]); MPI is finalised when it drops.
pub struct Mpi {
    // Calls are serialised by this lock (MPI initialised with MPI_THREAD_SERIALIZED), which is
    // what makes sharing the handles between threads sound.
    world: Mutex<SimpleCommunicator>,
    rank: usize,
    size: usize,
    _universe: Universe,
}

// SAFETY: MPI is initialised at MPI_THREAD_SERIALIZED or above and every call goes through the
// mutex, so no two threads are ever inside MPI at once.
unsafe impl Send for Mpi {}
// SAFETY: as above.
unsafe impl Sync for Mpi {}

impl std::fmt::Debug for Mpi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mpi(rank {} of {})", self.rank, self.size)
    }
}

impl Mpi {
    /// Initialises MPI and returns MPI_COMM_WORLD; an error outside a launcher, or when MPI was
    /// already initialised in this process.
    pub fn init() -> Result<Self> {
        let fail = |msg: String| Error::InvalidArgument { op: "mpi", msg };
        if !super::launched_by_mpi() {
            return Err(fail(
                "not started by an MPI launcher: run under `mpirun -np <R> <program> ...`".into(),
            ));
        }
        let (universe, level) = mpi::initialize_with_threading(mpi::Threading::Serialized)
            .ok_or_else(|| fail("MPI is already initialised in this process".into()))?;
        if level < mpi::Threading::Serialized {
            return Err(fail(format!(
                "the MPI library gives thread level {level:?}; at least Serialized is needed"
            )));
        }
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        Ok(Mpi {
            world: Mutex::new(world),
            rank,
            size,
            _universe: universe,
        })
    }

    fn with<T>(&self, f: impl FnOnce(&SimpleCommunicator) -> T) -> Result<T> {
        let world = self.world.lock().map_err(|_| Error::InvalidArgument {
            op: "mpi",
            msg: "a collective panicked on another thread".into(),
        })?;
        Ok(f(&world))
    }

    fn gather<T: Equivalence + Copy + Default>(&self, mine: &[T]) -> Result<(Vec<T>, Vec<usize>)> {
        let counts = self.with(|w| {
            let mut counts = vec![0i32; self.size];
            w.all_gather_into(&(mine.len() as i32), &mut counts[..]);
            counts
        })?;
        let displs: Vec<i32> = counts
            .iter()
            .scan(0, |acc, &c| {
                let d = *acc;
                *acc += c;
                Some(d)
            })
            .collect();
        let total = counts.iter().map(|&c| c as usize).sum();
        let mut all = vec![T::default(); total];
        self.with(|w| {
            let mut part = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
            w.all_gather_varcount_into(mine, &mut part);
        })?;
        Ok((all, counts.iter().map(|&c| c as usize).collect()))
    }
}

impl Communicator for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn name(&self) -> &'static str {
        "mpi"
    }
    fn all_reduce_sum_f64(&self, x: &mut [f64]) -> Result<()> {
        let send = x.to_vec();
        self.with(|w| w.all_reduce_into(&send[..], x, SystemOperation::sum()))
    }
    fn all_reduce_sum_f32(&self, x: &mut [f32]) -> Result<()> {
        let send = x.to_vec();
        self.with(|w| w.all_reduce_into(&send[..], x, SystemOperation::sum()))
    }
    fn all_gather_v_f64(&self, mine: &[f64]) -> Result<(Vec<f64>, Vec<usize>)> {
        self.gather(mine)
    }
    fn all_gather_v_f32(&self, mine: &[f32]) -> Result<(Vec<f32>, Vec<usize>)> {
        self.gather(mine)
    }
    fn all_gather_v_bytes(&self, mine: &[u8]) -> Result<(Vec<u8>, Vec<usize>)> {
        self.gather(mine)
    }
    fn abort(&self, code: i32) -> ! {
        // Without the lock if a panicking thread poisoned it: the process ends either way.
        let world = self.world.lock().unwrap_or_else(|p| p.into_inner());
        world.abort(code)
    }
    fn broadcast_bytes(&self, root: usize, bytes: &mut Vec<u8>) -> Result<()> {
        if root >= self.size {
            return Err(Error::InvalidArgument {
                op: "broadcast",
                msg: format!("root rank {root} of {}", self.size),
            });
        }
        self.with(|w| {
            let from = w.process_at_rank(root as i32);
            let mut len = bytes.len() as u64;
            from.broadcast_into(&mut len);
            bytes.resize(len as usize, 0);
            from.broadcast_into(&mut bytes[..]);
        })
    }
}

//! Collectives for running one algorithm on R processes: a small [`Communicator`] with rank,
//! size, `all_reduce_sum`, `all_gather_v` and `broadcast`, implemented by [`Single`] (one
//! process; every collective is the identity, so single-process code paths are the distributed
//! ones with R = 1), behind the `mpi` feature [`Mpi`] (OpenMPI or any MPI-3.1 through the `mpi`
//! crate), and behind the `nccl` feature `Nccl` (one GPU per rank, bootstrapped by another
//! communicator). The update rules call it at the few points where R ranks must agree
//! (`../shared/spec/DISTRIBUTED.md` §3); the maths stays where it is.
//!
//! [`tensor`] lifts the collectives to candle tensors of either float type on any device;
//! [`Metered`] measures the time and bytes that pass through a communicator.

mod metered;
#[cfg(feature = "mpi")]
mod mpi;
#[cfg(feature = "nccl")]
mod nccl;
mod single;
pub mod tensor;

#[cfg(feature = "mpi")]
pub use self::mpi::Mpi;
#[cfg(feature = "nccl")]
pub use self::nccl::Nccl;
pub use metered::{Metered, Traffic};
pub use single::Single;

use crate::Result;

/// The collectives R ranks use to compute what one process computes on the union of their data.
/// Every rank calls the same collectives in the same order; each returns the same result on
/// every rank (for `all_reduce_sum`, up to the engine's summation order, which is fixed for a
/// given R).
pub trait Communicator: std::fmt::Debug + Send + Sync {
    /// This process's rank, 0 ≤ rank < size.
    fn rank(&self) -> usize;
    /// The number of ranks R.
    fn size(&self) -> usize;
    /// The engine's name (`single`, `mpi`, `nccl`).
    fn name(&self) -> &'static str;
    /// x ← Σ_ranks x, element-wise, on every rank.
    fn all_reduce_sum_f64(&self, x: &mut [f64]) -> Result<()>;
    /// x ← Σ_ranks x in f32.
    fn all_reduce_sum_f32(&self, x: &mut [f32]) -> Result<()>;
    /// Every rank's `mine` (of any length, one per rank), concatenated in rank order, with the
    /// length each rank gave.
    fn all_gather_v_f64(&self, mine: &[f64]) -> Result<(Vec<f64>, Vec<usize>)>;
    /// [`all_gather_v_f64`](Self::all_gather_v_f64) in f32.
    fn all_gather_v_f32(&self, mine: &[f32]) -> Result<(Vec<f32>, Vec<usize>)>;
    /// Every rank's bytes (of any length), concatenated in rank order, with each rank's length
    /// (states and text that only one rank writes, such as environment states for a checkpoint).
    fn all_gather_v_bytes(&self, mine: &[u8]) -> Result<(Vec<u8>, Vec<usize>)>;
    /// `bytes` ← the root rank's `bytes` on every rank (the length too).
    fn broadcast_bytes(&self, root: usize, bytes: &mut Vec<u8>) -> Result<()>;

    /// Ends every rank's process with exit status `code` (MPI_Abort): what a rank that failed
    /// does, so that the others do not wait for it in their next collective.
    fn abort(&self, code: i32) -> !;

    /// Whether this is rank 0, the rank that writes logs and checkpoints.
    fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// The sum over ranks of one number.
    fn sum_f64(&self, x: f64) -> Result<f64> {
        let mut v = [x];
        self.all_reduce_sum_f64(&mut v)?;
        Ok(v[0])
    }
}

/// Whether this process was started by an MPI launcher (OpenMPI's `mpirun`, or a PMI one such
/// as Slurm's `srun`), in any build.
pub fn launched_by_mpi() -> bool {
    [
        "OMPI_COMM_WORLD_SIZE",
        "PMI_SIZE",
        "PMIX_RANK",
        "MPI_LOCALNRANKS",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some())
}

/// The global indices `[start, end)` of rank `rank`'s share of `n` items split over `size`
/// ranks in contiguous blocks, the first `n mod size` ranks taking one more (so that the shares
/// in rank order are 0..n).
pub fn share(n: usize, rank: usize, size: usize) -> std::ops::Range<usize> {
    let (base, extra) = (n / size, n % size);
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}

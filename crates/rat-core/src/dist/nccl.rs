//! NCCL through the cudarc that candle uses: one GPU per rank, the unique id sent from rank 0
//! to the others by a bootstrap communicator (MPI under `mpirun`, or [`Single`](super::Single)
//! for one rank).
//!
//! The [`Communicator`] interface is host slices, so each collective copies its buffer to the
//! rank's GPU, runs the NCCL collective there and copies the result back: the same results as
//! MPI (NCCL's ring sums in a fixed order for a given R), not yet the device-resident path
//! DISTRIBUTED.md has in mind for tensors that already live on the GPU.

use std::sync::{Arc, Mutex};

use cudarc::driver::{CudaContext, CudaSlice, CudaStream, DeviceRepr, ValidAsZeroBits};
use cudarc::nccl::{Comm, Id, NcclType, ReduceOp};

use super::Communicator;
use crate::{Error, Result};

/// An NCCL communicator of `boot.size()` ranks, rank `boot.rank()` on GPU `ordinal`.
pub struct Nccl {
    // Declared first so that it is destroyed before the bootstrap (MPI) is finalised.
    comm: Mutex<Comm>,
    stream: Arc<CudaStream>,
    rank: usize,
    size: usize,
    boot: Box<dyn Communicator>,
}

// SAFETY: every use of the NCCL communicator and its stream goes through the mutex, so no two
// threads are ever inside NCCL with this communicator at once.
unsafe impl Send for Nccl {}
// SAFETY: as above.
unsafe impl Sync for Nccl {}

impl std::fmt::Debug for Nccl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Nccl(rank {} of {}, GPU {})",
            self.rank,
            self.size,
            self.stream.context().ordinal()
        )
    }
}

fn fail(msg: impl std::fmt::Display) -> Error {
    Error::InvalidArgument {
        op: "nccl",
        msg: msg.to_string(),
    }
}

impl Nccl {
    /// Joins the NCCL communicator of the ranks of `boot` on GPU `ordinal`: rank 0 makes the
    /// unique id and broadcasts it over `boot`, which the new communicator keeps for `abort`.
    pub fn new(boot: Box<dyn Communicator>, ordinal: usize) -> Result<Self> {
        let ctx = CudaContext::new(ordinal).map_err(|e| fail(format!("GPU {ordinal}: {e}")))?;
        let mut id = vec![0u8; 128];
        if boot.is_root() {
            let made = Id::new().map_err(|e| fail(format!("ncclGetUniqueId: {e:?}")))?;
            id = made.internal().iter().map(|&c| c as u8).collect();
        }
        boot.broadcast_bytes(0, &mut id)?;
        let id: [std::ffi::c_char; 128] = std::array::from_fn(|i| id[i] as std::ffi::c_char);
        let stream = ctx.default_stream();
        let (rank, size) = (boot.rank(), boot.size());
        let comm = Comm::from_rank(stream.clone(), rank, size, Id::uninit(id))
            .map_err(|e| fail(format!("ncclCommInitRank (rank {rank} of {size}): {e:?}")))?;
        Ok(Nccl {
            comm: Mutex::new(comm),
            stream,
            rank,
            size,
            boot,
        })
    }

    /// The number of CUDA devices; an error when there is none.
    pub fn gpus() -> Result<usize> {
        match CudaContext::device_count() {
            Ok(n) if n > 0 => Ok(n as usize),
            Ok(_) => Err(fail("no CUDA device")),
            Err(e) => Err(fail(format!("no CUDA device ({e})"))),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&Comm, &Arc<CudaStream>) -> Result<T>) -> Result<T> {
        let comm = self
            .comm
            .lock()
            .map_err(|_| fail("a collective panicked on another thread"))?;
        f(&comm, &self.stream)
    }

    fn all_reduce_sum<T: NcclType + DeviceRepr + ValidAsZeroBits>(
        &self,
        x: &mut [T],
    ) -> Result<()> {
        self.in_place(x, "ncclAllReduce", |comm, buf| {
            comm.all_reduce_in_place(buf, &ReduceOp::Sum)
        })
    }

    /// `x` through the GPU: copied there, `op` (one NCCL collective in place), copied back.
    fn in_place<T: NcclType + DeviceRepr, S, E: std::fmt::Debug>(
        &self,
        x: &mut [T],
        name: &str,
        op: impl FnOnce(&Comm, &mut CudaSlice<T>) -> std::result::Result<S, E>,
    ) -> Result<()> {
        if x.is_empty() {
            return Ok(());
        }
        self.with(|comm, s| {
            let mut buf = s.clone_htod(x).map_err(driver)?;
            op(comm, &mut buf).map_err(|e| fail(format!("{name}: {e:?}")))?;
            s.memcpy_dtoh(&buf, x).map_err(driver)?;
            s.synchronize().map_err(driver)
        })
    }

    /// NCCL's all-gather takes equal counts: every rank's length first, then the parts padded
    /// to the longest.
    fn gather<T: NcclType + DeviceRepr + ValidAsZeroBits + Copy + Default>(
        &self,
        mine: &[T],
    ) -> Result<(Vec<T>, Vec<usize>)> {
        let counts: Vec<usize> = self
            .gather_equal(&[mine.len() as u64])?
            .into_iter()
            .map(|c| c as usize)
            .collect();
        let longest = counts.iter().copied().max().unwrap_or(0);
        if longest == 0 {
            return Ok((Vec::new(), counts));
        }
        let mut padded = mine.to_vec();
        padded.resize(longest, T::default());
        let all = self.gather_equal(&padded)?;
        let parts = counts
            .iter()
            .enumerate()
            .flat_map(|(r, &c)| all[r * longest..r * longest + c].iter().copied())
            .collect();
        Ok((parts, counts))
    }

    fn gather_equal<T: NcclType + DeviceRepr + ValidAsZeroBits + Default + Clone>(
        &self,
        mine: &[T],
    ) -> Result<Vec<T>> {
        self.with(|comm, s| {
            let send = s.clone_htod(mine).map_err(driver)?;
            let mut recv = s.alloc_zeros::<T>(mine.len() * self.size).map_err(driver)?;
            comm.all_gather(&send, &mut recv)
                .map_err(|e| fail(format!("ncclAllGather: {e:?}")))?;
            let mut out = vec![T::default(); mine.len() * self.size];
            s.memcpy_dtoh(&recv, &mut out[..]).map_err(driver)?;
            s.synchronize().map_err(driver)?;
            Ok(out)
        })
    }

    fn broadcast<T: NcclType + DeviceRepr>(&self, root: usize, x: &mut [T]) -> Result<()> {
        self.in_place(x, "ncclBroadcast", |comm, buf| {
            comm.broadcast_in_place(buf, root as i32)
        })
    }
}

fn driver(e: cudarc::driver::DriverError) -> Error {
    fail(format!("CUDA driver: {e}"))
}

impl Communicator for Nccl {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn name(&self) -> &'static str {
        "nccl"
    }
    fn all_reduce_sum_f64(&self, x: &mut [f64]) -> Result<()> {
        self.all_reduce_sum(x)
    }
    fn all_reduce_sum_f32(&self, x: &mut [f32]) -> Result<()> {
        self.all_reduce_sum(x)
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
    fn broadcast_bytes(&self, root: usize, bytes: &mut Vec<u8>) -> Result<()> {
        if root >= self.size {
            return Err(Error::InvalidArgument {
                op: "broadcast",
                msg: format!("root rank {root} of {}", self.size),
            });
        }
        let mut len = [bytes.len() as u64];
        self.broadcast(root, &mut len)?;
        bytes.resize(len[0] as usize, 0);
        self.broadcast(root, &mut bytes[..])
    }
    fn abort(&self, code: i32) -> ! {
        self.boot.abort(code)
    }
}

//! The communicator: `Single` is the identity, the shares of a split cover 0..n in rank order,
//! and (with the `mpi` feature) two MPI ranks agree with sums, concatenations and broadcasts
//! computed by hand. The MPI test starts itself under `mpirun -np 2`. With the `nccl` feature
//! and a GPU, one NCCL rank agrees with `Single` bit for bit.

#[cfg(feature = "mpi")]
mod common;

use candle_core::{Device, Tensor};
use rat_core::dist::{Communicator, Single, share, tensor};

#[test]
fn a_single_process_communicator_is_the_identity() -> anyhow::Result<()> {
    let c = Single;
    assert_eq!((c.rank(), c.size(), c.is_root()), (0, 1, true));
    let mut x = [1.5, -2.0];
    c.all_reduce_sum_f64(&mut x)?;
    assert_eq!(x, [1.5, -2.0]);
    assert_eq!(c.all_gather_v_f32(&[1.0, 2.0])?, (vec![1.0, 2.0], vec![2]));
    assert_eq!(c.all_gather_v_bytes(&[3, 4, 5])?, (vec![3, 4, 5], vec![3]));
    let mut b = vec![1u8, 2];
    c.broadcast_bytes(0, &mut b)?;
    assert_eq!(b, [1, 2]);
    assert!(c.broadcast_bytes(1, &mut b).is_err());
    let t = Tensor::new(&[[1.0f32, 2.0], [3.0, 4.0]], &Device::Cpu)?;
    assert_eq!(
        tensor::all_gather_rows(&c, &t)?.to_vec2::<f32>()?,
        t.to_vec2::<f32>()?
    );
    Ok(())
}

#[test]
fn shares_cover_every_index_once_in_rank_order() {
    for n in 0..20 {
        for size in 1..6 {
            let all: Vec<usize> = (0..size).flat_map(|r| share(n, r, size)).collect();
            assert_eq!(all, (0..n).collect::<Vec<_>>(), "n {n}, size {size}");
            let lens: Vec<usize> = (0..size).map(|r| share(n, r, size).len()).collect();
            assert!(lens.iter().max().unwrap_or(&0) - lens.iter().min().unwrap_or(&0) <= 1);
        }
    }
}

#[cfg(feature = "mpi")]
#[test]
fn two_mpi_ranks_agree_with_the_hand_computed_collectives() -> anyhow::Result<()> {
    if std::env::var_os("OMPI_COMM_WORLD_SIZE").is_none() {
        // The parent: run this test again as two ranks.
        let exe = std::env::current_exe()?;
        let out = std::process::Command::new("mpirun")
            .args(["--oversubscribe", "--allow-run-as-root", "-np", "2"])
            .arg(exe)
            .args([
                "two_mpi_ranks_agree_with_the_hand_computed_collectives",
                "--exact",
                "--nocapture",
            ])
            .output()
            .map_err(|e| anyhow::anyhow!("mpirun: {e} (apt install openmpi-bin)"))?;
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "mpirun -np 2 failed:\n{text}");
        for r in 0..2 {
            assert!(text.contains(&format!("rank {r} of 2 agrees")), "{text}");
        }
        return Ok(());
    }
    let c = rat_core::dist::Mpi::init()?;
    let (r, n) = (c.rank(), c.size());
    assert_eq!(n, 2);
    // Σ_r (r + 1)·[1, 2, 3] = 3·[1, 2, 3]; an f64 tail that only sums exactly in this order.
    let mut x = [
        1.0 * (r + 1) as f64,
        2.0 * (r + 1) as f64,
        3.0 * (r + 1) as f64,
    ];
    c.all_reduce_sum_f64(&mut x)?;
    assert_eq!(x, [3.0, 6.0, 9.0]);
    let mut y = [0.5f32 + r as f32];
    c.all_reduce_sum_f32(&mut y)?;
    assert_eq!(y, [2.0]);
    // Rank r gives r + 1 values 10r, 10r + 1, …: concatenated in rank order.
    let mine: Vec<f64> = (0..=r).map(|i| (10 * r + i) as f64).collect();
    assert_eq!(
        c.all_gather_v_f64(&mine)?,
        (vec![0.0, 10.0, 11.0], vec![1, 2])
    );
    // Bytes: rank 0 gives none, rank 1 two.
    let bytes: &[u8] = if r == 0 { &[] } else { &[5, 6] };
    assert_eq!(c.all_gather_v_bytes(bytes)?, (vec![5, 6], vec![0, 2]));
    // A broadcast from rank 1 changes rank 0's length too.
    let mut b = if r == 1 { vec![7u8, 8, 9] } else { vec![1u8] };
    c.broadcast_bytes(1, &mut b)?;
    assert_eq!(b, [7, 8, 9]);
    // Tensors: rows gathered in rank order, sums element-wise.
    let t = Tensor::new(&[[r as f32, 1.0]], &Device::Cpu)?;
    assert_eq!(
        tensor::all_gather_rows(&c, &t)?.to_vec2::<f32>()?,
        [[0.0, 1.0], [1.0, 1.0]]
    );
    assert_eq!(
        tensor::all_reduce_sum(&c, &t)?.to_vec2::<f32>()?,
        [[1.0, 2.0]]
    );
    // Summed in rank order: the same bits on every rank.
    let s = tensor::all_reduce_sum_ordered(
        &c,
        &Tensor::new(&[0.1f64 * (r + 1) as f64], &Device::Cpu)?,
    )?;
    assert_eq!(s.to_vec1::<f64>()?, [0.1 + 0.2]);
    // Each rank's factored Jacobian of its own rows of a CNN's minibatch (conv, pooling,
    // residual, dense), gathered, is the one pass over all rows: the same kernel, and the
    // ranks' Jᵀw parts sum to the whole Jᵀw (f64, against one pass on every rank).
    use candle_core::DType;
    use rat_core::jacobian::{FactoredJacobian, ScoreJacobian};
    use rat_core::layers::Recorder;
    let mut g = common::rng(3);
    let net = common::small_cnn(&mut g, 2, 9, 3, DType::F64)?;
    let x = common::randn(&mut g, &[5, 2, 9, 9], DType::F64)?;
    let acts = common::random_actions(&mut g, 5, 3)?;
    let w = common::randn(&mut g, &[5], DType::F64)?;
    let jac_of = |x: &Tensor, a: &Tensor| -> anyhow::Result<FactoredJacobian> {
        let mut rec = Recorder::new();
        let ell = common::categorical_log_prob(&net, x, a, Some(&mut rec))?;
        Ok(FactoredJacobian::from_objective(&rec, &ell)?)
    };
    let rows = share(5, r, n);
    let part = |t: &Tensor| t.narrow(0, rows.start, rows.len());
    let mine = jac_of(&part(&x)?, &part(&acts)?)?;
    let whole = jac_of(&x, &acts)?;
    let gathered = mine.gather_rows(&c)?;
    assert_eq!(gathered.num_samples(), 5);
    let err = common::rel_err(&gathered.kernel()?, &whole.kernel()?)?;
    assert!(err < 1e-12, "gathered kernel: relative error {err:e}");
    // This rank's rows of the kernel, against the gathered factors.
    let k_rows = mine.kernel_rows(&gathered)?;
    let err = common::rel_err(&k_rows, &part(&whole.kernel()?)?)?;
    assert!(err < 1e-12, "kernel rows: relative error {err:e}");
    let parts: Vec<Tensor> = mine
        .vjp(&part(&w)?)?
        .iter()
        .map(|t| tensor::all_reduce_sum_ordered(&c, t))
        .collect::<rat_core::Result<_>>()?;
    let err = common::rel_err_params(&parts, &whole.vjp(&w)?)?;
    assert!(err < 1e-12, "summed Jᵀw: relative error {err:e}");
    println!("rank {r} of {n} agrees");
    Ok(())
}

/// One NCCL rank on GPU 0 (bootstrapped by `Single`) gives what `Single` gives, bit for bit, for
/// every collective and the tensor helpers on a CUDA tensor: the NCCL path's copies, padding
/// and lengths are right (R > 1 needs one GPU per rank: `scripts/gpu-checks.sh` on a machine
/// with several). Needs a GPU; without one it says it was skipped (CI never builds `nccl`).
#[cfg(feature = "nccl")]
#[test]
fn one_nccl_rank_gives_what_a_single_process_gives() -> anyhow::Result<()> {
    use rat_core::dist::Nccl;
    let gpus = match Nccl::gpus() {
        Ok(n) => n,
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true and no CUDA device for the NCCL test: {e}")
        }
        Err(e) => {
            println!("skipped: {e}");
            return Ok(());
        }
    };
    assert!(gpus >= 1);
    let c = Nccl::new(Box::new(Single), 0)?;
    let s = Single;
    assert_eq!((c.rank(), c.size(), c.name()), (0, 1, "nccl"));
    let mut x: Vec<f64> = (0..1000).map(|i| (i as f64).sin() * 1e3).collect();
    let want = x.clone();
    c.all_reduce_sum_f64(&mut x)?;
    assert_eq!(x, want);
    let mut y: Vec<f32> = (0..77).map(|i| i as f32 / 7.0).collect();
    let want_y = y.clone();
    c.all_reduce_sum_f32(&mut y)?;
    assert_eq!(y, want_y);
    c.all_reduce_sum_f32(&mut [])?;
    for n in [0usize, 1, 5, 4099] {
        let v: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
        assert_eq!(c.all_gather_v_f32(&v)?, s.all_gather_v_f32(&v)?, "f32, {n}");
        let w: Vec<f64> = v.iter().map(|&a| a as f64 / 3.0).collect();
        assert_eq!(c.all_gather_v_f64(&w)?, s.all_gather_v_f64(&w)?, "f64, {n}");
        let b: Vec<u8> = (0..n).map(|i| (i * 37 % 251) as u8).collect();
        assert_eq!(
            c.all_gather_v_bytes(&b)?,
            s.all_gather_v_bytes(&b)?,
            "bytes, {n}"
        );
        let mut bc = b.clone();
        c.broadcast_bytes(0, &mut bc)?;
        assert_eq!(bc, b);
    }
    assert!(c.broadcast_bytes(1, &mut vec![1u8]).is_err());
    assert_eq!(c.sum_f64(2.5)?, 2.5);
    let gpu = Device::new_cuda(0)?;
    let t = Tensor::new(&[[1.0f32, 2.0], [3.0, 4.0]], &gpu)?;
    for (a, b) in [
        (
            tensor::all_gather_rows(&c, &t)?,
            tensor::all_gather_rows(&s, &t)?,
        ),
        (
            tensor::all_reduce_sum(&c, &t)?,
            tensor::all_reduce_sum(&s, &t)?,
        ),
        (
            tensor::all_reduce_sum_ordered(&c, &t)?,
            tensor::all_reduce_sum_ordered(&s, &t)?,
        ),
    ] {
        assert_eq!(a.to_vec2::<f32>()?, b.to_vec2::<f32>()?);
    }
    println!("one NCCL rank on GPU 0 of {gpus} agrees with Single");
    Ok(())
}

//! Kernel construction K = J Jᵀ for convolutional policies, factored vs materialised:
//! the IMPALA ResNet on Procgen's 64 x 64 x 3 images (15 actions) at b = 256 and 1024, and
//! MinAtar's CNN on 10 x 10 x 6 grids at b = 1024, f32.
//!
//! `cargo bench --bench conv_kernel` prints one table. The factored kernel is timed from the
//! recorded forward pass to K (forward, one backward of Σ log π, the conv and dense blocks); the
//! materialised one from b single-sample backward passes to J Jᵀ. The materialised IMPALA kernel
//! at b = 1024 (a 2 GB J) runs only with `RAT_BENCH_FULL=1`; `RAT_BENCH_PHASES=1` also prints
//! the factored path's forward / backward / kernel split. For profiling, `RAT_BENCH_B=64` runs only
//! the IMPALA case, at that batch size, and `RAT_BENCH_NO_MAT=1` skips the materialised kernel.
//! `RAT_BENCH_DEVICE=0` (a `--device` value; needs `--features cuda`) runs on that GPU.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rat_core::jacobian::{FactoredJacobian, MaterialisedJacobian, ScoreJacobian};
use rat_core::layers::Recorder;
use rat_train::nets::CategoricalActor;
use rat_train::nets::encoders::{Encoder, NetType};

#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    net: NetType,
    image: [usize; 3],
    actions: usize,
    b: usize,
}

/// The device everything runs on (`RAT_BENCH_DEVICE`, a `--device` value; the CPU by default).
static DEVICE: std::sync::OnceLock<Device> = std::sync::OnceLock::new();

/// Seconds to run `f`, up to the device finishing its work (device work is asynchronous).
fn seconds<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let out = f();
    if let Some(d) = DEVICE.get() {
        let _ = d.synchronize();
    }
    (out, t.elapsed().as_secs_f64())
}

fn main() -> anyhow::Result<()> {
    let full = std::env::var_os("RAT_BENCH_FULL").is_some();
    let no_mat = std::env::var_os("RAT_BENCH_NO_MAT").is_some();
    let only_b: Option<usize> = std::env::var("RAT_BENCH_B")
        .ok()
        .and_then(|s| s.parse().ok());
    let dev = DEVICE
        .get_or_init(|| {
            rat_train::cli::device_from_env("RAT_BENCH_DEVICE").unwrap_or_else(|e| {
                eprintln!("{e}; using the CPU");
                Device::Cpu
            })
        })
        .clone();
    let cases = [
        Case {
            name: "IMPALA 64x64x3",
            net: NetType::Impala,
            image: [64, 64, 3],
            actions: 15,
            b: 256,
        },
        Case {
            name: "IMPALA 64x64x3",
            net: NetType::Impala,
            image: [64, 64, 3],
            actions: 15,
            b: 1024,
        },
        Case {
            name: "MinAtar CNN 10x10x6",
            net: NetType::MinatarCnn,
            image: [10, 10, 6],
            actions: 6,
            b: 1024,
        },
    ];
    println!(
        "| network | P | b | factored (ms) | materialised (ms) | b x P f32 (MB) | rel. difference |"
    );
    println!("|---|---|---|---|---|---|---|");
    let cases = match only_b {
        Some(b) => vec![Case { b, ..cases[0] }],
        None => cases.into(),
    };
    for c in cases {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let obs_dim = c.image.iter().product();
        let enc = Encoder::new(c.net, obs_dim, Some(c.image), DType::F32, &dev, &mut rng)?;
        let actor = CategoricalActor::on(enc, c.actions, &[], DType::F32, &dev, &mut rng)?;
        let p: usize = actor.params().iter().map(|v| v.elem_count()).sum();
        let obs: Vec<f32> = (0..c.b * obs_dim).map(|_| rng.random::<f32>()).collect();
        let obs = Tensor::from_vec(obs, (c.b, obs_dim), &dev)?;
        let acts: Vec<u32> = (0..c.b)
            .map(|_| rng.random_range(0..c.actions as u32))
            .collect();
        let acts = Tensor::from_vec(acts, c.b, &dev)?;
        let factored = || -> anyhow::Result<Tensor> {
            let mut rec = Recorder::new();
            let logp = actor.forward(&obs, Some(&mut rec))?.log_prob(&acts)?;
            Ok(FactoredJacobian::from_objective(&rec, &logp)?.kernel()?)
        };
        factored()?; // warm-up
        let (kf, t_f) = seconds(factored);
        let kf = kf?;
        if std::env::var_os("RAT_BENCH_PHASES").is_some() {
            let mut rec = Recorder::new();
            let (logp, t1) = seconds(|| actor.forward(&obs, Some(&mut rec))?.log_prob(&acts));
            let (fj, t2) = seconds(|| FactoredJacobian::from_objective(&rec, &logp?));
            let (_, t3) = seconds(|| fj.map(|j| j.kernel()));
            eprintln!(
                "{} b={}: forward {:.0} ms, backward {:.0} ms, kernel {:.0} ms",
                c.name,
                c.b,
                t1 * 1e3,
                t2 * 1e3,
                t3 * 1e3
            );
        }
        let mb = (c.b * p * 4) as f64 / 1e6;
        let (t_m, rel) = if no_mat {
            ("(skipped)".into(), "".into())
        } else if c.net != NetType::Impala || c.b <= 256 || full {
            let (km, t) = seconds(|| -> anyhow::Result<Tensor> {
                let mat =
                    MaterialisedJacobian::from_per_sample_backward(&actor.params(), c.b, |i| {
                        actor
                            .forward(&obs.narrow(0, i, 1)?, None)?
                            .log_prob(&acts.narrow(0, i, 1)?)
                    })?;
                Ok(mat.kernel()?)
            });
            let km = km?;
            let rel = km.sub(&kf)?.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?
                / km.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?;
            (format!("{:.0}", t * 1e3), format!("{rel:.1e}"))
        } else {
            ("(RAT_BENCH_FULL=1)".into(), "".into())
        };
        println!(
            "| {} | {p} | {} | {:.0} | {t_m} | {mb:.0} | {rel} |",
            c.name,
            c.b,
            t_f * 1e3
        );
    }
    Ok(())
}

//! Kernel construction (factored vs materialised) and one RAT minibatch step vs a plain
//! policy-gradient step, for the reference's Humanoid policy (376 → 256 → 256 → 17 MLP with a
//! state-independent log-σ vector, P = 166 690) at b = 1024, f32, on the CPU.
//!
//! `cargo bench --bench kernel` prints a peak-memory table, then criterion's timings.
//! `RAT_BENCH_QUICK=1` skips the (slow) materialised kernel timing. `RAT_BENCH_DEVICE=0` (a
//! `--device` value; needs `--features cuda`) runs on that GPU. `RAT_BENCH_B=1024,4096,8192`
//! instead prints one table of kernel construction times (factored and materialised; the
//! materialised one only while b x P f32 fits `RAT_BENCH_MAX_J_GB`, default 8) for those b.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor, Var};
use criterion::Criterion;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rat_core::distributions::DiagGaussian;
use rat_core::jacobian::{FactoredJacobian, MaterialisedJacobian, ScoreJacobian};
use rat_core::kaczmarz::ReferenceKaczmarz;
use rat_core::layers::{Broadcast, Dense, Layer, Recorder, Sequential};
use rat_core::{clip, params};

/// Counts live and peak heap bytes, so the bench can report what each variant allocates.
struct PeakAlloc;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static GLOBAL: PeakAlloc = PeakAlloc;

/// Peak extra heap bytes while running `f`.
fn peak_extra<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed) - base)
}

const B: usize = 1024;
const OBS: usize = 376;
const ACT: usize = 17;
const DAMPING: f64 = 0.1;
const LR: f64 = 0.05;
const MAX_GRAD_NORM: f64 = 0.5;

struct Policy {
    log_std: Broadcast,
    mean: Sequential,
}

impl Policy {
    fn new(rng: &mut ChaCha8Rng, dev: &Device) -> rat_core::Result<Self> {
        let mut layers = Vec::new();
        for (k, w) in [OBS, 256, 256, ACT].windows(2).enumerate() {
            if k > 0 {
                layers.push(Layer::Relu);
            }
            layers.push(Layer::Dense(Dense::pytorch_init(
                w[0],
                w[1],
                DType::F32,
                dev,
                rng,
            )?));
        }
        let log_std = Broadcast::new(Var::zeros(ACT, DType::F32, dev)?)?;
        Ok(Self {
            log_std,
            mean: Sequential::new(layers),
        })
    }

    fn params(&self) -> Vec<Var> {
        let mut p = vec![self.log_std.param().clone()];
        p.extend(self.mean.params());
        p
    }

    fn log_prob(
        &self,
        x: &Tensor,
        a: &Tensor,
        mut rec: Option<&mut Recorder>,
    ) -> rat_core::Result<Tensor> {
        let ls = self.log_std.forward(x.dims()[0], rec.as_deref_mut())?;
        DiagGaussian::new(self.mean.forward(x, rec)?, ls)?.log_prob(a)
    }
}

struct Batch {
    obs: Tensor,
    act: Tensor,
    adv: Tensor,
    old_logp: Tensor,
}

fn tensor(
    rng: &mut ChaCha8Rng,
    shape: &[usize],
    scale: f64,
    dev: &Device,
) -> candle_core::Result<Tensor> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| (rng.random_range(-1.0..1.0) * scale) as f32)
        .collect();
    Tensor::from_vec(v, shape, dev)
}

fn batch(policy: &Policy, rng: &mut ChaCha8Rng, b: usize, dev: &Device) -> rat_core::Result<Batch> {
    let obs = tensor(rng, &[b, OBS], 2.0, dev)?;
    let act = tensor(rng, &[b, ACT], 1.5, dev)?;
    let adv = tensor(rng, &[b], 1.0, dev)?;
    let old_logp = policy
        .log_prob(&obs, &act, None)?
        .detach()
        .affine(1.0, -0.01)?;
    Ok(Batch {
        obs,
        act,
        adv,
        old_logp,
    })
}

fn apply(params: &[Var], step: &[Tensor], lr: f64) -> rat_core::Result<()> {
    for (p, s) in params.iter().zip(step) {
        p.set(&p.as_tensor().sub(&s.affine(lr, 0.0)?)?)?;
    }
    Ok(())
}

/// Per-minibatch advantage normalisation of the reference: centre, divide by RMS + 1e-8.
fn normalise(a: &Tensor) -> rat_core::Result<Tensor> {
    let c = a.broadcast_sub(&a.mean_all()?)?;
    let rms = c.sqr()?.mean_all()?.sqrt()?.affine(1.0, 1e-8)?;
    Ok(c.broadcast_div(&rms)?)
}

/// One RAT actor step (ALGORITHMS.md 2.2): forward (recording), backward of Σ log π, kernel,
/// Kaczmarz correction, Woodbury solve, natural gradient by Jᵀ(r ⊙ ψ)/b, clip, SGD step.
fn rat_step(policy: &Policy, kz: &mut ReferenceKaczmarz, bt: &Batch) -> rat_core::Result<f64> {
    let mut rec = Recorder::new();
    let logp = policy.log_prob(&bt.obs, &bt.act, Some(&mut rec))?;
    let ratio = logp
        .sub(&bt.old_logp)?
        .exp()?
        .clamp(0.1f32, 10.0f32)?
        .detach();
    let jac = FactoredJacobian::from_objective(&rec, &logp)?;
    let step = kz.block_step(&jac, &ratio, &normalise(&bt.adv)?)?;
    let loss_grad = params::scale(&step.direction, -1.0)?;
    let (clipped, norm) = clip::clip_grad_norm(&loss_grad, MAX_GRAD_NORM)?;
    let buf = kz.momentum_step(&clipped)?.to_vec();
    apply(jac.params(), &buf, LR)?;
    Ok(norm)
}

/// The same step without the natural gradient: loss −mean(r·log π·a), backward, clip, SGD.
fn pg_step(policy: &Policy, params_: &[Var], bt: &Batch) -> rat_core::Result<f64> {
    let logp = policy.log_prob(&bt.obs, &bt.act, None)?;
    let ratio = logp
        .sub(&bt.old_logp)?
        .exp()?
        .clamp(0.1f32, 10.0f32)?
        .detach();
    let loss = ratio
        .mul(&logp)?
        .mul(&normalise(&bt.adv)?)?
        .mean_all()?
        .neg()?;
    let grads = loss.backward()?;
    let g: Vec<Tensor> = params_
        .iter()
        .map(|p| {
            grads
                .get(p.as_tensor())
                .cloned()
                .ok_or(candle_core::Error::Msg("no grad".into()))
        })
        .collect::<candle_core::Result<_>>()?;
    let (clipped, norm) = clip::clip_grad_norm(&g, MAX_GRAD_NORM)?;
    apply(params_, &clipped, LR)?;
    Ok(norm)
}

fn factored_kernel(policy: &Policy, bt: &Batch) -> rat_core::Result<Tensor> {
    let mut rec = Recorder::new();
    let logp = policy.log_prob(&bt.obs, &bt.act, Some(&mut rec))?;
    FactoredJacobian::from_objective(&rec, &logp)?.kernel()
}

fn materialised_kernel(policy: &Policy, bt: &Batch) -> rat_core::Result<Tensor> {
    let b = bt.obs.dims()[0];
    let mat = MaterialisedJacobian::from_per_sample_backward(&policy.params(), b, |i| {
        policy.log_prob(&bt.obs.narrow(0, i, 1)?, &bt.act.narrow(0, i, 1)?, None)
    })?;
    mat.kernel()
}

/// Median wall time of each phase of the RAT step over `runs` runs, printed as a table.
fn phase_breakdown(policy: &Policy, bt: &Batch, runs: usize) -> rat_core::Result<()> {
    const PHASES: [&str; 6] = [
        "forward (recording)",
        "backward of Σ log π",
        "kernel J Jᵀ",
        "J g (Kaczmarz)",
        "Cholesky solve",
        "Jᵀ(r ⊙ ψ)/b",
    ];
    let mut times = vec![Vec::new(); PHASES.len()];
    let dev = bt.obs.device();
    let ratio = Tensor::ones(bt.obs.dims()[0], DType::F32, dev)?;
    let adv = normalise(&bt.adv)?;
    for run in 0..=runs {
        let mut lap = Instant::now();
        let mut mark = |k: usize| {
            // Device work is asynchronous: a phase ends when the device is done with it.
            let _ = dev.synchronize();
            if run > 0 {
                times[k].push(lap.elapsed().as_secs_f64() * 1e3);
            }
            lap = Instant::now();
        };
        let mut rec = Recorder::new();
        let logp = policy.log_prob(&bt.obs, &bt.act, Some(&mut rec))?;
        mark(0);
        let jac = FactoredJacobian::from_objective(&rec, &logp)?;
        mark(1);
        let k = jac.kernel()?;
        mark(2);
        let g = params::zeros(&jac.param_shapes(), DType::F32, dev)?;
        let a = adv.sub(&jac.jvp(&g)?)?;
        mark(3);
        let psi = rat_core::woodbury::transform_advantages(&k, &ratio, &a, DAMPING)?;
        mark(4);
        black_box(rat_core::woodbury::natural_gradient(&jac, &ratio, &psi)?);
        mark(5);
    }
    println!("\nRAT step phases, median of {runs} runs");
    for (name, mut t) in PHASES.iter().zip(times) {
        t.sort_by(|a, b| a.total_cmp(b));
        println!("  {name:<24} {:>7.2} ms", t[t.len() / 2]);
    }
    Ok(())
}

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed())
}

/// Factored and materialised kernel construction for each b in `sizes`, median ms.
fn sizes_table(sizes: &str, dev: &Device) -> anyhow::Result<()> {
    let max_gb: f64 = std::env::var("RAT_BENCH_MAX_J_GB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8.0);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let policy = Policy::new(&mut rng, dev)?;
    let p: usize = policy.params().iter().map(|v| v.elem_count()).sum();
    println!("Kernel construction, Humanoid policy (P = {p}), f32, {dev:?} (ms)");
    println!("| b | factored (median of 5) | materialised (one run) | rel. difference |");
    println!("|---|---|---|---|");
    for b in sizes.split(',') {
        let b: usize = b.trim().parse()?;
        let bt = batch(&policy, &mut rng, b, dev)?;
        let timed = |f: &dyn Fn() -> rat_core::Result<Tensor>| -> anyhow::Result<(Tensor, f64)> {
            let t = Instant::now();
            let k = f()?;
            dev.synchronize()?;
            Ok((k, t.elapsed().as_secs_f64() * 1e3))
        };
        timed(&|| factored_kernel(&policy, &bt))?;
        let mut t: Vec<f64> = (0..5)
            .map(|_| Ok(timed(&|| factored_kernel(&policy, &bt))?.1))
            .collect::<anyhow::Result<_>>()?;
        t.sort_by(f64::total_cmp);
        let j_gb = (b * p * 4) as f64 / 1e9;
        let (mat, rel) = if j_gb > max_gb {
            (format!("skipped (J is {j_gb:.1} GB)"), String::new())
        } else {
            let kf = factored_kernel(&policy, &bt)?;
            let (km, ms) = timed(&|| materialised_kernel(&policy, &bt))?;
            let rel = km.sub(&kf)?.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?
                / km.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?;
            (format!("{ms:.1}"), format!("{rel:.1e}"))
        };
        println!("| {b} | {:.2} | {mat} | {rel} |", t[2]);
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let dev = rat_train::cli::device_from_env("RAT_BENCH_DEVICE")?;
    if let Ok(sizes) = std::env::var("RAT_BENCH_B") {
        return sizes_table(&sizes, &dev);
    }
    let quick = std::env::var_os("RAT_BENCH_QUICK").is_some();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let policy = Policy::new(&mut rng, &dev)?;
    let p: usize = policy.params().iter().map(|v| v.elem_count()).sum();
    let bt = batch(&policy, &mut rng, B, &dev)?;
    println!("Humanoid policy 376-256-256-17 + log-σ, P = {p}, b = {B}, f32, {dev:?}");

    // Warm up once (thread pools, scratch buffers), then measure.
    factored_kernel(&policy, &bt)?;
    let ((kf, t_f), mem_f) = peak_extra(|| time(|| factored_kernel(&policy, &bt)));
    let kf = kf?;
    println!(
        "{:<34} {:>12} {:>16}",
        "kernel", "one run", "peak extra heap"
    );
    println!(
        "{:<34} {:>9.1} ms {:>13.1} MB",
        "factored (A Aᵀ+1)⊙(G Gᵀ)",
        t_f.as_secs_f64() * 1e3,
        mem_f as f64 / 1e6
    );
    if !quick {
        let ((km, t_m), mem_m) = peak_extra(|| time(|| materialised_kernel(&policy, &bt)));
        let km = km?;
        let rel = km.sub(&kf)?.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?
            / km.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?;
        println!(
            "{:<34} {:>9.1} ms {:>13.1} MB",
            "materialised (b backward, J Jᵀ)",
            t_m.as_secs_f64() * 1e3,
            mem_m as f64 / 1e6
        );
        println!(
            "b x P f32 would be {:.1} MB; factored/materialised relative difference {rel:.2e}",
            (B * p * 4) as f64 / 1e6
        );
    }

    phase_breakdown(&policy, &bt, 30)?;

    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2));
    let mut g = c.benchmark_group("kernel_humanoid_b1024");
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("factored", |bch| {
        bch.iter(|| black_box(factored_kernel(&policy, &bt).unwrap()))
    });
    if !quick {
        g.measurement_time(Duration::from_secs(60));
        g.bench_function("materialised", |bch| {
            bch.iter(|| black_box(materialised_kernel(&policy, &bt).unwrap()))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("actor_step_humanoid_b1024");
    g.measurement_time(Duration::from_secs(10));
    let rat_policy = Policy::new(&mut ChaCha8Rng::seed_from_u64(1), &dev)?;
    let mut kz = ReferenceKaczmarz::new(DAMPING)?;
    g.bench_function("rat", |bch| {
        bch.iter(|| black_box(rat_step(&rat_policy, &mut kz, &bt).unwrap()))
    });
    let pg_policy = Policy::new(&mut ChaCha8Rng::seed_from_u64(1), &dev)?;
    let pg_params = pg_policy.params();
    g.bench_function("pg", |bch| {
        bch.iter(|| black_box(pg_step(&pg_policy, &pg_params, &bt).unwrap()))
    });
    g.finish();
    c.final_summary();
    Ok(())
}

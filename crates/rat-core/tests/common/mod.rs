//! Shared fixtures: small seeded networks and data, and comparison helpers.
#![allow(dead_code)]

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rat_core::distributions::{Categorical, DiagGaussian};
use rat_core::jacobian::ScoreJacobian;
use rat_core::layers::{
    Broadcast, Conv2d, ConvGeometry, Dense, Layer, MaxPool2d, Recorder, Sequential,
};

pub type Res<T> = anyhow::Result<T>;

/// The device the tests run on, read as rat-train's `cli::test_device` reads it:
/// `RAT_TEST_DEVICE` = `cuda` (GPU 0), a GPU index k, or -1 (the GPU when there is one) needs a
/// build with `--features cuda` (see scripts/build-cuda.sh); unset or `cpu` is the CPU.
/// One device for the whole test binary: candle tells devices apart by instance, so it is made
/// once.
pub fn dev() -> Device {
    static DEV: std::sync::OnceLock<Device> = std::sync::OnceLock::new();
    DEV.get_or_init(|| {
        let gpu = match std::env::var("RAT_TEST_DEVICE").as_deref().map(str::trim) {
            Ok("cuda") => Some(0),
            Ok(s) => s.parse::<i64>().ok(),
            Err(_) => None,
        };
        let made = match gpu {
            None => Ok(Device::Cpu),
            Some(k) if k < 0 => Device::cuda_if_available(0),
            Some(k) => Device::new_cuda(k as usize),
        };
        made.expect("RAT_TEST_DEVICE names a GPU: needs --features cuda and a CUDA device")
    })
    .clone()
}

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A tensor of standard normal entries (Box–Muller from the seeded rng).
pub fn randn(rng: &mut ChaCha8Rng, shape: &[usize], dtype: DType) -> Res<Tensor> {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|_| {
            let (u1, u2): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random());
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        })
        .collect();
    Ok(Tensor::from_vec(v, shape, &dev())?.to_dtype(dtype)?)
}

pub fn uniform(
    rng: &mut ChaCha8Rng,
    shape: &[usize],
    lo: f64,
    hi: f64,
    dtype: DType,
) -> Res<Tensor> {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.random_range(lo..hi)).collect();
    Ok(Tensor::from_vec(v, shape, &dev())?.to_dtype(dtype)?)
}

/// Random tensors shaped like `shapes`.
pub fn randn_like(
    rng: &mut ChaCha8Rng,
    shapes: &[candle_core::Shape],
    dtype: DType,
) -> Res<Vec<Tensor>> {
    shapes.iter().map(|s| randn(rng, s.dims(), dtype)).collect()
}

pub fn mlp(rng: &mut ChaCha8Rng, sizes: &[usize], dtype: DType) -> Res<Sequential> {
    let mut layers = Vec::new();
    for (k, w) in sizes.windows(2).enumerate() {
        if k > 0 {
            layers.push(Layer::Relu);
        }
        layers.push(Layer::Dense(Dense::pytorch_init(
            w[0],
            w[1],
            dtype,
            &dev(),
            rng,
        )?));
    }
    Ok(Sequential::new(layers))
}

/// The reference's separate actor: a state-independent log-σ vector (first, as in the reference's
/// parameter order) and an MLP mean.
pub struct GaussianMlp {
    pub log_std: Broadcast,
    pub mean: Sequential,
}

impl GaussianMlp {
    pub fn new(rng: &mut ChaCha8Rng, sizes: &[usize], dtype: DType) -> Res<Self> {
        let d = *sizes.last().unwrap();
        let ls = randn(rng, &[d], dtype)?.affine(0.3, 0.0)?;
        Ok(Self {
            log_std: Broadcast::new(Var::from_tensor(&ls)?)?,
            mean: mlp(rng, sizes, dtype)?,
        })
    }

    pub fn params(&self) -> Vec<Var> {
        let mut p = vec![self.log_std.param().clone()];
        p.extend(self.mean.params());
        p
    }

    pub fn dist(&self, x: &Tensor, mut rec: Option<&mut Recorder>) -> Res<DiagGaussian> {
        let ls = self.log_std.forward(x.dims()[0], rec.as_deref_mut())?;
        let mu = self.mean.forward(x, rec)?;
        Ok(DiagGaussian::new(mu, ls)?)
    }

    pub fn log_prob(&self, x: &Tensor, a: &Tensor, rec: Option<&mut Recorder>) -> Res<Tensor> {
        Ok(self.dist(x, rec)?.log_prob(a)?)
    }
}

/// A shared trunk with a policy-mean head, a log-σ vector and a value head; the per-sample
/// objective is log π_i + c_i v_i (the joint score of the shared script, with c_i = 2ε_i).
pub struct SharedNet {
    pub log_std: Broadcast,
    pub trunk: Sequential,
    pub pi: Sequential,
    pub v: Sequential,
}

impl SharedNet {
    pub fn new(
        rng: &mut ChaCha8Rng,
        obs: usize,
        hidden: usize,
        act: usize,
        dtype: DType,
    ) -> Res<Self> {
        let ls = randn(rng, &[1, act], dtype)?.affine(0.3, 0.0)?;
        let mut trunk = mlp(rng, &[obs, hidden, hidden], dtype)?;
        trunk.push(Layer::Tanh);
        Ok(Self {
            log_std: Broadcast::new(Var::from_tensor(&ls)?)?,
            trunk,
            pi: mlp(rng, &[hidden, act], dtype)?,
            v: mlp(rng, &[hidden, 1], dtype)?,
        })
    }

    pub fn params(&self) -> Vec<Var> {
        let mut p = vec![self.log_std.param().clone()];
        p.extend(self.trunk.params());
        p.extend(self.pi.params());
        p.extend(self.v.params());
        p
    }

    pub fn objective(
        &self,
        x: &Tensor,
        a: &Tensor,
        c: &Tensor,
        mut rec: Option<&mut Recorder>,
    ) -> Res<Tensor> {
        let ls = self.log_std.forward(x.dims()[0], rec.as_deref_mut())?;
        let z = self.trunk.forward(x, rec.as_deref_mut())?;
        let mu = self.pi.forward(&z, rec.as_deref_mut())?;
        let v = self.v.forward(&z, rec)?.squeeze(1)?;
        Ok(DiagGaussian::new(mu, ls)?.log_prob(a)?.add(&v.mul(c)?)?)
    }
}

/// conv(s2, p1) → relu → maxpool(3, s2) → residual[conv(s1, p1) → relu] → relu → flatten → dense.
pub fn small_cnn(
    rng: &mut ChaCha8Rng,
    in_ch: usize,
    hw: usize,
    n_actions: usize,
    dtype: DType,
) -> Res<Sequential> {
    let dev = dev();
    let c1 = Conv2d::pytorch_init(in_ch, 4, ConvGeometry::square(3, 2, 1), dtype, &dev, rng)?;
    let h1 = (hw + 2 - 3) / 2 + 1;
    let h2 = (h1 - 3) / 2 + 1;
    let inner = Sequential::new(vec![
        Layer::Conv2d(Conv2d::pytorch_init(
            4,
            4,
            ConvGeometry::square(3, 1, 1),
            dtype,
            &dev,
            rng,
        )?),
        Layer::Relu,
    ]);
    Ok(Sequential::new(vec![
        Layer::Conv2d(c1),
        Layer::Relu,
        Layer::MaxPool2d(MaxPool2d::new(3, 2)),
        Layer::Residual(inner),
        Layer::Relu,
        Layer::Flatten,
        Layer::Dense(Dense::pytorch_init(
            4 * h2 * h2,
            n_actions,
            dtype,
            &dev,
            rng,
        )?),
    ]))
}

pub fn categorical_log_prob(
    net: &Sequential,
    x: &Tensor,
    a: &Tensor,
    rec: Option<&mut Recorder>,
) -> Res<Tensor> {
    Ok(Categorical::new(&net.forward(x, rec)?)?.log_prob(a)?)
}

pub fn random_actions(rng: &mut ChaCha8Rng, b: usize, n: usize) -> Res<Tensor> {
    let v: Vec<u32> = (0..b).map(|_| rng.random_range(0..n as u32)).collect();
    Ok(Tensor::from_vec(v, b, &dev())?)
}

/// ‖x − y‖ / max(‖y‖, tiny), Frobenius, in f64.
pub fn rel_err(x: &Tensor, y: &Tensor) -> Res<f64> {
    assert_eq!(x.shape(), y.shape(), "shapes differ");
    let x = x.to_dtype(DType::F64)?;
    let y = y.to_dtype(DType::F64)?;
    let num = x.sub(&y)?.sqr()?.sum_all()?.to_scalar::<f64>()?.sqrt();
    let den = y.sqr()?.sum_all()?.to_scalar::<f64>()?.sqrt();
    Ok(num / den.max(1e-300))
}

pub fn rel_err_params(x: &[Tensor], y: &[Tensor]) -> Res<f64> {
    assert_eq!(x.len(), y.len());
    rel_err(
        &rat_core::params::flatten(x)?,
        &rat_core::params::flatten(y)?,
    )
}

/// Checks J Jᵀ, J v, Jᵀ w and diag(Jᵀ J) of `a` against `b` to relative error `tol`.
pub fn assert_same_jacobian(
    a: &dyn ScoreJacobian,
    b: &dyn ScoreJacobian,
    tol: f64,
    seed: u64,
) -> Res<()> {
    let mut r = rng(seed);
    let dtype = a.dtype();
    assert_eq!(a.param_shapes(), b.param_shapes());
    let e = rel_err(&a.kernel()?, &b.kernel()?)?;
    assert!(e < tol, "kernel: relative error {e:e} ≥ {tol:e}");
    let v = randn_like(&mut r, &a.param_shapes(), dtype)?;
    let e = rel_err(&a.jvp(&v)?, &b.jvp(&v)?)?;
    assert!(e < tol, "jvp: relative error {e:e} ≥ {tol:e}");
    let w = randn(&mut r, &[a.num_samples()], dtype)?;
    let e = rel_err_params(&a.vjp(&w)?, &b.vjp(&w)?)?;
    assert!(e < tol, "vjp: relative error {e:e} ≥ {tol:e}");
    let e = rel_err_params(&a.sq_col_sums()?, &b.sq_col_sums()?)?;
    assert!(e < tol, "sq_col_sums: relative error {e:e} ≥ {tol:e}");
    Ok(())
}

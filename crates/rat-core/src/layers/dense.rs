//! The dense (fully connected) layer.

use candle_core::{DType, Device, Tensor, Var};
use rand::Rng;

use super::recorder::{SiteKind, param_for};
use super::{Recorder, Tangents, add_opt};
use crate::error::{Result, arg_err, shape_err};

/// y = x Wᵀ + b, with W (out, in) and b (out), on inputs x (batch, in).
///
/// Its block of a score row is vec(g_i a_iᵀ) and g_i, with a_i the input and g_i the output
/// gradient of sample i.
#[derive(Debug, Clone)]
pub struct Dense {
    weight: Var,
    bias: Var,
}

impl Dense {
    /// A layer from its weight (out, in) and bias (out).
    pub fn new(weight: Var, bias: Var) -> Result<Self> {
        let (out, _in) = weight
            .dims2()
            .or_else(|_| shape_err("Dense::new", "weight must be (out, in)"))?;
        if bias.dims() != [out] {
            return shape_err(
                "Dense::new",
                format!(
                    "bias {:?} does not match weight {:?}",
                    bias.shape(),
                    weight.shape()
                ),
            );
        }
        Ok(Self { weight, bias })
    }

    /// PyTorch's default `nn.Linear` initialisation: W, b ~ U(±1/√in), drawn from `rng`.
    pub fn pytorch_init(
        in_dim: usize,
        out_dim: usize,
        dtype: DType,
        device: &Device,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        if in_dim == 0 || out_dim == 0 {
            return arg_err(
                "Dense::pytorch_init",
                format!("dimensions must be positive, got {in_dim} -> {out_dim}"),
            );
        }
        let bound = 1.0 / (in_dim as f64).sqrt();
        let w: Vec<f64> = (0..in_dim * out_dim)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let b: Vec<f64> = (0..out_dim)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let w = Tensor::from_vec(w, (out_dim, in_dim), device)?.to_dtype(dtype)?;
        let b = Tensor::from_vec(b, out_dim, device)?.to_dtype(dtype)?;
        Self::new(Var::from_tensor(&w)?, Var::from_tensor(&b)?)
    }

    /// The weight W (out, in).
    pub fn weight(&self) -> &Var {
        &self.weight
    }

    /// The bias b (out).
    pub fn bias(&self) -> &Var {
        &self.bias
    }

    /// Input width.
    pub fn in_dim(&self) -> usize {
        self.weight.dims()[1]
    }

    /// Output width.
    pub fn out_dim(&self) -> usize {
        self.weight.dims()[0]
    }

    fn check_input(&self, x: &Tensor) -> Result<()> {
        match x.dims() {
            [_, d] if *d == self.in_dim() => Ok(()),
            _ => shape_err(
                "Dense::forward",
                format!(
                    "expected input (batch, {}), got {:?}",
                    self.in_dim(),
                    x.shape()
                ),
            ),
        }
    }

    /// y = x Wᵀ + b; with a recorder, records A = x and adds the output probe.
    pub fn forward(&self, x: &Tensor, rec: Option<&mut Recorder>) -> Result<Tensor> {
        self.check_input(x)?;
        let w = param_for(&rec, &self.weight);
        let b = param_for(&rec, &self.bias);
        let y = x.matmul(&w.t()?)?.broadcast_add(&b)?;
        match rec {
            None => Ok(y),
            Some(r) => r.record(
                SiteKind::Dense { input: x.detach() },
                vec![self.weight.clone(), self.bias.clone()],
                &y,
            ),
        }
    }

    /// (y, ẏ) with ẏ = ẋ Wᵀ + x V_Wᵀ + v_b.
    pub fn forward_tangent(
        &self,
        x: &Tensor,
        tx: Option<&Tensor>,
        tangents: &Tangents,
    ) -> Result<(Tensor, Option<Tensor>)> {
        self.check_input(x)?;
        let w = self.weight.as_detached_tensor();
        let y = x
            .matmul(&w.t()?)?
            .broadcast_add(&self.bias.as_detached_tensor())?;
        let from_input = tx.map(|t| t.matmul(&w.t()?)).transpose()?;
        let from_weight = tangents
            .get(&self.weight)
            .map(|v| x.matmul(&v.t()?))
            .transpose()?;
        let mut ty = add_opt(from_input, from_weight)?;
        if let Some(vb) = tangents.get(&self.bias) {
            ty = Some(match ty {
                Some(t) => t.broadcast_add(vb)?,
                None => vb.unsqueeze(0)?.broadcast_as(y.shape())?.contiguous()?,
            });
        }
        Ok((y, ty))
    }
}

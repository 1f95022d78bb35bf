//! J held explicitly: the reference implementation for tests, and the fallback for models built
//! from layers that have no factored form.

use candle_core::{DType, Device, Shape, Tensor, Var};

use super::{ScoreJacobian, check_sample_vector};
use crate::error::{Result, shape_err};
use crate::params;

/// An explicit score matrix J (b x P) with its parameter shapes.
#[derive(Debug, Clone)]
pub struct MaterialisedJacobian {
    j: Tensor,
    shapes: Vec<Shape>,
}

impl MaterialisedJacobian {
    /// Wraps an explicit J (b x P) whose columns are the flattened parameters of `shapes`, in order.
    pub fn from_matrix(j: Tensor, shapes: Vec<Shape>) -> Result<Self> {
        let p: usize = shapes.iter().map(|s| s.elem_count()).sum();
        match j.dims() {
            [_, cols] if *cols == p => Ok(Self { j, shapes }),
            _ => shape_err(
                "MaterialisedJacobian::from_matrix",
                format!("J is {:?} but the shapes hold {p} parameters", j.shape()),
            ),
        }
    }

    /// Builds J row by row from b single-sample backward passes: `objective(i)` must return the
    /// scalar ℓ_i computed with `params` in the autograd graph. Works for any model; costs b
    /// backward passes and b x P memory.
    pub fn from_per_sample_backward(
        params: &[Var],
        num_samples: usize,
        mut objective: impl FnMut(usize) -> Result<Tensor>,
    ) -> Result<Self> {
        if params.is_empty() || num_samples == 0 {
            return shape_err(
                "MaterialisedJacobian::from_per_sample_backward",
                "need at least one parameter and one sample",
            );
        }
        let mut rows = Vec::with_capacity(num_samples);
        for i in 0..num_samples {
            let l = objective(i)?;
            if l.elem_count() != 1 {
                return shape_err(
                    "MaterialisedJacobian::from_per_sample_backward",
                    format!("objective({i}) is {:?}, not a scalar", l.shape()),
                );
            }
            let grads = l.sum_all()?.backward()?;
            let parts = params
                .iter()
                .map(|p| match grads.get(p.as_tensor()) {
                    Some(g) => Ok(g.clone()),
                    None => p.as_tensor().zeros_like(),
                })
                .collect::<candle_core::Result<Vec<_>>>()?;
            rows.push(params::flatten(&parts)?);
        }
        let j = Tensor::stack(&rows, 0)?;
        Self::from_matrix(j, params.iter().map(|p| p.shape().clone()).collect())
    }

    /// The explicit matrix J (b x P).
    pub fn matrix(&self) -> &Tensor {
        &self.j
    }
}

impl ScoreJacobian for MaterialisedJacobian {
    fn num_samples(&self) -> usize {
        self.j.dims()[0]
    }

    fn param_shapes(&self) -> Vec<Shape> {
        self.shapes.clone()
    }

    fn dtype(&self) -> DType {
        self.j.dtype()
    }

    fn device(&self) -> &Device {
        self.j.device()
    }

    fn kernel(&self) -> Result<Tensor> {
        Ok(self.j.matmul(&self.j.t()?)?)
    }

    fn jvp(&self, v: &[Tensor]) -> Result<Tensor> {
        params::check_shapes("MaterialisedJacobian::jvp", &self.shapes, v)?;
        let flat = params::flatten(v)?.unsqueeze(1)?;
        Ok(self.j.matmul(&flat)?.squeeze(1)?)
    }

    fn vjp(&self, w: &Tensor) -> Result<Vec<Tensor>> {
        check_sample_vector("MaterialisedJacobian::vjp", w, self.num_samples())?;
        let flat = self.j.t()?.matmul(&w.unsqueeze(1)?)?.squeeze(1)?;
        params::unflatten(&flat, &self.shapes)
    }

    fn sq_col_sums(&self) -> Result<Vec<Tensor>> {
        params::unflatten(&self.j.sqr()?.sum(0)?, &self.shapes)
    }
}

//! The record a forward pass leaves for the factored score Jacobian.

use candle_core::{Tensor, Var};

use crate::error::Result;

/// Kernel size, stride and padding of a convolution (square stride and padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// (kh, kw).
    pub kernel: (usize, usize),
    /// Stride in both directions.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
}

impl ConvGeometry {
    /// A k x k kernel with `stride` and `padding`.
    pub const fn square(kernel: usize, stride: usize, padding: usize) -> Self {
        Self {
            kernel: (kernel, kernel),
            stride,
            padding,
        }
    }
}

/// What kind of parameter block a [`Site`] is, with the layer input it recorded.
#[derive(Debug, Clone)]
pub enum SiteKind {
    /// A dense layer; `input` is A_l (b, in), detached.
    Dense {
        /// The layer input A_l, (b, in).
        input: Tensor,
    },
    /// A convolution; `input` is the layer input (b, C, H, W), detached.
    Conv2d {
        /// The layer input, (b, C, H, W).
        input: Tensor,
        /// Kernel size, stride and padding.
        geometry: ConvGeometry,
    },
    /// A parameter broadcast over the batch; its per-sample gradients are explicit columns of J.
    Broadcast,
}

/// One recorded parameter block: its kind, its probe variable and its parameters (weight, bias).
#[derive(Debug, Clone)]
pub struct Site {
    pub(crate) kind: SiteKind,
    pub(crate) probe: Var,
    pub(crate) params: Vec<Var>,
}

impl Site {
    /// The kind of block and the input it recorded.
    pub fn kind(&self) -> &SiteKind {
        &self.kind
    }

    /// The zero variable added to the block's output; its gradient is G_l.
    pub fn probe(&self) -> &Var {
        &self.probe
    }

    /// The block's parameters in J's column order (weight then bias, or the broadcast vector).
    pub fn params(&self) -> &[Var] {
        &self.params
    }
}

/// Collects [`Site`]s during one forward pass.
///
/// By default the recording forward pass uses *detached* parameters, so the backward pass of
/// Σ_i ℓ_i computes only the output gradients G_l (what the factored Jacobian needs) and skips the
/// weight gradients, which the factored Jᵀ w replaces. [`Recorder::with_param_grads`] keeps the
/// parameters attached when the same backward pass must also give ordinary parameter gradients.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    sites: Vec<Site>,
    track_params: bool,
}

impl Recorder {
    /// A recorder whose forward pass detaches the parameters (the fast path).
    pub fn new() -> Self {
        Self::default()
    }

    /// A recorder whose forward pass keeps the parameters in the autograd graph.
    pub fn with_param_grads() -> Self {
        Self {
            sites: Vec::new(),
            track_params: true,
        }
    }

    /// The recorded sites, in the order they ran; this order defines J's columns.
    pub fn sites(&self) -> &[Site] {
        &self.sites
    }

    /// All recorded parameters, in J's column order.
    pub fn params(&self) -> Vec<Var> {
        self.sites
            .iter()
            .flat_map(|s| s.params.iter().cloned())
            .collect()
    }

    /// The parameter as the forward pass should use it: detached on the fast path.
    pub(crate) fn param_tensor(&self, v: &Var) -> Tensor {
        if self.track_params {
            v.as_tensor().clone()
        } else {
            v.as_detached_tensor()
        }
    }

    /// Adds a zero probe to `output`, records the site and returns output + probe.
    pub(crate) fn record(
        &mut self,
        kind: SiteKind,
        params: Vec<Var>,
        output: &Tensor,
    ) -> Result<Tensor> {
        let probe = Var::zeros(output.shape(), output.dtype(), output.device())?;
        let out = output.add(probe.as_tensor())?;
        self.sites.push(Site {
            kind,
            probe,
            params,
        });
        Ok(out)
    }
}

/// The parameter tensor for a forward pass: attached without a recorder, as the recorder says
/// with one.
pub(crate) fn param_for(rec: &Option<&mut Recorder>, v: &Var) -> Tensor {
    match rec {
        Some(r) => r.param_tensor(v),
        None => v.as_tensor().clone(),
    }
}

//! Score-aware layers: ordinary candle layers that, while they run the forward pass, record what
//! the factored score Jacobian needs.
//!
//! For a batch of b samples and a per-sample objective ℓ_i (usually log π(a_i|s_i)), the score
//! matrix J (b x P) has rows ∇θ ℓ_i. A parametric layer l with input A_l and output Z_l contributes
//! the columns of its parameters; everything about them follows from A_l and the per-sample output
//! gradients G_l = ∂(Σ_i ℓ_i)/∂Z_l (row i of G_l only depends on sample i because the samples of a
//! batch do not interact). A [`Recorder`] passed to `forward` keeps A_l and adds a zero "probe"
//! variable to Z_l, so that one ordinary backward pass of Σ_i ℓ_i leaves G_l in candle's gradient
//! store (which keeps gradients only for variables).
//!
//! Parameters that are not in a layer (a state-independent log-σ vector) enter through
//! [`Broadcast`], whose per-sample gradients are explicit columns of J.
//!
//! Every layer also propagates forward-mode tangents ([`Tangents`]), which gives J_out v, the
//! directional derivative of a network's outputs, for the exact Fisher-vector product (candle has
//! no forward-mode AD and no reliable double backward).

mod broadcast;
mod conv;
mod dense;
mod im2col;
mod recorder;

use std::collections::HashMap;

use candle_core::{Tensor, TensorId, Var};

pub use broadcast::Broadcast;
pub use conv::{Conv2d, MaxPool2d, unfold, unfold_rows};
pub use dense::Dense;
pub use recorder::{ConvGeometry, Recorder, Site, SiteKind};

use crate::error::{Result, shape_err};

/// One building block of a [`Sequential`] network.
#[derive(Debug, Clone)]
pub enum Layer {
    /// Affine map y = x Wᵀ + b on (b, in) inputs.
    Dense(Dense),
    /// 2-D convolution with bias on (b, C, H, W) inputs.
    Conv2d(Conv2d),
    /// max(x, 0).
    Relu,
    /// tanh(x).
    Tanh,
    /// Reshape (b, ...) to (b, Π ...).
    Flatten,
    /// Flat channels-last images (b, H·W·C), row-major in (row, column, channel) as environments
    /// emit them, to the (b, C, H, W) layout convolutions take.
    ChannelsFirst {
        /// Image height H.
        height: usize,
        /// Image width W.
        width: usize,
        /// Channels C.
        channels: usize,
    },
    /// Max pooling over square windows, any stride.
    MaxPool2d(MaxPool2d),
    /// y = x + f(x) for the inner network f (shapes must agree), e.g. an IMPALA residual block.
    Residual(Sequential),
}

/// A chain of [`Layer`]s applied in order.
#[derive(Debug, Clone, Default)]
pub struct Sequential {
    layers: Vec<Layer>,
}

impl Sequential {
    /// A network from its layers.
    pub fn new(layers: Vec<Layer>) -> Self {
        Self { layers }
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Appends a layer.
    pub fn push(&mut self, layer: Layer) {
        self.layers.push(layer);
    }

    /// The trainable parameters, in the order their columns appear in J (weight before bias,
    /// layers in order).
    pub fn params(&self) -> Vec<Var> {
        self.named_params("").into_iter().map(|(_, v)| v).collect()
    }

    /// [`params`](Self::params) with names by place: `{prefix}.{i}.weight` and
    /// `{prefix}.{i}.bias` for layer i, `{prefix}.{i}.{j}.…` inside a residual block (no
    /// leading dot when `prefix` is empty).
    pub fn named_params(&self, prefix: &str) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            let at = if prefix.is_empty() {
                i.to_string()
            } else {
                format!("{prefix}.{i}")
            };
            let (w, b) = match l {
                Layer::Dense(d) => (d.weight(), d.bias()),
                Layer::Conv2d(c) => (c.weight(), c.bias()),
                Layer::Residual(inner) => {
                    out.extend(inner.named_params(&at));
                    continue;
                }
                Layer::Relu
                | Layer::Tanh
                | Layer::Flatten
                | Layer::ChannelsFirst { .. }
                | Layer::MaxPool2d(_) => continue,
            };
            out.push((format!("{at}.weight"), w.clone()));
            out.push((format!("{at}.bias"), b.clone()));
        }
        out
    }

    /// The forward pass. With a recorder, parametric layers record their inputs and probes.
    pub fn forward(&self, x: &Tensor, mut rec: Option<&mut Recorder>) -> Result<Tensor> {
        let mut h = x.clone();
        for l in &self.layers {
            h = match l {
                Layer::Dense(d) => d.forward(&h, rec.as_deref_mut())?,
                Layer::Conv2d(c) => c.forward(&h, rec.as_deref_mut())?,
                Layer::Relu => h.relu()?,
                Layer::Tanh => h.tanh()?,
                Layer::Flatten => h.flatten_from(1)?,
                Layer::ChannelsFirst {
                    height,
                    width,
                    channels,
                } => channels_first(&h, *height, *width, *channels)?,
                Layer::MaxPool2d(p) => p.forward(&h)?,
                Layer::Residual(inner) => {
                    let f = inner.forward(&h, rec.as_deref_mut())?;
                    residual_add(&h, &f)?
                }
            };
        }
        Ok(h)
    }

    /// The forward pass with a tangent: returns (y, ẏ), where ẏ = ∂y/∂x · ẋ + ∂y/∂θ · v is the
    /// directional derivative along the input tangent `tx` (None = 0) and the parameter tangents.
    /// `None` for ẏ means it is identically zero. Runs on detached values (no autograd graph).
    pub fn forward_tangent(
        &self,
        x: &Tensor,
        tx: Option<&Tensor>,
        tangents: &Tangents,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let mut h = x.detach();
        let mut t = tx.map(|t| t.detach());
        for l in &self.layers {
            (h, t) = match l {
                Layer::Dense(d) => d.forward_tangent(&h, t.as_ref(), tangents)?,
                Layer::Conv2d(c) => c.forward_tangent(&h, t.as_ref(), tangents)?,
                Layer::Relu => {
                    let y = h.relu()?;
                    let t = t
                        .map(|t| t.mul(&h.gt(0.0)?.to_dtype(h.dtype())?))
                        .transpose()?;
                    (y, t)
                }
                Layer::Tanh => {
                    let y = h.tanh()?;
                    let t = t.map(|t| t.mul(&y.sqr()?.affine(-1.0, 1.0)?)).transpose()?;
                    (y, t)
                }
                Layer::Flatten => (
                    h.flatten_from(1)?,
                    t.map(|t| t.flatten_from(1)).transpose()?,
                ),
                Layer::ChannelsFirst {
                    height,
                    width,
                    channels,
                } => {
                    let cf = |x: &Tensor| channels_first(x, *height, *width, *channels);
                    (cf(&h)?, t.as_ref().map(cf).transpose()?)
                }
                Layer::MaxPool2d(p) => p.forward_tangent(&h, t.as_ref())?,
                Layer::Residual(inner) => {
                    let (f, tf) = inner.forward_tangent(&h, t.as_ref(), tangents)?;
                    let y = residual_add(&h, &f)?;
                    (y, add_opt(t, tf)?)
                }
            };
        }
        Ok((h, t))
    }
}

/// (b, H·W·C) channels-last rows → (b, C, H, W), contiguous.
fn channels_first(x: &Tensor, height: usize, width: usize, channels: usize) -> Result<Tensor> {
    let (b, n) = match x.dims() {
        [b, n] => (*b, *n),
        d => {
            return shape_err(
                "ChannelsFirst::forward",
                format!("expected flat (b, H·W·C) rows, got {d:?}"),
            );
        }
    };
    if n != height * width * channels {
        return shape_err(
            "ChannelsFirst::forward",
            format!("rows of {n} values are not {height} x {width} x {channels} images"),
        );
    }
    Ok(x.reshape((b, height, width, channels))?
        .permute((0, 3, 1, 2))?
        .contiguous()?)
}

fn residual_add(x: &Tensor, f: &Tensor) -> Result<Tensor> {
    if x.shape() != f.shape() {
        return shape_err(
            "Residual::forward",
            format!(
                "input {:?} and inner output {:?} differ",
                x.shape(),
                f.shape()
            ),
        );
    }
    Ok(x.add(f)?)
}

/// Parameter tangents v (one tensor per parameter, shaped like it) looked up by variable.
///
/// Parameters without an entry have tangent zero.
#[derive(Debug, Clone, Default)]
pub struct Tangents {
    map: HashMap<TensorId, Tensor>,
}

impl Tangents {
    /// Pairs `params[k]` with `v[k]`; shapes must agree.
    pub fn new(params: &[Var], v: &[Tensor]) -> Result<Self> {
        if params.len() != v.len() {
            return shape_err(
                "Tangents::new",
                format!("{} parameters but {} tangents", params.len(), v.len()),
            );
        }
        let mut map = HashMap::with_capacity(params.len());
        for (k, (p, t)) in params.iter().zip(v).enumerate() {
            if p.shape() != t.shape() {
                return shape_err(
                    "Tangents::new",
                    format!(
                        "parameter {k} has shape {:?}, tangent {:?}",
                        p.shape(),
                        t.shape()
                    ),
                );
            }
            map.insert(p.as_tensor().id(), t.detach());
        }
        Ok(Self { map })
    }

    /// The tangent of `param`, if any.
    pub fn get(&self, param: &Var) -> Option<&Tensor> {
        self.map.get(&param.as_tensor().id())
    }
}

/// Adds two optional tangents (None = 0).
pub(crate) fn add_opt(a: Option<Tensor>, b: Option<Tensor>) -> Result<Option<Tensor>> {
    Ok(match (a, b) {
        (Some(a), Some(b)) => Some(a.add(&b)?),
        (a, b) => a.or(b),
    })
}

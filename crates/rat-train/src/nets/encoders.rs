//! Observation encoders: the identity for vector observations, and the image encoders of
//! ALGORITHMS.md §7.6 (Nature CNN, IMPALA ResNet) plus MinAtar's own small CNN, all built from
//! `rat-core` layers so that every natural-gradient rule sees their factored score Jacobian.
//!
//! Images arrive as flat channels-last rows (what the environments emit, see
//! `rat_envs::Env::image_shape`); each image encoder starts with [`Layer::ChannelsFirst`].
//!
//! | `net_type` | layers | features |
//! |---|---|---|
//! | `mlp` | none (the observation itself) | obs_dim |
//! | `minatar_cnn` | Conv(C→16, k3, s1) ReLU → Flatten → Linear(16·(H−2)·(W−2) → 128) ReLU | 128 |
//! | `nature_cnn` | Conv(C→32, k8, s4) ReLU → Conv(32→64, k4, s2) ReLU → Conv(64→64, k3, s1) ReLU → Flatten → Linear(→512) ReLU | 512 |
//! | `impala` | per depth d ∈ (16, 32, 32): Conv(→d, k3, s1, p1) → MaxPool(k3, s2) → 2 × ResBlock(d); Flatten → Linear(→256) ReLU | 256 |
//!
//! The IMPALA residual block is the reference's: y = ReLU(x + conv₂(ReLU(conv₁(x)))), both
//! convolutions d→d, k3, s1, p1, the ReLU after the skip addition.

use candle_core::{DType, Device};
use rand::Rng;
use rat_core::layers::{Conv2d, ConvGeometry, Dense, Layer, MaxPool2d, Sequential};

use crate::error::{Result, invalid};

/// Which encoder a network starts with (`nets_config.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetType {
    /// No encoder: the MLP sees the flat observation.
    Mlp,
    /// MinAtar's published actor–critic / DQN encoder (one 3 x 3 convolution, 128 features).
    MinatarCnn,
    /// The Nature DQN CNN (512 features).
    NatureCnn,
    /// The IMPALA ResNet with depths (16, 32, 32) (256 features).
    Impala,
}

impl NetType {
    /// The names `nets_config.type` accepts.
    pub const NAMES: &'static [&'static str] = &["mlp", "minatar_cnn", "nature_cnn", "impala"];

    /// Parses a `nets_config.type` value.
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "mlp" => NetType::Mlp,
            "minatar_cnn" => NetType::MinatarCnn,
            "nature_cnn" => NetType::NatureCnn,
            "impala" => NetType::Impala,
            other => {
                return invalid(format!(
                    "nets_config.type '{other}' is not one of {}",
                    Self::NAMES.join(", ")
                ));
            }
        })
    }
}

/// An encoder network and the widths of what it reads and writes.
#[derive(Debug, Clone)]
pub struct Encoder {
    /// The layers (empty for the identity).
    pub net: Sequential,
    /// The flat observation width it reads.
    pub in_dim: usize,
    /// The feature width it outputs.
    pub out_dim: usize,
}

impl Encoder {
    /// The identity on observations of `obs_dim`.
    pub fn identity(obs_dim: usize) -> Self {
        Self {
            net: Sequential::default(),
            in_dim: obs_dim,
            out_dim: obs_dim,
        }
    }

    /// The encoder `net_type` for observations of `obs_dim` that are images of `image`
    /// (height, width, channels) when `Some`; PyTorch's default initialisation from `rng`.
    pub fn new(
        net_type: NetType,
        obs_dim: usize,
        image: Option<[usize; 3]>,
        dtype: DType,
        device: &Device,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let [height, width, channels] = match (net_type, image) {
            (NetType::Mlp, _) => return Ok(Self::identity(obs_dim)),
            (_, Some(shape)) => shape,
            (_, None) => {
                return invalid(format!(
                    "nets_config.type {net_type:?} needs image observations, but the \
                     environment's observations are flat vectors of {obs_dim}; use type: mlp"
                ));
            }
        };
        let mut b = Builder {
            layers: vec![Layer::ChannelsFirst {
                height,
                width,
                channels,
            }],
            shape: [channels, height, width],
            dtype,
            device,
        };
        let features = match net_type {
            NetType::MinatarCnn => {
                b.conv(16, 3, 1, 0, rng)?;
                b.layers.push(Layer::Relu);
                128
            }
            NetType::NatureCnn => {
                for (c, k, s) in [(32, 8, 4), (64, 4, 2), (64, 3, 1)] {
                    b.conv(c, k, s, 0, rng)?;
                    b.layers.push(Layer::Relu);
                }
                512
            }
            NetType::Impala => {
                for depth in [16, 32, 32] {
                    b.conv(depth, 3, 1, 1, rng)?;
                    b.pool(3, 2)?;
                    for _ in 0..2 {
                        b.res_block(rng)?;
                    }
                }
                256
            }
            NetType::Mlp => return Ok(Self::identity(obs_dim)),
        };
        let flat = b.shape.iter().product();
        b.layers.push(Layer::Flatten);
        b.layers.push(Layer::Dense(Dense::pytorch_init(
            flat, features, dtype, device, rng,
        )?));
        b.layers.push(Layer::Relu);
        Ok(Self {
            net: Sequential::new(b.layers),
            in_dim: obs_dim,
            out_dim: features,
        })
    }
}

/// Appends layers while tracking the (C, H, W) shape, so that a too-small image is an error
/// naming the layer rather than a shape failure deep in a forward pass.
struct Builder<'a> {
    layers: Vec<Layer>,
    shape: [usize; 3],
    dtype: DType,
    device: &'a Device,
}

impl Builder<'_> {
    fn out_size(&self, what: &str, k: usize, s: usize, p: usize) -> Result<[usize; 2]> {
        let [_, h, w] = self.shape;
        if h + 2 * p < k || w + 2 * p < k {
            return invalid(format!(
                "a {what} with kernel {k} does not fit the {h} x {w} feature map; \
                 the image is too small for this encoder"
            ));
        }
        Ok([(h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1])
    }

    fn conv(&mut self, out: usize, k: usize, s: usize, p: usize, rng: &mut impl Rng) -> Result<()> {
        let [h, w] = self.out_size("convolution", k, s, p)?;
        let c = Conv2d::pytorch_init(
            self.shape[0],
            out,
            ConvGeometry::square(k, s, p),
            self.dtype,
            self.device,
            rng,
        )?;
        self.layers.push(Layer::Conv2d(c));
        self.shape = [out, h, w];
        Ok(())
    }

    fn pool(&mut self, k: usize, s: usize) -> Result<()> {
        let [h, w] = self.out_size("max-pool", k, s, 0)?;
        self.layers.push(Layer::MaxPool2d(MaxPool2d::new(k, s)));
        self.shape = [self.shape[0], h, w];
        Ok(())
    }

    fn res_block(&mut self, rng: &mut impl Rng) -> Result<()> {
        let d = self.shape[0];
        let mut conv = || {
            Conv2d::pytorch_init(
                d,
                d,
                ConvGeometry::square(3, 1, 1),
                self.dtype,
                self.device,
                rng,
            )
        };
        let inner = Sequential::new(vec![
            Layer::Conv2d(conv()?),
            Layer::Relu,
            Layer::Conv2d(conv()?),
        ]);
        self.layers.push(Layer::Residual(inner));
        self.layers.push(Layer::Relu);
        Ok(())
    }
}

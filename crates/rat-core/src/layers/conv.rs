//! 2-D convolution, max pooling and the im2col `unfold` they share.

use candle_core::{DType, Device, Tensor, Var};
use rand::Rng;

use super::recorder::{SiteKind, param_for};
use super::{Recorder, Tangents, add_opt};
use crate::error::{Result, arg_err, shape_err};

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

/// im2col: the (kh x kw) patches of x (b, C, H, W) at the given stride and zero padding, as a
/// tensor (b, C, kh·kw, L) with L = H'·W' output positions in row-major order. Element
/// (n, c, ki·kw + kj, oi·W' + oj) is x_pad[n, c, oi·stride + ki, oj·stride + kj].
pub fn unfold(x: &Tensor, kernel: (usize, usize), stride: usize, padding: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4().or_else(|_| {
        shape_err(
            "unfold",
            format!("expected (b, C, H, W), got {:?}", x.shape()),
        )
    })?;
    let (kh, kw) = kernel;
    if stride == 0 || kh == 0 || kw == 0 {
        return arg_err("unfold", "kernel size and stride must be positive");
    }
    let (hp, wp) = (h + 2 * padding, w + 2 * padding);
    if hp < kh || wp < kw {
        return shape_err(
            "unfold",
            format!("kernel {kh}x{kw} larger than padded input {hp}x{wp}"),
        );
    }
    let (ho, wo) = ((hp - kh) / stride + 1, (wp - kw) / stride + 1);
    let xp = if padding > 0 {
        x.pad_with_zeros(2, padding, padding)?
            .pad_with_zeros(3, padding, padding)?
    } else {
        x.clone()
    };
    let mut idx = Vec::with_capacity(kh * kw * ho * wo);
    for ki in 0..kh {
        for kj in 0..kw {
            for oi in 0..ho {
                for oj in 0..wo {
                    idx.push(((oi * stride + ki) * wp + oj * stride + kj) as u32);
                }
            }
        }
    }
    let n = idx.len();
    let idx = Tensor::from_vec(idx, n, x.device())?;
    let patches = xp
        .contiguous()?
        .reshape((b, c, hp * wp))?
        .index_select(&idx, 2)?;
    Ok(patches.reshape((b, c, kh * kw, ho * wo))?)
}

/// 2-D convolution with bias: weight (out, in, kh, kw), bias (out), square stride and padding,
/// on inputs (b, in, H, W).
///
/// Its block of the score row of sample i is G_iᵀ [U_i | 1] (out x (in·kh·kw + 1)), with U_i the
/// unfolded input (L x in·kh·kw) and G_i the output gradient (L x out) of sample i.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Var,
    bias: Var,
    stride: usize,
    padding: usize,
}

impl Conv2d {
    /// A convolution from its weight (out, in, kh, kw), bias (out), stride and padding.
    pub fn new(weight: Var, bias: Var, stride: usize, padding: usize) -> Result<Self> {
        let (out, ..) = weight
            .dims4()
            .or_else(|_| shape_err("Conv2d::new", "weight must be (out, in, kh, kw)"))?;
        if bias.dims() != [out] {
            return shape_err(
                "Conv2d::new",
                format!(
                    "bias {:?} does not match weight {:?}",
                    bias.shape(),
                    weight.shape()
                ),
            );
        }
        if stride == 0 {
            return arg_err("Conv2d::new", "stride must be positive");
        }
        Ok(Self {
            weight,
            bias,
            stride,
            padding,
        })
    }

    /// PyTorch's default `nn.Conv2d` initialisation: U(±1/√(in·kh·kw)) for weight and bias.
    #[allow(clippy::too_many_arguments)]
    pub fn pytorch_init(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        dtype: DType,
        device: &Device,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let fan_in = in_channels * kernel * kernel;
        if fan_in == 0 || out_channels == 0 {
            return arg_err(
                "Conv2d::pytorch_init",
                "channels and kernel size must be positive",
            );
        }
        let bound = 1.0 / (fan_in as f64).sqrt();
        let w: Vec<f64> = (0..out_channels * fan_in)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let b: Vec<f64> = (0..out_channels)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let w = Tensor::from_vec(w, (out_channels, in_channels, kernel, kernel), device)?
            .to_dtype(dtype)?;
        let b = Tensor::from_vec(b, out_channels, device)?.to_dtype(dtype)?;
        Self::new(
            Var::from_tensor(&w)?,
            Var::from_tensor(&b)?,
            stride,
            padding,
        )
    }

    /// The weight (out, in, kh, kw).
    pub fn weight(&self) -> &Var {
        &self.weight
    }

    /// The bias (out).
    pub fn bias(&self) -> &Var {
        &self.bias
    }

    /// Kernel size, stride and padding.
    pub fn geometry(&self) -> ConvGeometry {
        let d = self.weight.dims();
        ConvGeometry {
            kernel: (d[2], d[3]),
            stride: self.stride,
            padding: self.padding,
        }
    }

    fn check_input(&self, x: &Tensor) -> Result<()> {
        let cin = self.weight.dims()[1];
        match x.dims() {
            [_, c, _, _] if *c == cin => Ok(()),
            _ => shape_err(
                "Conv2d::forward",
                format!("expected input (b, {cin}, H, W), got {:?}", x.shape()),
            ),
        }
    }

    /// im2col and one batched matmul. candle's own `conv2d` computes the same forward, but its
    /// backward to the input (what the recorded score backward needs) is a direct transposed
    /// convolution on the CPU, slower than the backward of a matmul and an `index_select`
    /// (`benches/conv_kernel.rs`: MinAtar's CNN at b = 1024, factored kernel 168 → 110 ms;
    /// b single-sample passes through the IMPALA encoder 3x faster).
    fn conv(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        let (b, _, h, wd) = x.dims4()?;
        let (out, cin, kh, kw) = w.dims4()?;
        let (s, p) = (self.stride, self.padding);
        let patches = unfold(x, (kh, kw), s, p)?;
        let (ho, wo) = ((h + 2 * p - kh) / s + 1, (wd + 2 * p - kw) / s + 1);
        let k = cin * kh * kw;
        let y = w
            .reshape((1, out, k))?
            .broadcast_matmul(&patches.reshape((b, k, ho * wo))?)?;
        Ok(y.reshape((b, out, ho, wo))?)
    }

    fn bias_4d(b: &Tensor) -> Result<Tensor> {
        Ok(b.reshape((1, b.dims()[0], 1, 1))?)
    }

    /// The convolution plus bias; with a recorder, records the input and adds the output probe.
    pub fn forward(&self, x: &Tensor, rec: Option<&mut Recorder>) -> Result<Tensor> {
        self.check_input(x)?;
        let w = param_for(&rec, &self.weight);
        let b = param_for(&rec, &self.bias);
        let y = self.conv(x, &w)?.broadcast_add(&Self::bias_4d(&b)?)?;
        match rec {
            None => Ok(y),
            Some(r) => r.record(
                SiteKind::Conv2d {
                    input: x.detach(),
                    geometry: self.geometry(),
                },
                vec![self.weight.clone(), self.bias.clone()],
                &y,
            ),
        }
    }

    /// (y, ẏ) with ẏ = conv(ẋ, W) + conv(x, V_W) + v_b.
    pub fn forward_tangent(
        &self,
        x: &Tensor,
        tx: Option<&Tensor>,
        tangents: &Tangents,
    ) -> Result<(Tensor, Option<Tensor>)> {
        self.check_input(x)?;
        let w = self.weight.as_detached_tensor();
        let y = self
            .conv(x, &w)?
            .broadcast_add(&Self::bias_4d(&self.bias.as_detached_tensor())?)?;
        let from_input = tx.map(|t| self.conv(t, &w)).transpose()?;
        let from_weight = tangents
            .get(&self.weight)
            .map(|v| self.conv(x, v))
            .transpose()?;
        let mut ty = add_opt(from_input, from_weight)?;
        if let Some(vb) = tangents.get(&self.bias) {
            let vb = Self::bias_4d(vb)?;
            ty = Some(match ty {
                Some(t) => t.broadcast_add(&vb)?,
                None => vb.broadcast_as(y.shape())?.contiguous()?,
            });
        }
        Ok((y, ty))
    }
}

/// Max pooling over k x k windows with the given stride and no padding (any stride, unlike
/// candle's own pooling, whose backward needs stride = k).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool2d {
    /// Window size k.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
}

impl MaxPool2d {
    /// A k x k pool with the given stride.
    pub fn new(kernel: usize, stride: usize) -> Self {
        Self { kernel, stride }
    }

    fn out_hw(&self, x: &Tensor) -> Result<(usize, usize, usize, usize)> {
        let (b, c, h, w) = x.dims4().or_else(|_| {
            shape_err(
                "MaxPool2d",
                format!("expected (b, C, H, W), got {:?}", x.shape()),
            )
        })?;
        if self.stride == 0 || self.kernel == 0 || h < self.kernel || w < self.kernel {
            return arg_err(
                "MaxPool2d",
                format!(
                    "window {} stride {} does not fit {h}x{w}",
                    self.kernel, self.stride
                ),
            );
        }
        Ok((
            b,
            c,
            (h - self.kernel) / self.stride + 1,
            (w - self.kernel) / self.stride + 1,
        ))
    }

    /// The pooled map (b, C, H', W').
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, ho, wo) = self.out_hw(x)?;
        let patches = unfold(x, (self.kernel, self.kernel), self.stride, 0)?;
        Ok(patches.max(2)?.reshape((b, c, ho, wo))?)
    }

    /// (y, ẏ): the tangent of the arg-max element of each window.
    pub fn forward_tangent(
        &self,
        x: &Tensor,
        tx: Option<&Tensor>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (b, c, ho, wo) = self.out_hw(x)?;
        let k = (self.kernel, self.kernel);
        let patches = unfold(x, k, self.stride, 0)?;
        let y = patches.max(2)?.reshape((b, c, ho, wo))?;
        let ty = match tx {
            None => None,
            Some(t) => {
                let arg = patches.argmax_keepdim(2)?;
                let tp = unfold(t, k, self.stride, 0)?;
                Some(tp.gather(&arg, 2)?.reshape((b, c, ho, wo))?)
            }
        };
        Ok((y, ty))
    }
}

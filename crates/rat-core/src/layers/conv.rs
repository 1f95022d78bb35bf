//! 2-D convolution, max pooling and the im2col `unfold` they share.

use candle_core::{DType, Device, Tensor, Var};
use rand::Rng;

use super::im2col::{self, Geo};
use super::recorder::{ConvGeometry, SiteKind, param_for};
use super::{Recorder, Tangents, add_opt};
use crate::error::{Result, arg_err, shape_err};

/// Checks the arguments of an unfold and returns its geometry.
fn unfold_geo(x: &Tensor, kernel: (usize, usize), stride: usize, padding: usize) -> Result<Geo> {
    let (_, c, h, w) = x.dims4().or_else(|_| {
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
    Ok(Geo {
        c,
        h,
        w,
        kh,
        kw,
        stride,
        padding,
        ho: (hp - kh) / stride + 1,
        wo: (wp - kw) / stride + 1,
    })
}

/// The unfolded input with one row per sample and output position, and a trailing column of ones
/// when `with_ones` is set: (b, L, C·kh·kw [+ 1]), contiguous, row (n, oi·W' + oj) holding the
/// patch of [`unfold`] in the same (c, ki, kj) order. This is the [U_i | 1] operand of the
/// factored convolution block, built in one pass on the CPU instead of transposing and
/// concatenating [`unfold`]'s output (a strided copy that costs more than the unfold itself).
/// Not differentiable on the CPU (it is meant for recorded, detached inputs).
pub fn unfold_rows(
    x: &Tensor,
    kernel: (usize, usize),
    stride: usize,
    padding: usize,
    with_ones: bool,
) -> Result<Tensor> {
    let g = unfold_geo(x, kernel, stride, padding)?;
    if im2col::supported(x.device(), x.dtype()) {
        return Ok(x
            .contiguous()?
            .apply_op1_no_bwd(&im2col::UnfoldRows(g, with_ones))?);
    }
    let b = x.dims()[0];
    let (k, l) = (g.c * g.kh * g.kw, g.ho * g.wo);
    let u = unfold(x, kernel, stride, padding)?
        .reshape((b, k, l))?
        .transpose(1, 2)?;
    let u = if with_ones {
        let ones = Tensor::ones((b, l, 1), x.dtype(), x.device())?;
        Tensor::cat(&[&u, &ones], 2)?
    } else {
        u
    };
    Ok(u.contiguous()?)
}

/// im2col: the (kh x kw) patches of x (b, C, H, W) at the given stride and zero padding, as a
/// tensor (b, C, kh·kw, L) with L = H'·W' output positions in row-major order. Element
/// (n, c, ki·kw + kj, oi·W' + oj) is x_pad[n, c, oi·stride + ki, oj·stride + kj].
pub fn unfold(x: &Tensor, kernel: (usize, usize), stride: usize, padding: usize) -> Result<Tensor> {
    let g = unfold_geo(x, kernel, stride, padding)?;
    let (b, c, kh, kw, ho, wo) = (x.dims()[0], g.c, g.kh, g.kw, g.ho, g.wo);
    let (hp, wp) = (g.h + 2 * padding, g.w + 2 * padding);
    if im2col::supported(x.device(), x.dtype()) {
        let patches = x.contiguous()?.apply_op1(im2col::Unfold(g))?;
        return Ok(patches.reshape((b, c, kh * kw, ho * wo))?);
    }
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

    /// PyTorch's default `nn.Conv2d(in_channels, out_channels, kernel, stride, padding)`
    /// initialisation, U(±1/√(in·kh·kw)) for weight and bias, with `geometry`'s kernel, stride
    /// and padding.
    pub fn pytorch_init(
        in_channels: usize,
        out_channels: usize,
        geometry: ConvGeometry,
        dtype: DType,
        device: &Device,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let ConvGeometry {
            kernel: (kh, kw),
            stride,
            padding,
        } = geometry;
        let fan_in = in_channels * kh * kw;
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
        let w =
            Tensor::from_vec(w, (out_channels, in_channels, kh, kw), device)?.to_dtype(dtype)?;
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

    /// On the CPU (f32, f64), a custom op that runs im2col and one GEMM per sample and whose
    /// backward is the per-sample GEMM and col2im (see `im2col.rs`: the version built from candle
    /// primitives spent most of the recorded backward on batch-sized patch gradients, a slow
    /// `index_add` and the unused gradient of the detached weight). Elsewhere, im2col and one
    /// batched matmul. candle's own `conv2d` computes the same forward, but its backward to the
    /// input is a direct transposed convolution on the CPU, slower than either.
    fn conv(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        let (b, _, h, wd) = x.dims4()?;
        let (out, cin, kh, kw) = w.dims4()?;
        let (s, p) = (self.stride, self.padding);
        let (ho, wo) = ((h + 2 * p - kh) / s + 1, (wd + 2 * p - kw) / s + 1);
        if im2col::supported(x.device(), x.dtype()) && w.dtype() == x.dtype() {
            let g = Geo {
                c: cin,
                h,
                w: wd,
                kh,
                kw,
                stride: s,
                padding: p,
                ho,
                wo,
            };
            let y = x
                .contiguous()?
                .apply_op2(&w.contiguous()?, im2col::Conv(g))?;
            return Ok(y.reshape((b, out, ho, wo))?);
        }
        let patches = unfold(x, (kh, kw), s, p)?;
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
        if im2col::supported(x.device(), x.dtype()) {
            // A custom op on the CPU: its backward routes each window's gradient directly,
            // instead of the batch-sized masks of `max`'s backward and the `index_add` of unfold's.
            let (_, _, h, w) = x.dims4()?;
            let g = Geo {
                c,
                h,
                w,
                kh: self.kernel,
                kw: self.kernel,
                stride: self.stride,
                padding: 0,
                ho,
                wo,
            };
            return Ok(x.contiguous()?.apply_op1(im2col::MaxPool(g))?);
        }
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

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Result, Tensor, Var};

    use super::{Conv2d, unfold, unfold_rows};

    fn rand(shape: &[usize], seed: u64) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        // A small LCG: deterministic values in (-1, 1) without extra dependencies.
        let mut s = seed;
        let v: Vec<f64> = (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu)
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
        a.sub(b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()
    }

    /// The custom convolution and its input and weight gradients agree with candle's `conv2d`.
    #[test]
    fn conv_matches_candle_conv2d() -> anyhow::Result<()> {
        for (stride, padding) in [(1, 1), (2, 1), (2, 0), (1, 0)] {
            let x = Var::from_tensor(&rand(&[2, 3, 7, 6], 1)?)?;
            let w = Var::from_tensor(&rand(&[4, 3, 3, 2], 2)?)?;
            let bias = Var::from_tensor(&rand(&[4], 3)?)?;
            let conv = Conv2d::new(w.clone(), bias.clone(), stride, padding)?;
            let y = conv.forward(x.as_tensor(), None)?;
            let y_ref = x
                .as_tensor()
                .conv2d(w.as_tensor(), padding, stride, 1, 1)?
                .broadcast_add(&bias.as_tensor().reshape((1, 4, 1, 1))?)?;
            assert_eq!(y.dims(), y_ref.dims());
            assert!(max_diff(&y, &y_ref)? < 1e-12);
            let r = rand(y.dims(), 4)?;
            let g = y.mul(&r)?.sum_all()?.backward()?;
            let g_ref = y_ref.mul(&r)?.sum_all()?.backward()?;
            for v in [&x, &w, &bias] {
                let missing = || anyhow::anyhow!("no gradient");
                let a = g.get(v.as_tensor()).ok_or_else(missing)?;
                let b = g_ref.get(v.as_tensor()).ok_or_else(missing)?;
                assert!(max_diff(a, b)? < 1e-12, "stride {stride} padding {padding}");
            }
        }
        Ok(())
    }

    /// `unfold_rows` is `unfold` transposed to rows, with the column of ones.
    #[test]
    fn unfold_rows_matches_unfold() -> anyhow::Result<()> {
        let x = rand(&[3, 2, 6, 5], 5)?.to_dtype(DType::F32)?;
        let u = unfold(&x, (3, 2), 2, 1)?;
        let (b, c, kk, l) = u.dims4()?;
        let u = u.reshape((b, c * kk, l))?.transpose(1, 2)?;
        let ones = Tensor::ones((b, l, 1), DType::F32, &Device::Cpu)?;
        let want = Tensor::cat(&[&u, &ones], 2)?;
        let got = unfold_rows(&x, (3, 2), 2, 1, true)?;
        let d = got.sub(&want)?.abs()?.flatten_all()?;
        assert_eq!(d.max(0)?.to_scalar::<f32>()?, 0.0);
        let got = unfold_rows(&x, (3, 2), 2, 1, false)?;
        assert_eq!(got.dims(), u.dims());
        Ok(())
    }
}

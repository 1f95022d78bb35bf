//! CPU kernels for the convolution, the im2col `unfold` and max pooling, as candle custom ops with
//! hand-written backward passes.
//!
//! Built from candle primitives (pad, `index_select`, `broadcast_matmul`, `max`), the backward of
//! these layers materialises batch-sized patch tensors (b x C·kh·kw x L, up to 0.6 GB per IMPALA
//! convolution at b = 256), scatters them back with a slow `index_add`, computes the unused gradient
//! of the (detached) broadcast weight and accumulates everything into zero tensors. Here each op
//! works one sample at a time on a small scratch buffer (im2col, one GEMM, col2im), in parallel
//! over samples, and only computes the gradients of arguments that track one.
//!
//! Only f32 and f64 on the CPU; callers fall back to the candle primitives elsewhere.

use std::ops::Range;

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, DType, Device, Layout, Shape, Tensor, WithDType, bail,
};
use faer::{Accum, MatMut, MatRef, Par};

/// The sizes an im2col needs: input (C, H, W), kernel (kh, kw), stride, padding, output (H', W').
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geo {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub padding: usize,
    pub ho: usize,
    pub wo: usize,
}

impl Geo {
    /// Rows of the unfolded matrix, C·kh·kw.
    fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Output positions L = H'·W'.
    fn l(&self) -> usize {
        self.ho * self.wo
    }

    /// Input values per sample.
    fn chw(&self) -> usize {
        self.c * self.h * self.w
    }

    /// The input column (or row) read by output index `o` at kernel offset `k`, if not padding.
    #[inline]
    fn src(&self, o: usize, k: usize, n: usize) -> Option<usize> {
        (o * self.stride + k)
            .checked_sub(self.padding)
            .filter(|&i| i < n)
    }

    /// Calls `f(row of the unfolded matrix · L + position, input offset)` for every non-padding
    /// element of one sample's im2col, in memory order of the unfolded matrix.
    #[inline]
    fn for_each(&self, mut f: impl FnMut(usize, usize)) {
        let l = self.l();
        for c in 0..self.c {
            for ki in 0..self.kh {
                for kj in 0..self.kw {
                    let row = ((c * self.kh + ki) * self.kw + kj) * l;
                    for oi in 0..self.ho {
                        let Some(ii) = self.src(oi, ki, self.h) else {
                            continue;
                        };
                        let base = (c * self.h + ii) * self.w;
                        for oj in 0..self.wo {
                            if let Some(jj) = self.src(oj, kj, self.w) {
                                f(row + oi * self.wo + oj, base + jj);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The element types the kernels run in.
pub(crate) trait Elem:
    WithDType
    + faer::traits::ComplexField
    + Copy
    + Default
    + PartialOrd
    + std::ops::AddAssign
    + Send
    + Sync
{
}
impl Elem for f32 {}
impl Elem for f64 {}

/// Whether the fast kernels apply to tensors of this device and dtype.
pub(crate) fn supported(device: &Device, dtype: DType) -> bool {
    device.is_cpu() && matches!(dtype, DType::F32 | DType::F64)
}

/// One sample's im2col: `cols` (C·kh·kw x L, row-major) from `x` (C x H x W).
fn im2col<T: Elem>(g: &Geo, x: &[T], cols: &mut [T]) {
    // Padding positions are skipped by `for_each`, so they must start at zero.
    cols.fill(T::default());
    g.for_each(|dst, src| cols[dst] = x[src]);
}

/// One sample's col2im: adds every element of `cols` to the input position it was read from.
fn col2im_add<T: Elem>(g: &Geo, cols: &[T], dx: &mut [T]) {
    g.for_each(|src, dst| dx[dst] += cols[src]);
}

/// Splits samples 0..b into one contiguous range per thread and runs `f(range, out chunk)`, where
/// `out` holds `per` values per sample.
fn par_samples<T: Send>(
    b: usize,
    per: usize,
    out: &mut [T],
    f: impl Fn(Range<usize>, &mut [T]) + Sync,
) {
    let threads = candle_core::utils::get_num_threads().clamp(1, b.max(1));
    let chunk = b.div_ceil(threads).max(1);
    if threads == 1 || per == 0 {
        f(0..b, out);
        return;
    }
    std::thread::scope(|s| {
        for (t, out) in out.chunks_mut(chunk * per).enumerate() {
            let f = &f;
            let start = t * chunk;
            s.spawn(move || f(start..(start + chunk).min(b), out));
        }
    });
}

/// The contiguous slice a layout addresses.
fn slice<'a, T>(v: &'a [T], l: &Layout) -> candle_core::Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => bail!("im2col kernels need contiguous inputs"),
    }
}

/// Batch size, checking the per-sample size of a contiguous input.
fn batch(len: usize, per: usize, op: &str) -> candle_core::Result<usize> {
    if per == 0 || !len.is_multiple_of(per) {
        bail!("{op}: {len} values are not a whole number of samples of {per}");
    }
    Ok(len / per)
}

fn row_major<T: Elem>(v: &[T], rows: usize, cols: usize) -> MatRef<'_, T> {
    MatRef::from_row_major_slice(v, rows, cols)
}

fn row_major_mut<T: Elem>(v: &mut [T], rows: usize, cols: usize) -> MatMut<'_, T> {
    MatMut::from_row_major_slice_mut(v, rows, cols)
}

/// Dispatches a one-input kernel on f32 / f64 storage.
macro_rules! dispatch1 {
    ($s:expr, $l:expr, $f:ident, $($a:expr),*) => {
        match $s {
            CpuStorage::F32(v) => CpuStorage::F32($f(slice(v, $l)?, $($a),*)?),
            CpuStorage::F64(v) => CpuStorage::F64($f(slice(v, $l)?, $($a),*)?),
            _ => bail!("im2col kernels support f32 and f64 only"),
        }
    };
}

/// Dispatches a two-input kernel on f32 / f64 storage.
macro_rules! dispatch2 {
    ($s1:expr, $l1:expr, $s2:expr, $l2:expr, $f:ident, $($a:expr),*) => {
        match ($s1, $s2) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => {
                CpuStorage::F32($f(slice(a, $l1)?, slice(b, $l2)?, $($a),*)?)
            }
            (CpuStorage::F64(a), CpuStorage::F64(b)) => {
                CpuStorage::F64($f(slice(a, $l1)?, slice(b, $l2)?, $($a),*)?)
            }
            _ => bail!("im2col kernels need two f32 or two f64 inputs"),
        }
    };
}

fn unfold_fwd<T: Elem>(x: &[T], g: &Geo) -> candle_core::Result<Vec<T>> {
    let b = batch(x.len(), g.chw(), "unfold")?;
    let per = g.k() * g.l();
    let mut out = vec![T::default(); b * per];
    par_samples(b, per, &mut out, |r, out| {
        for (n, cols) in r.zip(out.chunks_mut(per)) {
            im2col(g, &x[n * g.chw()..(n + 1) * g.chw()], cols);
        }
    });
    Ok(out)
}

fn fold_fwd<T: Elem>(cols: &[T], g: &Geo) -> candle_core::Result<Vec<T>> {
    let per = g.k() * g.l();
    let b = batch(cols.len(), per, "fold")?;
    let mut out = vec![T::default(); b * g.chw()];
    par_samples(b, g.chw(), &mut out, |r, out| {
        for (n, dx) in r.zip(out.chunks_mut(g.chw())) {
            col2im_add(g, &cols[n * per..(n + 1) * per], dx);
        }
    });
    Ok(out)
}

/// im2col: (b, C, H, W) → (b, C·kh·kw, L). Its backward is [`Fold`].
pub(crate) struct Unfold(pub Geo);

/// col2im: (b, C·kh·kw, L) → (b, C, H, W), summing the patches back onto the input positions they
/// were read from (the adjoint of [`Unfold`]).
pub(crate) struct Fold(pub Geo);

impl CustomOp1 for Unfold {
    fn name(&self) -> &'static str {
        "rat-unfold"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = &self.0;
        let out = dispatch1!(s, l, unfold_fwd, g);
        let b = out_batch(&out, g.k() * g.l());
        Ok((out, Shape::from((b, g.k(), g.l()))))
    }

    fn bwd(&self, _: &Tensor, _: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&Fold(self.0))?))
    }
}

impl CustomOp1 for Fold {
    fn name(&self) -> &'static str {
        "rat-fold"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = &self.0;
        let out = dispatch1!(s, l, fold_fwd, g);
        let b = out_batch(&out, g.chw());
        Ok((out, Shape::from((b, g.c, g.h, g.w))))
    }

    fn bwd(&self, _: &Tensor, _: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&Unfold(self.0))?))
    }
}

fn out_batch(s: &CpuStorage, per: usize) -> usize {
    let n = match s {
        CpuStorage::F32(v) => v.len(),
        CpuStorage::F64(v) => v.len(),
        _ => 0,
    };
    n.checked_div(per).unwrap_or(0)
}

/// y_n = W · im2col(x_n) per sample, with W (out, C·kh·kw).
fn conv_fwd<T: Elem>(x: &[T], w: &[T], g: &Geo, out_c: usize) -> candle_core::Result<Vec<T>> {
    let b = batch(x.len(), g.chw(), "conv2d")?;
    let (k, l) = (g.k(), g.l());
    if w.len() != out_c * k {
        bail!("conv2d: weight of {} values is not {out_c} x {k}", w.len());
    }
    let mut out = vec![T::default(); b * out_c * l];
    let wm = row_major(w, out_c, k);
    par_samples(b, out_c * l, &mut out, |r, out| {
        let mut cols = vec![T::default(); k * l];
        for (n, y) in r.zip(out.chunks_mut(out_c * l)) {
            im2col(g, &x[n * g.chw()..(n + 1) * g.chw()], &mut cols);
            faer::linalg::matmul::matmul(
                row_major_mut(y, out_c, l),
                Accum::Replace,
                wm,
                row_major(&cols, k, l),
                <T as WithDType>::from_f64(1.0),
                Par::Seq,
            );
        }
    });
    Ok(out)
}

/// dx_n = col2im(Wᵀ · G_n) per sample, with G_n (out, L) the output gradient.
fn conv_dx<T: Elem>(grad: &[T], w: &[T], g: &Geo, out_c: usize) -> candle_core::Result<Vec<T>> {
    let (k, l) = (g.k(), g.l());
    let b = batch(grad.len(), out_c * l, "conv2d backward")?;
    if w.len() != out_c * k {
        bail!(
            "conv2d backward: weight of {} values is not {out_c} x {k}",
            w.len()
        );
    }
    let mut out = vec![T::default(); b * g.chw()];
    let wt = row_major(w, out_c, k).transpose();
    par_samples(b, g.chw(), &mut out, |r, out| {
        let mut cols = vec![T::default(); k * l];
        for (n, dx) in r.zip(out.chunks_mut(g.chw())) {
            faer::linalg::matmul::matmul(
                row_major_mut(&mut cols, k, l),
                Accum::Replace,
                wt,
                row_major(&grad[n * out_c * l..(n + 1) * out_c * l], out_c, l),
                <T as WithDType>::from_f64(1.0),
                Par::Seq,
            );
            col2im_add(g, &cols, dx);
        }
    });
    Ok(out)
}

/// dW = Σ_n G_n · im2col(x_n)ᵀ, (out, C·kh·kw).
fn conv_dw<T: Elem>(x: &[T], grad: &[T], g: &Geo, out_c: usize) -> candle_core::Result<Vec<T>> {
    let (k, l) = (g.k(), g.l());
    let b = batch(x.len(), g.chw(), "conv2d backward")?;
    if grad.len() != b * out_c * l {
        bail!(
            "conv2d backward: gradient of {} values does not match",
            grad.len()
        );
    }
    let threads = candle_core::utils::get_num_threads().clamp(1, b.max(1));
    // One partial sum per thread, added up at the end (the sum runs over samples).
    let mut partial = vec![T::default(); threads * out_c * k];
    let chunk = b.div_ceil(threads).max(1);
    par_samples(threads, out_c * k, &mut partial, |t, acc| {
        let mut cols = vec![T::default(); k * l];
        for t in t {
            let samples = (t * chunk).min(b)..((t + 1) * chunk).min(b);
            for n in samples {
                im2col(g, &x[n * g.chw()..(n + 1) * g.chw()], &mut cols);
                faer::linalg::matmul::matmul(
                    row_major_mut(&mut acc[..out_c * k], out_c, k),
                    Accum::Add,
                    row_major(&grad[n * out_c * l..(n + 1) * out_c * l], out_c, l),
                    row_major(&cols, k, l).transpose(),
                    <T as WithDType>::from_f64(1.0),
                    Par::Seq,
                );
            }
        }
    });
    let mut out = vec![T::default(); out_c * k];
    for p in partial.chunks(out_c * k) {
        for (o, v) in out.iter_mut().zip(p) {
            *o += *v;
        }
    }
    Ok(out)
}

/// 2-D convolution without bias: (x (b, C, H, W), weight (out, C, kh, kw)) → (b, out, L).
pub(crate) struct Conv(pub Geo);

/// The input gradient of [`Conv`]: (grad (b, out, L), weight) → (b, C, H, W).
struct ConvDx(Geo);

/// The weight gradient of [`Conv`]: (x, grad (b, out, L)) → (out, C, kh, kw).
struct ConvDw(Geo);

fn out_channels(l: &Layout) -> usize {
    l.dims().first().copied().unwrap_or(0)
}

impl CustomOp2 for Conv {
    fn name(&self) -> &'static str {
        "rat-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (g, oc) = (&self.0, out_channels(l2));
        let out = dispatch2!(s1, l1, s2, l2, conv_fwd, g, oc);
        let b = out_batch(&out, oc * g.l());
        Ok((out, Shape::from((b, oc, g.l()))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        // The recorded forward detaches the weight: skip what nothing will read.
        let grad = grad.contiguous()?;
        let dx = if x.track_op() {
            Some(grad.apply_op2_no_bwd(w, &ConvDx(self.0))?)
        } else {
            None
        };
        let dw = if w.track_op() {
            Some(x.apply_op2_no_bwd(&grad, &ConvDw(self.0))?)
        } else {
            None
        };
        Ok((dx, dw))
    }
}

impl CustomOp2 for ConvDx {
    fn name(&self) -> &'static str {
        "rat-conv2d-dx"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (g, oc) = (&self.0, out_channels(l2));
        let out = dispatch2!(s1, l1, s2, l2, conv_dx, g, oc);
        let b = out_batch(&out, g.chw());
        Ok((out, Shape::from((b, g.c, g.h, g.w))))
    }
}

impl CustomOp2 for ConvDw {
    fn name(&self) -> &'static str {
        "rat-conv2d-dw"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = &self.0;
        let oc = l2.dims().get(1).copied().unwrap_or(0);
        let out = dispatch2!(s1, l1, s2, l2, conv_dw, g, oc);
        Ok((out, Shape::from((oc, g.c, g.kh, g.kw))))
    }
}

/// The maximum of one window of one channel: window (oi, oj) of the plane `x` (H x W).
#[inline]
fn window_max<T: Elem>(g: &Geo, x: &[T], oi: usize, oj: usize) -> T {
    let (i0, j0) = (oi * g.stride, oj * g.stride);
    let mut m = x[i0 * g.w + j0];
    for ki in 0..g.kh {
        for kj in 0..g.kw {
            let v = x[(i0 + ki) * g.w + j0 + kj];
            if v > m {
                m = v;
            }
        }
    }
    m
}

fn pool_fwd<T: Elem>(x: &[T], g: &Geo) -> candle_core::Result<Vec<T>> {
    let b = batch(x.len(), g.chw(), "max_pool")?;
    let (hw, per) = (g.h * g.w, g.c * g.l());
    let mut out = vec![T::default(); b * per];
    par_samples(b, per, &mut out, |r, out| {
        for (n, y) in r.zip(out.chunks_mut(per)) {
            for c in 0..g.c {
                let plane = &x[n * g.chw() + c * hw..n * g.chw() + (c + 1) * hw];
                for oi in 0..g.ho {
                    for oj in 0..g.wo {
                        y[(c * g.ho + oi) * g.wo + oj] = window_max(g, plane, oi, oj);
                    }
                }
            }
        }
    });
    Ok(out)
}

/// Routes each window's gradient to every element equal to the window's maximum (what candle's
/// backward of `max` does, ties included).
fn pool_dx<T: Elem>(x: &[T], grad: &[T], g: &Geo) -> candle_core::Result<Vec<T>> {
    let b = batch(x.len(), g.chw(), "max_pool backward")?;
    let (hw, per) = (g.h * g.w, g.c * g.l());
    if grad.len() != b * per {
        bail!(
            "max_pool backward: gradient of {} values does not match",
            grad.len()
        );
    }
    let mut out = vec![T::default(); b * g.chw()];
    par_samples(b, g.chw(), &mut out, |r, out| {
        for (n, dx) in r.zip(out.chunks_mut(g.chw())) {
            for c in 0..g.c {
                let plane = &x[n * g.chw() + c * hw..n * g.chw() + (c + 1) * hw];
                let dplane = &mut dx[c * hw..(c + 1) * hw];
                for oi in 0..g.ho {
                    for oj in 0..g.wo {
                        let m = window_max(g, plane, oi, oj);
                        let gy = grad[n * per + (c * g.ho + oi) * g.wo + oj];
                        let (i0, j0) = (oi * g.stride, oj * g.stride);
                        for ki in 0..g.kh {
                            for kj in 0..g.kw {
                                let p = (i0 + ki) * g.w + j0 + kj;
                                if plane[p] == m {
                                    dplane[p] += gy;
                                }
                            }
                        }
                    }
                }
            }
        }
    });
    Ok(out)
}

/// Max pooling without padding: (b, C, H, W) → (b, C, H', W').
pub(crate) struct MaxPool(pub Geo);

/// The input gradient of [`MaxPool`]: (x, grad (b, C, H', W')) → (b, C, H, W).
struct MaxPoolDx(Geo);

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "rat-max-pool"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = &self.0;
        let out = dispatch1!(s, l, pool_fwd, g);
        let b = out_batch(&out, g.c * g.l());
        Ok((out, Shape::from((b, g.c, g.ho, g.wo))))
    }

    fn bwd(&self, x: &Tensor, _: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(
            &grad.contiguous()?,
            &MaxPoolDx(self.0),
        )?))
    }
}

impl CustomOp2 for MaxPoolDx {
    fn name(&self) -> &'static str {
        "rat-max-pool-dx"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = &self.0;
        let out = dispatch2!(s1, l1, s2, l2, pool_dx, g);
        let b = out_batch(&out, g.chw());
        Ok((out, Shape::from((b, g.c, g.h, g.w))))
    }
}

fn unfold_rows_fwd<T: Elem>(x: &[T], g: &Geo, ones: bool) -> candle_core::Result<Vec<T>> {
    let b = batch(x.len(), g.chw(), "unfold_rows")?;
    let (k, l) = (g.k(), g.l());
    let width = k + usize::from(ones);
    let per = l * width;
    let one = <T as WithDType>::from_f64(1.0);
    let mut out = vec![T::default(); b * per];
    par_samples(b, per, &mut out, |r, out| {
        let mut cols = vec![T::default(); k * l];
        for (n, rows) in r.zip(out.chunks_mut(per)) {
            im2col(g, &x[n * g.chw()..(n + 1) * g.chw()], &mut cols);
            for (p, row) in rows.chunks_mut(width).enumerate() {
                for (r, v) in row[..k].iter_mut().enumerate() {
                    *v = cols[r * l + p];
                }
                if ones {
                    row[k] = one;
                }
            }
        }
    });
    Ok(out)
}

/// im2col with one row per output position: (b, C, H, W) → (b, L, C·kh·kw), plus a column of
/// ones when `.1` is set. Forward only (for recorded, detached inputs).
pub(crate) struct UnfoldRows(pub Geo, pub bool);

impl CustomOp1 for UnfoldRows {
    fn name(&self) -> &'static str {
        "rat-unfold-rows"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (g, ones) = (&self.0, self.1);
        let out = dispatch1!(s, l, unfold_rows_fwd, g, ones);
        let width = g.k() + usize::from(ones);
        let b = out_batch(&out, g.l() * width);
        Ok((out, Shape::from((b, g.l(), width))))
    }
}

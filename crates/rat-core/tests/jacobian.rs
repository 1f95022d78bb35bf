//! The factored score Jacobian against the materialised one (b single-sample backward passes).

mod common;

use candle_core::{DType, Tensor};
use common::*;
use rat_core::jacobian::{ConvKernelMode, FactoredJacobian, MaterialisedJacobian, ScoreJacobian};
use rat_core::layers::Recorder;

fn row(t: &Tensor, i: usize) -> candle_core::Result<Tensor> {
    t.narrow(0, i, 1)
}

fn gaussian_mlp_case(dtype: DType, tol: f64) -> Res<()> {
    let mut r = rng(1);
    let net = GaussianMlp::new(&mut r, &[5, 16, 16, 3], dtype)?;
    let b = 12;
    let x = randn(&mut r, &[b, 5], dtype)?;
    let a = randn(&mut r, &[b, 3], dtype)?;

    let mut rec = Recorder::new();
    let logp = net.log_prob(&x, &a, Some(&mut rec))?;
    let fact = FactoredJacobian::from_objective(&rec, &logp)?;
    let mat = MaterialisedJacobian::from_per_sample_backward(&net.params(), b, |i| {
        net.log_prob(&row(&x, i)?, &row(&a, i)?, None).map_err(|e| {
            rat_core::Error::InvalidArgument {
                op: "test",
                msg: e.to_string(),
            }
        })
    })?;
    assert_eq!(
        fact.num_params(),
        3 + 5 * 16 + 16 + 16 * 16 + 16 + 16 * 3 + 3
    );
    assert_same_jacobian(&fact, &mat, tol, 7)?;
    assert_same_jacobian(&fact.portable(), &mat, tol, 7)
}

#[test]
fn mlp_with_vector_log_std_f64() -> Res<()> {
    gaussian_mlp_case(DType::F64, 1e-10)
}

#[test]
fn mlp_with_vector_log_std_f32() -> Res<()> {
    gaussian_mlp_case(DType::F32, 1e-4)
}

#[test]
fn shared_trunk_with_policy_and_value_heads_f64() -> Res<()> {
    let dtype = DType::F64;
    let mut r = rng(2);
    let net = SharedNet::new(&mut r, 6, 10, 2, dtype)?;
    let b = 9;
    let x = randn(&mut r, &[b, 6], dtype)?;
    let a = randn(&mut r, &[b, 2], dtype)?;
    let c = randn(&mut r, &[b], dtype)?.affine(2.0, 0.0)?;

    let mut rec = Recorder::new();
    let obj = net.objective(&x, &a, &c, Some(&mut rec))?;
    let fact = FactoredJacobian::from_objective(&rec, &obj)?;
    let mat = MaterialisedJacobian::from_per_sample_backward(&net.params(), b, |i| {
        net.objective(&row(&x, i)?, &row(&a, i)?, &c.narrow(0, i, 1)?, None)
            .map_err(|e| rat_core::Error::InvalidArgument {
                op: "test",
                msg: e.to_string(),
            })
    })?;
    assert_same_jacobian(&fact, &mat, 1e-10, 8)
}

fn cnn_case(mode: ConvKernelMode) -> Res<()> {
    let dtype = DType::F64;
    let mut r = rng(3);
    let net = small_cnn(&mut r, 2, 9, 5, dtype)?;
    let b = 7;
    let x = randn(&mut r, &[b, 2, 9, 9], dtype)?;
    let acts = random_actions(&mut r, b, 5)?;

    let mut rec = Recorder::new();
    let logp = categorical_log_prob(&net, &x, &acts, Some(&mut rec))?;
    let fact = FactoredJacobian::from_objective_with(&rec, &logp, mode)?;
    let mat = MaterialisedJacobian::from_per_sample_backward(&net.params(), b, |i| {
        categorical_log_prob(&net, &row(&x, i)?, &acts.narrow(0, i, 1)?, None).map_err(|e| {
            rat_core::Error::InvalidArgument {
                op: "test",
                msg: e.to_string(),
            }
        })
    })?;
    assert_same_jacobian(&fact, &mat, 1e-10, 9)?;
    // Rows of the kernel against the whole batch (what one of R ranks builds) are the
    // materialised J's J Jᵀ too.
    let err = rel_err(&fact.kernel_rows(&fact)?, &mat.kernel()?)?;
    assert!(err < 1e-10, "kernel_rows: relative error {err:e}");
    // The candle-only products (what non-host devices run) agree too.
    assert_same_jacobian(&fact.portable(), &mat, 1e-10, 9)
}

#[test]
fn cnn_categorical_auto_mode() -> Res<()> {
    cnn_case(ConvKernelMode::Auto)
}

#[test]
fn cnn_categorical_spatial_gram_mode() -> Res<()> {
    cnn_case(ConvKernelMode::Gram)
}

#[test]
fn cnn_categorical_materialise_mode() -> Res<()> {
    cnn_case(ConvKernelMode::Materialise)
}

#[test]
fn recording_does_not_change_the_forward_pass() -> Res<()> {
    let mut r = rng(4);
    let net = GaussianMlp::new(&mut r, &[4, 8, 2], DType::F64)?;
    let x = randn(&mut r, &[5, 4], DType::F64)?;
    let a = randn(&mut r, &[5, 2], DType::F64)?;
    let plain = net.log_prob(&x, &a, None)?;
    let mut rec = Recorder::new();
    let recorded = net.log_prob(&x, &a, Some(&mut rec))?;
    assert!(rel_err(&recorded, &plain)? < 1e-15);
    assert_eq!(rec.sites().len(), 3, "log-σ plus two dense layers");
    assert_eq!(rec.params().len(), net.params().len());
    Ok(())
}

#[test]
fn factored_needs_a_recorded_forward_pass() -> Res<()> {
    let rec = Recorder::new();
    let logp = Tensor::zeros(3, DType::F64, &dev())?;
    assert!(FactoredJacobian::from_objective(&rec, &logp).is_err());
    Ok(())
}

#[test]
fn channels_last_images_through_a_cnn() -> Res<()> {
    // A CNN fed flat channels-last rows (as environments emit images) through ChannelsFirst
    // computes what the same CNN computes on the (C, H, W) images built index by index, and
    // its factored Jacobian and tangents agree with the explicit ones.
    use rat_core::layers::{Layer, Sequential, Tangents};
    let dtype = DType::F64;
    let mut r = rng(5);
    let (c, hw, b) = (2, 9, 6);
    let chw = small_cnn(&mut r, c, hw, 4, dtype)?;
    let mut layers = vec![Layer::ChannelsFirst {
        height: hw,
        width: hw,
        channels: c,
    }];
    layers.extend(chw.layers().iter().cloned());
    let hwc = Sequential::new(layers);

    let flat = randn(&mut r, &[b, hw * hw * c], dtype)?;
    let rows = flat.to_vec2::<f64>()?;
    let mut img = vec![0.0; b * c * hw * hw];
    for (i, row) in rows.iter().enumerate() {
        for y in 0..hw {
            for x in 0..hw {
                for ch in 0..c {
                    img[((i * c + ch) * hw + y) * hw + x] = row[(y * hw + x) * c + ch];
                }
            }
        }
    }
    let img = Tensor::from_vec(img, (b, c, hw, hw), &dev())?;
    assert!(rel_err(&hwc.forward(&flat, None)?, &chw.forward(&img, None)?)? < 1e-15);

    let acts = random_actions(&mut r, b, 4)?;
    let mut rec = Recorder::new();
    let logp = categorical_log_prob(&hwc, &flat, &acts, Some(&mut rec))?;
    let fact = FactoredJacobian::from_objective(&rec, &logp)?;
    let mat = MaterialisedJacobian::from_per_sample_backward(&hwc.params(), b, |i| {
        categorical_log_prob(&chw, &row(&img, i)?, &acts.narrow(0, i, 1)?, None).map_err(|e| {
            rat_core::Error::InvalidArgument {
                op: "test",
                msg: e.to_string(),
            }
        })
    })?;
    assert_same_jacobian(&fact, &mat, 1e-10, 9)?;

    let v: Vec<Tensor> = hwc
        .params()
        .iter()
        .map(|p| randn(&mut r, p.dims(), dtype))
        .collect::<Res<_>>()?;
    let tangents = Tangents::new(&hwc.params(), &v)?;
    let (_, t1) = hwc.forward_tangent(&flat, None, &tangents)?;
    let (_, t2) = chw.forward_tangent(&img, None, &tangents)?;
    assert!(rel_err(&t1.expect("tangent"), &t2.expect("tangent"))? < 1e-14);
    // Rows that are not H·W·C images are an error, not a panic.
    assert!(hwc.forward(&randn(&mut r, &[b, 7], dtype)?, None).is_err());
    Ok(())
}

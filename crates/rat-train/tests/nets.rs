//! The reference's networks: parameter counts, parameter order, and the factored Jacobian of every
//! actor variant against the materialised one.

use candle_core::{DType, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rat_core::jacobian::{FactoredJacobian, MaterialisedJacobian, ScoreJacobian};
use rat_core::layers::Recorder;
use rat_train::config::SigmaType;
use rat_train::nets::{CategoricalActor, Critic, GaussianActor};

fn count(params: &[candle_core::Var]) -> usize {
    params.iter().map(|p| p.elem_count()).sum()
}

#[test]
fn humanoid_parameter_counts_match_the_reference() -> anyhow::Result<()> {
    let (dev, mut rng) = (rat_train::cli::test_device()?, ChaCha8Rng::seed_from_u64(0));
    let actor = GaussianActor::new(
        376,
        17,
        &[256, 256],
        SigmaType::Vector,
        DType::F32,
        &dev,
        &mut rng,
    )?;
    let critic = Critic::new(376, &[256, 256], true, DType::F32, &dev, &mut rng)?;
    // ALGORITHMS.md §7.3: P = 166 690 for the actor, 162 561 trainable for the critic.
    assert_eq!(count(&actor.params()), 166_690);
    assert_eq!(count(&critic.params()), 162_561);
    // log-σ comes first, as in the reference's parameter order.
    assert_eq!(actor.params()[0].dims(), &[17]);
    Ok(())
}

fn rel(a: &Tensor, b: &Tensor) -> anyhow::Result<f64> {
    let num = a.sub(b)?.sqr()?.sum_all()?.sqrt()?.to_scalar::<f64>()?;
    Ok(num / b.sqr()?.sum_all()?.sqrt()?.to_scalar::<f64>()?.max(1e-300))
}

fn same(a: &dyn ScoreJacobian, b: &dyn ScoreJacobian) -> anyhow::Result<()> {
    assert_eq!(a.param_shapes(), b.param_shapes());
    assert!(rel(&a.kernel()?, &b.kernel()?)? < 1e-10);
    let w = Tensor::arange(
        0u32,
        a.num_samples() as u32,
        &rat_train::cli::test_device()?,
    )?
    .to_dtype(DType::F64)?
    .sin()?;
    let (x, y) = (a.vjp(&w)?, b.vjp(&w)?);
    for (x, y) in x.iter().zip(&y) {
        assert!(rel(x, y)? < 1e-10);
    }
    Ok(())
}

#[test]
fn every_actor_variant_has_a_factored_jacobian() -> anyhow::Result<()> {
    let dev = rat_train::cli::test_device()?;
    let b = 6;
    let obs = Tensor::arange(0u32, (b * 5) as u32, &dev)?
        .to_dtype(DType::F64)?
        .reshape((b, 5))?
        .affine(0.37, -1.0)?
        .sin()?;
    let act = Tensor::arange(0u32, (b * 2) as u32, &dev)?
        .to_dtype(DType::F64)?
        .reshape((b, 2))?
        .affine(0.51, 0.2)?
        .cos()?;
    for sigma in [
        SigmaType::Vector,
        SigmaType::MuShared,
        SigmaType::Separate,
        SigmaType::Linear,
    ] {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let actor = GaussianActor::new(5, 2, &[7, 7], sigma, DType::F64, &dev, &mut rng)?;
        let mut rec = Recorder::new();
        let logp = actor.forward(&obs, Some(&mut rec))?.log_prob(&act)?;
        assert_eq!(rec.params().len(), actor.params().len(), "{sigma:?}");
        let fact = FactoredJacobian::from_objective(&rec, &logp)?;
        let mat = MaterialisedJacobian::from_per_sample_backward(&actor.params(), b, |i| {
            actor
                .forward(&obs.narrow(0, i, 1)?, None)?
                .log_prob(&act.narrow(0, i, 1)?)
        })?;
        same(&fact, &mat)?;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let actor = CategoricalActor::new(5, 3, &[8], DType::F64, &dev, &mut rng)?;
    let a = Tensor::new(&[0u32, 2, 1, 1, 0, 2], &dev)?;
    categorical_jacobians_agree(&actor, &obs, &a)
}

/// The factored score Jacobian of a categorical actor at (obs, a) equals the one from single-sample
/// backward passes, and the recorder saw every parameter.
fn categorical_jacobians_agree(
    actor: &CategoricalActor,
    obs: &Tensor,
    a: &Tensor,
) -> anyhow::Result<()> {
    let mut rec = Recorder::new();
    let logp = actor.forward(obs, Some(&mut rec))?.log_prob(a)?;
    assert_eq!(rec.params().len(), actor.params().len());
    let fact = FactoredJacobian::from_objective(&rec, &logp)?;
    let b = obs.dims()[0];
    let mat = MaterialisedJacobian::from_per_sample_backward(&actor.params(), b, |i| {
        actor
            .forward(&obs.narrow(0, i, 1)?, None)?
            .log_prob(&a.narrow(0, i, 1)?)
    })?;
    same(&fact, &mat)
}

#[test]
fn initial_log_std_and_shapes() -> anyhow::Result<()> {
    let (dev, mut rng) = (rat_train::cli::test_device()?, ChaCha8Rng::seed_from_u64(1));
    let obs = Tensor::ones((4, 3), DType::F32, &dev)?;
    let actor = GaussianActor::new(3, 2, &[8], SigmaType::Linear, DType::F32, &dev, &mut rng)?;
    let d = actor.forward(&obs, None)?;
    assert_eq!(d.mean().dims(), &[4, 2]);
    assert_eq!(
        d.log_std().to_vec2::<f32>()?,
        vec![vec![0.0; 2]; 4],
        "linear log-σ starts at 0"
    );
    let critic = Critic::new(3, &[8, 8], false, DType::F32, &dev, &mut rng)?;
    assert_eq!(critic.forward(&obs)?.dims(), &[4]);
    Ok(())
}

mod image_encoders {
    use super::*;
    use rat_core::layers::Layer;
    use rat_train::nets::encoders::{Encoder, NetType};

    /// The (out, in) shape of the encoder's last dense layer.
    fn last_dense(e: &Encoder) -> Vec<usize> {
        e.net
            .layers()
            .iter()
            .rev()
            .find_map(|l| match l {
                Layer::Dense(d) => Some(d.weight().dims().to_vec()),
                _ => None,
            })
            .expect("a dense layer")
    }

    #[test]
    fn encoders_have_the_published_shapes() -> anyhow::Result<()> {
        let (dev, mut rng) = (rat_train::cli::test_device()?, ChaCha8Rng::seed_from_u64(0));
        // ALGORITHMS.md §7.6: Nature CNN flat 1024 on 64 x 64, 3136 on 84 x 84; IMPALA 31 → 15 →
        // 7, flat 32·7·7 = 1568; MinAtar's CNN 16·8·8 = 1024 on 10 x 10.
        for (net, image, flat, features) in [
            (NetType::NatureCnn, [64, 64, 3], 1024, 512),
            (NetType::NatureCnn, [84, 84, 4], 3136, 512),
            (NetType::Impala, [64, 64, 3], 1568, 256),
            (NetType::MinatarCnn, [10, 10, 4], 1024, 128),
        ] {
            let obs_dim = image.iter().product();
            let e = Encoder::new(net, obs_dim, Some(image), DType::F32, &dev, &mut rng)?;
            assert_eq!(last_dense(&e), vec![features, flat], "{net:?} {image:?}");
            assert_eq!((e.in_dim, e.out_dim), (obs_dim, features));
            let x = Tensor::zeros((2, obs_dim), DType::F32, &dev)?;
            assert_eq!(e.net.forward(&x, None)?.dims(), &[2, features]);
        }
        // The IMPALA residual blocks: 3 stages x (1 conv + 2 blocks x 2 convs) + the dense layer.
        let e = Encoder::new(
            NetType::Impala,
            64 * 64 * 3,
            Some([64, 64, 3]),
            DType::F32,
            &dev,
            &mut rng,
        )?;
        assert_eq!(e.net.params().len(), 2 * (3 * 5 + 1));
        Ok(())
    }

    #[test]
    fn unusable_encoder_settings_are_clear_errors() -> anyhow::Result<()> {
        let (dev, mut rng) = (rat_train::cli::test_device()?, ChaCha8Rng::seed_from_u64(0));
        let e = Encoder::new(NetType::NatureCnn, 400, None, DType::F32, &dev, &mut rng)
            .unwrap_err()
            .to_string();
        assert!(e.contains("image observations") && e.contains("mlp"), "{e}");
        let e = Encoder::new(
            NetType::NatureCnn,
            400,
            Some([10, 10, 4]),
            DType::F32,
            &dev,
            &mut rng,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("too small"), "{e}");
        let e = NetType::parse("vit").unwrap_err().to_string();
        assert!(e.contains("impala"), "{e}");
        Ok(())
    }

    /// Flat channels-last images with a smooth pattern.
    fn images(b: usize, image: [usize; 3]) -> anyhow::Result<Tensor> {
        let n = image.iter().product::<usize>();
        Ok(
            Tensor::arange(0u32, (b * n) as u32, &rat_train::cli::test_device()?)?
                .to_dtype(DType::F64)?
                .reshape((b, n))?
                .affine(0.731, 0.3)?
                .sin()?,
        )
    }

    #[test]
    fn cnn_actors_have_a_factored_jacobian() -> anyhow::Result<()> {
        // MinAtar's CNN with a hidden layer after it, and the IMPALA ResNet (stride, padding,
        // max-pooling, residual blocks), against b single-sample backward passes in f64.
        let dev = rat_train::cli::test_device()?;
        let b = 5;
        let a = Tensor::new(&[0u32, 2, 1, 3, 2], &dev)?;
        for (net, image, widths) in [
            (NetType::MinatarCnn, [6, 5, 3], vec![7]),
            (NetType::Impala, [16, 16, 3], vec![]),
        ] {
            let mut rng = ChaCha8Rng::seed_from_u64(8);
            let obs_dim = image.iter().product();
            let enc = Encoder::new(net, obs_dim, Some(image), DType::F64, &dev, &mut rng)?;
            let actor = CategoricalActor::on(enc, 4, &widths, DType::F64, &dev, &mut rng)?;
            categorical_jacobians_agree(&actor, &images(b, image)?, &a)?;
        }
        Ok(())
    }
}

//! The small pieces of a run's outputs and optimisers against hand computations: CRC-32C and
//! TensorBoard records, Python-style names, summary statistics, Adam and the KL rule.

use candle_core::{Tensor, Var};
use rat_train::io::report::summary;
use rat_train::io::run_log::{detach_log_dir, py_float, timestamp};
use rat_train::io::tensorboard::{EventWriter, crc32c, masked_crc, read_scalars};
use rat_train::optim::{Adam, KlAdaptiveLr};

#[test]
#[allow(clippy::manual_rotate)]
fn crc32c_matches_the_standard_check_values() {
    // RFC 3720 B.4 and the usual "123456789" check value.
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
    assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
    let c = crc32c(b"abc");
    // Written out by hand on purpose: an independent statement of TFRecord's masking.
    assert_eq!(
        masked_crc(b"abc"),
        ((c >> 15) | (c << 17)).wrapping_add(0xA282_EAD8)
    );
}

#[test]
fn event_files_round_trip() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("rat-test-tb-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut w = EventWriter::create(&dir)?;
    w.scalar("train/kl", 0.0125, 0)?;
    w.scalar("train/eprewmean", -3.5, 1)?;
    w.scalar("misc/nupdates", 300.0, 300)?;
    w.flush()?;
    let got = read_scalars(w.path())?;
    assert_eq!(
        got,
        vec![
            ("train/kl".to_string(), 0, 0.0125f32),
            ("train/eprewmean".to_string(), 1, -3.5),
            ("misc/nupdates".to_string(), 300, 300.0),
        ]
    );
    // A flipped byte is caught by the CRC.
    let mut bytes = std::fs::read(w.path())?;
    let last = bytes.len() - 6;
    bytes[last] ^= 1;
    let broken = dir.join("broken");
    std::fs::write(&broken, bytes)?;
    assert!(read_scalars(&broken).is_err());
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

#[test]
fn names_follow_python_formatting() {
    assert_eq!(py_float(0.0), "0.0");
    assert_eq!(py_float(0.1), "0.1");
    assert_eq!(py_float(0.05), "0.05");
    assert_eq!(py_float(0.5), "0.5");
    assert_eq!(py_float(1e-5), "1e-05");
    assert_eq!(py_float(10.0), "10.0");
    let t = timestamp();
    assert_eq!(t.len(), 15);
    assert_eq!(&t[8..9], "-");
    assert!(t.starts_with("20"));

    let mut c = rat_train::config::Config::default_rat();
    c.env_config.env_name = "humanoid".into();
    let dir = detach_log_dir(std::path::Path::new("logs"), &c, 347253);
    let s = dir.to_string_lossy();
    // ALGORITHMS.md 9.1's example, up to the time.
    assert!(s.starts_with(
        "logs/rat.karzmarz_True.mlp.a256x2x0.0e4x8.c256x2x0.0e4x8.npg_fisher_clip_0.5.vector.damping_0.1.lr_pi_0.05/humanoid."
    ), "{s}");
    assert!(s.ends_with("_347253"));
}

#[test]
fn summary_uses_the_lower_median_and_unbiased_variance() {
    let (min, max, mean, med, var) = summary(&[4.0, 1.0, 3.0, 2.0]);
    assert_eq!((min, max, mean, med), (1.0, 4.0, 2.5, 2.0));
    assert!((var - 5.0 / 3.0).abs() < 1e-12);
    assert!(summary(&[]).0.is_nan());
}

#[test]
fn adam_matches_a_hand_computation() -> anyhow::Result<()> {
    let p = Var::new(&[1.0f64, -2.0], &rat_train::cli::test_device()?)?;
    let mut adam = Adam::new(std::slice::from_ref(&p))?;
    let g1 = Tensor::new(&[0.5f64, -1.0], &rat_train::cli::test_device()?)?;
    let g2 = Tensor::new(&[0.1f64, 2.0], &rat_train::cli::test_device()?)?;
    adam.step(std::slice::from_ref(&p), std::slice::from_ref(&g1), 0.01)?;
    adam.step(std::slice::from_ref(&p), std::slice::from_ref(&g2), 0.01)?;
    let mut theta = [1.0f64, -2.0];
    let (mut m, mut v) = ([0.0f64; 2], [0.0f64; 2]);
    for (t, g) in [[0.5, -1.0], [0.1, 2.0]].iter().enumerate() {
        let t = (t + 1) as i32;
        for i in 0..2 {
            m[i] = 0.9 * m[i] + 0.1 * g[i];
            v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
            let mh = m[i] / (1.0 - 0.9f64.powi(t));
            let vh = v[i] / (1.0 - 0.999f64.powi(t));
            theta[i] -= 0.01 * mh / (vh.sqrt() + 1e-8);
        }
    }
    let got = p.as_tensor().to_vec1::<f64>()?;
    for i in 0..2 {
        assert!((got[i] - theta[i]).abs() < 1e-12, "{got:?} vs {theta:?}");
    }
    assert_eq!(adam.t, 2);
    Ok(())
}

#[test]
fn kl_rule_as_the_reference() {
    let r = KlAdaptiveLr::SEPARATE;
    assert_eq!(r.apply(0.03, 0.02), 0.02);
    assert_eq!(r.apply(1.2e-4, 0.05), 1e-4);
    assert!((r.apply(0.02, 0.001) - 0.03).abs() < 1e-15);
    assert_eq!(r.apply(0.04, 0.001), 0.05);
    assert_eq!(r.apply(0.02, 0.01), 0.02);
    let s = KlAdaptiveLr::shared(0.03);
    assert_eq!(s.apply(0.025, 0.0), 0.03);
    assert_eq!(s.apply(0.03, 0.018), 0.03);
    assert_eq!(s.apply(0.03, 0.021), 0.02);
}

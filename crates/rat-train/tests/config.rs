//! The reference configs load unchanged; overrides and bad input.

use rat_train::config::{Algo, Config, ConfigError, KaczmarzKind, Optimizer, PostGradKind};

const ALL: [&str; 7] = [
    "rat_mlp.yaml",
    "fvp_mlp.yaml",
    "diag_mlp.yaml",
    "kfac_mlp.yaml",
    "rat_mlp_shared.yaml",
    "diag_mlp_shared.yaml",
    "kfac_mlp_shared.yaml",
];

#[test]
fn every_reference_config_loads() -> anyhow::Result<()> {
    for name in ALL {
        let c = Config::load(name)?;
        assert_eq!(c.env_config.timesteps_per_proc, 10_000_000, "{name}");
        assert_eq!(c.env_config.num_envs * c.env_config.nsteps, 8192, "{name}");
        assert!(
            c.nets_config.norm_obs && c.algo_config.with_popart,
            "{name}: True parsed"
        );
        assert!(!c.env_config.norm_ret, "{name}: False parsed");
    }
    // rat_mlp.yaml is exactly the documented defaults.
    assert_eq!(Config::load("rat_mlp.yaml")?, Config::default_rat());
    let kfac = Config::load("kfac_mlp.yaml")?;
    assert_eq!(
        (
            kfac.algo,
            kfac.algo_config.optimizer,
            kfac.algo_config.lr_pi
        ),
        (Algo::Kfac, Optimizer::Kfac, 0.01)
    );
    assert!(!kfac.algo_config.is_karzmarz);
    assert_eq!(
        Config::load("diag_mlp.yaml")?.algo_config.post_grad,
        PostGradKind::L2Clip
    );
    assert_eq!(Config::load("kfac_mlp_shared.yaml")?.algo_config.lr, 0.001);
    assert_eq!(Config::load("fvp_mlp.yaml")?.algo_config.cg_steps, 10);
    Ok(())
}

#[test]
fn a_path_works_too() -> anyhow::Result<()> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/rat_mlp.yaml");
    assert_eq!(Config::load(path)?.algo, Algo::Rat);
    assert!(matches!(
        Config::load("no_such_config.yaml"),
        Err(ConfigError::Read { .. })
    ));
    Ok(())
}

#[test]
fn overrides_in_both_spellings() -> anyhow::Result<()> {
    let mut c = Config::default_rat();
    c.set("--env_name", "CartPole-v1")?;
    c.set("--cg-damping", "0.3")?;
    c.set("lr_pi", "0.01")?;
    c.set("pi_epochs", "2")?;
    c.set("is_karzmarz", "False")?;
    c.set("kaczmarz_mode", "exact")?;
    c.set("timesteps_per_proc", "50_000")?;
    c.set("algo", "diag")?;
    assert_eq!(c.env_config.env_name, "CartPole-v1");
    assert_eq!(c.algo_config.cg_damping, 0.3);
    assert_eq!(c.algo_config.lr_pi, 0.01);
    assert_eq!(c.algo_config.pi_epochs, 2);
    assert!(!c.algo_config.is_karzmarz);
    assert_eq!(c.algo_config.kaczmarz_mode, KaczmarzKind::Exact);
    assert_eq!(c.env_config.timesteps_per_proc, 50_000);
    assert_eq!(c.algo, Algo::Diag);
    Ok(())
}

#[test]
fn bad_input_names_the_problem() {
    let err = Config::from_yaml("algo: rat\nalgo_config:\n  lr_pie: 0.1\n", "test").unwrap_err();
    assert!(err.to_string().contains("lr_pie"), "{err}");
    let err = Config::from_yaml("algo: sgd\n", "test").unwrap_err();
    assert!(err.to_string().contains("sgd"), "{err}");
    let mut c = Config::default_rat();
    let err = c.set("--no_such_flag", "1").unwrap_err();
    assert!(
        matches!(err, ConfigError::UnknownKey { .. }) && err.to_string().contains("cg_damping"),
        "{err}"
    );
    assert!(c.set("pi_epochs", "many").is_err());
    assert!(c.set("sigma_type", "diagonal").is_err());
    assert_eq!(
        c,
        Config::default_rat(),
        "a failed override leaves the config unchanged"
    );
}

#[test]
fn the_snapshot_round_trips() -> anyhow::Result<()> {
    for name in ALL {
        let c = Config::load(name)?;
        assert_eq!(Config::from_yaml(&c.to_yaml()?, "snapshot")?, c);
    }
    Ok(())
}

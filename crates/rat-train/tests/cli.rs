//! The one command-line parser of every example: the same rules for the training examples
//! (`cli::parse`) and for `evaluate`/`suite` (`cli::items`).

use rat_train::cli::{Item, items, parse};

fn args(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

#[test]
fn both_forms_and_both_spellings_set_the_same_keys() -> anyhow::Result<()> {
    for line in [
        "--config rat_mlp.yaml --env_name Pendulum-v1 --lr_pi 0.01 --seed 4",
        "--config=rat_mlp.yaml --env-name=Pendulum-v1 --lr-pi 0.01 --seed=4",
    ] {
        let cli = parse(args(line))?.expect("not --help");
        assert_eq!(cli.config.env_config.env_name, "Pendulum-v1", "{line}");
        assert_eq!(cli.config.algo_config.lr_pi, 0.01, "{line}");
        assert_eq!(cli.options.seed, Some(4), "{line}");
    }
    Ok(())
}

#[test]
fn a_flag_is_never_taken_as_a_value() {
    let err = parse(args("--config rat_mlp.yaml --lr_pi --seed 1"))
        .expect_err("--lr_pi --seed must be an error")
        .to_string();
    assert!(err.contains("--lr_pi") && err.contains("--seed"), "{err}");
    // A negative number is a value, not a flag.
    let cli = parse(args("--config rat_mlp.yaml --device -1"));
    assert!(cli.is_ok(), "{cli:?}");
}

#[test]
fn help_anywhere_and_switches() -> anyhow::Result<()> {
    assert!(parse(args("--config rat_mlp.yaml --help"))?.is_none());
    assert!(parse(args("-h"))?.is_none());
    let cli = parse(args("--config rat_mlp.yaml --quiet --no-karzmarz"))?.expect("not --help");
    assert!(!cli.options.verbose);
    assert!(!cli.config.algo_config.is_karzmarz);
    Ok(())
}

#[test]
fn errors_name_the_flag() {
    for (line, needle) in [
        ("--config rat_mlp.yaml --seed", "--seed needs a value"),
        (
            "--config rat_mlp.yaml --seed x",
            "--seed: 'x' is not an integer",
        ),
        ("--config rat_mlp.yaml stray", "unexpected argument 'stray'"),
        ("--config rat_mlp.yaml -x 1", "'-x'"),
        ("--config rat_mlp.yaml --no_such_key 1", "no_such_key"),
        (
            "--config rat_mlp.yaml --dist tcp",
            "--dist tcp: not an engine",
        ),
    ] {
        let err = parse(args(line)).err().map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains(needle)),
            "{line}: {err:?}"
        );
    }
}

/// An engine the build lacks is one error line saying how to get it.
#[test]
fn a_missing_engine_says_how_to_build_it() {
    #[cfg(not(feature = "nccl"))]
    {
        let err = parse(args("--config rat_mlp.yaml --dist nccl")).err();
        let err = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            err.contains("--dist nccl: this build has no NCCL") && err.contains("build-cuda.sh"),
            "{err}"
        );
    }
    #[cfg(not(feature = "mpi"))]
    {
        let err = parse(args("--config rat_mlp.yaml --dist mpi")).err();
        let err = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("--features mpi"), "{err}");
    }
}

#[test]
fn items_split_a_command_line_the_same_way() -> anyhow::Result<()> {
    let got = items(
        args("logs/run/model.safetensors --episodes=3 --stochastic --device -1"),
        &["stochastic"],
    )?;
    assert_eq!(
        got,
        [
            Item::Positional("logs/run/model.safetensors".into()),
            Item::Flag("episodes".into(), "3".into()),
            Item::Switch("stochastic".into()),
            Item::Flag("device".into(), "-1".into()),
        ]
    );
    assert!(items(args("--episodes --seed 1"), &[]).is_err());
    assert_eq!(items(args("x --help"), &[])?[1], Item::Help);
    Ok(())
}

//! Evaluation videos: frames of every built-in family have their advertised size and change with
//! the state, a MinAtar frame maps back to its grid exactly, a GIF decodes to its frames, and
//! `evaluate_recorded` records an episode from a checkpoint end to end.

use rat_envs::render::{GRID_BACKGROUND, GRID_PALETTE};
use rat_envs::{Env, Frame};
use rat_train::io::video::{CAPTION_HEIGHT, gif_bytes, with_caption};
use rat_train::loops::evaluate::Recording;

/// A frame after `steps` steps of `action` from the state seed 4 resets to.
fn frame_after(env: &mut dyn Env, steps: usize, action: f32) -> rat_envs::Result<Frame> {
    rat_envs::testing::frame_after(env, 4, steps, action)
}

#[test]
fn classic_frames_have_their_size_and_follow_the_state() -> anyhow::Result<()> {
    for (id, size) in [
        ("CartPole-v1", (300, 200)),
        ("Pendulum-v1", (250, 250)),
        ("Acrobot-v1", (250, 250)),
        ("MountainCar-v0", (300, 200)),
        ("MountainCarContinuous-v0", (300, 200)),
    ] {
        let mut env = rat_envs::make_env(id)?;
        let a = frame_after(env.as_mut(), 0, 0.0)?;
        let b = frame_after(env.as_mut(), 8, 1.0)?;
        assert_eq!((a.width, a.height), size, "{id}");
        assert_eq!(a.rgb.len(), size.0 * size.1 * 3);
        assert!(
            a.rgb.chunks(3).any(|p| p != a.pixel(0, 0)),
            "{id}: constant frame"
        );
        assert_ne!(a, b, "{id}: the frame did not follow the state");
    }
    Ok(())
}

#[test]
fn a_minatar_frame_maps_back_to_its_grid() -> anyhow::Result<()> {
    let cell = rat_envs::minatar::CELL_PIXELS;
    for game in rat_envs::minatar::GAMES {
        let mut env = rat_envs::make_env(&format!("minatar:{game}"))?;
        let [h, w, c] = env.image_shape().expect("an image");
        let mut obs = vec![0.0; h * w * c];
        env.reset(Some(1), &mut obs)?;
        for t in 0..20 {
            env.step(&[(t % 3) as f32], &mut obs)?;
        }
        let frame = env.render()?;
        assert_eq!((frame.width, frame.height), (w * cell, h * cell));
        for row in 0..h {
            for col in 0..w {
                let cellv = &obs[(row * w + col) * c..(row * w + col + 1) * c];
                let want = (0..c)
                    .rev()
                    .find(|&k| cellv[k] > 0.5)
                    .map_or(GRID_BACKGROUND, |k| GRID_PALETTE[k]);
                // Every pixel of the cell, not just one.
                for y in row * cell..(row + 1) * cell {
                    for x in col * cell..(col + 1) * cell {
                        assert_eq!(frame.pixel(x, y), want, "{game} cell ({row}, {col})");
                    }
                }
            }
        }
    }
    Ok(())
}

#[test]
fn a_gif_decodes_to_its_frames_with_their_colours() -> anyhow::Result<()> {
    let mut env = rat_envs::make_env("minatar:breakout")?;
    let frames: Vec<Frame> = (0..5)
        .map(|k| {
            Ok(with_caption(
                &frame_after(env.as_mut(), k, 1.0)?,
                "return 1.5",
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    assert_eq!(frames[0].height, 160 + CAPTION_HEIGHT);
    let bytes = gif_bytes(&frames, 4)?;
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::RGBA);
    let mut decoder = options.read_info(bytes.as_slice())?;
    let mut decoded = Vec::new();
    while let Some(f) = decoder.read_next_frame()? {
        assert_eq!(
            (f.width as usize, f.height as usize),
            (160, 160 + CAPTION_HEIGHT)
        );
        assert_eq!(f.delay, 4);
        decoded.push(f.buffer.to_vec());
    }
    assert_eq!(decoded.len(), 5);
    for (f, rgba) in frames.iter().zip(&decoded) {
        let rgb: Vec<u8> = rgba.chunks(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
        assert_eq!(rgb, f.rgb, "a frame of few colours must keep them exactly");
    }
    Ok(())
}

/// A CartPole config of 64-step iterations and 8-unit networks (⌊`budget` / 64⌋ + 2 iterations),
/// and run options logging under `root` with `video_every`.
fn tiny_cartpole(
    root: &std::path::Path,
    budget: usize,
    video_every: usize,
) -> anyhow::Result<(rat_train::config::Config, rat_train::loops::RunOptions)> {
    let _ = std::fs::remove_dir_all(root);
    let mut c = rat_train::config::Config::load("rat_mlp.yaml")?;
    for (k, v) in [
        ("env_name", "CartPole-v1"),
        ("num_envs", "2"),
        ("nsteps", "32"),
        ("a_hidden_size", "8"),
        ("c_hidden_size", "8"),
    ] {
        c.set(k, v)?;
    }
    c.env_config.timesteps_per_proc = budget;
    let opts = rat_train::loops::RunOptions {
        seed: Some(1),
        log_root: root.to_path_buf(),
        verbose: false,
        video_every,
        device: rat_train::cli::test_device()?,
        ..rat_train::loops::RunOptions::default()
    };
    Ok((c, opts))
}

#[test]
fn evaluate_records_an_episode_from_a_checkpoint() -> anyhow::Result<()> {
    let root = std::env::temp_dir().join(format!("rat-test-video-{}", std::process::id()));
    let (c, opts) = tiny_cartpole(&root, 0, 0)?;
    let outcome = rat_train::loops::detach::run(&c, &opts)?;
    let (eval, videos) = rat_train::loops::evaluate::evaluate_recorded(
        &outcome.log_dir.join("model.safetensors"),
        2,
        0,
        rat_train::nets::ActionMode::Mode,
        &opts.device,
        Recording::every_frame(1),
    )?;
    assert_eq!(videos.len(), 1);
    // One frame per step but the last (the environment resets after it).
    assert_eq!(videos[0].len(), eval.lengths[0]);
    // CartPole runs at 50 frames a second: at 25, every other frame.
    let (eval2, halved) = rat_train::loops::evaluate::evaluate_recorded(
        &outcome.log_dir.join("model.safetensors"),
        2,
        0,
        rat_train::nets::ActionMode::Mode,
        &opts.device,
        Recording::at_fps(1, 25.0),
    )?;
    assert_eq!(eval2, eval);
    assert_eq!(halved[0].len(), eval.lengths[0].div_ceil(2));
    assert!(
        halved[0]
            .iter()
            .zip(videos[0].iter().step_by(2))
            .all(|(a, b)| a == b)
    );
    let path = root.join("agent.gif");
    rat_train::io::video::write_video(&path, &videos[0], 25)?;
    let mut decoder = gif::DecodeOptions::new().read_info(std::fs::File::open(&path)?)?;
    let mut n = 0;
    while decoder.read_next_frame()?.is_some() {
        n += 1;
    }
    assert_eq!(n, eval.lengths[0]);
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

/// An environment without a renderer.
struct Blind;

impl Env for Blind {
    fn id(&self) -> &str {
        "Blind"
    }
    fn observation_space(&self) -> rat_envs::Space {
        rat_envs::Space::unbounded(1)
    }
    fn action_space(&self) -> rat_envs::Space {
        rat_envs::Space::Discrete { n: 2 }
    }
    fn reset(&mut self, _seed: Option<u64>, obs: &mut [f64]) -> rat_envs::Result<()> {
        obs[0] = 0.0;
        Ok(())
    }
    fn step(&mut self, _action: &[f32], obs: &mut [f64]) -> rat_envs::Result<rat_envs::Step> {
        obs[0] = 0.0;
        Ok(rat_envs::Step {
            reward: 0.0,
            terminated: false,
            truncated: false,
        })
    }
}

#[test]
fn an_environment_that_cannot_draw_says_so() -> anyhow::Result<()> {
    let env = rat_envs::VecEnv::new(vec![Box::new(Blind)], 1, 0)?;
    let err = env.render(0).expect_err("Blind has no renderer");
    assert!(
        err.to_string().contains("Blind cannot render frames"),
        "{err}"
    );
    let err = env.render(3).expect_err("environment 3 of 1");
    assert!(err.to_string().contains("environment 3 of 1"), "{err}");
    Ok(())
}

#[test]
fn video_every_writes_gifs_that_round_trip_through_tensorboard() -> anyhow::Result<()> {
    let root = std::env::temp_dir().join(format!("rat-test-video-every-{}", std::process::id()));
    let (c, opts) = tiny_cartpole(&root, 64, 2)?;
    // ⌊64 / 64⌋ + 2 = 3 iterations: a video after the second only.
    let outcome = rat_train::loops::detach::run(&c, &opts)?;
    let gif = std::fs::read(outcome.log_dir.join("videos/iter_000002.gif"))?;
    assert!(!outcome.log_dir.join("videos/iter_000001.gif").exists());
    assert!(!outcome.log_dir.join("videos/iter_000003.gif").exists());
    let events = std::fs::read_dir(&outcome.log_dir)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("tfevents"))
        .expect("an event file");
    let images = rat_train::io::tensorboard::read_images(&events)?;
    assert_eq!(images.len(), 1);
    let image = &images[0];
    assert_eq!((image.tag.as_str(), image.step), ("eval/video", 1));
    assert_eq!((image.width, image.height), (300, 200 + CAPTION_HEIGHT));
    assert_eq!(image.encoded, gif);
    let mut decoder = gif::DecodeOptions::new().read_info(image.encoded.as_slice())?;
    assert!(decoder.read_next_frame()?.is_some());
    let scalars = rat_train::io::tensorboard::read_scalars(&events)?;
    assert!(
        scalars
            .iter()
            .any(|(t, s, _)| t == "eval/return" && *s == 1)
    );
    assert!(
        scalars
            .iter()
            .any(|(t, s, v)| t == "time/video" && *s == 1 && *v > 0.0)
    );
    // A resume cut back before step 1 drops the image with the scalars.
    rat_train::io::tensorboard::truncate(&events, 1)?;
    assert!(rat_train::io::tensorboard::read_images(&events)?.is_empty());
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

#[test]
fn video_every_refuses_an_environment_that_cannot_render() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("rat-test-video-refuse-{}", std::process::id()));
    let env = rat_envs::VecEnv::new(vec![Box::new(Blind)], 1, 0)?;
    let err = rat_train::loops::video::VideoRecorder::with_env(env, 0, 5, &dir)
        .err()
        .map(|e| e.to_string());
    let msg = err.expect("refused");
    assert!(
        msg.contains("--video_every 5") && msg.contains("Blind cannot render frames"),
        "{msg}"
    );
    assert!(
        !dir.join("videos").exists(),
        "a refused recorder made its folder"
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn downsampling_averages_each_block() {
    let mut f = Frame::filled(5, 2, [0, 0, 0]);
    // Left block: 0, 10, 20, 31 in red; right block all 200 in green; column 4 is dropped.
    for (k, (x, y)) in [(0, 0), (1, 0), (0, 1), (1, 1)].into_iter().enumerate() {
        f.fill_rect(x, y, 1, 1, [[0, 10, 20, 31][k], 0, 0]);
    }
    f.fill_rect(2, 0, 2, 2, [0, 200, 0]);
    f.fill_rect(4, 0, 1, 2, [255, 255, 255]);
    let d = rat_train::io::video::downsample(&f, 2);
    assert_eq!((d.width, d.height), (2, 1));
    // (0 + 10 + 20 + 31) / 4 = 15.25, rounded to 15.
    assert_eq!(d.pixel(0, 0), [15, 0, 0]);
    assert_eq!(d.pixel(1, 0), [0, 200, 0]);
    assert_eq!(rat_train::io::video::downsample(&f, 1), f);
}

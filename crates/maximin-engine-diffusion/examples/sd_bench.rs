//! Times image generation for a model directory.
//!
//! ```text
//! cargo run --release -p maximin-engine-diffusion --example sd_bench -- \
//!     MODEL_DIR [--width 512] [--height 512] [--steps N] [--guidance G] \
//!     [--images 3] [--threads 0] [--seed 1] [--prompt "..."] [--out out.png]
//! cargo run --release -p maximin-engine-diffusion --example sd_bench -- --tiny
//! ```
//!
//! `--tiny` writes the crate's tiny test model to a temporary directory (or
//! to MODEL_DIR when one is given, and keeps it there) and times that. `--random sd-turbo|sd-turbo-taesd|sd15` writes a full-size model of those
//! shapes with random weights into MODEL_DIR (unless it already holds one)
//! and times that: the arithmetic of the real model, without its weights. The first image is a warm-up and is reported apart; the
//! figures after it are the mean over the rest. Prints one `key=value` line
//! per figure, then a summary line.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use maximin_engine_diffusion::{encode_png, testing, DiffusionModel, ImageRequest};

fn main() {
    if let Err(e) = run() {
        eprintln!("sd_bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut dir: Option<PathBuf> = None;
    let (mut width, mut height, mut images, mut threads, mut seed) =
        (512u32, 512u32, 3usize, 0usize, 1u64);
    let mut steps: Option<u32> = None;
    let mut guidance: Option<f32> = None;
    let mut prompt = "a photo of an astronaut riding a horse on the moon".to_string();
    let mut out: Option<PathBuf> = None;
    let mut tiny = false;
    let mut random: Option<testing::RandomPreset> = None;
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--width" => {
                width = val("--width")?
                    .parse()
                    .map_err(|e| format!("--width: {e}"))?
            }
            "--height" => {
                height = val("--height")?
                    .parse()
                    .map_err(|e| format!("--height: {e}"))?
            }
            "--steps" => {
                steps = Some(
                    val("--steps")?
                        .parse()
                        .map_err(|e| format!("--steps: {e}"))?,
                )
            }
            "--guidance" => {
                guidance = Some(
                    val("--guidance")?
                        .parse()
                        .map_err(|e| format!("--guidance: {e}"))?,
                )
            }
            "--images" => {
                images = val("--images")?
                    .parse()
                    .map_err(|e| format!("--images: {e}"))?
            }
            "--threads" => {
                threads = val("--threads")?
                    .parse()
                    .map_err(|e| format!("--threads: {e}"))?
            }
            "--seed" => seed = val("--seed")?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--prompt" => prompt = val("--prompt")?,
            "--out" => out = Some(PathBuf::from(val("--out")?)),
            "--tiny" => tiny = true,
            "--random" => {
                random = Some(match val("--random")?.as_str() {
                    "sd-turbo" => testing::RandomPreset::SdTurbo,
                    "sd15" => testing::RandomPreset::Sd15,
                    "sd-turbo-taesd" => testing::RandomPreset::SdTurboTaesd,
                    other => {
                        return Err(format!(
                            "--random: {other} (sd-turbo, sd-turbo-taesd or sd15)"
                        ))
                    }
                })
            }
            "-h" | "--help" => {
                println!("usage: sd_bench MODEL_DIR|--tiny [--random sd-turbo|sd-turbo-taesd|sd15] [--width W] [--height H] [--steps N] [--guidance G] [--images N] [--threads N] [--seed S] [--prompt P] [--out FILE.png]");
                return Ok(());
            }
            other if other.starts_with("--") => return Err(format!("unknown option {other}")),
            other => dir = Some(PathBuf::from(other)),
        }
    }
    let _keep;
    let dir = if let (true, Some(dir)) = (tiny, &dir) {
        // Kept, for another program to load the same tiny weights.
        if !dir.join("model_index.json").is_file() {
            testing::write_tiny_model(dir, 1).map_err(|e| e.to_string())?;
        }
        dir.clone()
    } else if tiny {
        let tmp = std::env::temp_dir().join(format!("sd-bench-tiny-{}", std::process::id()));
        testing::write_tiny_model(&tmp, 1).map_err(|e| e.to_string())?;
        _keep = TmpDir(tmp.clone());
        tmp
    } else {
        let dir = dir.ok_or("give a model directory or --tiny")?;
        if let Some(preset) = random {
            if !dir.join("model_index.json").is_file() {
                let t = Instant::now();
                testing::write_random_model(&dir, 1, preset).map_err(|e| e.to_string())?;
                println!("wrote_random_s={:.1}", t.elapsed().as_secs_f64());
            }
        }
        dir
    };

    let t = Instant::now();
    let model = DiffusionModel::load(&dir, threads).map_err(|e| e.to_string())?;
    let load_s = t.elapsed().as_secs_f64();
    println!("model={}", model.description());
    println!("load_s={load_s:.3}");

    let steps = steps.unwrap_or(model.default_steps());
    let never = AtomicBool::new(false);
    let mut times = Vec::new();
    let mut last = None;
    for i in 0..images.max(1) {
        let mut req = ImageRequest::new(prompt.clone(), width, height, seed + i as u64);
        req.steps = Some(steps);
        req.guidance = guidance;
        let mut step_times = Vec::new();
        let mut t_step = Instant::now();
        let t = Instant::now();
        let img = model
            .generate(
                &req,
                &mut |_, _| {
                    step_times.push(t_step.elapsed().as_secs_f64());
                    t_step = Instant::now();
                },
                &never,
            )
            .map_err(|e| e.to_string())?;
        let total = t.elapsed().as_secs_f64();
        let per_step = step_times.iter().sum::<f64>() / step_times.len().max(1) as f64;
        println!("image{i}_s={total:.3} image{i}_step_s={per_step:.3}");
        if i > 0 || images <= 1 {
            times.push((total, per_step));
        }
        last = Some(img);
    }
    let n = times.len().max(1) as f64;
    let image_s = times.iter().map(|t| t.0).sum::<f64>() / n;
    let step_s = times.iter().map(|t| t.1).sum::<f64>() / n;
    println!(
        "summary: {width}x{height} steps={steps} guidance={} threads={threads} image_s={image_s:.3} step_s={step_s:.3} load_s={load_s:.3}",
        guidance.unwrap_or(model.default_guidance())
    );
    if let (Some(path), Some(img)) = (out, last) {
        std::fs::write(&path, encode_png(&img)).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

struct TmpDir(PathBuf);

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

//! The whole pipeline on the tiny model the crate writes: tokenizer, text
//! encoder, UNet steps, autoencoder, image codecs.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use maximin_engine_diffusion::{
    decode_image, encode_jpeg, encode_png, testing, DiffusionError, DiffusionModel, ImageRequest,
    RgbImage,
};

fn tiny_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        // Earlier runs' models, once their process is gone.
        if let Ok(entries) = std::fs::read_dir(tmp) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("tiny-sd-") {
                    if Path::new("/proc/self").exists() && !Path::new("/proc").join(pid).exists() {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let dir = tmp.join(format!("tiny-sd-{}", std::process::id()));
        testing::write_tiny_model(&dir, 1).expect("write tiny model");
        dir
    })
}

fn model() -> &'static DiffusionModel {
    static MODEL: OnceLock<DiffusionModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let t = Instant::now();
        let m = DiffusionModel::load(tiny_dir(), 2).expect("load tiny model");
        eprintln!("loaded in {:?}: {}", t.elapsed(), m.description());
        m
    })
}

fn gen(req: &ImageRequest) -> Result<RgbImage, DiffusionError> {
    let never = AtomicBool::new(false);
    let t = Instant::now();
    let r = model().generate(req, &mut |_, _| {}, &never);
    eprintln!(
        "{}x{} {:?} steps in {:?}",
        req.width,
        req.height,
        req.steps,
        t.elapsed()
    );
    r
}

fn req(prompt: &str, w: u32, h: u32, seed: u64) -> ImageRequest {
    let mut r = ImageRequest::new(prompt, w, h, seed);
    r.steps = Some(4);
    r
}

fn variance(img: &RgbImage) -> f64 {
    let n = img.pixels.len() as f64;
    let mean = img.pixels.iter().map(|&p| p as f64).sum::<f64>() / n;
    img.pixels
        .iter()
        .map(|&p| (p as f64 - mean).powi(2))
        .sum::<f64>()
        / n
}

fn distance_to(img: &RgbImage, rgb: [u8; 3]) -> f64 {
    img.pixels
        .chunks_exact(3)
        .map(|px| {
            (0..3)
                .map(|c| (px[c] as f64 - rgb[c] as f64).abs())
                .sum::<f64>()
                / 3.0
        })
        .sum::<f64>()
        / (img.pixels.len() / 3) as f64
}

#[test]
fn text_to_image_is_an_image_of_the_requested_size() {
    let img = gen(&req("a photo of a red cat", 64, 64, 42)).expect("generate");
    assert_eq!(
        (img.width, img.height, img.pixels.len()),
        (64, 64, 64 * 64 * 3)
    );
    let var = variance(&img);
    assert!(var > 100.0, "pixel variance {var}");
    let png = encode_png(&img);
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let back = decode_image(&png).expect("decode png");
    assert_eq!(back, img);
}

#[test]
fn non_square_sizes_work() {
    let img = gen(&req("a blue house", 128, 96, 3)).expect("generate");
    assert_eq!(
        (img.width, img.height, img.pixels.len()),
        (128, 96, 128 * 96 * 3)
    );
    assert!(variance(&img) > 100.0);
    let back = decode_image(&encode_png(&img)).expect("decode");
    assert_eq!((back.width, back.height), (128, 96));
    let jpeg = encode_jpeg(&img, 90);
    assert_eq!(&jpeg[..2], &[0xff, 0xd8]);
    let back = decode_image(&jpeg).expect("decode jpeg");
    assert_eq!((back.width, back.height), (128, 96));
}

#[test]
fn the_seed_decides_the_pixels() {
    let a = gen(&req("a dog on the sea", 64, 64, 7)).expect("a");
    let b = gen(&req("a dog on the sea", 64, 64, 7)).expect("b");
    assert_eq!(a.pixels, b.pixels);
    assert_eq!(encode_png(&a), encode_png(&b));
    let c = gen(&req("a dog on the sea", 64, 64, 8)).expect("c");
    assert_ne!(a.pixels, c.pixels);
    let d = gen(&req("a horse in the city", 64, 64, 7)).expect("d");
    assert_ne!(a.pixels, d.pixels, "the prompt changes the image");
}

#[test]
fn guidance_runs_the_unconditional_pass() {
    let plain = gen(&req("a green tree", 64, 64, 5)).expect("plain");
    let mut r = req("a green tree", 64, 64, 5);
    r.guidance = Some(7.5);
    r.negative_prompt = Some("dark".into());
    let guided = gen(&r).expect("guided");
    assert_eq!(guided.pixels.len(), plain.pixels.len());
    assert_ne!(guided.pixels, plain.pixels);
    r.negative_prompt = None;
    let other_negative = gen(&r).expect("guided without negative");
    assert_ne!(guided.pixels, other_negative.pixels);
}

#[test]
fn image_to_image_starts_from_the_init_image() {
    let colour = [200u8, 60, 40];
    let init = RgbImage {
        width: 64,
        height: 64,
        pixels: colour.repeat(64 * 64),
    };
    let t2i = gen(&req("a solid colour", 64, 64, 11)).expect("t2i");
    let mut r = req("a solid colour", 64, 64, 11);
    r.init_image = Some(init.clone());
    r.strength = 0.2;
    let i2i = gen(&r).expect("img2img");
    assert_eq!((i2i.width, i2i.height), (64, 64));
    let (d_i2i, d_t2i) = (distance_to(&i2i, colour), distance_to(&t2i, colour));
    eprintln!("distance to the init colour: img2img {d_i2i:.1}, text-to-image {d_t2i:.1}");
    assert!(d_i2i < d_t2i, "img2img {d_i2i} vs t2i {d_t2i}");
    assert!(d_i2i < 40.0, "img2img strays {d_i2i} from its init colour");
    // Same request, same pixels; an init image of another size is fitted.
    assert_eq!(gen(&r).expect("again").pixels, i2i.pixels);
    r.init_image = Some(RgbImage {
        width: 100,
        height: 50,
        pixels: colour.repeat(100 * 50),
    });
    let fitted = gen(&r).expect("fitted");
    assert_eq!((fitted.width, fitted.height), (64, 64));
    // A bad strength is refused.
    r.strength = 0.0;
    assert!(matches!(gen(&r), Err(DiffusionError::InvalidRequest(_))));
}

#[test]
fn progress_is_reported_per_step_and_cancel_stops() {
    let r = req("a cat", 64, 64, 1);
    let mut seen = Vec::new();
    let never = AtomicBool::new(false);
    model()
        .generate(&r, &mut |done, total| seen.push((done, total)), &never)
        .expect("generate");
    assert_eq!(seen, vec![(1, 4), (2, 4), (3, 4), (4, 4)]);

    let cancel = AtomicBool::new(true);
    let mut calls = 0;
    let res = model().generate(&r, &mut |_, _| calls += 1, &cancel);
    assert!(matches!(res, Err(DiffusionError::Cancelled)), "{res:?}");
    assert_eq!(calls, 0);

    let cancel = AtomicBool::new(false);
    let mut calls = 0;
    let res = model().generate(
        &r,
        &mut |done, _| {
            calls += 1;
            if done == 2 {
                cancel.store(true, Ordering::Relaxed);
            }
        },
        &cancel,
    );
    assert!(matches!(res, Err(DiffusionError::Cancelled)), "{res:?}");
    assert_eq!(calls, 2);
}

#[test]
fn bad_sizes_and_steps_are_refused() {
    for (w, h) in [(65, 64), (64, 60), (0, 64), (64, 4096)] {
        match gen(&req("x", w, h, 1)) {
            Err(DiffusionError::InvalidRequest(msg)) => {
                assert!(msg.contains("multiple of 8"), "{msg}")
            }
            other => panic!("{w}x{h}: {other:?}"),
        }
    }
    let mut r = req("x", 64, 64, 1);
    r.steps = Some(0);
    assert!(matches!(gen(&r), Err(DiffusionError::InvalidRequest(_))));
    r.steps = Some(4);
    r.guidance = Some(f32::NAN);
    assert!(matches!(gen(&r), Err(DiffusionError::InvalidRequest(_))));
    assert_eq!(model().size_multiple(), 8);
}

#[test]
fn defaults_come_from_the_model() {
    assert_eq!(model().default_steps(), 20);
    assert_eq!(model().default_guidance(), 7.5);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let dst = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).expect("copy");
        }
    }
}

#[test]
fn a_missing_file_is_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_dir(tiny_dir(), tmp.path());
    let weights = tmp.path().join("unet/diffusion_pytorch_model.safetensors");
    std::fs::remove_file(&weights).expect("rm");
    match DiffusionModel::load(tmp.path(), 1) {
        Err(DiffusionError::MissingFile(p)) => assert_eq!(p, weights),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("loaded without UNet weights"),
    }
    let err = DiffusionModel::load(tmp.path(), 1)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("unet/diffusion_pytorch_model.safetensors"),
        "{err}"
    );

    std::fs::remove_file(tmp.path().join("tokenizer/merges.txt")).expect("rm");
    std::fs::remove_file(tmp.path().join("scheduler/scheduler_config.json")).expect("rm");
    let err = DiffusionModel::load(tmp.path(), 1)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("scheduler_config.json"), "{err}");
    assert!(matches!(
        DiffusionModel::load(&tmp.path().join("nope"), 1),
        Err(DiffusionError::MissingFile(_))
    ));
}

#[test]
fn truncated_weights_are_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_dir(tiny_dir(), tmp.path());
    let weights = tmp.path().join("vae/diffusion_pytorch_model.safetensors");
    let bytes = std::fs::read(&weights).expect("read");
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).expect("write");
    match DiffusionModel::load(tmp.path(), 1) {
        Err(DiffusionError::BadWeights { path, .. }) => assert_eq!(path, weights),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("loaded truncated weights"),
    }
}

#[test]
fn hints_and_other_samplers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_dir(tiny_dir(), tmp.path());
    for (sampler, spacing, prediction) in [
        ("EulerDiscreteScheduler", "trailing", "epsilon"),
        ("DDIMScheduler", "leading", "v_prediction"),
        ("PNDMScheduler", "leading", "epsilon"),
    ] {
        let hints = serde_json::json!({
            "default_steps": 2,
            "default_guidance": 0.0,
            "scheduler": {"_class_name": sampler, "timestep_spacing": spacing, "prediction_type": prediction},
        });
        std::fs::write(tmp.path().join("maximin.json"), hints.to_string()).expect("write hints");
        let m = DiffusionModel::load(tmp.path(), 1).expect("load");
        assert_eq!(m.default_steps(), 2);
        assert_eq!(m.default_guidance(), 0.0);
        assert!(m.description().contains(sampler), "{}", m.description());
        let never = AtomicBool::new(false);
        let mut steps = 0;
        let img = m
            .generate(
                &ImageRequest::new("a sunset", 64, 64, 9),
                &mut |_, _| steps += 1,
                &never,
            )
            .expect("generate");
        assert_eq!(steps, 2);
        assert!(
            variance(&img) > 10.0,
            "{sampler}: variance {}",
            variance(&img)
        );
        let again = m
            .generate(
                &ImageRequest::new("a sunset", 64, 64, 9),
                &mut |_, _| {},
                &never,
            )
            .expect("generate");
        assert_eq!(img.pixels, again.pixels, "{sampler} is deterministic");
    }
}

#[test]
fn the_tiny_model_is_deterministic_from_its_seed() {
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    testing::write_tiny_model(a.path(), 5).expect("write");
    testing::write_tiny_model(b.path(), 5).expect("write");
    let file = "unet/diffusion_pytorch_model.safetensors";
    let read = |d: &Path| std::fs::read(d.join(file)).expect("read");
    assert_eq!(read(a.path()), read(b.path()));
    testing::write_tiny_model(b.path(), 6).expect("write");
    assert_ne!(read(a.path()), read(b.path()));
}

#[test]
fn garbage_is_not_an_image() {
    assert!(matches!(
        decode_image(b"not an image"),
        Err(DiffusionError::Image(_))
    ));
    let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;";
    assert!(decode_image(gif).is_err());
}

#[test]
fn an_sdxs_like_model_with_the_tiny_autoencoder() {
    let tmp = tempfile::tempdir().expect("tempdir");
    testing::write_tiny_sdxs_like_model(tmp.path(), 2).expect("write");
    let m = DiffusionModel::load(tmp.path(), 1).expect("load");
    assert_eq!(m.default_steps(), 1);
    assert_eq!(m.default_guidance(), 0.0);
    assert_eq!(m.size_multiple(), 8);
    assert!(
        m.description().contains("tiny autoencoder"),
        "{}",
        m.description()
    );
    let never = AtomicBool::new(false);
    let mut steps = Vec::new();
    let r = ImageRequest::new("a robot", 64, 48, 3);
    let img = m
        .generate(&r, &mut |d, t| steps.push((d, t)), &never)
        .expect("generate");
    assert_eq!(steps, vec![(1, 1)]);
    assert_eq!((img.width, img.height), (64, 48));
    assert!(variance(&img) > 10.0, "variance {}", variance(&img));
    assert_eq!(
        m.generate(&r, &mut |_, _| {}, &never)
            .expect("again")
            .pixels,
        img.pixels
    );
    // Image-to-image through the tiny encoder.
    let mut r = r;
    r.init_image = Some(img.clone());
    r.strength = 0.5;
    let i2i = m.generate(&r, &mut |_, _| {}, &never).expect("img2img");
    assert_eq!((i2i.width, i2i.height), (64, 48));
}

#[test]
fn sizes_over_the_attention_budget_are_refused() {
    let mut m = DiffusionModel::load(tiny_dir(), 1).expect("load");
    let small = m.attention_bytes(64, 64);
    let big = m.attention_bytes(512, 512);
    assert!(small > 0 && big > 100 * small, "{small} {big}");
    m.set_attention_budget(small);
    let never = AtomicBool::new(false);
    let mut r = req("a cat", 64, 64, 1);
    r.steps = Some(1);
    m.generate(&r, &mut |_, _| {}, &never)
        .expect("within the budget");
    let r = req("a cat", 128, 128, 1);
    match m.generate(&r, &mut |_, _| {}, &never) {
        Err(DiffusionError::InvalidRequest(msg)) => {
            assert!(msg.contains("attention memory"), "{msg}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn webp_and_alpha_images_decode_to_rgb() {
    use image::ImageEncoder;
    let img = RgbImage {
        width: 3,
        height: 2,
        pixels: (0..18).map(|i| (i * 14) as u8).collect(),
    };
    let mut webp = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut webp)
        .write_image(&img.pixels, 3, 2, image::ExtendedColorType::Rgb8)
        .expect("webp");
    assert_eq!(decode_image(&webp).expect("decode webp"), img);
    let rgba: Vec<u8> = img
        .pixels
        .chunks_exact(3)
        .flat_map(|p| [p[0], p[1], p[2], 7])
        .collect();
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&rgba, 3, 2, image::ExtendedColorType::Rgba8)
        .expect("png");
    assert_eq!(decode_image(&png).expect("decode rgba png"), img);
}

#[test]
fn fp16_weights_and_thread_counts_give_the_same_image() {
    use candle_core::{safetensors, DType};
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_dir(tiny_dir(), tmp.path());
    // The text encoder as diffusers' fp16 variant file only.
    let f32_file = tmp.path().join("text_encoder/model.safetensors");
    let tensors = safetensors::load(&f32_file, &candle_core::Device::Cpu).expect("load");
    let halves: std::collections::HashMap<String, candle_core::Tensor> = tensors
        .into_iter()
        .map(|(k, v)| (k, v.to_dtype(DType::F16).expect("f16")))
        .collect();
    safetensors::save(
        &halves,
        tmp.path().join("text_encoder/model.fp16.safetensors"),
    )
    .expect("save");
    std::fs::remove_file(&f32_file).expect("rm");

    let r = req("a portrait of a robot", 64, 64, 21);
    let never = AtomicBool::new(false);
    let one = DiffusionModel::load(tmp.path(), 1).expect("load fp16");
    let a = one.generate(&r, &mut |_, _| {}, &never).expect("1 thread");
    let two = DiffusionModel::load(tmp.path(), 2).expect("load fp16");
    let b = two.generate(&r, &mut |_, _| {}, &never).expect("2 threads");
    assert_eq!(
        a.pixels, b.pixels,
        "the thread count does not change the pixels"
    );
    // Half-precision text weights change the image only a little.
    let full = gen(&r).expect("f32");
    let diff = full
        .pixels
        .iter()
        .zip(&a.pixels)
        .map(|(&x, &y)| (x as f64 - y as f64).abs())
        .sum::<f64>()
        / full.pixels.len() as f64;
    assert!(diff < 8.0, "mean difference {diff}");
}

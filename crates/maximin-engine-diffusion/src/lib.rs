//! maximin's local image engine: Stable Diffusion text-to-image and
//! image-to-image on the CPU with candle.
//!
//! [`DiffusionModel::load`] reads a model directory in the diffusers layout
//! and builds every part from its own config file, so SD 1.x, SD 2.x,
//! SD-Turbo, SDXS and the tiny test model ([`testing::write_tiny_model`]) all
//! load through the same code:
//!
//! ```text
//! model_index.json
//! maximin.json                       optional hints: default_steps, default_guidance,
//!                                    scheduler (keys that override scheduler_config.json)
//! text_encoder/config.json           transformers CLIPTextConfig
//! text_encoder/model.safetensors     (or model.fp16.safetensors)
//! tokenizer/tokenizer.json           or vocab.json + merges.txt as CLIP ships them;
//!                                    special_tokens_map.json / tokenizer_config.json for pad_token
//! unet/config.json                   UNet2DConditionModel
//! unet/diffusion_pytorch_model.safetensors   (or .fp16.safetensors)
//! vae/config.json                    AutoencoderKL or AutoencoderTiny
//! vae/diffusion_pytorch_model.safetensors    (or .fp16.safetensors)
//! scheduler/scheduler_config.json    Euler, Euler ancestral or DDIM (other samplers run as DDIM)
//! ```
//!
//! Weights are read whole into memory (no memory map: the workspace forbids
//! unsafe code) and run in `f32`. The UNet is candle's
//! `UNet2DConditionModel`; the CLIP text encoder, the autoencoders and the
//! samplers are this crate's, because candle's draw noise from an unseedable
//! generator or only come in preset sizes. Every random number of a
//! generation comes from the request's seed, so the same request gives the
//! same pixels.
//!
//! Threads: candle's matrix products split into `RAYON_NUM_THREADS` pieces
//! (the process environment, read by candle on every product; physical cores
//! when unset) run on the rayon pool that is current, and this engine runs
//! every forward pass inside its own pool of `threads` threads. Element-wise
//! operations use candle's own global pool (`CANDLE_NUM_THREADS`).

// The real models' configs in the tests are long `json!` literals.
#![recursion_limit = "256"]

mod clip;
mod config;
mod image_io;
#[cfg(test)]
mod real_configs;
mod rng;
mod scheduler;
pub mod testing;
mod tokenizer;
mod vae;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::stable_diffusion::unet_2d::UNet2DConditionModel;
use serde_json::Value;

pub use image_io::{decode_image, encode_jpeg, encode_png};

use config::{read_json, Cfg};
use rng::Rng;
use scheduler::SchedulerConfig;

/// The largest width or height accepted.
pub const MAX_SIDE: u32 = 2048;
/// The most denoising steps accepted.
pub const MAX_STEPS: u32 = 500;
/// Default cap on the attention scratch memory one generation may need
/// (see [`DiffusionModel::attention_bytes`]): larger sizes are refused
/// rather than risking the process running out of memory.
pub const DEFAULT_ATTENTION_BUDGET: u64 = 8 << 30;

#[derive(Debug, thiserror::Error)]
pub enum DiffusionError {
    #[error("missing model file: {}", .0.display())]
    MissingFile(PathBuf),
    #[error("cannot read {}: {reason}", path.display())]
    Io { path: PathBuf, reason: String },
    #[error("bad config {}: {reason}", path.display())]
    BadConfig { path: PathBuf, reason: String },
    #[error("bad weights {}: {reason}", path.display())]
    BadWeights { path: PathBuf, reason: String },
    #[error("unsupported model: {0}")]
    Unsupported(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("bad image: {0}")]
    Image(String),
    #[error("cancelled")]
    Cancelled,
    #[error("inference failed: {0}")]
    Model(String),
}

impl From<candle_core::Error> for DiffusionError {
    fn from(e: candle_core::Error) -> Self {
        DiffusionError::Model(e.to_string())
    }
}

/// An 8-bit RGB image, rows top to bottom, `width * height * 3` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct ImageRequest {
    /// Cut to the text encoder's positions (77 tokens with the start and end
    /// tokens for SD models).
    pub prompt: String,
    /// The unconditional text of classifier-free guidance (empty when
    /// `None`); unused when the guidance is 1 or less.
    pub negative_prompt: Option<String>,
    /// Multiples of [`DiffusionModel::size_multiple`] (8 for SD models).
    pub width: u32,
    pub height: u32,
    /// Denoising steps run; the model's [`DiffusionModel::default_steps`] when `None`.
    pub steps: Option<u32>,
    /// Classifier-free guidance scale; above 1 runs the unconditional pass
    /// too. The model's [`DiffusionModel::default_guidance`] when `None`.
    pub guidance: Option<f32>,
    pub seed: u64,
    /// Image-to-image: the image to start from (fitted to width × height by
    /// scaling and cropping the centre).
    pub init_image: Option<RgbImage>,
    /// Image-to-image: how much to change the init image, in (0, 1]. The
    /// schedule is stretched to `steps / strength` steps and the last `steps`
    /// of them run, so the first starts at the strength's noise level.
    pub strength: f32,
}

impl ImageRequest {
    pub fn new(prompt: impl Into<String>, width: u32, height: u32, seed: u64) -> Self {
        ImageRequest {
            prompt: prompt.into(),
            negative_prompt: None,
            width,
            height,
            steps: None,
            guidance: None,
            seed,
            init_image: None,
            strength: 0.75,
        }
    }
}

/// A loaded Stable Diffusion model; load once, generate from any thread.
pub struct DiffusionModel {
    tokenizer: tokenizer::ClipTokenizer,
    text: clip::TextEncoder,
    unet: UNet2DConditionModel,
    latent_channels: usize,
    vae: vae::Vae,
    vae_cfg: config::VaeConfig,
    sched: SchedulerConfig,
    default_steps: u32,
    default_guidance: f32,
    /// The heads of each UNet level's attention (None: a level without).
    attention_levels: Vec<Option<usize>>,
    attention_budget: u64,
    pool: rayon::ThreadPool,
    device: Device,
    description: String,
}

fn guarded<T>(
    what: &str,
    f: impl FnOnce() -> Result<T, DiffusionError>,
) -> Result<T, DiffusionError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            Err(DiffusionError::Model(format!("{what}: {msg}")))
        }
    }
}

fn var_builder(path: &Path, device: &Device) -> Result<VarBuilder<'static>, DiffusionError> {
    let bytes = config::read_file(path)?;
    VarBuilder::from_buffered_safetensors(bytes, DType::F32, device).map_err(|e| {
        DiffusionError::BadWeights {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    })
}

fn weights_err(path: &Path) -> impl Fn(candle_core::Error) -> DiffusionError + '_ {
    move |e| DiffusionError::BadWeights {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn is_few_step(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("turbo") || n.contains("sdxs")
}

impl DiffusionModel {
    /// Loads a diffusers-layout model directory (see the crate docs) with a
    /// pool of `threads` threads (0: one per available core).
    pub fn load(dir: &Path, threads: usize) -> Result<Self, DiffusionError> {
        if !dir.is_dir() {
            return Err(DiffusionError::MissingFile(dir.to_path_buf()));
        }
        let index_path = dir.join("model_index.json");
        let index = read_json(&index_path)?;
        let idx = Cfg::new(&index_path, &index);
        let pipeline = idx
            .str_opt("_class_name")?
            .unwrap_or("StableDiffusionPipeline");
        if index.contains_key("text_encoder_2") || pipeline.contains("XL") {
            return Err(DiffusionError::Unsupported(format!(
                "{pipeline}: SDXL pipelines (two text encoders) are not supported"
            )));
        }
        if !pipeline.starts_with("StableDiffusion") {
            return Err(DiffusionError::Unsupported(format!(
                "{}: pipeline `{pipeline}`",
                index_path.display()
            )));
        }

        let hints_path = dir.join("maximin.json");
        let hints = if hints_path.is_file() {
            Some(read_json(&hints_path)?)
        } else {
            None
        };

        let te_dir = dir.join("text_encoder");
        let te_cfg_path = te_dir.join("config.json");
        let clip_cfg = config::clip_config(&te_cfg_path, &read_json(&te_cfg_path)?)?;
        let unet_dir = dir.join("unet");
        let unet_cfg_path = unet_dir.join("config.json");
        let unet_cfg = config::unet_config(&unet_cfg_path, &read_json(&unet_cfg_path)?)?;
        let vae_dir = dir.join("vae");
        let vae_cfg_path = vae_dir.join("config.json");
        let vae_cfg = config::vae_config(&vae_cfg_path, &read_json(&vae_cfg_path)?)?;
        let sched_path = dir.join("scheduler").join("scheduler_config.json");
        let mut sched_map = read_json(&sched_path)?;
        if let Some(Value::Object(over)) = hints.as_ref().and_then(|h| h.get("scheduler")) {
            for (k, v) in over {
                sched_map.insert(k.clone(), v.clone());
            }
        }
        let sched = scheduler::scheduler_config(&sched_path, &sched_map)?;

        if unet_cfg.candle.cross_attention_dim != clip_cfg.hidden_size {
            return Err(DiffusionError::Unsupported(format!(
                "the UNet attends to {}-wide text states but the text encoder gives {}",
                unet_cfg.candle.cross_attention_dim, clip_cfg.hidden_size
            )));
        }
        if unet_cfg.in_channels != vae_cfg.latent_channels
            || unet_cfg.out_channels != vae_cfg.latent_channels
        {
            return Err(DiffusionError::Unsupported(format!(
                "UNet in/out channels {}/{} for {} latent channels (inpainting UNets are not supported)",
                unet_cfg.in_channels, unet_cfg.out_channels, vae_cfg.latent_channels
            )));
        }

        let tokenizer = tokenizer::ClipTokenizer::load(&dir.join("tokenizer"))?;
        let te_weights = config::weights_file(&te_dir, "model")?;
        let unet_weights = config::weights_file(&unet_dir, "diffusion_pytorch_model")?;
        let vae_weights = config::weights_file(&vae_dir, "diffusion_pytorch_model")?;

        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("diffusion-{i}"))
            .build()
            .map_err(|e| DiffusionError::Model(format!("thread pool: {e}")))?;
        let device = Device::Cpu;

        let text = guarded("loading the text encoder", || {
            let vb = var_builder(&te_weights, &device)?;
            clip::TextEncoder::new(vb, &clip_cfg).map_err(weights_err(&te_weights))
        })?;
        let unet = guarded("loading the UNet", || {
            let vb = var_builder(&unet_weights, &device)?;
            UNet2DConditionModel::new(
                vb,
                unet_cfg.in_channels,
                unet_cfg.out_channels,
                false,
                unet_cfg.candle.clone(),
            )
            .map_err(weights_err(&unet_weights))
        })?;
        let vae = guarded("loading the autoencoder", || {
            let vb = var_builder(&vae_weights, &device)?;
            vae::Vae::new(vb, &vae_cfg).map_err(weights_err(&vae_weights))
        })?;

        let hint = |key: &str| {
            hints
                .as_ref()
                .and_then(|h| h.get(key))
                .and_then(Value::as_f64)
        };
        let name = idx
            .str_opt("_name_or_path")?
            .map(str::to_string)
            .or_else(|| {
                hints
                    .as_ref()
                    .and_then(|h| h.get("name"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| {
                dir.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
        let few_step = is_few_step(&name);
        let default_steps = match hint("default_steps") {
            Some(s) if s >= 1.0 && s <= MAX_STEPS as f64 => s as u32,
            Some(_) => return Err(config::bad(&hints_path, "default_steps out of range")),
            None if few_step => 1,
            None => 20,
        };
        let default_guidance = match hint("default_guidance") {
            Some(g) if g.is_finite() && g >= 0.0 => g as f32,
            Some(_) => return Err(config::bad(&hints_path, "default_guidance must be >= 0")),
            None if few_step => 0.0,
            None => 7.5,
        };
        let description =
            format!(
            "{name}: {pipeline}, UNet {:?}, text encoder {}x{}, {} autoencoder (/{}), {} sampler",
            unet_cfg.candle.blocks.iter().map(|b| b.out_channels).collect::<Vec<_>>(),
            clip_cfg.num_hidden_layers,
            clip_cfg.hidden_size,
            match vae_cfg.kind {
                config::VaeKind::Kl { .. } => "KL",
                config::VaeKind::Tiny { .. } => "tiny",
            },
            vae_cfg.downscale(),
            sched.class_name,
        );
        let attention_levels = unet_cfg
            .candle
            .blocks
            .iter()
            .map(|b| b.use_cross_attn.map(|_| b.attention_head_dim))
            .collect();
        Ok(DiffusionModel {
            attention_levels,
            attention_budget: DEFAULT_ATTENTION_BUDGET,
            tokenizer,
            text,
            unet,
            latent_channels: vae_cfg.latent_channels,
            vae,
            vae_cfg,
            sched,
            default_steps,
            default_guidance,
            pool,
            device,
            description,
        })
    }

    /// Steps run when a request names none: `maximin.json`'s
    /// `default_steps`, else 1 for SD-Turbo/SDXS (by name), else 20.
    pub fn default_steps(&self) -> u32 {
        self.default_steps
    }

    /// Guidance used when a request names none: `maximin.json`'s
    /// `default_guidance`, else 0 for SD-Turbo/SDXS (by name), else 7.5.
    pub fn default_guidance(&self) -> f32 {
        self.default_guidance
    }

    /// Width and height must be multiples of this (the autoencoder's downscale).
    pub fn size_multiple(&self) -> u32 {
        self.vae_cfg.downscale() as u32
    }

    /// The scratch memory the largest attention of a `width × height`
    /// generation needs: the UNet's self-attention at each level (heads ×
    /// tokens² scores and their softmax, f32) and the autoencoder's at the
    /// latent size. candle computes attention unsliced, so this grows with
    /// the fourth power of the side.
    pub fn attention_bytes(&self, width: u32, height: u32) -> u64 {
        let f = self.size_multiple() as u64;
        let (mut h, mut w) = ((height as u64).div_ceil(f), (width as u64).div_ceil(f));
        let vae = (h * w) * (h * w) * 4 * 2;
        let mut worst = vae;
        let last_heads = self.attention_levels.iter().rev().flatten().next().copied();
        for heads in &self.attention_levels {
            if let Some(heads) = heads {
                worst = worst.max(*heads as u64 * (h * w) * (h * w) * 4 * 2);
            }
            h = h.div_ceil(2);
            w = w.div_ceil(2);
        }
        // The mid block attends at the lowest level.
        if let Some(heads) = last_heads {
            worst = worst.max(heads as u64 * (h * w) * (h * w) * 4 * 2);
        }
        worst
    }

    /// Changes the cap on [`Self::attention_bytes`] (default
    /// [`DEFAULT_ATTENTION_BUDGET`]).
    pub fn set_attention_budget(&mut self, bytes: u64) {
        self.attention_budget = bytes;
    }

    /// One line on what was loaded (for logs).
    pub fn description(&self) -> &str {
        &self.description
    }

    fn validate(&self, req: &ImageRequest) -> Result<(u32, f32), DiffusionError> {
        let m = self.size_multiple();
        for (what, v) in [("width", req.width), ("height", req.height)] {
            if v == 0 || v % m != 0 || v > MAX_SIDE {
                return Err(DiffusionError::InvalidRequest(format!(
                    "{what} {v} must be a positive multiple of {m} up to {MAX_SIDE}"
                )));
            }
        }
        let need = self.attention_bytes(req.width, req.height);
        if need > self.attention_budget {
            return Err(DiffusionError::InvalidRequest(format!(
                "{}x{} needs {} MiB of attention memory with this model, over the {} MiB allowed",
                req.width,
                req.height,
                need >> 20,
                self.attention_budget >> 20
            )));
        }
        let steps = req.steps.unwrap_or(self.default_steps);
        if steps == 0 || steps > MAX_STEPS {
            return Err(DiffusionError::InvalidRequest(format!(
                "steps {steps} must be between 1 and {MAX_STEPS}"
            )));
        }
        let guidance = req.guidance.unwrap_or(self.default_guidance);
        if !guidance.is_finite() || !(0.0..=100.0).contains(&guidance) {
            return Err(DiffusionError::InvalidRequest(format!(
                "guidance {guidance} must be between 0 and 100"
            )));
        }
        if req.init_image.is_some() && !(req.strength > 0.0 && req.strength <= 1.0) {
            return Err(DiffusionError::InvalidRequest(format!(
                "strength {} must be in (0, 1]",
                req.strength
            )));
        }
        Ok((steps, guidance))
    }

    /// Text-to-image, or image-to-image when `req.init_image` is set.
    /// `progress(done, total)` is called after each denoising step; `cancel`
    /// is read before each step and before decoding.
    pub fn generate(
        &self,
        req: &ImageRequest,
        progress: &mut dyn FnMut(u32, u32),
        cancel: &AtomicBool,
    ) -> Result<RgbImage, DiffusionError> {
        let (steps, guidance) = self.validate(req)?;
        let init = match &req.init_image {
            Some(img) => Some(image_io::fit(img, req.width, req.height)?),
            None => None,
        };
        guarded("generating", || {
            self.run(req, steps, guidance, init.as_ref(), progress, cancel)
        })
    }

    fn embed(&self, texts: &[&str]) -> Result<Tensor, DiffusionError> {
        let len = self.text.max_positions;
        let mut ids = Vec::with_capacity(texts.len() * len);
        for t in texts {
            ids.extend(self.tokenizer.encode(t, len)?);
        }
        let ids = Tensor::from_vec(ids, (texts.len(), len), &self.device)?;
        Ok(self.pool.install(|| self.text.forward(&ids))?)
    }

    fn run(
        &self,
        req: &ImageRequest,
        steps: u32,
        guidance: f32,
        init: Option<&RgbImage>,
        progress: &mut dyn FnMut(u32, u32),
        cancel: &AtomicBool,
    ) -> Result<RgbImage, DiffusionError> {
        let check = || {
            if cancel.load(Ordering::Relaxed) {
                Err(DiffusionError::Cancelled)
            } else {
                Ok(())
            }
        };
        check()?;
        let f = self.size_multiple() as usize;
        let (lh, lw) = (req.height as usize / f, req.width as usize / f);
        let shape = (1, self.latent_channels, lh, lw);
        let n = self.latent_channels * lh * lw;
        let mut rng = Rng::new(req.seed);
        let mut init_rng = rng.fork(1);
        let mut step_rng = rng.fork(2);
        let mut vae_rng = rng.fork(3);

        let contexts = if guidance > 1.0 {
            let negative = req.negative_prompt.as_deref().unwrap_or("");
            let both = self.embed(&[negative, &req.prompt])?;
            vec![both.narrow(0, 0, 1)?, both.narrow(0, 1, 1)?]
        } else {
            vec![self.embed(&[&req.prompt])?]
        };

        let steps = steps as usize;
        let (run, mut x) = match init {
            None => {
                let ts = self.sched.timesteps(steps);
                let first = ts[0];
                let run = self.sched.run(ts, first);
                let x = run.initial(&init_rng.normals(n));
                (run, x)
            }
            Some(img) => {
                check()?;
                let x0 = self.encode_image(img, &mut vae_rng)?;
                let strength = req.strength as f64;
                let total = ((steps as f64 / strength).ceil() as usize).max(steps);
                let full = self.sched.timesteps(total);
                let first = full[0];
                let tail = full[full.len().saturating_sub(steps)..].to_vec();
                let run = self.sched.run(tail, first);
                let x = run.add_noise(&x0, &init_rng.normals(n), 0);
                (run, x)
            }
        };

        let total = run.timesteps.len() as u32;
        for i in 0..run.timesteps.len() {
            check()?;
            let t = run.timesteps[i];
            let scale = run.input_scale(i) as f32;
            let input: Vec<f32> = x.iter().map(|v| v * scale).collect();
            let input = Tensor::from_vec(input, shape, &self.device)?;
            // With guidance, the unconditional and conditional passes run one
            // after the other rather than as a batch of two: the same result,
            // half the attention scratch memory.
            let mut outs = Vec::with_capacity(contexts.len());
            for context in &contexts {
                check()?;
                let out = self
                    .pool
                    .install(|| self.unet.forward(&input, t, context))?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                outs.push(out);
            }
            let eps: Vec<f32> = match outs.as_slice() {
                [u, c] => u
                    .iter()
                    .zip(c)
                    .map(|(&u, &c)| u + guidance * (c - u))
                    .collect(),
                _ => outs.swap_remove(0),
            };
            x = run.step(i, &x, &eps, &mut || step_rng.normals(n));
            progress(i as u32 + 1, total);
        }
        check()?;
        if x.iter().any(|v| !v.is_finite()) {
            return Err(DiffusionError::Model("the latents are not finite".into()));
        }
        self.decode(x, shape)
    }

    fn encode_image(&self, img: &RgbImage, rng: &mut Rng) -> Result<Vec<f32>, DiffusionError> {
        let (w, h) = (img.width as usize, img.height as usize);
        let mut chw = vec![0f32; 3 * h * w];
        for (p, px) in img.pixels.chunks_exact(3).enumerate() {
            for c in 0..3 {
                chw[c * h * w + p] = px[c] as f32 / 127.5 - 1.0;
            }
        }
        let xs = Tensor::from_vec(chw, (1, 3, h, w), &self.device)?;
        let (mean, std) = self.pool.install(|| self.vae.encode(&xs))?;
        let mean = mean.flatten_all()?.to_vec1::<f32>()?;
        let sample: Vec<f32> = match std {
            Some(std) => {
                let std = std.flatten_all()?.to_vec1::<f32>()?;
                let noise = rng.normals(mean.len());
                mean.iter()
                    .zip(&std)
                    .zip(noise)
                    .map(|((&m, &s), n)| m + s * n)
                    .collect()
            }
            None => mean,
        };
        let (shift, scale) = (
            self.vae_cfg.shift_factor as f32,
            self.vae_cfg.scaling_factor as f32,
        );
        Ok(sample.into_iter().map(|v| (v - shift) * scale).collect())
    }

    fn decode(
        &self,
        x: Vec<f32>,
        shape: (usize, usize, usize, usize),
    ) -> Result<RgbImage, DiffusionError> {
        let (shift, scale) = (
            self.vae_cfg.shift_factor as f32,
            self.vae_cfg.scaling_factor as f32,
        );
        let x: Vec<f32> = x.into_iter().map(|v| v / scale + shift).collect();
        let x = Tensor::from_vec(x, shape, &self.device)?;
        let img = self.pool.install(|| self.vae.decode(&x))?;
        let (_, c, h, w) = img.dims4()?;
        if c != 3 {
            return Err(DiffusionError::Model(format!(
                "the decoder gave {c} channels"
            )));
        }
        let img = ((img.clamp(-1f32, 1f32)? + 1.0)? * 127.5)?
            .round()?
            .squeeze(0)?
            .permute((1, 2, 0))?
            .flatten_all()?
            .to_vec1::<f32>()?;
        if img.iter().any(|v| !v.is_finite()) {
            return Err(DiffusionError::Model(
                "the decoded image is not finite".into(),
            ));
        }
        Ok(RgbImage {
            width: w as u32,
            height: h as u32,
            pixels: img.into_iter().map(|v| v as u8).collect(),
        })
    }
}

#[cfg(test)]
mod send_sync {
    fn is_send_sync<T: Send + Sync>() {}
    #[test]
    fn model_is_send_and_sync() {
        is_send_sync::<super::DiffusionModel>();
    }
}

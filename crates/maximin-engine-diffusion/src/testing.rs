//! A tiny Stable Diffusion model of the real architecture, written to disk in
//! the real formats (diffusers layout, safetensors with diffusers' tensor
//! names, CLIP's vocab.json + merges.txt), for tests and benchmarks of the
//! whole pipeline without real weights.
//!
//! The weights are random (deterministic from the seed) but shaped: the
//! autoencoder is built around an identity path (colours go in through the
//! first three channels and come out of them, the residual branches are
//! damped, the final normalisations see fixed reference channels), so that
//! it roughly reconstructs colours and image-to-image can be checked to
//! start from its init image. The text encoder and UNet are plainly random.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Mutex;

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use candle_transformers::models::stable_diffusion::unet_2d::UNet2DConditionModel;
use serde_json::{json, Value};

use crate::config::{clip_config, unet_config, vae_config, Json};
use crate::rng::Rng;
use crate::{clip, vae};

const WORDS: &[&str] = &[
    "a",
    "an",
    "the",
    "of",
    "in",
    "on",
    "and",
    "with",
    "photo",
    "painting",
    "portrait",
    "landscape",
    "cat",
    "dog",
    "horse",
    "robot",
    "astronaut",
    "riding",
    "red",
    "green",
    "blue",
    "white",
    "black",
    "yellow",
    "orange",
    "purple",
    "sky",
    "sea",
    "tree",
    "house",
    "city",
    "night",
    "sunset",
    "mountain",
    "river",
    "bright",
    "dark",
    "beautiful",
    "detailed",
    "high",
    "quality",
    "colour",
    "color",
    "solid",
];

/// GPT-2/CLIP's byte → printable character table.
fn bytes_to_unicode() -> Vec<char> {
    let direct: Vec<u32> = (33..=126).chain(161..=172).chain(174..=255).collect();
    let mut table = vec!['\0'; 256];
    let mut extra = 0;
    for b in 0..256u32 {
        let c = if direct.contains(&b) {
            b
        } else {
            extra += 1;
            255 + extra
        };
        table[b as usize] = char::from_u32(c).unwrap_or('?');
    }
    table
}

/// A CLIP-style byte-level BPE vocabulary: the 256 byte symbols, the same
/// ending a word (`</w>`), merges spelling out a small word list, and the
/// two special tokens.
fn tiny_vocab() -> (Vec<String>, Vec<(String, String)>) {
    let table = bytes_to_unicode();
    let mut vocab: Vec<String> = table.iter().map(|c| c.to_string()).collect();
    vocab.extend(table.iter().map(|c| format!("{c}</w>")));
    let mut merges: Vec<(String, String)> = Vec::new();
    for word in WORDS {
        let chars: Vec<String> = word
            .bytes()
            .map(|b| table[b as usize].to_string())
            .collect();
        let mut syms = chars.clone();
        if let Some(last) = syms.last_mut() {
            last.push_str("</w>");
        }
        while syms.len() > 1 {
            let (a, b) = (syms[0].clone(), syms[1].clone());
            let merged = format!("{a}{b}");
            if !merges.iter().any(|(x, y)| *x == a && *y == b) {
                merges.push((a, b));
            }
            if !vocab.contains(&merged) {
                vocab.push(merged.clone());
            }
            syms.splice(0..2, [merged]);
        }
    }
    vocab.push(crate::tokenizer::BOS.to_string());
    vocab.push(crate::tokenizer::EOS.to_string());
    (vocab, merges)
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Which model a generator fills: the autoencoder gets its identity path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Text,
    Unet,
    Vae,
}

/// A `VarBuilder` backend that makes each tensor the first time a model asks
/// for it (so names and shapes are exactly what the loader reads) and keeps it
/// for saving.
struct Generator {
    seed: u64,
    part: Part,
    tensors: Mutex<HashMap<String, Tensor>>,
}

const REF: f32 = 2.0;
/// Where the identity path's final normalisations put the colour channels:
/// SiLU is nearly the identity around 6.
const SHIFT: f32 = 6.0;
/// silu(SHIFT), which the convolutions after those normalisations take off.
const SILU_SHIFT: f32 = 5.985_164;
/// The colour channels (the rest carry reference values or noise).
const RGB: usize = 3;

/// The reference value of channel `ch`: 0 for the fourth (a latent
/// channel), then +REF and -REF in turn, so they add up to nothing over the
/// widths used here (32 and 64).
fn reference(ch: usize) -> f32 {
    match ch {
        0..=3 => 0.0,
        c if c % 2 == 0 => REF,
        _ => -REF,
    }
}

impl Generator {
    fn new(seed: u64, part: Part) -> Self {
        Generator {
            seed,
            part,
            tensors: Mutex::new(HashMap::new()),
        }
    }

    /// `widened_from`: for a shortcut's bias, the width of its input.
    fn values(&self, name: &str, dims: &[usize], widened_from: Option<usize>) -> Vec<f32> {
        let mut rng = Rng::new(self.seed ^ fnv(name));
        let n: usize = dims.iter().product();
        let is_norm = name.contains("norm");
        if dims.len() == 1 {
            // Norm scales 1, norm shifts 0, other biases small.
            let mut v: Vec<f32> = if name.ends_with(".weight") {
                vec![1.0; n]
            } else if is_norm {
                vec![0.0; n]
            } else {
                (0..n).map(|_| (rng.uniform() as f32 - 0.5) * 0.1).collect()
            };
            if self.part == Part::Vae {
                self.vae_vector(name, &mut v, widened_from);
            }
            return v;
        }
        let fan_in: usize = dims[1..].iter().product();
        let std = 1.0 / (fan_in.max(1) as f64).sqrt();
        let mut v: Vec<f32> = (0..n).map(|_| (rng.normal() * std) as f32).collect();
        match self.part {
            Part::Vae => self.vae_matrix(name, dims, &mut v),
            // A damped output layer (as diffusion models often start): the
            // noise prediction stays small, so a few steps from an init image
            // stay near it.
            Part::Unet if name == "conv_out.weight" => v.iter_mut().for_each(|x| *x *= 0.1),
            _ => {}
        }
        v
    }

    fn vae_vector(&self, name: &str, v: &mut [f32], widened_from: Option<usize>) {
        let latent = 4;
        let width = v.len();
        if name.ends_with("conv_norm_out.weight") {
            // The normalisation divides by the reference channels' spread;
            // the colour channels get it back.
            let gain = REF * ((width - 4) as f32 / width as f32).sqrt();
            for (c, x) in v.iter_mut().enumerate() {
                *x = if c < RGB { gain } else { 1.0 };
            }
        } else if name.ends_with("conv_norm_out.bias") {
            for (c, x) in v.iter_mut().enumerate() {
                *x = if c < RGB { SHIFT } else { 0.0 };
            }
        } else if name == "encoder.conv_in.bias" || name == "decoder.conv_in.bias" {
            for (c, x) in v.iter_mut().enumerate() {
                *x = reference(c);
            }
        } else if name.ends_with("conv_shortcut.bias") {
            // Channels the shortcut widens into carry reference values too.
            let start = widened_from.unwrap_or(width);
            for (c, x) in v.iter_mut().enumerate() {
                *x = if c >= start { reference(c) } else { 0.0 };
            }
        } else if name == "encoder.conv_out.bias" {
            for (c, x) in v.iter_mut().enumerate() {
                *x = if c < RGB {
                    -SILU_SHIFT
                } else if c < latent {
                    0.0
                } else {
                    -12.0
                };
            }
        } else if name == "decoder.conv_out.bias" {
            v.fill(-SILU_SHIFT);
        } else if name == "quant_conv.bias" || name == "post_quant_conv.bias" {
            v.fill(0.0);
        } else if !name.contains("norm") {
            // No other bias moves the colour channels.
            for x in v.iter_mut().take(RGB) {
                *x = 0.0;
            }
        }
    }

    fn vae_matrix(&self, name: &str, dims: &[usize], v: &mut [f32]) {
        let (out, inp) = (dims[0], dims[1]);
        let k = if dims.len() == 4 {
            dims[2] * dims[3]
        } else {
            1
        };
        let center = if dims.len() == 4 {
            (dims[2] / 2) * dims[3] + dims[3] / 2
        } else {
            0
        };
        let row = inp * k;
        // An identity on the first `channels` channels: those rows exactly,
        // the other rows random and damped.
        let identity = |v: &mut [f32], channels: usize| {
            for x in v.iter_mut() {
                *x *= 0.1;
            }
            for c in 0..channels.min(out) {
                v[c * row..(c + 1) * row].fill(0.0);
                if c < inp {
                    v[c * row + c * k + center] = 1.0;
                }
            }
        };
        if name == "quant_conv.weight" || name == "post_quant_conv.weight" {
            v.fill(0.0);
            identity(v, out);
        } else if name == "encoder.conv_out.weight" {
            identity(v, RGB);
            // The log-variance rows read nothing: a narrow posterior.
            v[4 * row..].fill(0.0);
        } else if name.ends_with("conv_in.weight") || name == "decoder.conv_out.weight" {
            identity(v, RGB);
        } else if name.ends_with("conv_shortcut.weight")
            || name.contains("downsamplers")
            || name.contains("upsamplers")
        {
            identity(v, out);
        } else if name.ends_with("conv2.weight") || name.contains("to_out") {
            // Residual branches: damped, and silent on the colour channels.
            for x in v.iter_mut() {
                *x *= 0.1;
            }
            v[..RGB.min(out) * row].fill(0.0);
        }
    }

    fn into_tensors(self) -> HashMap<String, Tensor> {
        match self.tensors.into_inner() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

impl SimpleBackend for Generator {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut map = self
            .tensors
            .lock()
            .map_err(|_| candle_core::Error::Msg("generator lock".into()))?;
        if let Some(t) = map.get(name) {
            if t.shape() != &s {
                candle_core::bail!("{name} asked for as {s:?} and as {:?}", t.shape());
            }
            return t.to_dtype(dtype);
        }
        let widened_from = name
            .strip_suffix(".bias")
            .filter(|p| p.ends_with("conv_shortcut"))
            .and_then(|p| map.get(&format!("{p}.weight")))
            .and_then(|w| w.dims().get(1).copied());
        let t = Tensor::from_vec(self.values(name, s.dims(), widened_from), s, dev)?;
        map.insert(name.to_string(), t.clone());
        t.to_dtype(dtype)
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let map = self
            .tensors
            .lock()
            .map_err(|_| candle_core::Error::Msg("generator lock".into()))?;
        match map.get(name) {
            Some(t) => t.to_dtype(dtype),
            None => candle_core::bail!("{name} was not made"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        // Attention blocks look for diffusers' current names.
        name.ends_with("to_q.weight")
            || self
                .tensors
                .lock()
                .map(|m| m.contains_key(name))
                .unwrap_or(false)
    }
}

fn to_io(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn write_json(path: &Path, v: &Value) -> io::Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(to_io)?;
    std::fs::write(path, text + "\n")
}

fn as_map(v: &Value) -> io::Result<Json> {
    match v {
        Value::Object(m) => Ok(m.clone()),
        _ => Err(to_io("not an object")),
    }
}

fn save(gen: Generator, path: &Path) -> io::Result<()> {
    let tensors = gen.into_tensors();
    candle_core::safetensors::save(&tensors, path).map_err(to_io)
}

/// Writes a complete tiny model into `dir` (created if needed): CLIP text
/// encoder (hidden 32, 2 layers, 2 heads, 77 positions), UNet (channels
/// [32, 64], cross-attention then plain blocks, 2 heads), KL autoencoder
/// (channels [32, 32, 64, 64]: the real /8 downscale), a CLIP-style BPE
/// tokenizer, an Euler ancestral scheduler and `model_index.json`.
/// The same seed writes the same bytes.
pub fn write_tiny_model(dir: &Path, seed: u64) -> io::Result<()> {
    for sub in ["text_encoder", "tokenizer", "unet", "vae", "scheduler"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let (vocab, merges) = tiny_vocab();

    // Tokenizer, as CLIP ships it.
    let vocab_json: serde_json::Map<String, Value> = vocab
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), Value::from(i as u64)))
        .collect();
    write_json(
        &dir.join("tokenizer/vocab.json"),
        &Value::Object(vocab_json),
    )?;
    let mut merges_txt = String::from("#version: 0.2\n");
    for (a, b) in &merges {
        merges_txt.push_str(&format!("{a} {b}\n"));
    }
    std::fs::write(dir.join("tokenizer/merges.txt"), merges_txt)?;
    write_json(
        &dir.join("tokenizer/special_tokens_map.json"),
        &json!({
            "bos_token": crate::tokenizer::BOS,
            "eos_token": crate::tokenizer::EOS,
            "pad_token": crate::tokenizer::EOS,
            "unk_token": crate::tokenizer::EOS,
        }),
    )?;
    write_json(
        &dir.join("tokenizer/tokenizer_config.json"),
        &json!({"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": true}),
    )?;

    let text_cfg = json!({
        "_name_or_path": "maximin-tiny-sd",
        "architectures": ["CLIPTextModel"],
        "model_type": "clip_text_model",
        "vocab_size": vocab.len(),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 77,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
        "projection_dim": 32,
        "bos_token_id": vocab.len() - 2,
        "eos_token_id": vocab.len() - 1,
        "pad_token_id": 1,
        "torch_dtype": "float32",
    });
    let unet_cfg = json!({
        "_class_name": "UNet2DConditionModel",
        "_diffusers_version": "0.27.0",
        "act_fn": "silu",
        "attention_head_dim": 2,
        "block_out_channels": [32, 64],
        "center_input_sample": false,
        "cross_attention_dim": 32,
        "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
        "downsample_padding": 1,
        "flip_sin_to_cos": true,
        "freq_shift": 0,
        "in_channels": 4,
        "layers_per_block": 1,
        "mid_block_scale_factor": 1,
        "mid_block_type": "UNetMidBlock2DCrossAttn",
        "norm_eps": 1e-5,
        "norm_num_groups": 8,
        "out_channels": 4,
        "sample_size": 8,
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
        "use_linear_projection": false,
        "addition_embed_type": null,
        "class_embed_type": null,
        "resnet_time_scale_shift": "default",
    });
    let vae_cfg = json!({
        "_class_name": "AutoencoderKL",
        "_diffusers_version": "0.27.0",
        "act_fn": "silu",
        "block_out_channels": [32, 32, 64, 64],
        "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
        "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
        "in_channels": 3,
        "out_channels": 3,
        "latent_channels": 4,
        "layers_per_block": 1,
        "norm_num_groups": 1,
        "sample_size": 64,
        "scaling_factor": 2.0,
    });
    let sched_cfg = json!({
        "_class_name": "EulerAncestralDiscreteScheduler",
        "_diffusers_version": "0.27.0",
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "num_train_timesteps": 1000,
        "prediction_type": "epsilon",
        "steps_offset": 1,
        "timestep_spacing": "leading",
    });
    let index = json!({
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": "0.27.0",
        "_name_or_path": "maximin-tiny-sd",
        "feature_extractor": [null, null],
        "requires_safety_checker": false,
        "safety_checker": [null, null],
        "scheduler": ["diffusers", "EulerAncestralDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    });
    let te_cfg_path = dir.join("text_encoder/config.json");
    let unet_cfg_path = dir.join("unet/config.json");
    let vae_cfg_path = dir.join("vae/config.json");
    write_json(&te_cfg_path, &text_cfg)?;
    write_json(&unet_cfg_path, &unet_cfg)?;
    write_json(&vae_cfg_path, &vae_cfg)?;
    write_json(&dir.join("scheduler/scheduler_config.json"), &sched_cfg)?;
    write_json(&dir.join("model_index.json"), &index)?;

    write_weights(dir, seed, &text_cfg, &unet_cfg, &vae_cfg, Part::Vae)
}

/// Builds each model through the loader's own code on a generating backend
/// and saves what it asked for. `vae_part`: `Part::Vae` for the identity path
/// (tiny widths only), `Part::Unet` for plain random weights.
fn write_weights(
    dir: &Path,
    seed: u64,
    text_cfg: &Value,
    unet_cfg: &Value,
    vae_cfg: &Value,
    vae_part: Part,
) -> io::Result<()> {
    let dev = Device::Cpu;
    let te_cfg_path = dir.join("text_encoder/config.json");
    let clip = clip_config(&te_cfg_path, &as_map(text_cfg)?).map_err(to_io)?;
    let gen = Generator::new(seed ^ 1, Part::Text);
    {
        let vb = VarBuilder::from_backend(Box::new(&gen), DType::F32, dev.clone());
        clip::TextEncoder::new(vb, &clip).map_err(to_io)?;
    }
    save(gen, &dir.join("text_encoder/model.safetensors"))?;

    let unet_cfg_path = dir.join("unet/config.json");
    let unet = unet_config(&unet_cfg_path, &as_map(unet_cfg)?).map_err(to_io)?;
    let gen = Generator::new(seed ^ 2, Part::Unet);
    {
        let vb = VarBuilder::from_backend(Box::new(&gen), DType::F32, dev.clone());
        UNet2DConditionModel::new(
            vb,
            unet.in_channels,
            unet.out_channels,
            false,
            unet.candle.clone(),
        )
        .map_err(to_io)?;
    }
    save(gen, &dir.join("unet/diffusion_pytorch_model.safetensors"))?;

    let vae_cfg_path = dir.join("vae/config.json");
    let vae = vae_config(&vae_cfg_path, &as_map(vae_cfg)?).map_err(to_io)?;
    let gen = Generator::new(seed ^ 3, vae_part);
    {
        let vb = VarBuilder::from_backend(Box::new(&gen), DType::F32, dev.clone());
        vae::Vae::new(vb, &vae).map_err(to_io)?;
    }
    save(gen, &dir.join("vae/diffusion_pytorch_model.safetensors"))
}

/// Full-size models with random weights, for timing: the real shapes, so
/// the arithmetic (and its cost) is the real one; the images are noise.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RandomPreset {
    /// SD 2.1 shapes (OpenCLIP-H text encoder, 865M UNet), Euler trailing,
    /// named "turbo": one step, no guidance by default.
    SdTurbo,
    /// SD 1.5 shapes (CLIP-L text encoder, 860M UNet), DDIM-run PNDM config.
    Sd15,
    /// `SdTurbo` with TAESD's `AutoencoderTiny` (64 channels) for the
    /// autoencoder, as an operator may swap in for a faster decode.
    SdTurboTaesd,
}

/// Writes a full-size model of `preset`'s shapes with random weights
/// (several GB; meant for release builds), with the tiny model's tokenizer.
#[doc(hidden)]
pub fn write_random_model(dir: &Path, seed: u64, preset: RandomPreset) -> io::Result<()> {
    write_tiny_model(dir, seed)?;
    let sd2 = preset != RandomPreset::Sd15;
    let text_cfg = json!({
        "architectures": ["CLIPTextModel"],
        "hidden_act": if sd2 { "gelu" } else { "quick_gelu" },
        "hidden_size": if sd2 { 1024 } else { 768 },
        "intermediate_size": if sd2 { 4096 } else { 3072 },
        "layer_norm_eps": 1e-5,
        "max_position_embeddings": 77,
        "num_attention_heads": if sd2 { 16 } else { 12 },
        "num_hidden_layers": if sd2 { 23 } else { 12 },
        "projection_dim": if sd2 { 512 } else { 768 },
        "vocab_size": 49408,
    });
    let unet_cfg = json!({
        "_class_name": "UNet2DConditionModel",
        "act_fn": "silu",
        "attention_head_dim": if sd2 { json!([5, 10, 20, 20]) } else { json!(8) },
        "block_out_channels": [320, 640, 1280, 1280],
        "cross_attention_dim": if sd2 { 1024 } else { 768 },
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        "in_channels": 4,
        "out_channels": 4,
        "layers_per_block": 2,
        "norm_num_groups": 32,
        "sample_size": 64,
        "use_linear_projection": sd2,
    });
    let vae_cfg = json!({
        "_class_name": "AutoencoderKL",
        "block_out_channels": [128, 256, 512, 512],
        "in_channels": 3,
        "out_channels": 3,
        "latent_channels": 4,
        "layers_per_block": 2,
        "norm_num_groups": 32,
        "scaling_factor": 0.18215,
    });
    let vae_cfg = if preset == RandomPreset::SdTurboTaesd {
        json!({
            "_class_name": "AutoencoderTiny",
            "act_fn": "relu",
            "decoder_block_out_channels": [64, 64, 64, 64],
            "encoder_block_out_channels": [64, 64, 64, 64],
            "in_channels": 3,
            "out_channels": 3,
            "latent_channels": 4,
            "num_decoder_blocks": [3, 3, 3, 1],
            "num_encoder_blocks": [1, 3, 3, 3],
            "scaling_factor": 1.0,
            "upsampling_scaling_factor": 2,
        })
    } else {
        vae_cfg
    };
    let sched_cfg = if sd2 {
        json!({"_class_name": "EulerDiscreteScheduler", "timestep_spacing": "trailing",
               "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "steps_offset": 1})
    } else {
        json!({"_class_name": "PNDMScheduler", "skip_prk_steps": true, "set_alpha_to_one": false,
               "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "steps_offset": 1})
    };
    write_json(&dir.join("text_encoder/config.json"), &text_cfg)?;
    write_json(&dir.join("unet/config.json"), &unet_cfg)?;
    write_json(&dir.join("vae/config.json"), &vae_cfg)?;
    write_json(&dir.join("scheduler/scheduler_config.json"), &sched_cfg)?;
    let index_path = dir.join("model_index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path)?).map_err(to_io)?;
    index["_name_or_path"] = json!(if sd2 {
        "random-sd-turbo-shaped"
    } else {
        "random-sd15-shaped"
    });
    write_json(&index_path, &index)?;
    write_weights(dir, seed, &text_cfg, &unet_cfg, &vae_cfg, Part::Unet)
}

/// [`write_tiny_model`] with the autoencoder swapped for a tiny
/// `AutoencoderTiny` (TAESD's architecture, as SDXS ships it; random
/// weights) and named like an SDXS model (one step, no guidance by default).
#[doc(hidden)]
pub fn write_tiny_sdxs_like_model(dir: &Path, seed: u64) -> io::Result<()> {
    write_tiny_model(dir, seed)?;
    let vae_cfg = json!({
        "_class_name": "AutoencoderTiny",
        "_diffusers_version": "0.27.0",
        "act_fn": "relu",
        "decoder_block_out_channels": [16, 16, 16, 16],
        "encoder_block_out_channels": [16, 16, 16, 16],
        "force_upcast": false,
        "in_channels": 3,
        "latent_channels": 4,
        "latent_magnitude": 3,
        "latent_shift": 0.5,
        "num_decoder_blocks": [1, 1, 1, 1],
        "num_encoder_blocks": [1, 1, 1, 1],
        "out_channels": 3,
        "scaling_factor": 1.0,
        "upsampling_scaling_factor": 2,
    });
    let vae_cfg_path = dir.join("vae/config.json");
    write_json(&vae_cfg_path, &vae_cfg)?;
    let vae = vae_config(&vae_cfg_path, &as_map(&vae_cfg)?).map_err(to_io)?;
    let gen = Generator::new(seed ^ 4, Part::Unet);
    {
        let vb = VarBuilder::from_backend(Box::new(&gen), DType::F32, Device::Cpu);
        vae::Vae::new(vb, &vae).map_err(to_io)?;
    }
    save(gen, &dir.join("vae/diffusion_pytorch_model.safetensors"))?;
    let index_path = dir.join("model_index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path)?).map_err(to_io)?;
    index["_name_or_path"] = json!("maximin-tiny-sdxs");
    index["vae"] = json!(["diffusers", "AutoencoderTiny"]);
    write_json(&index_path, &index)?;
    let sched_path = dir.join("scheduler/scheduler_config.json");
    let mut sched: Value = serde_json::from_slice(&std::fs::read(&sched_path)?).map_err(to_io)?;
    sched["_class_name"] = json!("DDPMScheduler");
    sched["timestep_spacing"] = json!("trailing");
    write_json(&sched_path, &sched)
}

impl SimpleBackend for &Generator {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        (**self).get(s, name, h, dtype, dev)
    }
    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        (**self).get_unchecked(name, dtype, dev)
    }
    fn contains_tensor(&self, name: &str) -> bool {
        (**self).contains_tensor(name)
    }
}

//! The diffusers/transformers JSON configs, read and mapped onto what the
//! engine builds: candle's `UNet2DConditionModelConfig`, this crate's CLIP,
//! VAE and scheduler configs. Keys that change the computation and are not
//! supported are refused here with the key's name, rather than ignored.

use std::path::{Path, PathBuf};

use candle_transformers::models::stable_diffusion::unet_2d::{
    BlockConfig, UNet2DConditionModelConfig,
};
use serde_json::{Map, Value};

use crate::DiffusionError;

pub(crate) type Json = Map<String, Value>;

/// Reads a JSON object; a missing file is `MissingFile` naming it.
pub(crate) fn read_json(path: &Path) -> Result<Json, DiffusionError> {
    let bytes = read_file(path)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(bad(path, "not a JSON object")),
        Err(e) => Err(bad(path, &e.to_string())),
    }
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, DiffusionError> {
    std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            DiffusionError::MissingFile(path.to_path_buf())
        } else {
            DiffusionError::Io {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
        }
    })
}

pub(crate) fn bad(path: &Path, reason: &str) -> DiffusionError {
    DiffusionError::BadConfig {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Typed access to one config file's keys, errors naming the file and key.
pub(crate) struct Cfg<'a> {
    pub(crate) path: &'a Path,
    pub(crate) map: &'a Json,
}

impl<'a> Cfg<'a> {
    pub(crate) fn new(path: &'a Path, map: &'a Json) -> Self {
        Cfg { path, map }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    fn err(&self, key: &str, want: &str) -> DiffusionError {
        bad(self.path, &format!("`{key}` must be {want}"))
    }

    pub(crate) fn usize_or(&self, key: &str, default: usize) -> Result<usize, DiffusionError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| self.err(key, "a non-negative integer")),
        }
    }

    pub(crate) fn usize_req(&self, key: &str) -> Result<usize, DiffusionError> {
        match self.get(key) {
            None => Err(bad(self.path, &format!("`{key}` is missing"))),
            Some(v) => v
                .as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| self.err(key, "a non-negative integer")),
        }
    }

    pub(crate) fn f64_or(&self, key: &str, default: f64) -> Result<f64, DiffusionError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| self.err(key, "a number")),
        }
    }

    pub(crate) fn f64_opt(&self, key: &str) -> Result<Option<f64>, DiffusionError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.err(key, "a number")),
        }
    }

    pub(crate) fn bool_or(&self, key: &str, default: bool) -> Result<bool, DiffusionError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| self.err(key, "true or false")),
        }
    }

    pub(crate) fn str_opt(&self, key: &str) -> Result<Option<&'a str>, DiffusionError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.err(key, "a string")),
        }
    }

    pub(crate) fn usize_list_req(&self, key: &str) -> Result<Vec<usize>, DiffusionError> {
        let want = "a list of non-negative integers";
        match self.get(key) {
            None => Err(bad(self.path, &format!("`{key}` is missing"))),
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .map(|v| {
                    v.as_u64()
                        .map(|n| n as usize)
                        .ok_or_else(|| self.err(key, want))
                })
                .collect(),
            Some(_) => Err(self.err(key, want)),
        }
    }

    /// An integer for every block, or one integer for all of them.
    pub(crate) fn per_block(
        &self,
        key: &str,
        n: usize,
        default: Option<usize>,
    ) -> Result<Vec<usize>, DiffusionError> {
        match self.get(key) {
            None => match default {
                Some(d) => Ok(vec![d; n]),
                None => Err(bad(self.path, &format!("`{key}` is missing"))),
            },
            Some(Value::Array(items)) => {
                if items.len() != n {
                    return Err(bad(
                        self.path,
                        &format!("`{key}` has {} entries for {n} blocks", items.len()),
                    ));
                }
                items
                    .iter()
                    .map(|v| {
                        v.as_u64()
                            .map(|n| n as usize)
                            .ok_or_else(|| self.err(key, "an integer or a list of integers"))
                    })
                    .collect()
            }
            Some(v) => v
                .as_u64()
                .map(|x| vec![x as usize; n])
                .ok_or_else(|| self.err(key, "an integer or a list of integers")),
        }
    }

    pub(crate) fn str_list_req(&self, key: &str) -> Result<Vec<String>, DiffusionError> {
        match self.get(key) {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| self.err(key, "a list of strings"))
                })
                .collect(),
            None => Err(bad(self.path, &format!("`{key}` is missing"))),
            Some(_) => Err(self.err(key, "a list of strings")),
        }
    }

    /// Refuses a key whose value is set to anything but the given defaults.
    pub(crate) fn only(&self, key: &str, allowed: &[&str]) -> Result<(), DiffusionError> {
        match self.get(key) {
            None => Ok(()),
            Some(Value::String(s)) if allowed.contains(&s.as_str()) => Ok(()),
            Some(Value::Bool(false)) if allowed.contains(&"false") => Ok(()),
            Some(v) => Err(DiffusionError::Unsupported(format!(
                "{}: `{key}` = {v} is not supported",
                self.path.display()
            ))),
        }
    }
}

// ---------------------------------------------------------------- text encoder

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activation {
    QuickGelu,
    Gelu,
    GeluTanh,
}

#[derive(Debug, Clone)]
pub(crate) struct ClipConfig {
    pub(crate) vocab_size: usize,
    pub(crate) hidden_size: usize,
    pub(crate) intermediate_size: usize,
    pub(crate) num_hidden_layers: usize,
    pub(crate) num_attention_heads: usize,
    pub(crate) max_position_embeddings: usize,
    pub(crate) hidden_act: Activation,
    pub(crate) layer_norm_eps: f64,
}

pub(crate) fn clip_config(path: &Path, map: &Json) -> Result<ClipConfig, DiffusionError> {
    let c = Cfg::new(path, map);
    // A full CLIPConfig nests the text model's settings.
    if let Some(Value::Object(text)) = map.get("text_config") {
        return clip_config(path, text);
    }
    let hidden_act = match c.str_opt("hidden_act")?.unwrap_or("quick_gelu") {
        "quick_gelu" => Activation::QuickGelu,
        "gelu" => Activation::Gelu,
        "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
        other => {
            return Err(DiffusionError::Unsupported(format!(
                "{}: hidden_act `{other}`",
                path.display()
            )))
        }
    };
    let cfg = ClipConfig {
        vocab_size: c.usize_req("vocab_size")?,
        hidden_size: c.usize_req("hidden_size")?,
        intermediate_size: c.usize_req("intermediate_size")?,
        num_hidden_layers: c.usize_req("num_hidden_layers")?,
        num_attention_heads: c.usize_req("num_attention_heads")?,
        max_position_embeddings: c.usize_or("max_position_embeddings", 77)?,
        hidden_act,
        layer_norm_eps: c.f64_or("layer_norm_eps", 1e-5)?,
    };
    if cfg.num_attention_heads == 0 || !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads) {
        return Err(bad(
            path,
            "hidden_size is not a multiple of num_attention_heads",
        ));
    }
    if cfg.max_position_embeddings < 2 || cfg.num_hidden_layers == 0 {
        return Err(bad(
            path,
            "max_position_embeddings and num_hidden_layers are too small",
        ));
    }
    Ok(cfg)
}

// ---------------------------------------------------------------- unet

#[derive(Debug, Clone)]
pub(crate) struct UnetConfig {
    pub(crate) candle: UNet2DConditionModelConfig,
    pub(crate) in_channels: usize,
    pub(crate) out_channels: usize,
}

pub(crate) fn unet_config(path: &Path, map: &Json) -> Result<UnetConfig, DiffusionError> {
    let c = Cfg::new(path, map);
    if let Some(class) = c.str_opt("_class_name")? {
        if class != "UNet2DConditionModel" {
            return Err(DiffusionError::Unsupported(format!(
                "{}: `_class_name` {class} (only UNet2DConditionModel)",
                path.display()
            )));
        }
    }
    // What candle's UNet does not implement: refuse rather than compute
    // something else.
    c.only("addition_embed_type", &[])?;
    c.only("class_embed_type", &[])?;
    c.only("encoder_hid_dim_type", &[])?;
    c.only("time_embedding_type", &["positional"])?;
    c.only("resnet_time_scale_shift", &["default"])?;
    c.only("act_fn", &["silu"])?;
    c.only("mid_block_type", &["UNetMidBlock2DCrossAttn"])?;
    if matches!(map.get("mid_block_type"), Some(Value::Null)) {
        return Err(DiffusionError::Unsupported(format!(
            "{}: a UNet without a mid block (`mid_block_type` null)",
            path.display()
        )));
    }
    c.only("dual_cross_attention", &["false"])?;
    c.only("only_cross_attention", &["false"])?;
    c.only("attention_type", &["default"])?;
    c.only("resnet_skip_time_act", &["false"])?;
    c.only("class_embeddings_concat", &["false"])?;
    if c.f64_or("resnet_out_scale_factor", 1.0)? != 1.0 {
        return Err(DiffusionError::Unsupported(format!(
            "{}: `resnet_out_scale_factor` other than 1",
            path.display()
        )));
    }
    for key in [
        "time_cond_proj_dim",
        "encoder_hid_dim",
        "projection_class_embeddings_input_dim",
        "num_class_embeds",
        "time_embedding_dim",
        "time_embedding_act_fn",
        "timestep_post_act",
        "cross_attention_norm",
    ] {
        if c.get(key).is_some() {
            return Err(DiffusionError::Unsupported(format!(
                "{}: `{key}` is not supported",
                path.display()
            )));
        }
    }
    for key in ["conv_in_kernel", "conv_out_kernel"] {
        if c.usize_or(key, 3)? != 3 {
            return Err(DiffusionError::Unsupported(format!(
                "{}: `{key}` other than 3",
                path.display()
            )));
        }
    }

    let channels = c.usize_list_req("block_out_channels")?;
    let n = channels.len();
    let down = c.str_list_req("down_block_types")?;
    let up = c.str_list_req("up_block_types")?;
    if down.len() != n || up.len() != n {
        return Err(bad(
            path,
            "down/up_block_types and block_out_channels differ in length",
        ));
    }
    let mut cross = Vec::with_capacity(n);
    for (i, kind) in down.iter().enumerate() {
        let up_kind = &up[n - 1 - i];
        let is_cross = match kind.as_str() {
            "CrossAttnDownBlock2D" => true,
            "DownBlock2D" => false,
            other => {
                return Err(DiffusionError::Unsupported(format!(
                    "{}: down block type {other}",
                    path.display()
                )))
            }
        };
        let up_matches = match up_kind.as_str() {
            "CrossAttnUpBlock2D" => is_cross,
            "UpBlock2D" => !is_cross,
            _ => false,
        };
        if !up_matches {
            return Err(DiffusionError::Unsupported(format!(
                "{}: up block {up_kind} does not mirror down block {kind}",
                path.display()
            )));
        }
        cross.push(is_cross);
    }
    // diffusers: `num_attention_heads` falls back on `attention_head_dim`,
    // which in SD configs holds the number of heads.
    let heads = match c.get("num_attention_heads") {
        Some(_) => c.per_block("num_attention_heads", n, None)?,
        None => c.per_block("attention_head_dim", n, Some(8))?,
    };
    let depth = c.per_block("transformer_layers_per_block", n, Some(1))?;
    let layers = c.per_block("layers_per_block", n, Some(2))?;
    if layers.iter().any(|&l| l != layers[0]) || layers[0] == 0 {
        return Err(DiffusionError::Unsupported(format!(
            "{}: layers_per_block must be one positive number for every block",
            path.display()
        )));
    }
    let norm_num_groups = c.usize_or("norm_num_groups", 32)?;
    for (i, (&ch, &h)) in channels.iter().zip(&heads).enumerate() {
        if h == 0
            || !ch.is_multiple_of(h)
            || norm_num_groups == 0
            || !ch.is_multiple_of(norm_num_groups)
        {
            return Err(bad(
                path,
                &format!("block {i}: {ch} channels do not divide into the heads or norm groups"),
            ));
        }
    }
    let cross_attention_dim = match c.get("cross_attention_dim") {
        None => 1280,
        Some(v) => v
            .as_u64()
            .map(|x| x as usize)
            .ok_or_else(|| c.err("cross_attention_dim", "one integer"))?,
    };
    let blocks = (0..n)
        .map(|i| BlockConfig {
            out_channels: channels[i],
            use_cross_attn: cross[i].then_some(depth[i]),
            attention_head_dim: heads[i],
        })
        .collect();
    let candle = UNet2DConditionModelConfig {
        center_input_sample: c.bool_or("center_input_sample", false)?,
        flip_sin_to_cos: c.bool_or("flip_sin_to_cos", true)?,
        freq_shift: c.f64_or("freq_shift", 0.0)?,
        blocks,
        layers_per_block: layers[0],
        downsample_padding: c.usize_or("downsample_padding", 1)?,
        mid_block_scale_factor: c.f64_or("mid_block_scale_factor", 1.0)?,
        norm_num_groups,
        norm_eps: c.f64_or("norm_eps", 1e-5)?,
        cross_attention_dim,
        sliced_attention_size: None,
        use_linear_projection: c.bool_or("use_linear_projection", false)?,
    };
    let out_channels = c.usize_or("out_channels", 4)?;
    Ok(UnetConfig {
        candle,
        in_channels: c.usize_or("in_channels", 4)?,
        out_channels,
    })
}

// ---------------------------------------------------------------- vae

#[derive(Debug, Clone)]
pub(crate) enum VaeKind {
    Kl {
        block_out_channels: Vec<usize>,
        layers_per_block: usize,
        norm_num_groups: usize,
        use_quant_conv: bool,
        use_post_quant_conv: bool,
    },
    Tiny {
        encoder_channels: Vec<usize>,
        decoder_channels: Vec<usize>,
        encoder_blocks: Vec<usize>,
        decoder_blocks: Vec<usize>,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct VaeConfig {
    pub(crate) kind: VaeKind,
    pub(crate) in_channels: usize,
    pub(crate) out_channels: usize,
    pub(crate) latent_channels: usize,
    pub(crate) scaling_factor: f64,
    pub(crate) shift_factor: f64,
}

impl VaeConfig {
    /// How many pixels one latent cell covers along each side.
    pub(crate) fn downscale(&self) -> usize {
        let levels = match &self.kind {
            VaeKind::Kl {
                block_out_channels, ..
            } => block_out_channels.len(),
            VaeKind::Tiny {
                encoder_channels, ..
            } => encoder_channels.len(),
        };
        1 << (levels.saturating_sub(1))
    }
}

pub(crate) fn vae_config(path: &Path, map: &Json) -> Result<VaeConfig, DiffusionError> {
    let c = Cfg::new(path, map);
    let class = c.str_opt("_class_name")?.unwrap_or("AutoencoderKL");
    let latent_channels = c.usize_or("latent_channels", 4)?;
    let in_channels = c.usize_or("in_channels", 3)?;
    let out_channels = c.usize_or("out_channels", 3)?;
    if in_channels != 3 || out_channels != 3 {
        return Err(DiffusionError::Unsupported(format!(
            "{}: only RGB autoencoders (in/out_channels 3)",
            path.display()
        )));
    }
    let kind = match class {
        "AutoencoderKL" => {
            let block_out_channels = c.usize_list_req("block_out_channels")?;
            let norm_num_groups = c.usize_or("norm_num_groups", 32)?;
            if norm_num_groups == 0
                || block_out_channels
                    .iter()
                    .any(|ch| !ch.is_multiple_of(norm_num_groups))
            {
                return Err(bad(
                    path,
                    "block_out_channels do not divide into norm_num_groups",
                ));
            }
            for key in ["down_block_types", "up_block_types"] {
                if c.get(key).is_some() {
                    let want = if key == "down_block_types" {
                        "DownEncoderBlock2D"
                    } else {
                        "UpDecoderBlock2D"
                    };
                    let kinds = c.str_list_req(key)?;
                    if kinds.len() != block_out_channels.len() || kinds.iter().any(|k| k != want) {
                        return Err(DiffusionError::Unsupported(format!(
                            "{}: `{key}` other than {want}",
                            path.display()
                        )));
                    }
                }
            }
            if !c.bool_or("mid_block_add_attention", true)? {
                return Err(DiffusionError::Unsupported(format!(
                    "{}: mid_block_add_attention = false",
                    path.display()
                )));
            }
            c.only("act_fn", &["silu"])?;
            VaeKind::Kl {
                block_out_channels,
                layers_per_block: c.usize_or("layers_per_block", 1)?,
                norm_num_groups,
                use_quant_conv: c.bool_or("use_quant_conv", true)?,
                use_post_quant_conv: c.bool_or("use_post_quant_conv", true)?,
            }
        }
        "AutoencoderTiny" => {
            c.only("act_fn", &["relu"])?;
            c.only("upsample_fn", &["nearest"])?;
            if c.usize_or("upsampling_scaling_factor", 2)? != 2 {
                return Err(DiffusionError::Unsupported(format!(
                    "{}: upsampling_scaling_factor other than 2",
                    path.display()
                )));
            }
            let encoder_channels = c.usize_list_req("encoder_block_out_channels")?;
            let decoder_channels = c.usize_list_req("decoder_block_out_channels")?;
            let encoder_blocks = c.usize_list_req("num_encoder_blocks")?;
            let decoder_blocks = c.usize_list_req("num_decoder_blocks")?;
            if encoder_blocks.len() != encoder_channels.len()
                || decoder_blocks.len() != decoder_channels.len()
            {
                return Err(bad(
                    path,
                    "block counts and block channels differ in length",
                ));
            }
            VaeKind::Tiny {
                encoder_channels,
                decoder_channels,
                encoder_blocks,
                decoder_blocks,
            }
        }
        other => {
            return Err(DiffusionError::Unsupported(format!(
                "{}: autoencoder `{other}` (AutoencoderKL or AutoencoderTiny)",
                path.display()
            )))
        }
    };
    let default_scale = if class == "AutoencoderTiny" {
        1.0
    } else {
        0.18215
    };
    Ok(VaeConfig {
        kind,
        in_channels,
        out_channels,
        latent_channels,
        scaling_factor: c.f64_or("scaling_factor", default_scale)?,
        shift_factor: c.f64_opt("shift_factor")?.unwrap_or(0.0),
    })
}

// ---------------------------------------------------------------- files

/// The weights of one component: `NAME.safetensors`, else the `fp16` variant
/// diffusers repositories also ship.
pub(crate) fn weights_file(dir: &Path, stem: &str) -> Result<PathBuf, DiffusionError> {
    let plain = dir.join(format!("{stem}.safetensors"));
    if plain.is_file() {
        return Ok(plain);
    }
    let fp16 = dir.join(format!("{stem}.fp16.safetensors"));
    if fp16.is_file() {
        return Ok(fp16);
    }
    Err(DiffusionError::MissingFile(plain))
}

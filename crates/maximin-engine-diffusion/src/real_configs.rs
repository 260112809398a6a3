//! The real models' configs (as their repositories ship them) mapped and
//! built on a backend that hands out zero-cost tensors of the asked shape:
//! the parameter counts must be the published ones, which checks the config
//! mapping and the tensor shapes without the weights.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use candle_transformers::models::stable_diffusion::unet_2d::UNet2DConditionModel;
use serde_json::{json, Value};

use crate::config::{clip_config, unet_config, vae_config, Json};

#[derive(Default)]
struct Shapes(Mutex<HashMap<String, usize>>);

impl SimpleBackend for Shapes {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        if let Ok(mut m) = self.0.lock() {
            m.insert(name.to_string(), s.elem_count());
        }
        Tensor::zeros((), dtype, dev)?.broadcast_as(s)
    }
    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("{name}")
    }
    fn contains_tensor(&self, name: &str) -> bool {
        name.ends_with("to_q.weight")
    }
}

impl SimpleBackend for &Shapes {
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

fn map(v: Value) -> Json {
    match v {
        Value::Object(m) => m,
        _ => Json::new(),
    }
}

fn count(
    build: impl FnOnce(VarBuilder) -> candle_core::Result<()>,
) -> (usize, HashMap<String, usize>) {
    let shapes = Shapes::default();
    {
        let vb = VarBuilder::from_backend(Box::new(&shapes), DType::F32, Device::Cpu);
        build(vb).expect("build");
    }
    let m = shapes.0.into_inner().expect("lock");
    (m.values().sum(), m)
}

fn unet_params(cfg: Value) -> (usize, HashMap<String, usize>) {
    let c = unet_config(Path::new("unet/config.json"), &map(cfg)).expect("unet config");
    count(|vb| {
        UNet2DConditionModel::new(vb, c.in_channels, c.out_channels, false, c.candle).map(|_| ())
    })
}

fn sd_unet(heads: Value, cross: usize, linear: bool) -> Value {
    json!({
        "_class_name": "UNet2DConditionModel",
        "act_fn": "silu",
        "addition_embed_type": null,
        "addition_embed_type_num_heads": 64,
        "attention_head_dim": heads,
        "attention_type": "default",
        "block_out_channels": [320, 640, 1280, 1280],
        "center_input_sample": false,
        "class_embed_type": null,
        "class_embeddings_concat": false,
        "conv_in_kernel": 3,
        "conv_out_kernel": 3,
        "cross_attention_dim": cross,
        "cross_attention_norm": null,
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        "downsample_padding": 1,
        "dual_cross_attention": false,
        "encoder_hid_dim": null,
        "encoder_hid_dim_type": null,
        "flip_sin_to_cos": true,
        "freq_shift": 0,
        "in_channels": 4,
        "layers_per_block": 2,
        "mid_block_only_cross_attention": null,
        "mid_block_scale_factor": 1,
        "mid_block_type": "UNetMidBlock2DCrossAttn",
        "norm_eps": 1e-05,
        "norm_num_groups": 32,
        "num_attention_heads": null,
        "num_class_embeds": null,
        "only_cross_attention": false,
        "out_channels": 4,
        "projection_class_embeddings_input_dim": null,
        "resnet_out_scale_factor": 1.0,
        "resnet_skip_time_act": false,
        "resnet_time_scale_shift": "default",
        "sample_size": 64,
        "time_cond_proj_dim": null,
        "time_embedding_act_fn": null,
        "time_embedding_dim": null,
        "time_embedding_type": "positional",
        "timestep_post_act": null,
        "transformer_layers_per_block": 1,
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        "upcast_attention": false,
        "use_linear_projection": linear,
    })
}

#[test]
fn sd15_unet_has_its_published_size() {
    let (n, names) = unet_params(sd_unet(json!(8), 768, false));
    assert_eq!(n, 859_520_964);
    for name in [
        "conv_in.weight",
        "time_embedding.linear_1.weight",
        "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
        "down_blocks.0.attentions.0.proj_in.weight",
        "mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj.weight",
        "up_blocks.3.resnets.2.conv_shortcut.weight",
        "conv_norm_out.weight",
    ] {
        assert!(names.contains_key(name), "{name}");
    }
}

#[test]
fn sd21_and_sd_turbo_unet_has_its_published_size() {
    let (n, _) = unet_params(sd_unet(json!([5, 10, 20, 20]), 1024, true));
    assert_eq!(n, 865_910_724);
}

#[test]
fn sd_vae_has_its_published_size() {
    let cfg = json!({
        "_class_name": "AutoencoderKL",
        "act_fn": "silu",
        "block_out_channels": [128, 256, 512, 512],
        "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
        "in_channels": 3,
        "latent_channels": 4,
        "layers_per_block": 2,
        "norm_num_groups": 32,
        "out_channels": 3,
        "sample_size": 768,
        "scaling_factor": 0.18215,
        "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
    });
    let c = vae_config(Path::new("vae/config.json"), &map(cfg)).expect("vae config");
    assert_eq!(c.downscale(), 8);
    let (n, names) = count(|vb| crate::vae::Vae::new(vb, &c).map(|_| ()));
    assert_eq!(n, 83_653_863);
    assert!(names.contains_key("decoder.mid_block.attentions.0.to_q.weight"));
}

#[test]
fn taesd_builds_with_diffusers_names() {
    let cfg = json!({
        "_class_name": "AutoencoderTiny",
        "act_fn": "relu",
        "decoder_block_out_channels": [64, 64, 64, 64],
        "encoder_block_out_channels": [64, 64, 64, 64],
        "force_upcast": false,
        "in_channels": 3,
        "latent_channels": 4,
        "latent_magnitude": 3,
        "latent_shift": 0.5,
        "num_decoder_blocks": [3, 3, 3, 1],
        "num_encoder_blocks": [1, 3, 3, 3],
        "out_channels": 3,
        "scaling_factor": 1.0,
        "upsampling_scaling_factor": 2,
    });
    let c = vae_config(Path::new("vae/config.json"), &map(cfg)).expect("vae config");
    assert_eq!(c.downscale(), 8);
    let (n, names) = count(|vb| crate::vae::Vae::new(vb, &c).map(|_| ()));
    // TAESD: 1,222,532 parameters in the encoder, 1,222,531 in the decoder.
    assert_eq!(n, 2_445_063);
    for name in [
        "encoder.layers.0.weight",
        "encoder.layers.1.conv.4.bias",
        "encoder.layers.2.weight",
        "encoder.layers.14.weight",
        "decoder.layers.0.weight",
        "decoder.layers.2.conv.0.weight",
        "decoder.layers.6.weight",
        "decoder.layers.17.conv.4.weight",
        "decoder.layers.18.weight",
        "decoder.layers.18.bias",
    ] {
        assert!(names.contains_key(name), "{name}");
    }
}

#[test]
fn clip_text_encoders_have_their_published_sizes() {
    let vit_l = json!({
        "architectures": ["CLIPTextModel"],
        "hidden_act": "quick_gelu",
        "hidden_size": 768,
        "intermediate_size": 3072,
        "layer_norm_eps": 1e-05,
        "max_position_embeddings": 77,
        "num_attention_heads": 12,
        "num_hidden_layers": 12,
        "projection_dim": 768,
        "vocab_size": 49408,
    });
    let c = clip_config(Path::new("text_encoder/config.json"), &map(vit_l)).expect("clip");
    let (n, _) = count(|vb| crate::clip::TextEncoder::new(vb, &c).map(|_| ()));
    assert_eq!(n, 123_060_480);
}

#[test]
fn what_candle_cannot_run_is_refused_by_name() {
    let mut sdxl = sd_unet(json!([5, 10, 20]), 2048, true);
    sdxl["addition_embed_type"] = json!("text_time");
    let err = unet_config(Path::new("unet/config.json"), &map(sdxl))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("addition_embed_type"), "{err}");
    let mut no_mid = sd_unet(json!(8), 768, false);
    no_mid["mid_block_type"] = Value::Null;
    let err = unet_config(Path::new("unet/config.json"), &map(no_mid))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("mid block"), "{err}");
    let mut lcm = sd_unet(json!(8), 768, false);
    lcm["time_cond_proj_dim"] = json!(256);
    assert!(unet_config(Path::new("unet/config.json"), &map(lcm)).is_err());
}

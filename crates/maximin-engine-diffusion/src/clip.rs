//! The CLIP text encoder (transformers' `CLIPTextModel`, same tensor names).
//! candle has one, but its `stable_diffusion::clip::Config` can only be one of
//! its presets (its fields are private), and this engine builds every size
//! from `text_encoder/config.json`, down to the tiny test model.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{embedding, layer_norm, linear, Embedding, LayerNorm, Linear, VarBuilder};

use crate::config::{Activation, ClipConfig};

struct Attention {
    qkv: Linear,
    out_proj: Linear,
    heads: usize,
    head_dim: usize,
}

struct Layer {
    norm1: LayerNorm,
    attn: Attention,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

pub(crate) struct TextEncoder {
    token_embedding: Embedding,
    position_embedding: Tensor,
    layers: Vec<Layer>,
    final_layer_norm: LayerNorm,
    activation: Activation,
    pub(crate) max_positions: usize,
}

impl TextEncoder {
    pub(crate) fn new(vb: VarBuilder, c: &ClipConfig) -> Result<Self> {
        let vb = vb.pp("text_model");
        let emb = vb.pp("embeddings");
        let token_embedding = embedding(c.vocab_size, c.hidden_size, emb.pp("token_embedding"))?;
        let position_embedding = emb
            .pp("position_embedding")
            .get((c.max_position_embeddings, c.hidden_size), "weight")?;
        let enc = vb.pp("encoder").pp("layers");
        let ln = |vb: VarBuilder| layer_norm(c.hidden_size, c.layer_norm_eps, vb);
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let l = enc.pp(i.to_string());
            let a = l.pp("self_attn");
            // q, k and v as one product.
            let parts = ["q_proj", "k_proj", "v_proj"]
                .iter()
                .map(|p| linear(c.hidden_size, c.hidden_size, a.pp(*p)))
                .collect::<Result<Vec<_>>>()?;
            let w = Tensor::cat(
                &parts.iter().map(|p| p.weight().clone()).collect::<Vec<_>>(),
                0,
            )?;
            let b = parts
                .iter()
                .map(|p| p.bias().cloned())
                .collect::<Option<Vec<_>>>()
                .map(|bs| Tensor::cat(&bs, 0))
                .transpose()?;
            layers.push(Layer {
                norm1: ln(l.pp("layer_norm1"))?,
                attn: Attention {
                    qkv: Linear::new(w, b),
                    out_proj: linear(c.hidden_size, c.hidden_size, a.pp("out_proj"))?,
                    heads: c.num_attention_heads,
                    head_dim: c.hidden_size / c.num_attention_heads,
                },
                norm2: ln(l.pp("layer_norm2"))?,
                fc1: linear(c.hidden_size, c.intermediate_size, l.pp("mlp").pp("fc1"))?,
                fc2: linear(c.intermediate_size, c.hidden_size, l.pp("mlp").pp("fc2"))?,
            });
        }
        Ok(TextEncoder {
            token_embedding,
            position_embedding,
            layers,
            final_layer_norm: ln(vb.pp("final_layer_norm"))?,
            activation: c.hidden_act,
            max_positions: c.max_position_embeddings,
        })
    }

    /// Token ids `[batch, seq]` → last hidden state after the final layer norm
    /// `[batch, seq, hidden]`, with CLIP's causal mask.
    pub(crate) fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (_b, seq) = ids.dims2()?;
        let pos = self.position_embedding.narrow(0, 0, seq)?;
        let mut xs = self.token_embedding.forward(ids)?.broadcast_add(&pos)?;
        let mask = causal_mask(seq, ids.device())?;
        for layer in &self.layers {
            let r = xs.clone();
            let h = layer.attn.forward(&layer.norm1.forward(&xs)?, &mask)?;
            xs = (h + r)?;
            let r = xs.clone();
            let h = layer.fc1.forward(&layer.norm2.forward(&xs)?)?;
            let h = match self.activation {
                Activation::QuickGelu => (&h * candle_nn::ops::sigmoid(&(&h * 1.702)?)?)?,
                Activation::Gelu => h.gelu_erf()?,
                Activation::GeluTanh => h.gelu()?,
            };
            xs = (layer.fc2.forward(&h)? + r)?;
        }
        self.final_layer_norm.forward(&xs)
    }
}

impl Attention {
    fn forward(&self, xs: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, seq, hidden) = xs.dims3()?;
        let qkv = self
            .qkv
            .forward(xs)?
            .reshape((b, seq, 3, self.heads, self.head_dim))?
            .permute((2, 0, 3, 1, 4))?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let q = (qkv.get(0)?.contiguous()? * scale)?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        let w = q.matmul(&k.t()?)?.broadcast_add(mask)?;
        let w = candle_nn::ops::softmax_last_dim(&w)?;
        let o = w.matmul(&v)?.transpose(1, 2)?.reshape((b, seq, hidden))?;
        self.out_proj.forward(&o)
    }
}

fn causal_mask(seq: usize, device: &Device) -> Result<Tensor> {
    let mask: Vec<f32> = (0..seq)
        .flat_map(|i| (0..seq).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(mask, (seq, seq), device)?.to_dtype(DType::F32)
}

//! Gemma 3 as llama.cpp runs it, on candle, with LoRA factors on chosen
//! projections: the base weights are read from the GGUF, dequantised to f32
//! and frozen; only the factors are variables.
//!
//! The forward pass follows llama.cpp's `gemma3` graph: embeddings scaled by
//! √d; per layer RMS-norm → attention (Q/K RMS-normed per head, NeoX rope with
//! the local base on sliding layers and the global base on every sixth,
//! scale 1/√head_dim, causal, a sliding window on local layers) →
//! post-attention norm → residual; RMS-norm → GELU(gate)·up → down →
//! post-FFN norm → residual; the output norm; logits by the tied embedding.
//! The GGUF's norm weights already hold Gemma's `1 + w`.
//!
//! Two things keep the backward pass to what LoRA needs: a frozen
//! projection is a custom op whose backward is only `grad · W` (candle's
//! matmul would also make the weight's gradient, as large as the weight), and
//! the loss's gradient through the 262k-row output projection is made by
//! hand for the learned positions only (no gradient of the embedding).

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use candle_core::quantized::gguf_file;
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor, Var, D};
use maximin_core::{Error, Result};
use rand::{Rng, SeedableRng};

/// Internal failures of the numeric library, as the platform's error.
pub(crate) fn ce(e: candle_core::Error) -> Error {
    Error::internal(format!("training: {e}"))
}

/// The projections an adapter may train, as GGUF tensor name suffixes.
pub const ATTENTION: [&str; 4] = [
    "attn_q.weight",
    "attn_k.weight",
    "attn_v.weight",
    "attn_output.weight",
];
pub const MLP: [&str; 3] = ["ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"];

/// The architecture's shape, from the GGUF's metadata.
#[derive(Debug, Clone)]
pub struct Config {
    pub layers: usize,
    pub dim: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub eps: f64,
    pub window: usize,
    pub window_pattern: usize,
    pub rope_global: f32,
    pub rope_local: f32,
    pub vocab: usize,
}

/// A frozen projection `x · Wᵀ`: its backward gives the input's gradient only.
struct Frozen {
    w: Tensor,
}

impl CustomOp1 for Frozen {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("frozen-linear: input not contiguous".into()))?;
        let x = Tensor::from_slice(
            &storage.as_slice::<f32>()?[start..end],
            layout.shape(),
            &Device::Cpu,
        )?;
        let y = x.matmul(&self.w.t()?)?;
        let shape = y.shape().clone();
        Ok((CpuStorage::F32(y.flatten_all()?.to_vec1::<f32>()?), shape))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.matmul(&self.w)?))
    }
}

/// A trained low-rank pair on one base projection.
pub struct Lora {
    /// The base tensor's GGUF name, e.g. `blk.0.attn_q.weight`.
    pub target: String,
    /// `rank × n_in`.
    pub a: Var,
    /// `n_out × rank`.
    pub b: Var,
}

struct Linear {
    w: Tensor,
    lora: Option<usize>,
}

struct Layer {
    attn_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    q_norm: Tensor,
    k_norm: Tensor,
    post_attn_norm: Tensor,
    ffn_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
    post_ffn_norm: Tensor,
}

/// The base model with its adapter.
pub struct LoraModel {
    pub config: Config,
    pub architecture: String,
    embd: Tensor,
    layers: Vec<Layer>,
    out_norm: Tensor,
    pub loras: Vec<Lora>,
    pub rank: usize,
    pub alpha: f32,
}

fn md_u32(ct: &gguf_file::Content, key: &str) -> Result<usize> {
    ct.metadata
        .get(key)
        .ok_or_else(|| Error::internal(format!("the model has no {key}")))?
        .to_u32()
        .map(|v| v as usize)
        .map_err(ce)
}

fn md_f32(ct: &gguf_file::Content, key: &str, default: f32) -> f32 {
    ct.metadata
        .get(key)
        .and_then(|v| v.to_f32().ok())
        .unwrap_or(default)
}

fn rms(x: &Tensor, w: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    let var = x.sqr()?.mean_keepdim(D::Minus1)?;
    x.broadcast_div(&(var + eps)?.sqrt()?)?.broadcast_mul(w)
}

/// Softmax over the last dimension from differentiable parts (the max is a
/// constant shift).
fn softmax(x: &Tensor) -> candle_core::Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    let sum = e.sum_keepdim(D::Minus1)?;
    e.broadcast_div(&sum)
}

/// NeoX rope on `[heads, seq, head_dim]`.
fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
    let half = x.dim(D::Minus1)? / 2;
    let x1 = x.narrow(D::Minus1, 0, half)?;
    let x2 = x.narrow(D::Minus1, half, half)?;
    let r1 = (x1.broadcast_mul(cos)? - x2.broadcast_mul(sin)?)?;
    let r2 = (x2.broadcast_mul(cos)? + x1.broadcast_mul(sin)?)?;
    Tensor::cat(&[r1, r2], D::Minus1)
}

fn rope_tables(seq: usize, head_dim: usize, base: f32) -> candle_core::Result<(Tensor, Tensor)> {
    let half = head_dim / 2;
    let mut cos = Vec::with_capacity(seq * half);
    let mut sin = Vec::with_capacity(seq * half);
    for p in 0..seq {
        for i in 0..half {
            let theta = base.powf(-2.0 * i as f32 / head_dim as f32);
            let a = p as f32 * theta;
            cos.push(a.cos());
            sin.push(a.sin());
        }
    }
    Ok((
        Tensor::from_vec(cos, (seq, half), &Device::Cpu)?,
        Tensor::from_vec(sin, (seq, half), &Device::Cpu)?,
    ))
}

/// Causal, and within `window` positions when given.
fn mask(seq: usize, window: Option<usize>) -> candle_core::Result<Tensor> {
    let m: Vec<f32> = (0..seq)
        .flat_map(|i| {
            (0..seq).map(move |j| {
                let hidden = j > i || window.is_some_and(|w| i - j >= w);
                if hidden {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Tensor::from_vec(m, (seq, seq), &Device::Cpu)
}

impl LoraModel {
    /// Loads a GGUF base model and puts fresh factors of `rank` on every
    /// projection named by `suffixes` (A uniform in ±1/√n_in, B zero, as
    /// PEFT starts them: the adapter begins as no change).
    pub fn load(
        path: &Path,
        suffixes: &[&str],
        rank: usize,
        alpha: f32,
        seed: u64,
    ) -> Result<Self> {
        let mut file =
            File::open(path).map_err(|e| Error::internal(format!("{}: {e}", path.display())))?;
        let ct = gguf_file::Content::read(&mut file).map_err(ce)?;
        let architecture = match ct.metadata.get("general.architecture") {
            Some(v) => v.to_string().map_err(ce)?.clone(),
            None => String::new(),
        };
        if architecture != "gemma3" {
            return Err(Error::invalid(
                "model",
                format!("Fine-tuning supports Gemma 3 models; this one is `{architecture}`."),
            ));
        }
        let p = |k: &str| format!("{architecture}.{k}");
        let heads = md_u32(&ct, &p("attention.head_count"))?;
        let config = Config {
            layers: md_u32(&ct, &p("block_count"))?,
            dim: md_u32(&ct, &p("embedding_length"))?,
            heads,
            kv_heads: md_u32(&ct, &p("attention.head_count_kv"))?,
            head_dim: md_u32(&ct, &p("attention.key_length"))?,
            eps: md_f32(&ct, &p("attention.layer_norm_rms_epsilon"), 1e-6) as f64,
            window: md_u32(&ct, &p("attention.sliding_window")).unwrap_or(512),
            window_pattern: 6,
            rope_global: md_f32(&ct, &p("rope.freq_base"), 1_000_000.0),
            rope_local: md_f32(&ct, &p("rope.local_freq_base"), 10_000.0),
            vocab: 0,
        };
        let dev = Device::Cpu;
        let mut get = |name: &str| -> Result<Tensor> {
            ct.tensor(&mut file, name, &dev)
                .and_then(|q| q.dequantize(&dev))
                .map_err(ce)
        };
        let embd = get("token_embd.weight")?;
        let out_norm = get("output_norm.weight")?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut loras = Vec::new();
        let mut linear = |name: String, w: Tensor, loras: &mut Vec<Lora>| -> Result<Linear> {
            if !suffixes.iter().any(|s| name.ends_with(s)) {
                return Ok(Linear { w, lora: None });
            }
            let (n_out, n_in) = w.dims2().map_err(ce)?;
            let bound = 1.0 / (n_in as f32).sqrt();
            let a: Vec<f32> = (0..rank * n_in)
                .map(|_| rng.gen_range(-bound..bound))
                .collect();
            let a = Var::from_vec(a, (rank, n_in), &dev).map_err(ce)?;
            let b = Var::zeros((n_out, rank), DType::F32, &dev).map_err(ce)?;
            loras.push(Lora { target: name, a, b });
            Ok(Linear {
                w,
                lora: Some(loras.len() - 1),
            })
        };
        let mut layers = Vec::with_capacity(config.layers);
        for i in 0..config.layers {
            let n = |s: &str| format!("blk.{i}.{s}.weight");
            let mut lin = |s: &str, loras: &mut Vec<Lora>| -> Result<Linear> {
                let w = get(&n(s))?;
                linear(n(s), w, loras)
            };
            let q = lin("attn_q", &mut loras)?;
            let k = lin("attn_k", &mut loras)?;
            let v = lin("attn_v", &mut loras)?;
            let o = lin("attn_output", &mut loras)?;
            let gate = lin("ffn_gate", &mut loras)?;
            let up = lin("ffn_up", &mut loras)?;
            let down = lin("ffn_down", &mut loras)?;
            layers.push(Layer {
                attn_norm: get(&n("attn_norm"))?,
                q,
                k,
                v,
                o,
                q_norm: get(&n("attn_q_norm"))?,
                k_norm: get(&n("attn_k_norm"))?,
                post_attn_norm: get(&n("post_attention_norm"))?,
                ffn_norm: get(&n("ffn_norm"))?,
                gate,
                up,
                down,
                post_ffn_norm: get(&n("post_ffw_norm"))?,
            });
        }
        let mut config = config;
        config.vocab = embd.dim(0).map_err(ce)?;
        Ok(LoraModel {
            config,
            architecture,
            embd,
            layers,
            out_norm,
            loras,
            rank,
            alpha,
        })
    }

    fn scale(&self) -> f64 {
        self.alpha as f64 / self.rank as f64
    }

    fn project(&self, lin: &Linear, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = x.apply_op1(Frozen { w: lin.w.clone() })?;
        match lin.lora {
            None => Ok(y),
            Some(i) => {
                let l = &self.loras[i];
                let low = x
                    .matmul(&l.a.as_tensor().t()?)?
                    .matmul(&l.b.as_tensor().t()?)?;
                y + (low * self.scale())?
            }
        }
    }

    /// The final hidden states `[seq, dim]` of a sequence.
    pub fn hidden(&self, tokens: &[u32]) -> candle_core::Result<Tensor> {
        let c = &self.config;
        let seq = tokens.len();
        let dev = Device::Cpu;
        let ids = Tensor::from_slice(tokens, seq, &dev)?;
        let mut x = (self.embd.index_select(&ids, 0)? * (c.dim as f64).sqrt())?;
        let (cos_l, sin_l) = rope_tables(seq, c.head_dim, c.rope_local)?;
        let (cos_g, sin_g) = rope_tables(seq, c.head_dim, c.rope_global)?;
        let mask_l = mask(seq, Some(c.window))?;
        let mask_g = mask(seq, None)?;
        let scale = 1.0 / (c.head_dim as f64).sqrt();
        let group = c.heads / c.kv_heads;
        for (il, layer) in self.layers.iter().enumerate() {
            let global = (il + 1) % c.window_pattern == 0;
            let (cos, sin, mask) = if global {
                (&cos_g, &sin_g, &mask_g)
            } else {
                (&cos_l, &sin_l, &mask_l)
            };
            let h = rms(&x, &layer.attn_norm, c.eps)?;
            let q = self
                .project(&layer.q, &h)?
                .reshape((seq, c.heads, c.head_dim))?;
            let k = self
                .project(&layer.k, &h)?
                .reshape((seq, c.kv_heads, c.head_dim))?;
            let v = self
                .project(&layer.v, &h)?
                .reshape((seq, c.kv_heads, c.head_dim))?;
            let q = rms(&q, &layer.q_norm, c.eps)?
                .transpose(0, 1)?
                .contiguous()?;
            let k = rms(&k, &layer.k_norm, c.eps)?
                .transpose(0, 1)?
                .contiguous()?;
            let v = v.transpose(0, 1)?.contiguous()?;
            let q = rope(&q, cos, sin)?;
            let k = rope(&k, cos, sin)?;
            let (k, v) = if group > 1 {
                let rep = |t: Tensor| -> candle_core::Result<Tensor> {
                    t.unsqueeze(1)?
                        .broadcast_as((c.kv_heads, group, seq, c.head_dim))?
                        .reshape((c.heads, seq, c.head_dim))
                };
                (rep(k)?, rep(v)?)
            } else {
                (k, v)
            };
            let att = (q.matmul(&k.t()?)? * scale)?.broadcast_add(mask)?;
            let att = softmax(&att)?;
            let o = att
                .matmul(&v)?
                .transpose(0, 1)?
                .reshape((seq, c.heads * c.head_dim))?;
            let o = self.project(&layer.o, &o)?;
            x = (x + rms(&o, &layer.post_attn_norm, c.eps)?)?;
            let h = rms(&x, &layer.ffn_norm, c.eps)?;
            let f = (self.project(&layer.gate, &h)?.gelu()? * self.project(&layer.up, &h)?)?;
            let f = self.project(&layer.down, &f)?;
            x = (x + rms(&f, &layer.post_ffn_norm, c.eps)?)?;
        }
        rms(&x, &self.out_norm, c.eps)
    }

    /// Logits `[n, vocab]` of hidden states (not differentiated).
    pub fn logits(&self, hidden: &Tensor) -> candle_core::Result<Tensor> {
        hidden.detach().matmul(&self.embd.t()?)
    }

    /// One sequence's summed cross-entropy on the positions `learn` marks
    /// (token `i` predicted from those before it), and, when `weight` is
    /// given, the factors' gradients of `weight × that sum` added into
    /// `grads`. Returns the sum and the number of learned tokens.
    pub fn loss(
        &self,
        tokens: &[u32],
        learn: &[bool],
        weight: Option<f64>,
        grads: &mut HashMap<usize, (Tensor, Tensor)>,
    ) -> candle_core::Result<(f64, usize)> {
        let positions: Vec<u32> = (1..tokens.len())
            .filter(|&i| learn[i])
            .map(|i| i as u32 - 1)
            .collect();
        if positions.is_empty() {
            return Ok((0.0, 0));
        }
        let targets: Vec<u32> = positions.iter().map(|&p| tokens[p as usize + 1]).collect();
        let n = positions.len();
        let hidden = self.hidden(tokens)?;
        let idx = Tensor::from_slice(&positions, n, &Device::Cpu)?;
        let sel = hidden.index_select(&idx, 0)?;
        let logits = self.logits(&sel)?;
        let max = logits.max_keepdim(D::Minus1)?;
        let shifted = logits.broadcast_sub(&max)?;
        let sum = shifted.exp()?.sum_keepdim(D::Minus1)?;
        let tgt = Tensor::from_slice(&targets, (n, 1), &Device::Cpu)?;
        let picked = shifted.gather(&tgt, 1)?;
        let nll = (sum.log()? - picked)?.sum_all()?.to_scalar::<f32>()? as f64;
        if let Some(weight) = weight {
            // d(weight · Σ nll)/d logits = weight · (softmax − onehot).
            let probs = shifted.exp()?.broadcast_div(&sum)?;
            let onehot = Tensor::zeros((n, self.config.vocab), DType::F32, &Device::Cpu)?
                .scatter_add(&tgt, &Tensor::ones((n, 1), DType::F32, &Device::Cpu)?, 1)?;
            let dlogits = ((probs - onehot)? * weight)?;
            let dhidden = dlogits.matmul(&self.embd)?;
            let surrogate = (sel * dhidden)?.sum_all()?;
            let g = surrogate.backward()?;
            for (i, l) in self.loras.iter().enumerate() {
                let (Some(ga), Some(gb)) = (g.get(l.a.as_tensor()), g.get(l.b.as_tensor())) else {
                    continue;
                };
                match grads.remove(&i) {
                    Some((a, b)) => grads.insert(i, ((a + ga)?, (b + gb)?)),
                    None => grads.insert(i, (ga.clone(), gb.clone())),
                };
            }
        }
        Ok((nll, n))
    }
}

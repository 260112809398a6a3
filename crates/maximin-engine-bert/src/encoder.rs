//! The BERT encoder's forward pass over *packed* sequences.
//!
//! The inputs of a batch are laid end to end as one matrix of `T` token rows
//! (no padding), so every dense layer is a single matrix product whose
//! weights are packed once per layer rather than once per sequence, and no
//! arithmetic is spent on pad tokens. Only attention looks at sequence
//! boundaries: it runs per sequence, all heads at once. The element-wise
//! parts (bias, GELU, residual + layer norm) are fused loops over plain
//! slices; GELU uses a branch-free rational approximation of erf that the
//! compiler vectorises (candle's goes through libm's scalar `erff`).
//!
//! The arithmetic is the same as Hugging Face's `BertModel` in eval mode, so
//! vectors match sentence-transformers' (the tests hold them to fixtures).

use candle_core::{Device, Result, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{Config, HiddenAct};

/// A dense layer: `x · Wᵀ + b`.
struct Dense {
    /// `(in, out)`, stored row-major: the transpose of the checkpoint's
    /// `(out, in)` weight, made once at load. gemm computes a row-major
    /// product as its transpose and packs this operand in runs along `out`;
    /// a transposed *view* of the checkpoint layout would make it gather
    /// every weight one float at a time, on every call (a fifth of the
    /// forward pass).
    w_t: Tensor,
    bias: Vec<f32>,
}

impl Dense {
    fn load(vb: VarBuilder, inputs: usize, outputs: usize) -> Result<Dense> {
        let w = vb.get((outputs, inputs), "weight")?;
        let bias = vb.get(outputs, "bias")?.to_vec1::<f32>()?;
        Ok(Dense {
            w_t: w.t()?.contiguous()?,
            bias,
        })
    }

    /// Several dense layers over the same input as one (`[a | b | c]`), with
    /// each part's weight and bias first multiplied by its `scale`.
    fn fused(parts: &[(Dense, f32)]) -> Result<Dense> {
        let mut ws = Vec::with_capacity(parts.len());
        let mut bias = Vec::new();
        for (d, scale) in parts {
            ws.push((d.w_t.t()? * f64::from(*scale))?);
            bias.extend(d.bias.iter().map(|b| b * scale));
        }
        let w = Tensor::cat(&ws, 0)?;
        Ok(Dense {
            w_t: w.t()?.contiguous()?,
            bias,
        })
    }

    fn outputs(&self) -> usize {
        self.bias.len()
    }

    /// `x` is `rows × in`, row-major; the result is `rows × out`, bias added.
    fn forward(&self, x: Tensor) -> Result<Vec<f32>> {
        let mut y = x.matmul(&self.w_t)?.flatten_all()?.to_vec1::<f32>()?;
        for row in y.chunks_exact_mut(self.outputs()) {
            for (v, b) in row.iter_mut().zip(&self.bias) {
                *v += b;
            }
        }
        Ok(y)
    }
}

struct LayerNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

impl LayerNorm {
    fn load(vb: VarBuilder, size: usize, eps: f64) -> Result<LayerNorm> {
        Ok(LayerNorm {
            gamma: vb.get(size, "weight")?.to_vec1::<f32>()?,
            beta: vb.get(size, "bias")?.to_vec1::<f32>()?,
            eps: eps as f32,
        })
    }

    /// `x ← LayerNorm(x + residual)`, row by row.
    fn add_and_norm(&self, x: &mut [f32], residual: &[f32]) {
        let h = self.gamma.len();
        for (row, res) in x.chunks_exact_mut(h).zip(residual.chunks_exact(h)) {
            for (v, r) in row.iter_mut().zip(res) {
                *v += r;
            }
            self.norm_row(row);
        }
    }

    fn norm(&self, x: &mut [f32]) {
        for row in x.chunks_exact_mut(self.gamma.len()) {
            self.norm_row(row);
        }
    }

    fn norm_row(&self, row: &mut [f32]) {
        let n = row.len() as f32;
        let mean = sum(row) / n;
        let mut var = [0f32; LANES];
        let mut chunks = row.chunks_exact(LANES);
        for c in &mut chunks {
            for (acc, v) in var.iter_mut().zip(c) {
                let d = v - mean;
                *acc += d * d;
            }
        }
        let mut var = var.iter().sum::<f32>();
        for v in chunks.remainder() {
            var += (v - mean) * (v - mean);
        }
        let inv = 1.0 / (var / n + self.eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(&self.gamma).zip(&self.beta) {
            *v = (*v - mean) * inv * g + b;
        }
    }
}

/// Accumulator width for sums: lanes the compiler keeps in vector registers
/// (a plain `iter().sum()` of floats must stay sequential).
const LANES: usize = 8;

fn sum(xs: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// erf(x) to within 4e-7 (a few ulp), branch-free (the rational approximation of
/// Eigen and XLA): odd polynomial over even polynomial on x clamped to ±4,
/// beyond which erf is ±1 in single precision.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906_3e-4;
    p = x2 * p + -2.954_6e-3;
    p = x2 * p + -1.609_603_3e-2;
    p *= x;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329_2e-3;
    q = x2 * q + -1.426_473_9e-2;
    p / q
}

fn activate(act: HiddenAct, xs: &mut [f32]) {
    match act {
        HiddenAct::Gelu => {
            for v in xs.iter_mut() {
                *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
            }
        }
        HiddenAct::GeluApproximate => {
            const C: f32 = 0.797_884_6; // sqrt(2 / pi)
            for v in xs.iter_mut() {
                let x = *v;
                *v = 0.5 * x * (1.0 + (C * (x + 0.044_715 * x * x * x)).tanh());
            }
        }
        HiddenAct::Relu => xs.iter_mut().for_each(|v| *v = v.max(0.0)),
    }
}

struct Layer {
    /// Query (pre-scaled by 1/√head_dim), key and value in one product.
    qkv: Dense,
    attention_out: Dense,
    attention_norm: LayerNorm,
    intermediate: Dense,
    output: Dense,
    output_norm: LayerNorm,
}

pub(crate) struct Encoder {
    word: Tensor,
    position: Tensor,
    /// Token type 0's vector (inputs are single segments).
    token_type: Vec<f32>,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    act: HiddenAct,
    hidden: usize,
    heads: usize,
    max_positions: usize,
}

impl Encoder {
    /// Loads the weights the way `transformers` names them, with or without a
    /// `bert.` (or `{model_type}.`) prefix.
    pub(crate) fn load(vb: VarBuilder, config: &Config) -> Result<Encoder> {
        let mut prefixes = vec![String::new(), "bert.".to_owned()];
        if let Some(t) = &config.model_type {
            prefixes.push(format!("{t}."));
        }
        let mut first_err = None;
        for prefix in prefixes {
            let vb = if prefix.is_empty() {
                vb.clone()
            } else {
                vb.pp(prefix.trim_end_matches('.'))
            };
            match Encoder::load_at(vb, config) {
                Ok(e) => return Ok(e),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.unwrap_or_else(|| candle_core::Error::Msg("no weights".into())))
    }

    fn load_at(vb: VarBuilder, config: &Config) -> Result<Encoder> {
        let h = config.hidden_size;
        let heads = config.num_attention_heads;
        if heads == 0 || !h.is_multiple_of(heads) {
            candle_core::bail!("hidden_size {h} is not a multiple of num_attention_heads {heads}");
        }
        let eps = config.layer_norm_eps;
        let emb = vb.pp("embeddings");
        let word = emb.get((config.vocab_size, h), "word_embeddings.weight")?;
        let position = emb.get(
            (config.max_position_embeddings, h),
            "position_embeddings.weight",
        )?;
        let token_type = emb
            .get((config.type_vocab_size, h), "token_type_embeddings.weight")?
            .get(0)?
            .to_vec1::<f32>()?;
        let embedding_norm = LayerNorm::load(emb.pp("LayerNorm"), h, eps)?;
        let scale = 1.0 / ((h / heads) as f32).sqrt();
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let vb = vb.pp(format!("encoder.layer.{i}"));
            let attn = vb.pp("attention");
            let qkv = Dense::fused(&[
                (Dense::load(attn.pp("self.query"), h, h)?, scale),
                (Dense::load(attn.pp("self.key"), h, h)?, 1.0),
                (Dense::load(attn.pp("self.value"), h, h)?, 1.0),
            ])?;
            layers.push(Layer {
                qkv,
                attention_out: Dense::load(attn.pp("output.dense"), h, h)?,
                attention_norm: LayerNorm::load(attn.pp("output.LayerNorm"), h, eps)?,
                intermediate: Dense::load(
                    vb.pp("intermediate.dense"),
                    h,
                    config.intermediate_size,
                )?,
                output: Dense::load(vb.pp("output.dense"), config.intermediate_size, h)?,
                output_norm: LayerNorm::load(vb.pp("output.LayerNorm"), h, eps)?,
            });
        }
        Ok(Encoder {
            word,
            position,
            token_type,
            embedding_norm,
            layers,
            act: config.hidden_act,
            hidden: h,
            heads,
            max_positions: config.max_position_embeddings,
        })
    }

    /// The last hidden state of every token of every sequence, packed:
    /// `Σ len × hidden` values, sequence after sequence.
    pub(crate) fn forward(&self, batch: &[&[u32]]) -> Result<Vec<f32>> {
        let h = self.hidden;
        let device = Device::Cpu;
        let lens: Vec<usize> = batch.iter().map(|s| s.len()).collect();
        let total: usize = lens.iter().sum();
        if let Some(&longest) = lens.iter().max() {
            if longest > self.max_positions {
                candle_core::bail!(
                    "a sequence of {longest} tokens exceeds the {} positions",
                    self.max_positions
                );
            }
        }

        // Embeddings: word + position + token type, then layer norm.
        let ids: Vec<u32> = batch.iter().flat_map(|s| s.iter().copied()).collect();
        let positions: Vec<u32> = lens.iter().flat_map(|&l| 0..l as u32).collect();
        let words = self
            .word
            .index_select(&Tensor::from_vec(ids, total, &device)?, 0)?;
        let pos = self
            .position
            .index_select(&Tensor::from_vec(positions, total, &device)?, 0)?;
        let mut x = (words + pos)?.flatten_all()?.to_vec1::<f32>()?;
        for row in x.chunks_exact_mut(h) {
            for (v, t) in row.iter_mut().zip(&self.token_type) {
                *v += t;
            }
        }
        self.embedding_norm.norm(&mut x);

        let head_dim = h / self.heads;
        for layer in &self.layers {
            // Attention: one product for q, k and v of every token.
            let qkv = layer
                .qkv
                .forward(Tensor::from_slice(&x, (total, h), &device)?)?;
            let qkv = Tensor::from_vec(qkv, (total, 3, self.heads, head_dim), &device)?;
            let mut contexts = Vec::with_capacity(batch.len());
            let mut start = 0;
            for &len in &lens {
                if len == 0 {
                    continue;
                }
                let seq = qkv.narrow(0, start, len)?;
                start += len;
                // (heads, len, head_dim) each.
                let part = |i: usize| -> Result<Tensor> {
                    seq.narrow(1, i, 1)?
                        .squeeze(1)?
                        .transpose(0, 1)?
                        .contiguous()
                };
                let (q, k, v) = (part(0)?, part(1)?, part(2)?);
                let scores = q.matmul(&k.t()?)?;
                let probs = candle_nn::ops::softmax_last_dim(&scores)?;
                let ctx = probs.matmul(&v)?.transpose(0, 1)?.reshape((len, h))?;
                contexts.push(ctx);
            }
            let context = Tensor::cat(&contexts, 0)?;
            let mut attended = layer.attention_out.forward(context)?;
            layer.attention_norm.add_and_norm(&mut attended, &x);
            x = attended;

            // Feed-forward.
            let mut inner =
                layer
                    .intermediate
                    .forward(Tensor::from_slice(&x, (total, h), &device)?)?;
            activate(self.act, &mut inner);
            let inner_size = layer.intermediate.outputs();
            let mut out =
                layer
                    .output
                    .forward(Tensor::from_vec(inner, (total, inner_size), &device)?)?;
            layer.output_norm.add_and_norm(&mut out, &x);
            x = out;
        }
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_libm_everywhere() {
        let mut worst = 0f32;
        let mut x = -6.0f32;
        while x <= 6.0 {
            let reference = candle_core::cpu::erf::erf_f64(f64::from(x)) as f32;
            worst = worst.max((erf(x) - reference).abs());
            x += 1.0 / 1024.0;
        }
        assert!(worst < 5e-7, "largest error {worst}");
        assert_eq!(erf(0.0), 0.0);
        assert!((erf(10.0) - 1.0).abs() < 5e-7 && (erf(-10.0) + 1.0).abs() < 5e-7);
    }

    #[test]
    fn layer_norm_matches_the_definition() {
        let ln = LayerNorm {
            gamma: vec![1.0, 2.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 3.0],
            beta: vec![0.0, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0],
            eps: 1e-12,
        };
        let mut row: Vec<f32> = (0..10).map(|i| (i * i) as f32 * 0.3 - 2.0).collect();
        let original = row.clone();
        ln.norm(&mut row);
        let mean = original.iter().sum::<f32>() / 10.0;
        let var = original.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 10.0;
        for (i, (got, x)) in row.iter().zip(&original).enumerate() {
            let want = (x - mean) / var.sqrt() * ln.gamma[i] + ln.beta[i];
            assert!((got - want).abs() < 1e-5, "{i}: {got} vs {want}");
        }
    }
}

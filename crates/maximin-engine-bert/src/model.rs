//! One loaded sentence-transformers model: the BERT encoder (`encoder.rs`, on
//! candle's matrix products), its tokenizer, and the pooling/normalisation
//! modules its directory describes.
//!
//! Everything here is synchronous and CPU-bound; the engine calls it from its
//! compute pool, never from the async runtime.

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config;
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationParams};

use crate::encoder::Encoder;

/// How token vectors become one sentence vector (`1_Pooling/config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pooling {
    Mean,
    Cls,
    Max,
    MeanSqrtLen,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    word_embedding_dimension: Option<usize>,
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    #[serde(default)]
    max_seq_length: Option<usize>,
    #[serde(default)]
    do_lower_case: bool,
}

#[derive(Deserialize)]
struct ModuleEntry {
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

/// A model ready to embed. `Send + Sync`: shared behind an `Arc` by every job.
pub(crate) struct Model {
    bert: Encoder,
    /// Neither pads nor truncates: counts every input's real tokens.
    tokenizer: Tokenizer,
    /// Truncates at `max_seq_length` (used only for inputs over the window).
    truncating: Tokenizer,
    pub(crate) max_seq_length: usize,
    pooling: Pooling,
    normalize: bool,
    lowercase: bool,
    pub(crate) dim: usize,
}

/// An input's token ids: special tokens included, cut to the window, no padding.
pub(crate) struct Tokenized {
    pub(crate) ids: Vec<u32>,
}

/// Why an input could not be tokenized within the window.
pub(crate) enum TokenizeError {
    TooLong {
        index: usize,
        tokens: usize,
        limit: usize,
    },
    Failed(String),
}

fn read_json<T: for<'de> Deserialize<'de>>(dir: &Path, name: &str) -> Result<T, String> {
    let path = dir.join(name);
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {name}: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{name} is not valid: {e}"))
}

fn read_json_opt<T: for<'de> Deserialize<'de>>(
    dir: &Path,
    name: &str,
) -> Result<Option<T>, String> {
    if dir.join(name).exists() {
        read_json(dir, name).map(Some)
    } else {
        Ok(None)
    }
}

impl Model {
    /// Loads the model whose weights file is `weights`; the other files of the
    /// sentence-transformers directory sit beside it. The error is a cause fit
    /// for a client (file names, never full paths).
    pub(crate) fn load(weights: &Path) -> Result<Model, String> {
        let dir = weights
            .parent()
            .ok_or_else(|| "the weights path has no directory".to_owned())?;
        let weights_name = weights
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "the weights file".to_owned());
        if !weights.is_file() {
            return Err(format!("{weights_name} is missing"));
        }

        let config: Config = read_json(dir, "config.json")?;
        let st_config: Option<SentenceBertConfig> =
            read_json_opt(dir, "sentence_bert_config.json")?;
        let modules: Option<Vec<ModuleEntry>> = read_json_opt(dir, "modules.json")?;

        // The pooling module's folder and whether a Normalize module follows it.
        let (pooling_dir, normalize) = match &modules {
            Some(modules) => {
                let pooling = modules
                    .iter()
                    .find(|m| m.kind.ends_with("models.Pooling"))
                    .map(|m| m.path.clone());
                let normalize = modules.iter().any(|m| m.kind.ends_with("models.Normalize"));
                (pooling, normalize)
            }
            // No modules.json: mean pooling and unit vectors, as an embeddings API serves.
            None => (Some("1_Pooling".to_owned()), true),
        };
        let pooling = match pooling_dir {
            Some(p) => {
                let name = format!("{p}/config.json");
                match read_json_opt::<PoolingConfig>(dir, &name)? {
                    Some(pc) => {
                        if let Some(d) = pc.word_embedding_dimension {
                            if d != config.hidden_size {
                                return Err(format!(
                                    "{name} says dimension {d} but config.json says hidden_size {}",
                                    config.hidden_size
                                ));
                            }
                        }
                        let modes = [
                            (pc.pooling_mode_mean_tokens, Pooling::Mean),
                            (pc.pooling_mode_cls_token, Pooling::Cls),
                            (pc.pooling_mode_max_tokens, Pooling::Max),
                            (pc.pooling_mode_mean_sqrt_len_tokens, Pooling::MeanSqrtLen),
                        ];
                        let mut on = modes.iter().filter(|(on, _)| *on).map(|(_, m)| *m);
                        match (on.next(), on.next()) {
                            (Some(mode), None) => mode,
                            (None, _) => return Err(format!("{name} enables no pooling mode")),
                            (Some(_), Some(_)) => {
                                return Err(format!(
                                    "{name} combines several pooling modes, which this engine does not support"
                                ))
                            }
                        }
                    }
                    None => Pooling::Mean,
                }
            }
            None => Pooling::Mean,
        };

        let max_seq_length = st_config
            .as_ref()
            .and_then(|c| c.max_seq_length)
            .unwrap_or(config.max_position_embeddings)
            .min(config.max_position_embeddings);
        if max_seq_length < 2 {
            return Err(format!("max_seq_length {max_seq_length} is too small"));
        }
        let lowercase = st_config.as_ref().is_some_and(|c| c.do_lower_case);

        let tokenizer_path = dir.join("tokenizer.json");
        if !tokenizer_path.is_file() {
            return Err("tokenizer.json is missing".to_owned());
        }
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| format!("tokenizer.json is not valid: {e}"))?;
        // The shipped tokenizer pads every input to a fixed length and cuts at
        // 128; we pad per batch ourselves and cut at the model's window.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| format!("tokenizer.json: {e}"))?;
        let mut truncating = tokenizer.clone();
        truncating
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_length,
                ..TruncationParams::default()
            }))
            .map_err(|e| format!("tokenizer.json: {e}"))?;

        let bytes =
            std::fs::read(weights).map_err(|e| format!("cannot read {weights_name}: {e}"))?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &Device::Cpu)
            .map_err(|e| format!("{weights_name} is not a valid safetensors file: {e}"))?;
        let bert = Encoder::load(vb, &config)
            .map_err(|e| format!("{weights_name} does not hold this BERT model: {e}"))?;

        Ok(Model {
            bert,
            tokenizer,
            truncating,
            max_seq_length,
            pooling,
            normalize,
            lowercase,
            dim: config.hidden_size,
        })
    }

    /// Tokenizes every input (special tokens included, no padding). An input
    /// over the window is cut when `truncate` is set and refused otherwise.
    pub(crate) fn tokenize(
        &self,
        inputs: &[String],
        truncate: bool,
    ) -> Result<Vec<Tokenized>, TokenizeError> {
        // sentence-transformers strips each input (and lowercases it when the
        // model says so) before tokenizing.
        let texts: Vec<String> = inputs
            .iter()
            .map(|s| {
                let s = s.trim();
                if self.lowercase {
                    s.to_lowercase()
                } else {
                    s.to_owned()
                }
            })
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encodings = self
            .tokenizer
            .encode_batch_fast(refs, true)
            .map_err(|e| TokenizeError::Failed(e.to_string()))?;
        let mut out = Vec::with_capacity(encodings.len());
        for (index, enc) in encodings.into_iter().enumerate() {
            let tokens = enc.len();
            if tokens <= self.max_seq_length {
                out.push(Tokenized {
                    ids: enc.get_ids().to_vec(),
                });
            } else if truncate {
                let cut = self
                    .truncating
                    .encode_fast(texts[index].as_str(), true)
                    .map_err(|e| TokenizeError::Failed(e.to_string()))?;
                out.push(Tokenized {
                    ids: cut.get_ids().to_vec(),
                });
            } else {
                return Err(TokenizeError::TooLong {
                    index,
                    tokens,
                    limit: self.max_seq_length,
                });
            }
        }
        Ok(out)
    }

    /// Embeds one batch of tokenized inputs (packed, never padded).
    pub(crate) fn embed_batch(&self, batch: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let b = batch.len();
        if batch.iter().all(|ids| ids.is_empty()) {
            return Ok(vec![vec![0.0; self.dim]; b]);
        }
        let hidden = self.bert.forward(batch)?;

        let h = self.dim;
        let mut out = Vec::with_capacity(b);
        let mut base = 0;
        for seq in batch {
            let len = seq.len();
            if len == 0 {
                out.push(vec![0.0; h]);
                continue;
            }
            let start = base;
            base += len * h;
            let token = |t: usize| &hidden[start + t * h..start + (t + 1) * h];
            let mut v = match self.pooling {
                Pooling::Cls => token(0).to_vec(),
                Pooling::Max => {
                    let mut v = token(0).to_vec();
                    for t in 1..len {
                        for (acc, x) in v.iter_mut().zip(token(t)) {
                            *acc = acc.max(*x);
                        }
                    }
                    v
                }
                Pooling::Mean | Pooling::MeanSqrtLen => {
                    let mut v = vec![0f32; h];
                    for t in 0..len {
                        for (acc, x) in v.iter_mut().zip(token(t)) {
                            *acc += *x;
                        }
                    }
                    let div = if self.pooling == Pooling::Mean {
                        len as f32
                    } else {
                        (len as f32).sqrt()
                    };
                    let div = div.max(1e-9);
                    v.iter_mut().for_each(|x| *x /= div);
                    v
                }
            };
            if self.normalize {
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.iter_mut().for_each(|x| *x /= norm);
            }
            out.push(v);
        }
        Ok(out)
    }
}

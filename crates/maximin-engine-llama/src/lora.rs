//! LoRA adapters as llama.cpp loads them (issue 19): a GGUF file with
//! `general.type = adapter`, `adapter.type = lora`, `adapter.lora.alpha`,
//! the base model's `general.architecture`, and for each adapted weight
//! `NAME.lora_a` and `NAME.lora_b`.
//!
//! For a base weight `W` that maps `n_in` inputs to `n_out` outputs (GGML
//! dims `[n_in, n_out]`), llama.cpp adds `scale · B(A x)` with
//! `scale = adapter_scale · alpha / rank`: `A` has GGML dims `[n_in, rank]`
//! (row-major `rank × n_in`, PyTorch's `lora_A`) and `B` `[rank, n_out]`
//! (row-major `n_out × rank`, PyTorch's `lora_B`). Written here as f32.

use std::io::Write;
use std::path::Path;

/// One adapted weight: its base tensor's name and the two factors.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraPair {
    /// The base tensor, e.g. `blk.0.attn_q.weight`.
    pub target: String,
    pub rank: usize,
    pub n_in: usize,
    pub n_out: usize,
    /// Row-major `rank × n_in`.
    pub a: Vec<f32>,
    /// Row-major `n_out × rank`.
    pub b: Vec<f32>,
}

/// A base weight an adapter may target: its name, `n_in` and `n_out`.
pub type Target = (String, usize, usize);

/// A base model's architecture and the weights an adapter may target: each
/// tensor whose name ends with one of `suffixes` (`attn_q.weight`…).
pub fn targets(model: &Path, suffixes: &[&str]) -> Result<(String, Vec<Target>), String> {
    let bytes = std::fs::read(model).map_err(|e| format!("{}: {e}", model.display()))?;
    let file = crate::gguf::parse(&bytes)?;
    let arch = file
        .architecture
        .clone()
        .ok_or("the model has no general.architecture")?;
    let out = file
        .tensors
        .iter()
        .filter(|t| t.dims.len() == 2 && suffixes.iter().any(|s| t.name.ends_with(s)))
        .map(|t| (t.name.clone(), t.dims[0] as usize, t.dims[1] as usize))
        .collect();
    Ok((arch, out))
}

const ALIGN: usize = 32;

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn kv_string(out: &mut Vec<u8>, key: &str, value: &str) {
    string(out, key);
    out.extend_from_slice(&8u32.to_le_bytes());
    string(out, value);
}

/// The adapter's bytes: header, metadata, tensor infos, aligned f32 data.
pub fn adapter_bytes(
    architecture: &str,
    alpha: f32,
    pairs: &[LoraPair],
) -> Result<Vec<u8>, String> {
    for p in pairs {
        if p.rank == 0 || p.a.len() != p.rank * p.n_in || p.b.len() != p.n_out * p.rank {
            return Err(format!(
                "{}: factors do not match rank {} and {}×{}",
                p.target, p.rank, p.n_out, p.n_in
            ));
        }
    }
    let mut out = Vec::new();
    out.extend_from_slice(b"GGUF");
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&((pairs.len() * 2) as u64).to_le_bytes());
    out.extend_from_slice(&5u64.to_le_bytes());
    kv_string(&mut out, "general.architecture", architecture);
    kv_string(&mut out, "general.type", "adapter");
    kv_string(&mut out, "adapter.type", "lora");
    string(&mut out, "adapter.lora.alpha");
    out.extend_from_slice(&6u32.to_le_bytes());
    out.extend_from_slice(&alpha.to_le_bytes());
    string(&mut out, "general.alignment");
    out.extend_from_slice(&4u32.to_le_bytes());
    out.extend_from_slice(&(ALIGN as u32).to_le_bytes());
    // Tensor infos: A then B for each pair, offsets aligned.
    let mut offset = 0usize;
    let mut data: Vec<&[f32]> = Vec::with_capacity(pairs.len() * 2);
    for p in pairs {
        for (suffix, dims, values) in [
            ("lora_a", [p.n_in, p.rank], p.a.as_slice()),
            ("lora_b", [p.rank, p.n_out], p.b.as_slice()),
        ] {
            string(&mut out, &format!("{}.{suffix}", p.target));
            out.extend_from_slice(&2u32.to_le_bytes());
            for d in dims {
                out.extend_from_slice(&(d as u64).to_le_bytes());
            }
            out.extend_from_slice(&0u32.to_le_bytes()); // GGML_TYPE_F32
            out.extend_from_slice(&(offset as u64).to_le_bytes());
            offset += (values.len() * 4).div_ceil(ALIGN) * ALIGN;
            data.push(values);
        }
    }
    out.resize(out.len().div_ceil(ALIGN) * ALIGN, 0);
    for values in data {
        for v in values {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.resize(out.len().div_ceil(ALIGN) * ALIGN, 0);
    }
    Ok(out)
}

/// Writes an adapter file (whole, then renamed into place).
pub fn write_adapter(
    path: &Path,
    architecture: &str,
    alpha: f32,
    pairs: &[LoraPair],
) -> Result<(), String> {
    let bytes = adapter_bytes(architecture, alpha, pairs)?;
    let tmp = path.with_extension("partial");
    let mut f = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.write_all(&bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use llama_cpp_2::context::params::LlamaContextParams;
    use llama_cpp_2::llama_batch::LlamaBatch;
    use llama_cpp_2::model::{LlamaLoraAdapter, LlamaModel};
    use llama_cpp_2::token::LlamaToken;

    use super::*;

    #[test]
    fn the_file_reads_back_with_its_names_dims_and_metadata() {
        let pair = LoraPair {
            target: "blk.0.attn_q.weight".into(),
            rank: 2,
            n_in: 3,
            n_out: 5,
            a: vec![0.5; 6],
            b: vec![-1.0; 10],
        };
        let bytes = adapter_bytes("gemma3", 16.0, std::slice::from_ref(&pair)).expect("bytes");
        let file = crate::gguf::parse(&bytes).expect("parses");
        assert_eq!(file.architecture.as_deref(), Some("gemma3"));
        let names: Vec<(&str, &[u64])> = file
            .tensors
            .iter()
            .map(|t| (t.name.as_str(), t.dims.as_slice()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("blk.0.attn_q.weight.lora_a", &[3u64, 2][..]),
                ("blk.0.attn_q.weight.lora_b", &[2u64, 5][..])
            ]
        );
        assert!(adapter_bytes("gemma3", 16.0, &[LoraPair { rank: 3, ..pair }]).is_err());
    }

    /// The last token's logits for a prompt, with the adapter at `scale`.
    fn logits(model: &LlamaModel, adapter: Option<&mut LlamaLoraAdapter>) -> Vec<f32> {
        let backend = crate::backend().expect("backend");
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(128))
            .with_n_threads(2)
            .with_n_threads_batch(2);
        let mut ctx = model.new_context(backend, params).expect("context");
        if let Some(a) = adapter {
            ctx.lora_adapter_set(a, 1.0).expect("adapter set");
        }
        let prompt = [2, 818, 5279, 529, 7001, 563];
        let mut batch = LlamaBatch::new(16, 1);
        for (i, t) in prompt.iter().enumerate() {
            batch
                .add(LlamaToken(*t), i as i32, &[0], i + 1 == prompt.len())
                .expect("batch");
        }
        ctx.decode(&mut batch).expect("decode");
        ctx.get_logits_ith(prompt.len() as i32 - 1).to_vec()
    }

    /// llama.cpp loads what we write: an adapter whose B is zero changes
    /// nothing, one with B set moves the logits, and one shaped for another
    /// model is refused.
    #[test]
    fn llama_cpp_loads_the_adapter_and_applies_it() {
        let path = crate::test_gemma();
        let backend = crate::backend().expect("backend");
        let mut model =
            LlamaModel::load_from_file(backend, &path, &Default::default()).expect("model");
        let (arch, targets) = targets(&path, &["attn_q.weight", "attn_v.weight"]).expect("targets");
        assert_eq!(arch, "gemma3");
        assert_eq!(targets.len(), 2 * 18, "q and v of 18 layers: {targets:?}");
        let rank = 4;
        let pairs = |b: f32| -> Vec<LoraPair> {
            targets
                .iter()
                .map(|(name, n_in, n_out)| LoraPair {
                    target: name.clone(),
                    rank,
                    n_in: *n_in,
                    n_out: *n_out,
                    a: (0..rank * n_in)
                        .map(|i| ((i % 7) as f32 - 3.0) * 0.01)
                        .collect(),
                    b: vec![b; n_out * rank],
                })
                .collect()
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let zero = dir.path().join("zero.gguf");
        let some = dir.path().join("some.gguf");
        write_adapter(&zero, &arch, rank as f32, &pairs(0.0)).expect("write");
        write_adapter(&some, &arch, rank as f32, &pairs(0.05)).expect("write");
        let mut zero = model
            .lora_adapter_init(&zero)
            .expect("llama.cpp loads the adapter");
        let mut some = model
            .lora_adapter_init(&some)
            .expect("llama.cpp loads the adapter");
        let base = logits(&model, None);
        let with_zero = logits(&model, Some(&mut zero));
        let with_some = logits(&model, Some(&mut some));
        let diff = |x: &[f32], y: &[f32]| {
            x.iter()
                .zip(y)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max)
        };
        assert!(
            diff(&base, &with_zero) < 1e-3,
            "a zero B changes nothing: {}",
            diff(&base, &with_zero)
        );
        assert!(
            diff(&base, &with_some) > 0.1,
            "B set moves the logits: {}",
            diff(&base, &with_some)
        );

        let wrong = dir.path().join("wrong.gguf");
        let mut bad = pairs(0.0);
        bad[0].n_in += 1;
        bad[0].a = vec![0.0; rank * bad[0].n_in];
        write_adapter(&wrong, &arch, 1.0, &bad).expect("write");
        assert!(
            model.lora_adapter_init(&wrong).is_err(),
            "a wrong shape is refused"
        );
    }
}

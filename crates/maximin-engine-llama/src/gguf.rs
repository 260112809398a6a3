//! A copy of a GGUF whose layer weights are in the format llama.cpp
//! multiplies fastest in batches on this CPU.
//!
//! When llama.cpp decodes a step of many sequences, every weight matrix is
//! multiplied by a batch of rows. On x86 it has no batched kernel for Q6_K
//! (one dot product per weight row and batch row: every 6-bit weight unpacked
//! 16 times for 16 sequences), and its tinyBLAS kernel for Q5_0 spends much of
//! its time re-assembling the fifth bit. In Gemma 3 270M's Q4_K_M file most
//! layer matrices are Q5_0 (their 640-wide rows are not a multiple of the 256
//! that K-quants need), the rest Q4_K and Q6_K. [`batched_copy`] writes, once,
//! a copy by one of two recipes ([`Recipe::for_this_cpu`]):
//!
//! - **BF16 layers**, on CPUs with AVX-512 BF16: every quantized matrix of a
//!   layer (`blk.*`) becomes BF16, which tinyBLAS multiplies with
//!   `vdpbf16ps` and no per-block scales. On gemma-3-270m (2 threads, AMD
//!   EPYC) prompts run 1.2-1.6x and 16-stream decoding 1.2x faster than the
//!   Q8_0 recipe; one stream is ~15 % slower (twice the bytes per weight,
//!   read once per token). BF16 keeps 8 significant bits: a weight moves by
//!   at most 1/512 of itself, a sixteenth of what 5-bit quantization already
//!   moved it. The token embedding (the output projection) stays as it is.
//! - **Q8_0**, elsewhere: Q5_0 and Q6_K tensors become Q8_0, tinyBLAS's
//!   cheapest quantized format.
//!   - Q5_0 → Q8_0 is exact: a Q5_0 weight is `d · (q − 16)` with `q` in
//!     0..32, which Q8_0 holds as the same `d` and the byte `q − 16`.
//!   - Q6_K → Q8_0 is not exact (Q6_K has a scale per 16 weights inside each
//!     block of 32), but Q8_0 is finer: a weight moves by at most half a
//!     Q8_0 step (1/254 of its block's largest magnitude), well inside the
//!     6-bit quantisation it already carries.
//!
//! Everything else (metadata, other tensors, their order and alignment) is
//! byte for byte the same. The copy sits beside the original as
//! `.NAME.SIZE-MTIME.RECIPE.gguf` and is rebuilt when the original or the
//! recipe changes (a copy by another recipe is removed).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::quants::*;

/// How a copy's layer weights are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recipe {
    /// Q5_0 and Q6_K tensors as Q8_0.
    Q8_0,
    /// Every quantized layer matrix as BF16.
    Bf16Layers,
}

impl Recipe {
    /// BF16 layers where the CPU multiplies BF16 natively (AVX-512 BF16),
    /// else Q8_0: without it llama.cpp converts BF16 to f32 on every use.
    pub(crate) fn for_this_cpu() -> Recipe {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bf16")
            {
                return Recipe::Bf16Layers;
            }
        }
        Recipe::Q8_0
    }

    /// In the copy's file name.
    fn name(self) -> &'static str {
        match self {
            Recipe::Q8_0 => "q5_0+q6_k-as-q8_0",
            Recipe::Bf16Layers => "layers-as-bf16",
        }
    }

    /// The type `t` gets in the copy, where it changes.
    fn converts(self, t: &TensorInfo) -> Option<u32> {
        let (weights, _) = block(t.kind)?;
        if !t
            .dims
            .first()
            .is_some_and(|&n| n > 0 && n % weights as u64 == 0)
        {
            return None;
        }
        match self {
            Recipe::Q8_0 => {
                matches!(t.kind, GGML_TYPE_Q6_K | GGML_TYPE_Q5_0).then_some(GGML_TYPE_Q8_0)
            }
            Recipe::Bf16Layers => {
                (t.name.starts_with("blk.") && t.dims.len() == 2).then_some(GGML_TYPE_BF16)
            }
        }
    }
}

/// The file to load: a copy of `path` by this CPU's [`Recipe`] when it has
/// tensors to convert (made on first use), else `path` itself. A copy that
/// cannot be made is logged and the original is used.
pub fn batched_copy(path: &Path) -> PathBuf {
    batched_copy_by(path, Recipe::for_this_cpu())
}

fn batched_copy_by(path: &Path, recipe: Recipe) -> PathBuf {
    match prepare(path, recipe) {
        Ok(Some(copy)) => copy,
        Ok(None) => path.to_path_buf(),
        Err(e) => {
            tracing::warn!(error = %e, "loading the GGUF as it is, without a copy for batched decoding");
            path.to_path_buf()
        }
    }
}

/// The output projection of the GGUF at `path` (`output.weight`, else the
/// tied `token_embd.weight`) when it is Q8_0: its row count (the vocabulary),
/// row width and blocks. Only the header and that tensor are read.
pub fn output_q8_0(path: &Path) -> Result<Option<(usize, usize, Vec<u8>)>, String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = fs::File::open(path).map_err(|e| format!("cannot open the weights: {e}"))?;
    let size = f
        .metadata()
        .map_err(|e| format!("cannot stat the weights: {e}"))?
        .len();
    // The header (the tokenizer's vocabulary is most of it) is read in
    // growing pieces until it parses.
    let mut head = Vec::new();
    let mut want = 8u64 << 20;
    let file = loop {
        let want_now = want.min(size);
        head.resize(
            usize::try_from(want_now).map_err(|_| "the GGUF is too large")?,
            0,
        );
        f.seek(SeekFrom::Start(0))
            .and_then(|_| f.read_exact(&mut head))
            .map_err(|e| format!("cannot read the weights: {e}"))?;
        match parse(&head) {
            Ok(file) => break file,
            Err(_) if want_now < size => want = want.saturating_mul(4),
            Err(e) => return Err(e),
        }
    };
    let pick = |n: &str| file.tensors.iter().find(|t| t.name == n);
    let Some(t) = pick("output.weight").or_else(|| pick("token_embd.weight")) else {
        return Ok(None);
    };
    if t.kind != GGML_TYPE_Q8_0 || t.dims.len() != 2 || !t.dims[0].is_multiple_of(QK8_0 as u64) {
        return Ok(None);
    }
    let (cols, rows) = (t.dims[0] as usize, t.dims[1] as usize);
    let len = rows * cols / QK8_0 * Q8_0_BYTES;
    let at = file.data_start as u64 + t.offset;
    if at + len as u64 > size {
        return Err("the output tensor lies past the end of the GGUF".into());
    }
    let mut data = vec![0u8; len];
    f.seek(SeekFrom::Start(at))
        .and_then(|_| f.read_exact(&mut data))
        .map_err(|e| format!("cannot read the output tensor: {e}"))?;
    Ok(Some((rows, cols, data)))
}

fn prepare(path: &Path, recipe: Recipe) -> Result<Option<PathBuf>, String> {
    let meta = fs::metadata(path).map_err(|e| format!("cannot stat the weights: {e}"))?;
    let stamp = format!(
        "{}-{}",
        meta.len(),
        meta.modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos())
    );
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or("the weights path has no file name")?;
    let dir = path.parent().ok_or("the weights path has no directory")?;
    let copy = dir.join(format!(".{name}.{stamp}.{}.gguf", recipe.name()));
    if copy.is_file() {
        return Ok(Some(copy));
    }

    let bytes = fs::read(path).map_err(|e| format!("cannot read the weights: {e}"))?;
    let file = parse(&bytes)?;
    if !file.tensors.iter().any(|t| recipe.converts(t).is_some()) {
        return Ok(None);
    }
    let started = std::time::Instant::now();
    let out = rewrite(&bytes, &file, recipe)?;

    // Copies of older versions of the file go (never this one: another
    // process may have just made it); the new one appears whole or not at all.
    let prefix = format!(".{name}.");
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(&prefix) && n.ends_with(".gguf") && e.path() != copy {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    let tmp = dir.join(format!(
        ".{name}.{stamp}.{}.{:?}.tmp",
        std::process::id(),
        std::thread::current().id()
    ));
    let written = fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(&out).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&tmp, &copy));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(format!("cannot write {}: {e}", copy.display()));
    }
    tracing::info!(
        file = %name,
        recipe = recipe.name(),
        ms = started.elapsed().as_millis() as u64,
        "wrote a copy of the GGUF for batched decoding"
    );
    Ok(Some(copy))
}

pub(crate) struct TensorInfo {
    pub(crate) name: String,
    pub(crate) dims: Vec<u64>,
    pub(crate) kind: u32,
    /// Offset within the data section.
    offset: u64,
    /// Where the type and offset fields sit in the header.
    kind_at: usize,
    offset_at: usize,
}

impl TensorInfo {
    fn elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

pub(crate) struct GgufFile {
    pub(crate) tensors: Vec<TensorInfo>,
    data_start: usize,
    alignment: usize,
    /// `general.architecture` (`gemma3`).
    pub(crate) architecture: Option<String>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or("the GGUF header is cut short")?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn len(&mut self) -> Result<usize, String> {
        usize::try_from(self.u64()?).map_err(|_| "a GGUF length is too large".to_owned())
    }
    fn string(&mut self) -> Result<String, String> {
        let n = self.len()?;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    /// Skips a metadata value of type `kind`; returns it when it is a u32.
    fn value(&mut self, kind: u32) -> Result<Option<u32>, String> {
        let fixed = match kind {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            10..=12 => 8,
            8 => {
                let n = self.len()?;
                self.take(n)?;
                return Ok(None);
            }
            9 => {
                let inner = self.u32()?;
                let count = self.len()?;
                for _ in 0..count {
                    self.value(inner)?;
                }
                return Ok(None);
            }
            k => return Err(format!("unknown GGUF metadata type {k}")),
        };
        if kind == 4 {
            return self.u32().map(Some);
        }
        self.take(fixed)?;
        Ok(None)
    }
}

pub(crate) fn parse(bytes: &[u8]) -> Result<GgufFile, String> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(4)? != b"GGUF" {
        return Err("not a GGUF file".into());
    }
    let version = r.u32()?;
    if !(2..=3).contains(&version) {
        return Err(format!("GGUF version {version} is not handled"));
    }
    let tensors = r.len()?;
    let kvs = r.len()?;
    let mut alignment = 32usize;
    let mut architecture = None;
    for _ in 0..kvs {
        let key = r.string()?;
        let kind = r.u32()?;
        if key == "general.architecture" && kind == 8 {
            architecture = Some(r.string()?);
            continue;
        }
        let value = r.value(kind)?;
        if key == "general.alignment" {
            if let Some(a) = value.filter(|a| a.is_power_of_two()) {
                alignment = a as usize;
            }
        }
    }
    let mut infos = Vec::with_capacity(tensors.min(1 << 16));
    for _ in 0..tensors {
        let name = r.string()?;
        let n_dims = r.u32()? as usize;
        if n_dims > 8 {
            return Err(format!("a tensor has {n_dims} dimensions"));
        }
        let dims = (0..n_dims)
            .map(|_| r.u64())
            .collect::<Result<Vec<_>, _>>()?;
        let kind_at = r.at;
        let kind = r.u32()?;
        let offset_at = r.at;
        let offset = r.u64()?;
        infos.push(TensorInfo {
            name,
            dims,
            kind,
            offset,
            kind_at,
            offset_at,
        });
    }
    let data_start = r.at.div_ceil(alignment) * alignment;
    if data_start > bytes.len() {
        return Err("the GGUF data section is missing".into());
    }
    Ok(GgufFile {
        tensors: infos,
        data_start,
        alignment,
        architecture,
    })
}

fn rewrite(bytes: &[u8], file: &GgufFile, recipe: Recipe) -> Result<Vec<u8>, String> {
    let data = &bytes[file.data_start..];
    let mut order: Vec<usize> = (0..file.tensors.len()).collect();
    order.sort_by_key(|&i| file.tensors[i].offset);

    let mut header = bytes[..file.data_start].to_vec();
    let mut body: Vec<u8> = Vec::with_capacity(data.len() + data.len() / 4);
    for (k, &i) in order.iter().enumerate() {
        let t = &file.tensors[i];
        let start = usize::try_from(t.offset).map_err(|_| "a tensor offset is too large")?;
        let end = match order.get(k + 1) {
            Some(&next) => usize::try_from(file.tensors[next].offset)
                .map_err(|_| "a tensor offset is too large")?,
            None => data.len(),
        };
        if start > end || end > data.len() {
            return Err("the GGUF's tensor offsets are inconsistent".into());
        }
        let new_offset = body.len() as u64;
        header[t.offset_at..t.offset_at + 8].copy_from_slice(&new_offset.to_le_bytes());
        let Some(to) = recipe.converts(t) else {
            body.extend_from_slice(&data[start..end]);
            continue;
        };
        let (per_block, block_bytes) = block(t.kind).ok_or("a tensor of a type not converted")?;
        let blocks = usize::try_from(t.elements() / per_block as u64)
            .map_err(|_| "a tensor is too large")?;
        let need = blocks * block_bytes;
        if end - start < need {
            return Err("a tensor is shorter than its shape".into());
        }
        let blocks = &data[start..start + need];
        match (t.kind, to) {
            (GGML_TYPE_Q6_K, GGML_TYPE_Q8_0) => q6_k_to_q8_0(blocks, &mut body),
            (GGML_TYPE_Q5_0, GGML_TYPE_Q8_0) => q5_0_to_q8_0(blocks, &mut body),
            _ => to_bf16(t.kind, blocks, &mut body),
        }
        header[t.kind_at..t.kind_at + 4].copy_from_slice(&to.to_le_bytes());
        let padded = body.len().div_ceil(file.alignment) * file.alignment;
        body.resize(padded, 0);
    }
    header.extend_from_slice(&body);
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quants::tests::sample_block;
    use llama_cpp_2::model::LlamaModel;

    /// A minimal GGUF: one u32 and one string key, a Q6_K and an f32 tensor.
    fn tiny_gguf() -> Vec<u8> {
        tiny_gguf_named("output.weight")
    }

    /// [`tiny_gguf`] with the Q6_K tensor called `q6_k`.
    fn tiny_gguf_named(q6_k: &str) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(b"GGUF");
        h.extend_from_slice(&3u32.to_le_bytes());
        h.extend_from_slice(&2u64.to_le_bytes());
        h.extend_from_slice(&2u64.to_le_bytes());
        let s = |h: &mut Vec<u8>, s: &str| {
            h.extend_from_slice(&(s.len() as u64).to_le_bytes());
            h.extend_from_slice(s.as_bytes());
        };
        s(&mut h, "general.alignment");
        h.extend_from_slice(&4u32.to_le_bytes());
        h.extend_from_slice(&32u32.to_le_bytes());
        s(&mut h, "general.name");
        h.extend_from_slice(&8u32.to_le_bytes());
        s(&mut h, "tiny");
        // f32 tensor first in the header, second in the data.
        s(&mut h, "norm.weight");
        h.extend_from_slice(&1u32.to_le_bytes());
        h.extend_from_slice(&8u64.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&224u64.to_le_bytes());
        s(&mut h, q6_k);
        h.extend_from_slice(&2u32.to_le_bytes());
        h.extend_from_slice(&256u64.to_le_bytes());
        h.extend_from_slice(&1u64.to_le_bytes());
        h.extend_from_slice(&GGML_TYPE_Q6_K.to_le_bytes());
        h.extend_from_slice(&0u64.to_le_bytes());
        h.resize(h.len().div_ceil(32) * 32, 0);
        let (_, _, block) = sample_block();
        h.extend_from_slice(&block);
        h.resize(h.len() + (224 - Q6_K_BYTES), 0);
        for i in 0..8 {
            h.extend_from_slice(&(i as f32 * 0.5).to_le_bytes());
        }
        h
    }

    #[test]
    fn rewrite_converts_q6_k_and_keeps_the_rest() {
        let bytes = tiny_gguf();
        let file = parse(&bytes).expect("parse");
        assert_eq!(file.tensors.len(), 2);
        let out = rewrite(&bytes, &file, Recipe::Q8_0).expect("rewrite");
        let again = parse(&out).expect("parse the copy");
        assert_eq!(again.data_start, file.data_start);
        let norm = &again.tensors[0];
        let output = &again.tensors[1];
        assert_eq!(norm.kind, 0);
        assert_eq!(output.kind, GGML_TYPE_Q8_0);
        assert_eq!(output.offset, 0);
        // 8 blocks of 34 bytes, padded to 32: the f32 tensor follows at 288.
        assert_eq!(norm.offset, 288);
        let f = &out[again.data_start + 288..again.data_start + 288 + 32];
        assert_eq!(f, &bytes[file.data_start + 224..file.data_start + 256]);
        assert!(!again
            .tensors
            .iter()
            .any(|t| Recipe::Q8_0.converts(t).is_some()));
        // The output projection is not a layer's: BF16 leaves it.
        assert!(!file
            .tensors
            .iter()
            .any(|t| Recipe::Bf16Layers.converts(t).is_some()));
    }

    #[test]
    fn the_bf16_recipe_writes_layer_matrices_as_bf16() {
        let bytes = tiny_gguf_named("blk.0.ffn_down.weight");
        let file = parse(&bytes).expect("parse");
        let out = rewrite(&bytes, &file, Recipe::Bf16Layers).expect("rewrite");
        let again = parse(&out).expect("parse the copy");
        let (norm, down) = (&again.tensors[0], &again.tensors[1]);
        assert_eq!(down.kind, GGML_TYPE_BF16);
        assert_eq!(down.offset, 0);
        // 256 weights of 2 bytes, then the f32 tensor, unchanged.
        assert_eq!(norm.kind, 0);
        assert_eq!(norm.offset, 512);
        let f = &out[again.data_start + 512..again.data_start + 544];
        assert_eq!(f, &bytes[file.data_start + 224..file.data_start + 256]);
        let (_, _, block) = sample_block();
        let mut y = [0f32; QK_K];
        dequantize_q6_k(&block, &mut y);
        let weights = &out[again.data_start..again.data_start + 512];
        for (i, (w, want)) in weights.chunks_exact(2).zip(y).enumerate() {
            let got = half::bf16::from_le_bytes([w[0], w[1]]).to_f32();
            assert!(
                (got - want).abs() <= want.abs() / 256.0,
                "weight {i}: {got} vs {want}"
            );
        }
    }

    /// Blocks of `bytes` each, pseudo-random, with the f16 fields at
    #[test]
    fn copies_are_made_once_and_garbage_is_refused() {
        let dir = std::env::temp_dir().join(format!("maximin-gguf-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("mkdir");
        let model = dir.join("m.gguf");
        fs::write(&model, tiny_gguf()).expect("write");
        let copy = batched_copy_by(&model, Recipe::Q8_0);
        assert_ne!(copy, model);
        assert!(copy
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(".m.gguf.")));
        let written = fs::metadata(&copy)
            .expect("copy")
            .modified()
            .expect("mtime");
        assert_eq!(batched_copy_by(&model, Recipe::Q8_0), copy);
        assert_eq!(
            fs::metadata(&copy)
                .expect("copy")
                .modified()
                .expect("mtime"),
            written
        );

        let junk = dir.join("junk.gguf");
        fs::write(&junk, b"GGUF\x03\0\0\0").expect("write");
        let other = batched_copy_by(&model, Recipe::Bf16Layers);
        assert_eq!(
            other, model,
            "output.weight is no layer's: nothing to convert"
        );
        assert_eq!(batched_copy_by(&junk, Recipe::Q8_0), junk);
        let _ = fs::remove_dir_all(dir);
    }

    fn log_softmax(x: &[f32]) -> Vec<f32> {
        let max = x.iter().fold(f32::MIN, |m, &v| m.max(v));
        let sum: f32 = x.iter().map(|v| (v - max).exp()).sum();
        x.iter().map(|v| v - max - sum.ln()).collect()
    }

    /// Both recipes' copies of the default model compute what the original
    /// does: the same greedy continuation, and next-token log-probabilities
    /// within half a nat.
    #[test]
    fn copies_compute_what_the_original_does() {
        let original = crate::test_gemma();
        let model = LlamaModel::load_from_file(
            crate::backend().expect("backend"),
            &original,
            &Default::default(),
        )
        .expect("model");
        let tokens: Vec<i32> = model
            .vocab()
            .tokenize(
                b"<start_of_turn>user\nName three colours of the rainbow and say why the sky is blue.<end_of_turn>\n<start_of_turn>model\n",
                true,
                true,
            )
            .into_iter()
            .map(|t| t.0)
            .collect();
        drop(model);
        let (want, want_tokens) =
            crate::training::reference_run(&original, None, &tokens, 16).expect("original");
        for recipe in [Recipe::Q8_0, Recipe::Bf16Layers] {
            // Beside a link to the model in a directory of its own: a copy
            // replaces other copies beside it, which other tests load.
            let dir = tempfile::tempdir().expect("tempdir");
            let link = dir.path().join("model.gguf");
            std::os::unix::fs::symlink(&original, &link).expect("symlink");
            let copy = batched_copy_by(&link, recipe);
            assert_ne!(copy, link, "{recipe:?}: no copy was made");
            let (got, got_tokens) =
                crate::training::reference_run(&copy, None, &tokens, 16).expect("copy");
            // Log-probabilities of the original's 40 likeliest tokens (what
            // sampling draws from).
            let (want_lp, got_lp) = (log_softmax(&want), log_softmax(&got));
            let mut top: Vec<usize> = (0..want.len()).collect();
            top.sort_by(|&a, &b| want[b].total_cmp(&want[a]));
            let worst = top[..40]
                .iter()
                .fold(0f32, |m, &i| m.max((want_lp[i] - got_lp[i]).abs()));
            eprintln!(
                "{recipe:?}: log-probabilities of the top 40 differ by at most {worst}; top {:.3} vs {:.3}",
                want_lp[top[0]], got_lp[top[0]]
            );
            assert!(
                worst <= 0.5,
                "{recipe:?}: log-probabilities differ by {worst}"
            );
            assert_eq!(
                got_tokens, want_tokens,
                "{recipe:?}: the greedy continuation changed"
            );
        }
    }
}

//! The CLIP tokenizer: `tokenizer/tokenizer.json` when present, else
//! `vocab.json` + `merges.txt` as the SD repositories ship CLIP's, built into
//! the same pipeline transformers' `CLIPTokenizerFast` converts them to
//! (NFC, whitespace folded, lower case; CLIP's split pattern; byte-level BPE
//! with `</w>` ending each word).

use std::path::Path;

use serde_json::Value;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Lowercase, Replace, Sequence as NormSeq, NFC};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSeq;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{SplitDelimiterBehavior, Tokenizer};

use crate::config::{bad, read_file};
use crate::DiffusionError;

pub(crate) const BOS: &str = "<|startoftext|>";
pub(crate) const EOS: &str = "<|endoftext|>";
const CLIP_PATTERN: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

pub(crate) struct ClipTokenizer {
    inner: Tokenizer,
    bos: u32,
    eos: u32,
    pad: u32,
}

impl ClipTokenizer {
    pub(crate) fn load(dir: &Path) -> Result<Self, DiffusionError> {
        let json = dir.join("tokenizer.json");
        let inner = if json.is_file() {
            Tokenizer::from_file(&json).map_err(|e| bad(&json, &e.to_string()))?
        } else {
            let vocab = dir.join("vocab.json");
            let merges = dir.join("merges.txt");
            for f in [&vocab, &merges] {
                if !f.is_file() {
                    return Err(DiffusionError::MissingFile(f.clone()));
                }
            }
            build_clip_bpe(&vocab, &merges)?
        };
        let id = |tok: &str| {
            inner
                .token_to_id(tok)
                .ok_or_else(|| bad(dir, &format!("the tokenizer's vocabulary has no `{tok}`")))
        };
        let bos = id(BOS)?;
        let eos = id(EOS)?;
        let pad = match pad_token(dir)? {
            Some(p) => id(&p)?,
            None => eos,
        };
        Ok(ClipTokenizer {
            inner,
            bos,
            eos,
            pad,
        })
    }

    /// `<|startoftext|>` text `<|endoftext|>`, cut to `len` and padded to it.
    pub(crate) fn encode(&self, text: &str, len: usize) -> Result<Vec<u32>, DiffusionError> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| DiffusionError::Model(format!("tokenizing: {e}")))?;
        let mut ids = Vec::with_capacity(len);
        ids.push(self.bos);
        ids.extend(enc.get_ids().iter().take(len.saturating_sub(2)));
        ids.push(self.eos);
        ids.resize(len, self.pad);
        Ok(ids)
    }

    #[cfg(test)]
    pub(crate) fn save_json(&self, path: &Path) -> Result<(), String> {
        self.inner.save(path, false).map_err(|e| e.to_string())
    }
}

fn build_clip_bpe(vocab: &Path, merges: &Path) -> Result<Tokenizer, DiffusionError> {
    let to_str = |p: &Path| p.to_string_lossy().into_owned();
    let bpe = BPE::builder()
        .files(to_str(vocab), to_str(merges))
        .unk_token(EOS.to_string())
        .end_of_word_suffix("</w>".to_string())
        .build()
        .map_err(|e| bad(vocab, &format!("with merges.txt: {e}")))?;
    let mut tok = Tokenizer::new(bpe);
    let internal =
        |e: tokenizers::Error| DiffusionError::Model(format!("building the tokenizer: {e}"));
    let replace = Replace::new(
        tokenizers::normalizers::replace::ReplacePattern::Regex(r"\s+".into()),
        " ",
    )
    .map_err(internal)?;
    tok.with_normalizer(Some(NormSeq::new(vec![
        NFC.into(),
        replace.into(),
        Lowercase.into(),
    ])))
    .map_err(internal)?;
    let split = Split::new(
        SplitPattern::Regex(CLIP_PATTERN.into()),
        SplitDelimiterBehavior::Removed,
        true,
    )
    .map_err(internal)?;
    tok.with_pre_tokenizer(Some(PreSeq::new(vec![
        split.into(),
        ByteLevel::new(false, true, false).into(),
    ])));
    Ok(tok)
}

/// The padding token from `special_tokens_map.json` or
/// `tokenizer_config.json` (SD 2.x pads with "!", SD 1.x with the end token).
fn pad_token(dir: &Path) -> Result<Option<String>, DiffusionError> {
    for name in ["special_tokens_map.json", "tokenizer_config.json"] {
        let path = dir.join(name);
        if !path.is_file() {
            continue;
        }
        let v: Value =
            serde_json::from_slice(&read_file(&path)?).map_err(|e| bad(&path, &e.to_string()))?;
        match v.get("pad_token") {
            Some(Value::String(s)) => return Ok(Some(s.clone())),
            Some(Value::Object(o)) => {
                if let Some(Value::String(s)) = o.get("content") {
                    return Ok(Some(s.clone()));
                }
            }
            _ => {}
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> (
        tempfile::TempDir,
        ClipTokenizer,
        std::collections::HashMap<String, u32>,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        crate::testing::write_tiny_model(dir.path(), 1).expect("write");
        let tok = ClipTokenizer::load(&dir.path().join("tokenizer")).expect("load");
        let vocab: std::collections::HashMap<String, u32> = serde_json::from_slice(
            &std::fs::read(dir.path().join("tokenizer/vocab.json")).expect("read"),
        )
        .expect("vocab");
        (dir, tok, vocab)
    }

    #[test]
    fn clip_bpe_from_vocab_and_merges() {
        let (_dir, tok, vocab) = tiny();
        let id = |t: &str| vocab[t];
        let ids = tok.encode("A  photo of\tthe CAT!", 12).expect("encode");
        let want = [
            id(BOS),
            id("a</w>"),
            id("photo</w>"),
            id("of</w>"),
            id("the</w>"),
            id("cat</w>"),
            id("!</w>"),
            id(EOS),
            id(EOS),
            id(EOS),
            id(EOS),
            id(EOS),
        ];
        assert_eq!(ids, want);
        // A word outside the merges falls back to its letters.
        let ids = tok.encode("zq", 5).expect("encode");
        assert_eq!(ids, [id(BOS), id("z"), id("q</w>"), id(EOS), id(EOS)]);
        // Long prompts are cut, the end token kept.
        let ids = tok.encode(&"red ".repeat(100), 77).expect("encode");
        assert_eq!(ids.len(), 77);
        assert_eq!(ids[76], id(EOS));
        assert!(ids[1..76].iter().all(|&i| i == id("red</w>")));
    }

    #[test]
    fn tokenizer_json_reads_the_same() {
        let (dir, tok, _) = tiny();
        let json_dir = dir.path().join("json-tokenizer");
        std::fs::create_dir_all(&json_dir).expect("mkdir");
        tok.save_json(&json_dir.join("tokenizer.json"))
            .expect("save");
        std::fs::copy(
            dir.path().join("tokenizer/special_tokens_map.json"),
            json_dir.join("special_tokens_map.json"),
        )
        .expect("copy");
        let from_json = ClipTokenizer::load(&json_dir).expect("load tokenizer.json");
        for text in [
            "a photo of the cat",
            "Sunset over a RIVER, detailed",
            "zebra 42 ünïcode",
        ] {
            assert_eq!(
                tok.encode(text, 77).expect("a"),
                from_json.encode(text, 77).expect("b")
            );
        }
    }

    #[test]
    fn pad_token_from_the_tokenizer_config() {
        let (dir, _, vocab) = tiny();
        let t = dir.path().join("tokenizer");
        std::fs::remove_file(t.join("special_tokens_map.json")).expect("rm");
        std::fs::write(
            t.join("tokenizer_config.json"),
            r#"{"pad_token": {"content": "!", "lstrip": false}}"#,
        )
        .expect("write");
        let tok = ClipTokenizer::load(&t).expect("load");
        let ids = tok.encode("cat", 5).expect("encode");
        assert_eq!(
            ids,
            [
                vocab[BOS],
                vocab["cat</w>"],
                vocab[EOS],
                vocab["!"],
                vocab["!"]
            ]
        );
    }
}

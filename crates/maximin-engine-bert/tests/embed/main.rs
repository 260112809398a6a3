//! Tests of the embeddings engine against the real all-MiniLM-L6-v2 model.
//!
//! They need the model: set `MAXIMIN_TEST_MODELS` to a data dir whose
//! `models/all-minilm-l6-v2/` holds it (see `support::data_dir`).

mod behaviour;
mod reference;
mod support;

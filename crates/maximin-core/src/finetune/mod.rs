//! Fine-tunes (issue 19): LoRA training of the local chat model from an
//! uploaded jsonl, served as a private model.
//!
//! `data.rs`: the training data, checked line by line before anything is
//! trained (every bad line named, with its reason).

pub mod data;

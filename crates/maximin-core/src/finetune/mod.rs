//! Fine-tunes (issue 19): LoRA training of the local chat model from an
//! uploaded jsonl, served as a private model.
//!
//! `data.rs`: the training data, checked line by line before anything is
//! trained (every bad line named, with its reason). `store.rs`: what the
//! store keeps of jobs, their events and checkpoints (`FineTuneStore`, a
//! part of `Store`). `provider.rs`: the `FineTuner` trait (one per
//! capability: the local trainer implements it). `jobs.rs`: create, get,
//! list, cancel, events, checkpoints, deletion, and the `fine_tune` task.
//! `serve.rs`: `ft:…` names resolved for their account, adapters opened
//! in memory files for the engine. `privacy.rs`: the privacy data
//! category `fine_tunes` (the export's records, deletion on request).

pub mod data;
pub mod jobs;
mod privacy;
pub mod provider;
pub mod serve;
pub mod store;

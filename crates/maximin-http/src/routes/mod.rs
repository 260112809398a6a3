//! One module per resource; handlers are named `verb_noun`.

pub mod account;
pub mod anthropic;
pub mod billing;
pub mod files;
pub mod fine_tunes;
pub mod inference;
pub mod media;
pub mod models;
pub mod native_text;
pub mod openai;
pub mod openai_files;
pub mod privacy;
pub mod speech;
pub mod speech_async;
pub mod speech_ws;
pub mod system;
pub mod upstreams;
pub mod voices;

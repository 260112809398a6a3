//! Integration tests: each starts the real `maximin serve` on port 0 with its own
//! data dir, prepares accounts and keys with the real CLI, and speaks HTTP to it.
//! One test binary with modules, so the suite links once.

mod backend;
mod helpers;

mod account_api;
mod auth;
mod billing;
mod chat;
mod cluster;
mod data_dir;
mod embeddings;
mod errors;
mod files;
mod fine_tunes;
mod first_start;
mod hub;
mod hub_browser;
mod idempotency;
mod media;
mod models;
mod models_pull;
mod openapi_conformance;
mod privacy;
mod privacy_canary;
mod privacy_dashboard;
mod privacy_lifecycle;
mod ratelimit;
mod sdk;
mod speech;
mod speech_async;
mod speech_voices;
mod speech_whole;
mod speech_ws;
mod system;
mod upstream;
mod upstream_faults;
mod upstream_mock;
mod upstream_mock_selftest;

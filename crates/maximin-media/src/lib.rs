//! The media use-cases (issue 15): image, video, video agent templates,
//! music and lyrics. A surface parses its wire shape with the functions
//! here and renders what comes back; the request is checked here (errors
//! name their field), the catalog model resolved for the caller and routed
//! onto a provider of `maximin_core::providers::media` (a local engine, an
//! upstream), or made by the [`sandbox`] for `mmx_test_` keys. Video runs as
//! a durable task ([`video::VideoTasks`]) whose statuses reach the caller's
//! webhook ([`webhook`]).

#[cfg(feature = "music")]
pub mod composer;
pub mod fields;
pub mod image;
pub mod inputs;
#[cfg(feature = "diffusion")]
pub mod local;
pub mod lyrics;
pub mod music;
pub mod net;
pub mod sandbox;
pub mod video;
pub mod webhook;

use std::collections::HashMap;
use std::sync::Arc;

use maximin_core::tasks::TaskHandler;
use maximin_core::Platform;
use serde::Deserialize;

/// `[media]` in `maximin.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    /// Let caller-named URLs (images to read, webhooks) reach loopback and
    /// private addresses. Off: only public addresses (SSRF).
    #[serde(default)]
    pub allow_private_urls: bool,
}

/// The task handlers of the media tasks, by kind.
pub fn task_handlers(
    platform: Arc<Platform>,
    hooks: Arc<webhook::Webhooks>,
    config: MediaConfig,
) -> HashMap<String, Arc<dyn TaskHandler>> {
    let handler: Arc<dyn TaskHandler> = Arc::new(video::VideoTasks {
        platform,
        hooks,
        config,
    });
    [video::VIDEO_TASK, video::TEMPLATE_TASK]
        .into_iter()
        .map(|k| (k.to_owned(), handler.clone()))
        .collect()
}

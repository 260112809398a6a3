//! Outputs a speech request leaves as files: the audio of `output_format:
//! url`, subtitle files, a clone's demo. Each is the account's file for 24
//! hours, reached by a signed link.

use std::sync::Arc;

use maximin_audio::Format;
use maximin_core::files::Output;
use maximin_core::{Error, Platform, Result};

use crate::subtitles::Subtitle;

/// How long outputs and their links stay (spec §0.8: 24 hours).
pub const OUTPUT_TTL: time::Duration = time::Duration::hours(24);

/// Writes one account's outputs and links to them.
#[derive(Clone)]
pub struct Outputs {
    platform: Arc<Platform>,
    /// The URL the server is reached at, for links.
    base: String,
    account: String,
}

impl Outputs {
    pub fn new(platform: Arc<Platform>, base: String, account: String) -> Self {
        Outputs {
            platform,
            base,
            account,
        }
    }

    pub fn platform(&self) -> &Arc<Platform> {
        &self.platform
    }

    /// Stores `data` as `filename` (of `kind`) and returns its link.
    pub async fn put(&self, filename: &str, kind: &str, data: &[u8]) -> Result<String> {
        let files = &self.platform.files;
        let expires = self.platform.clock.now() + OUTPUT_TTL;
        let rec = files
            .write_output(
                &Output {
                    account_id: &self.account,
                    purpose: "t2a_output",
                    filename,
                    kind,
                    id: None,
                    expires_at: Some(expires),
                },
                data,
            )
            .await?;
        files.record(&rec).await?;
        Ok(files.link(&self.base, &rec, OUTPUT_TTL))
    }

    /// A synthesis's audio, `speech.<format>`.
    pub async fn audio(&self, format: Format, data: &[u8]) -> Result<String> {
        let ext = format.as_str();
        self.put(&format!("speech.{ext}"), ext, data).await
    }

    /// Subtitles as a JSON array of `{text, time_begin, time_end}`.
    pub async fn subtitles(&self, subs: &[Subtitle]) -> Result<String> {
        let json = serde_json::to_vec(subs).map_err(Error::internal)?;
        self.put("speech.subtitle.json", "json", &json).await
    }
}

//! HTTP: index pages and streamed downloads. A download goes straight to a file
//! (never whole in memory), hashed as it arrives.

use std::path::Path;
use std::time::Duration;

use reqwest::{header, Client, StatusCode, Url};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use crate::digest::Digest;
use crate::error::{chain, io, redact, PullError};
use crate::progress::Progress;
use crate::pypi::{self, ProjectPage, Requirement, JSON_SIMPLE};

/// Index pages are small; anything bigger is not one.
const MAX_PAGE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Clone)]
pub(crate) struct Http {
    client: Client,
}

impl Http {
    pub(crate) fn new() -> Result<Self, PullError> {
        let client = Client::builder()
            .user_agent(concat!("maximin/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| PullError::Source(format!("cannot set up HTTPS: {}", chain(&e))))?;
        Ok(Http { client })
    }

    /// Fetches and parses a package's PEP 691 project page.
    pub(crate) async fn project_page(
        &self,
        index: &str,
        req: &Requirement,
    ) -> Result<(Url, ProjectPage), PullError> {
        let url = pypi::project_url(index, &req.name)?;
        let shown = redact(url.as_str());
        let unreachable = |e: reqwest::Error| {
            PullError::Source(format!(
                "cannot reach the package index at {shown} (package '{}'): {}",
                req.name,
                chain(&e.without_url())
            ))
        };
        let mut resp = self
            .client
            .get(url.clone())
            .header(header::ACCEPT, JSON_SIMPLE)
            .send()
            .await
            .map_err(unreachable)?;
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => {
                return Err(PullError::Usage(format!(
                    "package '{}' is not on the package index ({shown} answered 404)",
                    req.name
                )))
            }
            s => {
                return Err(PullError::Source(format!(
                    "the package index answered {shown} with HTTP {s} (package '{}')",
                    req.name
                )))
            }
        }
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if !content_type.starts_with(JSON_SIMPLE) {
            return Err(PullError::Source(format!(
                "the package index at {shown} does not speak the JSON simple API (PEP 691): it answered '{content_type}'; set MAXIMIN_PYPI_INDEX_URL to an index that does, e.g. {}",
                pypi::DEFAULT_INDEX
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > MAX_PAGE_BYTES {
                return Err(PullError::Source(format!(
                    "the package index page {shown} is larger than {MAX_PAGE_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        let page = ProjectPage::parse(&body, &url)?;
        Ok((url, page))
    }

    /// Streams `url` into a new file at `dest`, reporting progress under `label`.
    /// A failed download leaves a partial file at `dest`, which lies in the
    /// staging directory and goes with it.
    pub(crate) async fn download(
        &self,
        url: &Url,
        dest: &Path,
        label: &str,
        progress: Progress,
    ) -> Result<Digest, PullError> {
        let shown = redact(url.as_str());
        let failed = |e: reqwest::Error| {
            PullError::Source(format!(
                "download of {shown} failed: {}",
                chain(&e.without_url())
            ))
        };
        let mut resp = self.client.get(url.clone()).send().await.map_err(failed)?;
        if !resp.status().is_success() {
            return Err(PullError::Source(format!(
                "download of {shown} failed: HTTP {}",
                resp.status()
            )));
        }
        let total = resp.content_length();
        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(io(format!("cannot create {}", dest.display())))?;
        let mut meter = progress.meter(label, total);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let write_err = || io(format!("cannot write {}", dest.display()));
        while let Some(chunk) = resp.chunk().await.map_err(failed)? {
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(write_err())?;
            size += chunk.len() as u64;
            meter.inc(chunk.len() as u64);
        }
        file.flush().await.map_err(write_err())?;
        file.sync_all().await.map_err(write_err())?;
        meter.finish();
        if let Some(expected) = total {
            if expected != size {
                return Err(PullError::Source(format!(
                    "download of {shown} ended after {size} of {expected} bytes"
                )));
            }
        }
        Ok(Digest {
            sha256: hasher.finalize().into(),
            size,
        })
    }
}

//! Requests to addresses a caller named (an image URL to read, a webhook's
//! `callback_url`): only to public addresses unless the operator allows
//! private ones (`[media] allow_private_urls`), sent to exactly the
//! addresses the guard checked (no second DNS answer), no redirects, with
//! a deadline and a size limit.

use std::time::Duration;

use maximin_core::{Error, Result};
use maximin_upstream::guard;

/// A client pinned to the checked addresses of `url`.
pub async fn pinned_client(
    url: &str,
    field: &str,
    allow_private: bool,
    timeout: Duration,
) -> Result<(reqwest::Client, reqwest::Url)> {
    let (url, addrs) = guard::public_target(url, field, allow_private).await?;
    let host = url.host_str().unwrap_or_default().to_owned();
    let client = reqwest::Client::builder()
        .resolve_to_addrs(&host, &addrs)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .user_agent("maximin")
        .build()
        .map_err(Error::internal)?;
    Ok((client, url))
}

/// GETs a caller-named URL's body, at most `max` bytes.
pub async fn fetch(url: &str, field: &str, allow_private: bool, max: usize) -> Result<Vec<u8>> {
    let (client, url) = pinned_client(url, field, allow_private, Duration::from_secs(30)).await?;
    let unreachable = |why: String| {
        Error::invalid(field, format!("'{field}' could not be read: {why}."))
            .with("reason", "fetch")
    };
    let mut resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| unreachable(without_url(&e)))?;
    if !resp.status().is_success() {
        return Err(unreachable(format!(
            "the server answered {}",
            resp.status()
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| unreachable(without_url(&e)))?
    {
        if body.len() + chunk.len() > max {
            return Err(Error::invalid(
                field,
                format!("'{field}' is larger than {} MB.", max >> 20),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A reqwest error's cause without the URL (which may carry a token).
pub fn without_url(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else {
        "the transfer failed".into()
    }
}

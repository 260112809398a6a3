//! Blobs in an S3-compatible object store (`[storage] s3_endpoint`), for
//! replicas that share no disk. The bytes are sealed before they reach this
//! module (`maximin_core::crypto`): the object store never sees plaintext.
//!
//! A blob is written as one `PUT` when it is small, else as a multipart
//! upload of 8 MiB parts sent as they fill (never whole in memory); nothing
//! is visible under its name until the upload completes at `commit`, and a
//! sink dropped uncommitted aborts its upload. Reads are ranged `GET`s of
//! 8 MiB, each streamed. Requests are signed with AWS Signature V4 from
//! credentials in the environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, optional `AWS_SESSION_TOKEN`), never logged.
//! Objects are addressed path-style (`ENDPOINT/BUCKET/KEY`), which MinIO,
//! Ceph, moto and AWS all serve.

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use hmac::{Hmac, Mac};
use maximin_core::files::{BlobSink, BlobStore};
use maximin_core::{Error, Result};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::io::AsyncRead;

/// Size of each multipart part and each ranged read (S3's parts are at
/// least 5 MiB but the last).
const PART: usize = 8 * 1024 * 1024;
/// Multipart uploads older than this no write will finish (`sweep_orphans`).
const ORPHAN_AGE: time::Duration = time::Duration::days(1);

/// Where and how to reach the bucket.
#[derive(Clone)]
pub struct S3Config {
    /// `http(s)://host:port`, without the bucket.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    /// Prepended to every blob name (e.g. `maximin/`).
    pub prefix: String,
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl S3Config {
    /// The credentials from the environment; an error names what is missing.
    pub fn from_env(endpoint: &str, bucket: &str, region: &str, prefix: &str) -> Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let (Some(access_key), Some(secret_key)) =
            (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
        else {
            return Err(Error::invalid(
                "storage",
                "[storage] s3_endpoint needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment.",
            ));
        };
        Ok(S3Config {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            bucket: bucket.to_owned(),
            region: region.to_owned(),
            prefix: prefix.to_owned(),
            access_key,
            secret_key,
            session_token: var("AWS_SESSION_TOKEN"),
        })
    }
}

#[derive(Clone)]
pub struct S3Blobs {
    http: reqwest::Client,
    config: Arc<S3Config>,
}

fn s3_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::internal(format!("object store, {what}: {e}"))
}

impl S3Blobs {
    pub fn new(config: S3Config) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| s3_err("client", e))?;
        Ok(S3Blobs {
            http,
            config: Arc::new(config),
        })
    }

    /// Makes the bucket unless it exists (a fresh install).
    pub async fn ensure_bucket(&self) -> Result<()> {
        let head = self.send(reqwest::Method::HEAD, "", &[], None, &[]).await?;
        match head.status().as_u16() {
            200 => Ok(()),
            404 => {
                let body = (self.config.region != "us-east-1").then(|| {
                    format!(
                        "<CreateBucketConfiguration><LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                        self.config.region
                    )
                    .into_bytes()
                });
                let r = self.send(reqwest::Method::PUT, "", &[], body, &[]).await?;
                ok(r, "creating the bucket").await.map(drop)
            }
            s => Err(s3_err("the bucket", format!("HEAD answered {s}"))),
        }
    }

    fn key(&self, name: &str) -> Result<String> {
        if name
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(Error::internal(format!("bad blob name {name:?}")));
        }
        Ok(format!("{}{name}", self.config.prefix))
    }

    /// Sends one signed request for `key` (empty: the bucket) with `query`
    /// (name, value) pairs, an optional body and extra signed headers.
    async fn send(
        &self,
        method: reqwest::Method,
        key: &str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
        headers: &[(&str, String)],
    ) -> Result<reqwest::Response> {
        let c = &*self.config;
        let path = if key.is_empty() {
            format!("/{}", uri_encode(&c.bucket, true))
        } else {
            format!(
                "/{}/{}",
                uri_encode(&c.bucket, true),
                uri_encode(key, false)
            )
        };
        let mut pairs: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (uri_encode(k, true), uri_encode(v, true)))
            .collect();
        pairs.sort();
        let canonical_query = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let url = if canonical_query.is_empty() {
            format!("{}{path}", c.endpoint)
        } else {
            format!("{}{path}?{canonical_query}", c.endpoint)
        };
        let host = reqwest::Url::parse(&url)
            .map_err(|e| s3_err("s3_endpoint", e))?
            .host_str()
            .map(|h| h.to_owned())
            .unwrap_or_default();
        let host = match reqwest::Url::parse(&c.endpoint).ok().and_then(|u| u.port()) {
            Some(port) => format!("{host}:{port}"),
            None => host,
        };
        let now = OffsetDateTime::now_utc();
        let date = format!(
            "{:04}{:02}{:02}",
            now.year(),
            u8::from(now.month()),
            now.day()
        );
        let amz_date = format!(
            "{date}T{:02}{:02}{:02}Z",
            now.hour(),
            now.minute(),
            now.second()
        );
        let payload = match &body {
            Some(b) => hex::encode(Sha256::digest(b)),
            None => hex::encode(Sha256::digest(b"")),
        };
        let mut signed: Vec<(String, String)> = vec![
            ("host".into(), host),
            ("x-amz-content-sha256".into(), payload.clone()),
            ("x-amz-date".into(), amz_date.clone()),
        ];
        if let Some(t) = &c.session_token {
            signed.push(("x-amz-security-token".into(), t.clone()));
        }
        for (k, v) in headers {
            signed.push((k.to_ascii_lowercase(), v.trim().to_owned()));
        }
        signed.sort();
        let authorization = authorization(&Signing {
            method: method.as_str(),
            path: &path,
            query: &canonical_query,
            headers: &signed,
            payload: &payload,
            amz_date: &amz_date,
            region: &c.region,
            access_key: &c.access_key,
            secret_key: &c.secret_key,
        });
        let mut req = self
            .http
            .request(method, &url)
            .header("authorization", authorization);
        for (k, v) in &signed {
            if k != "host" {
                req = req.header(k.as_str(), v.as_str());
            }
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        req.send().await.map_err(|e| s3_err("request", e))
    }

    /// Whether a blob is there (a resumed copy skips it).
    pub async fn exists(&self, name: &str) -> Result<bool> {
        let r = self
            .send(reqwest::Method::HEAD, &self.key(name)?, &[], None, &[])
            .await?;
        match r.status().as_u16() {
            404 => Ok(false),
            _ => ok(r, "looking for a blob").await.map(|_| true),
        }
    }

    async fn delete_key(&self, key: &str) -> Result<()> {
        let r = self
            .send(reqwest::Method::DELETE, key, &[], None, &[])
            .await?;
        if r.status().as_u16() == 404 {
            return Ok(());
        }
        ok(r, "deleting").await.map(drop)
    }

    async fn abort(&self, key: &str, upload_id: &str) -> Result<()> {
        let r = self
            .send(
                reqwest::Method::DELETE,
                key,
                &[("uploadId", upload_id)],
                None,
                &[],
            )
            .await?;
        if r.status().as_u16() == 404 {
            return Ok(());
        }
        ok(r, "aborting an upload").await.map(drop)
    }

    /// One range of an object, streamed; `None` when there is no object.
    async fn range(
        &self,
        key: &str,
        from: u64,
    ) -> Result<Option<(Option<u64>, reqwest::Response)>> {
        let to = from + PART as u64 - 1;
        let r = self
            .send(
                reqwest::Method::GET,
                key,
                &[],
                None,
                &[("range", format!("bytes={from}-{to}"))],
            )
            .await?;
        match r.status().as_u16() {
            404 => Ok(None),
            // Past the end of an empty object.
            416 => Ok(Some((Some(0), r))),
            200 => {
                let total = r.content_length();
                Ok(Some((total, r)))
            }
            206 => {
                let total = r
                    .headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.rsplit('/').next())
                    .and_then(|t| t.parse().ok());
                Ok(Some((total, r)))
            }
            _ => ok(r, "reading").await.map(|_| None),
        }
    }
}

/// What a request's signature covers.
struct Signing<'a> {
    method: &'a str,
    /// URI-encoded.
    path: &'a str,
    /// Canonical: sorted, encoded.
    query: &'a str,
    /// Lower-case names, sorted, with trimmed values.
    headers: &'a [(String, String)],
    /// Hex SHA-256 of the body.
    payload: &'a str,
    /// `20130524T000000Z`.
    amz_date: &'a str,
    region: &'a str,
    access_key: &'a str,
    secret_key: &'a str,
}

/// The `Authorization` header of AWS Signature V4 for S3.
fn authorization(s: &Signing<'_>) -> String {
    let date = &s.amz_date[..8];
    let names = s
        .headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let headers: String = s
        .headers
        .iter()
        .map(|(k, v)| format!("{k}:{v}\n"))
        .collect();
    let canonical = format!(
        "{}\n{}\n{}\n{headers}\n{names}\n{}",
        s.method, s.path, s.query, s.payload
    );
    let scope = format!("{date}/{}/s3/aws4_request", s.region);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        s.amz_date,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut k = hmac(format!("AWS4{}", s.secret_key).as_bytes(), date.as_bytes());
    for part in [s.region, "s3", "aws4_request"] {
        k = hmac(&k, part.as_bytes());
    }
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={names}, Signature={}",
        s.access_key,
        hex::encode(hmac(&k, to_sign.as_bytes()))
    )
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// URI-encodes as SigV4 asks: unreserved characters stay, '/' stays in
/// keys (`slash_too` encodes it), everything else is %XX.
fn uri_encode(s: &str, slash_too: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (b == b'/' && !slash_too) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The response when it succeeded, else an error with its status and code.
async fn ok(r: reqwest::Response, what: &str) -> Result<reqwest::Response> {
    if r.status().is_success() {
        return Ok(r);
    }
    let status = r.status().as_u16();
    let body = r.text().await.unwrap_or_default();
    let code = between(&body, "<Code>", "</Code>").unwrap_or("");
    Err(s3_err(what, format!("HTTP {status} {code}")))
}

/// The text between the first `open` and the `close` after it.
fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = s.find(open)? + open.len();
    let len = s[start..].find(close)?;
    Some(&s[start..start + len])
}

#[async_trait]
impl BlobStore for S3Blobs {
    async fn create(&self, name: &str) -> Result<Box<dyn BlobSink>> {
        Ok(Box::new(S3Sink {
            blobs: self.clone(),
            key: self.key(name)?,
            buf: Vec::new(),
            upload: None,
            done: false,
        }))
    }

    async fn open(&self, name: &str) -> Result<Option<Box<dyn AsyncRead + Send + Unpin>>> {
        let key = self.key(name)?;
        let Some((total, first)) = self.range(&key, 0).await? else {
            return Ok(None);
        };
        if first.status().as_u16() == 416 {
            // An empty object: no range of it is satisfiable.
            return Ok(Some(Box::new(tokio::io::empty())));
        }
        let whole = first.status().as_u16() == 200;
        let io = |e: reqwest::Error| std::io::Error::other(e);
        let first = first.bytes_stream().map_err(io);
        // The rest of the ranges, each asked for once the one before it is read.
        let rest: futures_util::stream::BoxStream<'static, std::io::Result<bytes::Bytes>> =
            match total {
                Some(total) if !whole && total > PART as u64 => {
                    let blobs = self.clone();
                    let starts = (1..)
                        .map(|i| i * PART as u64)
                        .take_while(move |s| *s < total);
                    futures_util::stream::iter(starts)
                        .then(move |from| {
                            let blobs = blobs.clone();
                            let key = key.clone();
                            async move {
                                match blobs.range(&key, from).await {
                                    Ok(Some((_, r))) => Ok(r.bytes_stream().map_err(io)),
                                    Ok(None) => Err(std::io::Error::other("the object went away")),
                                    Err(e) => Err(std::io::Error::other(e.message)),
                                }
                            }
                        })
                        .try_flatten()
                        .boxed()
                }
                _ => futures_util::stream::empty().boxed(),
            };
        Ok(Some(Box::new(tokio_util::io::StreamReader::new(
            first.chain(rest),
        ))))
    }

    async fn delete(&self, name: &str) -> Result<()> {
        self.delete_key(&self.key(name)?).await
    }

    /// Aborts multipart uploads under the prefix older than a day: a
    /// process that died mid-write left them (a live write takes minutes).
    async fn sweep_orphans(&self) -> Result<u64> {
        let prefix = self.config.prefix.clone();
        let r = self
            .send(
                reqwest::Method::GET,
                "",
                &[("uploads", ""), ("prefix", &prefix)],
                None,
                &[],
            )
            .await?;
        let body = ok(r, "listing uploads")
            .await?
            .text()
            .await
            .map_err(|e| s3_err("listing uploads", e))?;
        let cutoff = OffsetDateTime::now_utc() - ORPHAN_AGE;
        let mut n = 0;
        for upload in body.split("<Upload>").skip(1) {
            let (Some(key), Some(id), Some(at)) = (
                between(upload, "<Key>", "</Key>"),
                between(upload, "<UploadId>", "</UploadId>"),
                between(upload, "<Initiated>", "</Initiated>"),
            ) else {
                continue;
            };
            let at = OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                .unwrap_or(OffsetDateTime::now_utc());
            if at < cutoff {
                self.abort(&xml_unescape(key), id).await?;
                n += 1;
            }
        }
        Ok(n)
    }
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// A blob being written: bytes gather to a part, parts go up as they fill.
struct S3Sink {
    blobs: S3Blobs,
    key: String,
    buf: Vec<u8>,
    /// The multipart upload, once the blob outgrew one part: its id and
    /// the parts sent (number, ETag).
    upload: Option<(String, Vec<(u32, String)>)>,
    done: bool,
}

impl S3Sink {
    async fn send_part(&mut self) -> Result<()> {
        if self.upload.is_none() {
            let r = self
                .blobs
                .send(
                    reqwest::Method::POST,
                    &self.key,
                    &[("uploads", "")],
                    None,
                    &[],
                )
                .await?;
            let body = ok(r, "starting an upload")
                .await?
                .text()
                .await
                .map_err(|e| s3_err("starting an upload", e))?;
            let id = between(&body, "<UploadId>", "</UploadId>")
                .ok_or_else(|| s3_err("starting an upload", "no UploadId"))?;
            self.upload = Some((id.to_owned(), Vec::new()));
        }
        let Some((id, parts)) = self.upload.as_mut() else {
            return Ok(());
        };
        let number = u32::try_from(parts.len() + 1).unwrap_or(u32::MAX);
        let take = self.buf.len().min(PART);
        let part: Vec<u8> = self.buf.drain(..take).collect();
        let n = number.to_string();
        let r = self
            .blobs
            .send(
                reqwest::Method::PUT,
                &self.key,
                &[("partNumber", &n), ("uploadId", id)],
                Some(part),
                &[],
            )
            .await?;
        let r = ok(r, "sending a part").await?;
        let etag = r
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| s3_err("sending a part", "no ETag"))?
            .to_owned();
        parts.push((number, etag));
        Ok(())
    }
}

#[async_trait]
impl BlobSink for S3Sink {
    async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(data);
        while self.buf.len() >= PART {
            self.send_part().await?;
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        if self.upload.is_none() {
            let body = std::mem::take(&mut self.buf);
            let r = self
                .blobs
                .send(reqwest::Method::PUT, &self.key, &[], Some(body), &[])
                .await?;
            ok(r, "writing").await?;
            self.done = true;
            return Ok(());
        }
        if !self.buf.is_empty() {
            self.send_part().await?;
        }
        let Some((id, parts)) = self.upload.clone() else {
            return Ok(());
        };
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (n, etag) in &parts {
            xml.push_str(&format!(
                "<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let r = self
            .blobs
            .send(
                reqwest::Method::POST,
                &self.key,
                &[("uploadId", &id)],
                Some(xml.into_bytes()),
                &[],
            )
            .await?;
        let r = ok(r, "completing an upload").await?;
        // S3 may answer 200 with an error in the body.
        let body = r.text().await.unwrap_or_default();
        if body.contains("<Error>") {
            let code = between(&body, "<Code>", "</Code>").unwrap_or("");
            return Err(s3_err("completing an upload", code));
        }
        self.done = true;
        Ok(())
    }
}

impl Drop for S3Sink {
    /// An uncommitted multipart upload is aborted (nothing was visible).
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let (Some((id, _)), Ok(rt)) = (self.upload.take(), tokio::runtime::Handle::try_current())
        {
            let blobs = self.blobs.clone();
            let key = std::mem::take(&mut self.key);
            rt.spawn(async move {
                if let Err(e) = blobs.abort(&key, &id).await {
                    tracing::warn!(error = %e.message, "an abandoned upload was not aborted; the sweep will");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// The S3-compatible server tests run against: `MAXIMIN_TEST_S3_ENDPOINT`,
    /// required in CI.
    fn server() -> Option<String> {
        match std::env::var("MAXIMIN_TEST_S3_ENDPOINT") {
            Ok(u) if !u.is_empty() => Some(u),
            _ => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI runs the S3 blob store's tests: set MAXIMIN_TEST_S3_ENDPOINT (scripts/check does)"
                );
                eprintln!("no S3 server (MAXIMIN_TEST_S3_ENDPOINT): skipped");
                None
            }
        }
    }

    async fn blobs(endpoint: &str) -> S3Blobs {
        let b = S3Blobs::new(S3Config {
            endpoint: endpoint.to_owned(),
            bucket: format!("t{:x}", crate::sql::rand_u64() & 0xffff_ffff),
            region: "us-east-1".into(),
            prefix: "blobs/".into(),
            access_key: "testing".into(),
            secret_key: "testing".into(),
            session_token: None,
        })
        .expect("client");
        b.ensure_bucket().await.expect("bucket");
        b.ensure_bucket().await.expect("bucket again");
        b
    }

    async fn read_all(b: &S3Blobs, name: &str) -> Option<Vec<u8>> {
        let mut r = b.open(name).await.expect("open")?;
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.expect("read");
        Some(out)
    }

    #[tokio::test]
    async fn blobs_stream_up_in_parts_read_back_by_ranges_and_appear_only_when_committed() {
        let Some(endpoint) = server() else { return };
        let b = blobs(&endpoint).await;
        // 20 MiB + a little, in uneven writes: three parts.
        let data: Vec<u8> = (0..(2 * PART + 12_345))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let mut sink = b.create("ab/big.mxf").await.expect("create");
        for chunk in data.chunks(1_000_003) {
            sink.write(chunk).await.expect("write");
        }
        assert!(
            read_all(&b, "ab/big.mxf").await.is_none(),
            "invisible before commit"
        );
        sink.commit().await.expect("commit");
        assert_eq!(read_all(&b, "ab/big.mxf").await.expect("blob"), data);

        // Small and empty blobs are one PUT each.
        for (name, bytes) in [("small.mxf", b"sealed".to_vec()), ("empty.mxf", Vec::new())] {
            let mut sink = b.create(name).await.expect("create");
            sink.write(&bytes).await.expect("write");
            sink.commit().await.expect("commit");
            assert_eq!(read_all(&b, name).await.expect("blob"), bytes);
        }

        // A write dropped half-way leaves nothing, and its upload goes.
        let mut sink = b.create("dropped.mxf").await.expect("create");
        sink.write(&data[..PART + 10]).await.expect("write");
        drop(sink);
        assert!(read_all(&b, "dropped.mxf").await.is_none());
        let mut gone = false;
        for _ in 0..50 {
            let r = b
                .send(reqwest::Method::GET, "", &[("uploads", "")], None, &[])
                .await
                .expect("list");
            if !r.text().await.expect("body").contains("dropped.mxf") {
                gone = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(gone, "the abandoned upload was aborted");
        assert_eq!(
            b.sweep_orphans().await.expect("sweep"),
            0,
            "nothing a day old"
        );

        b.delete("ab/big.mxf").await.expect("delete");
        b.delete("ab/big.mxf").await.expect("delete twice");
        assert!(read_all(&b, "ab/big.mxf").await.is_none());
        assert!(
            b.create("../x").await.is_err(),
            "names stay inside the prefix"
        );
    }

    /// The worked example of AWS's SigV4 documentation for S3 ("GET
    /// Object", examplebucket, test.txt, the first 10 bytes).
    #[test]
    fn the_signature_matches_aws_documented_example() {
        let headers = vec![
            (
                "host".to_owned(),
                "examplebucket.s3.amazonaws.com".to_owned(),
            ),
            ("range".to_owned(), "bytes=0-9".to_owned()),
            (
                "x-amz-content-sha256".to_owned(),
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".to_owned(),
            ),
            ("x-amz-date".to_owned(), "20130524T000000Z".to_owned()),
        ];
        let auth = authorization(&Signing {
            method: "GET",
            path: "/test.txt",
            query: "",
            headers: &headers,
            payload: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            amz_date: "20130524T000000Z",
            region: "us-east-1",
            access_key: "AKIAIOSFODNN7EXAMPLE",
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        });
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn keys_are_encoded_as_sigv4_asks() {
        assert_eq!(uri_encode("a b/c~d", false), "a%20b/c~d");
        assert_eq!(uri_encode("a b/c", true), "a%20b%2Fc");
    }
}

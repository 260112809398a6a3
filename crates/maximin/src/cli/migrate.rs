//! `maximin migrate --from sqlite://… --to postgres://… [--blobs-to s3://…]`:
//! a single machine's install into the shared database (and its files into
//! the shared bucket), resumable, with progress on stderr.

use maximin_core::files::BlobStore;
use maximin_store::{DiskBlobs, S3Blobs, S3Config, SqlStore};
use serde::Serialize;
use tokio::io::AsyncReadExt;

use super::{Failure, MigrateArgs, Out};
use crate::config::Config;

#[derive(Serialize)]
struct Report {
    tables: Vec<maximin_store::TableCopy>,
    /// Files (blobs) copied now, and those the bucket had already.
    blobs_copied: u64,
    blobs_present: u64,
}

pub(super) async fn migrate(config: &Config, args: &MigrateArgs, out: &Out) -> Result<(), Failure> {
    let from = match &args.from {
        Some(url) => url.clone(),
        None => format!("sqlite://{}", config.data_dir.join("maximin.db").display()),
    };
    if !from.starts_with("sqlite:") && from.contains("://") {
        return Err(Failure::Setup(format!(
            "--from names the single machine's SQLite database (sqlite://PATH), not '{}'",
            from.split("://").next().unwrap_or_default()
        )));
    }
    let path = from
        .strip_prefix("sqlite://")
        .or_else(|| from.strip_prefix("sqlite:"))
        .unwrap_or(&from);
    if !std::path::Path::new(path).is_file() {
        return Err(Failure::Setup(format!("--from: no database at {path}")));
    }
    if !(args.to.starts_with("postgres://") || args.to.starts_with("postgresql://")) {
        return Err(Failure::Setup(
            "--to names the shared PostgreSQL database (postgres://…)".into(),
        ));
    }
    let source = SqlStore::open(std::path::Path::new(path)).await?;
    let target = SqlStore::connect(&args.to).await?;
    let tables = source
        .copy_into(&target, |table, done, total| {
            eprintln!("{table}: {done}/{total} rows");
        })
        .await?;
    let (mut blobs_copied, mut blobs_present) = (0, 0);
    if let Some(dest) = &args.blobs_to {
        (blobs_copied, blobs_present) = copy_blobs(config, dest).await?;
    }
    source.close().await;
    target.close().await;
    let report = Report {
        tables,
        blobs_copied,
        blobs_present,
    };
    out.print(&report, || {
        let mut lines: Vec<String> = report
            .tables
            .iter()
            .map(|t| {
                format!(
                    "{:<20} {:>9} rows, {:>9} copied now",
                    t.table, t.rows, t.copied
                )
            })
            .collect();
        if args.blobs_to.is_some() {
            lines.push(format!(
                "files: {} copied now, {} already in the bucket",
                report.blobs_copied, report.blobs_present
            ));
        }
        lines.push(
            "done: start the replicas with --database-url (and [storage]) pointing there".into(),
        );
        lines.join("\n")
    });
    Ok(())
}

/// Copies every sealed blob of `DATA_DIR/files` to `s3://BUCKET[/PREFIX]`
/// (the endpoint from `AWS_ENDPOINT_URL`, else `[storage] s3_endpoint`),
/// skipping those already there; they stay sealed (the bytes are copied
/// as they are).
async fn copy_blobs(config: &Config, dest: &str) -> Result<(u64, u64), Failure> {
    let Some(rest) = dest.strip_prefix("s3://") else {
        return Err(Failure::Setup(
            "--blobs-to takes s3://BUCKET[/PREFIX]".into(),
        ));
    };
    let (bucket, prefix) = match rest.split_once('/') {
        Some((b, p)) if !p.is_empty() => (b, format!("{}/", p.trim_end_matches('/'))),
        Some((b, _)) => (b, String::new()),
        None => (rest, String::new()),
    };
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|e| !e.is_empty())
        .or_else(|| config.storage.s3_endpoint.clone())
        .ok_or_else(|| {
            Failure::Setup(
                "--blobs-to needs the S3 server: AWS_ENDPOINT_URL or [storage] s3_endpoint".into(),
            )
        })?;
    let region = std::env::var("AWS_REGION")
        .ok()
        .or_else(|| config.storage.region.clone())
        .unwrap_or_else(|| "us-east-1".into());
    let s3 = S3Blobs::new(
        S3Config::from_env(&endpoint, bucket, &region, &prefix)
            .map_err(|e| Failure::Setup(e.message))?,
    )?;
    s3.ensure_bucket().await?;
    let disk = DiskBlobs::new(config.data_dir.join("files"));
    let names = disk.names()?;
    let total = names.len();
    let (mut copied, mut present) = (0u64, 0u64);
    let mut buf = vec![0u8; 1 << 20];
    for (i, name) in names.iter().enumerate() {
        if s3.exists(name).await? {
            present += 1;
        } else if let Some(mut reader) = disk.open(name).await? {
            let mut sink = s3.create(name).await?;
            loop {
                let n = reader
                    .read(&mut buf)
                    .await
                    .map_err(|e| Failure::Setup(format!("reading {name}: {e}")))?;
                if n == 0 {
                    break;
                }
                sink.write(&buf[..n]).await?;
            }
            sink.commit().await?;
            copied += 1;
        }
        eprintln!("files: {}/{total}", i + 1);
    }
    Ok((copied, present))
}

//! Images callers send (a first or last frame, a subject reference): a
//! `data:` URL decoded here, or a public http(s) URL read through the guard.
//! Only PNG, JPEG and WebP are taken, recognised by their bytes.

use base64::Engine as _;
use maximin_core::providers::media::ImageInput;
use maximin_core::{Error, Result};

use crate::net;

/// Largest image read (spec §6: under 20 MB).
pub const MAX_IMAGE_BYTES: usize = 20 << 20;

/// The image kinds taken, by their first bytes.
pub fn image_kind(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("png")
    } else if bytes.starts_with(b"\xff\xd8\xff") {
        Some("jpeg")
    } else if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        Some("webp")
    } else {
        None
    }
}

/// Whether `s` looks like an image reference this server can read (checked
/// when a task is created; read when it runs).
pub fn check_reference(s: &str, field: &str) -> Result<()> {
    if s.starts_with("data:") {
        decode_data_url(s, field).map(|_| ())
    } else if s.starts_with("http://") || s.starts_with("https://") {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!(
                "'{field}' must be an http(s) URL or a data: URL of a JPEG, PNG or WebP image."
            ),
        ))
    }
}

fn decode_data_url(s: &str, field: &str) -> Result<Vec<u8>> {
    let bad =
        |why: &str| Error::invalid(field, format!("'{field}' is not a usable data URL: {why}."));
    let rest = s
        .strip_prefix("data:")
        .ok_or_else(|| bad("no data: prefix"))?;
    let (meta, data) = rest.split_once(',').ok_or_else(|| bad("no comma"))?;
    if !meta.ends_with(";base64") {
        return Err(bad("images must be base64-encoded"));
    }
    if data.len() > MAX_IMAGE_BYTES / 3 * 4 + 4 {
        return Err(Error::invalid(
            field,
            format!("'{field}' is larger than 20 MB."),
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|_| bad("the base64 does not decode"))?;
    if image_kind(&bytes).is_none() {
        return Err(Error::invalid(
            field,
            format!("'{field}' is not a JPEG, PNG or WebP image."),
        ));
    }
    Ok(bytes)
}

/// Reads an image reference into bytes.
pub async fn read(s: &str, field: &str, allow_private: bool) -> Result<ImageInput> {
    let bytes = if s.starts_with("data:") {
        decode_data_url(s, field)?
    } else {
        check_reference(s, field)?;
        let bytes = net::fetch(s, field, allow_private, MAX_IMAGE_BYTES).await?;
        if image_kind(&bytes).is_none() {
            return Err(Error::invalid(
                field,
                format!("'{field}' is not a JPEG, PNG or WebP image."),
            ));
        }
        bytes
    };
    Ok(ImageInput {
        source: s.to_owned(),
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_are_decoded_and_checked() {
        let png = b"\x89PNG\r\n\x1a\n0000";
        let url = format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(png)
        );
        assert!(check_reference(&url, "first_frame_image").is_ok());
        let e = check_reference("data:image/png;base64,aGVsbG8=", "first_frame_image")
            .expect_err("not an image");
        assert_eq!(e.details["field"], "first_frame_image");
        assert!(check_reference("ftp://x/y.png", "f").is_err());
        assert!(check_reference("https://example.com/a.png", "f").is_ok());
    }
}

//! PNG/JPEG encoding, decoding (PNG, JPEG, WebP, told apart by their bytes)
//! and the fit of an init image to the requested size.

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::imageops::FilterType;
use image::{ExtendedColorType, ImageEncoder, ImageFormat};

use crate::{DiffusionError, RgbImage};

/// The pixel buffer at exactly `width * height * 3` bytes (a short one is
/// padded with black), so encoders never see a mismatched buffer.
fn exact_pixels(img: &RgbImage) -> std::borrow::Cow<'_, [u8]> {
    let n = img.width as usize * img.height as usize * 3;
    if img.pixels.len() == n {
        std::borrow::Cow::Borrowed(&img.pixels)
    } else {
        let mut p = img.pixels.clone();
        p.resize(n, 0);
        std::borrow::Cow::Owned(p)
    }
}

/// PNG bytes of the image (empty for an image with no pixels).
pub fn encode_png(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    if img.width == 0 || img.height == 0 {
        return out;
    }
    let px = exact_pixels(img);
    let enc = PngEncoder::new(&mut out);
    if enc
        .write_image(&px, img.width, img.height, ExtendedColorType::Rgb8)
        .is_err()
    {
        out.clear();
    }
    out
}

/// JPEG bytes at `quality` (1–100; 0 is taken as 1).
pub fn encode_jpeg(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    if img.width == 0 || img.height == 0 || img.width > 65_535 || img.height > 65_535 {
        return out;
    }
    let px = exact_pixels(img);
    let enc = JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100));
    if enc
        .write_image(&px, img.width, img.height, ExtendedColorType::Rgb8)
        .is_err()
    {
        out.clear();
    }
    out
}

/// Decodes PNG, JPEG or WebP (recognised by content) to RGB8; alpha is dropped.
pub fn decode_image(bytes: &[u8]) -> Result<RgbImage, DiffusionError> {
    let format = image::guess_format(bytes)
        .map_err(|_| DiffusionError::Image("not a PNG, JPEG or WebP image".into()))?;
    if !matches!(
        format,
        ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP
    ) {
        return Err(DiffusionError::Image(format!(
            "{format:?} images are not accepted (PNG, JPEG or WebP)"
        )));
    }
    let img = image::load_from_memory_with_format(bytes, format)
        .map_err(|e| DiffusionError::Image(e.to_string()))?
        .to_rgb8();
    Ok(RgbImage {
        width: img.width(),
        height: img.height(),
        pixels: img.into_raw(),
    })
}

/// Scales the image to cover `width × height` and crops the centre.
pub(crate) fn fit(img: &RgbImage, width: u32, height: u32) -> Result<RgbImage, DiffusionError> {
    if img.width == 0 || img.height == 0 {
        return Err(DiffusionError::InvalidRequest(
            "the init image is empty".into(),
        ));
    }
    if img.width == width
        && img.height == height
        && img.pixels.len() == (width * height * 3) as usize
    {
        return Ok(img.clone());
    }
    let buf = image::RgbImage::from_raw(img.width, img.height, exact_pixels(img).into_owned())
        .ok_or_else(|| {
            DiffusionError::InvalidRequest("the init image's pixels do not match its size".into())
        })?;
    let out = image::DynamicImage::ImageRgb8(buf)
        .resize_to_fill(width, height, FilterType::Triangle)
        .to_rgb8();
    Ok(RgbImage {
        width: out.width(),
        height: out.height(),
        pixels: out.into_raw(),
    })
}

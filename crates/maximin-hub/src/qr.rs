//! QR codes drawn on the server, as inline SVG (no script, no image fetch).

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// The SVG of a QR code holding `text`, or nothing when it does not fit.
pub fn svg(text: &str) -> String {
    match QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M) {
        Ok(code) => code
            .render::<svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .dark_color(svg::Color("#000000"))
            .light_color(svg::Color("#ffffff"))
            .build()
            // Inline in HTML: no XML declaration.
            .split_once("<svg")
            .map(|(_, rest)| format!("<svg role=\"img\" aria-label=\"QR code\"{rest}"))
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn draws_an_svg() {
        let s = super::svg("otpauth://totp/maximin:a%40x.io?secret=ABC");
        assert!(s.starts_with("<svg") && s.contains("</svg>"));
        assert!(!s.contains("<script"));
    }
}

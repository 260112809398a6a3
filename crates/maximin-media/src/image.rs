//! Image generation (spec §8): the request checked field by field, the
//! caller's model routed to a provider (the sandbox for `mmx_test_` keys),
//! the images made.

use std::sync::Arc;

use maximin_core::catalog::ModelSpec;
use maximin_core::providers::media::{Image, ImageFormat, ImageJob, Work};
use maximin_core::routing::Target;
use maximin_core::{Caller, Error, Platform, Result};
use maximin_types::Modality;
use serde_json::Value;

use crate::{fields, inputs, sandbox, MediaConfig};

/// `aspect_ratio` values and their sizes (spec §8).
pub const ASPECT_RATIOS: [(&str, u32, u32); 8] = [
    ("1:1", 1024, 1024),
    ("16:9", 1280, 720),
    ("4:3", 1152, 864),
    ("3:2", 1248, 832),
    ("2:3", 832, 1248),
    ("3:4", 864, 1152),
    ("9:16", 720, 1280),
    ("21:9", 1344, 576),
];

/// How the images come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFormat {
    Url,
    Base64,
}

/// A checked image request.
#[derive(Debug, Clone)]
pub struct ImageRequest {
    pub model: String,
    pub job: ImageJob,
    pub response_format: ResponseFormat,
    /// The subject reference as sent (read when the request runs).
    pub reference: Option<String>,
}

/// Checks a native `/v1/image_generation` body; errors name the field.
pub fn parse(body: &Value) -> Result<ImageRequest> {
    let model = fields::required_str(body, "model")?.to_owned();
    let prompt = fields::required_str(body, "prompt")?;
    if prompt.chars().count() > 1500 {
        return Err(Error::invalid(
            "prompt",
            "'prompt' must be at most 1500 characters.",
        ));
    }
    let aspect = fields::opt_str(body, "aspect_ratio")?;
    let width = fields::opt_u64(body, "width")?;
    let height = fields::opt_u64(body, "height")?;
    let (width, height) = match (aspect, width, height) {
        (Some(a), _, _) => {
            let (_, w, h) = ASPECT_RATIOS
                .iter()
                .find(|(r, _, _)| *r == a)
                .ok_or_else(|| {
                    let all: Vec<&str> = ASPECT_RATIOS.iter().map(|r| r.0).collect();
                    Error::invalid(
                        "aspect_ratio",
                        format!("'aspect_ratio' must be one of {}.", all.join(", ")),
                    )
                })?;
            (*w, *h)
        }
        (None, Some(w), Some(h)) => (size("width", w)?, size("height", h)?),
        (None, Some(_), None) => {
            return Err(Error::invalid(
                "height",
                "'width' and 'height' go together: give both.",
            ))
        }
        (None, None, Some(_)) => {
            return Err(Error::invalid(
                "width",
                "'width' and 'height' go together: give both.",
            ))
        }
        (None, None, None) => (1024, 1024),
    };
    let n = fields::opt_u64(body, "n")?.unwrap_or(1);
    if !(1..=9).contains(&n) {
        return Err(Error::invalid("n", "'n' must be between 1 and 9."));
    }
    let response_format = match fields::opt_str(body, "response_format")?.unwrap_or("url") {
        "url" => ResponseFormat::Url,
        "base64" => ResponseFormat::Base64,
        _ => {
            return Err(Error::invalid(
                "response_format",
                "'response_format' must be 'url' or 'base64'.",
            ))
        }
    };
    let seed = match fields::opt_u64(body, "seed")? {
        Some(s) => s,
        None => rand::random::<u32>().into(),
    };
    let prompt_optimizer = fields::opt_bool(body, "prompt_optimizer")?.unwrap_or(false);
    let reference = match body.get("subject_reference") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) if items.is_empty() => None,
        Some(Value::Array(items)) => {
            let first = &items[0];
            let image = first
                .get("image_file")
                .or_else(|| first.get("image_url"))
                .and_then(|v| match v {
                    Value::String(s) => Some(s.as_str()),
                    Value::Array(a) => a.first().and_then(Value::as_str),
                    _ => None,
                })
                .ok_or_else(|| {
                    Error::invalid(
                        "subject_reference[0].image_file",
                        "'subject_reference' items need 'image_file': an image URL or data URL.",
                    )
                })?;
            inputs::check_reference(image, "subject_reference[0].image_file")?;
            Some(image.to_owned())
        }
        Some(_) => {
            return Err(Error::invalid(
                "subject_reference",
                "'subject_reference' must be an array of {\"type\": \"character\", \"image_file\": URL}.",
            ))
        }
    };
    Ok(ImageRequest {
        model,
        job: ImageJob {
            prompt: prompt.to_owned(),
            width,
            height,
            aspect_ratio: aspect.map(str::to_owned),
            n: n as u32,
            seed,
            prompt_optimizer,
            reference: None,
            format: ImageFormat::Png,
        },
        response_format,
        reference,
    })
}

fn size(field: &str, v: u64) -> Result<u32> {
    if !(512..=2048).contains(&v) || !v.is_multiple_of(8) {
        return Err(Error::invalid(
            field,
            format!("'{field}' must be a multiple of 8 from 512 to 2048."),
        ));
    }
    Ok(v as u32)
}

/// What came of an image request.
pub struct ImagesMade {
    pub model: String,
    pub images: Vec<Image>,
    /// Who made them: `local:ENGINE`, `NAME:MODEL` or `sandbox`.
    pub deployment: String,
    pub sandbox: bool,
}

/// The catalog model a media request names, checked for the caller. A
/// sandbox key needs no installed engine: the sandbox serves it.
pub fn media_model<'a>(
    p: &'a Platform,
    caller: &Caller,
    name: &str,
    modality: Modality,
) -> Result<&'a ModelSpec> {
    let spec = if caller.key.test {
        let spec = p.catalog.resolve(name).ok_or_else(|| {
            Error::new(
                maximin_types::ErrorCode::ModelNotFound,
                format!("No model '{name}' in the catalog; GET /v1/models lists them."),
            )
            .with("field", "model")
            .with("model", name)
        })?;
        caller.authorize_model(spec)?;
        spec
    } else {
        p.model_for(caller, name)?
    };
    if spec.modality != modality {
        return Err(Error::invalid(
            "model",
            format!(
                "'{}' is a {} model; this endpoint takes {} models.",
                spec.id, spec.modality, modality
            ),
        ));
    }
    Ok(spec)
}

/// Makes the images of a checked request.
pub async fn generate(
    p: &Platform,
    cfg: &MediaConfig,
    caller: &Caller,
    mut req: ImageRequest,
) -> Result<ImagesMade> {
    let spec = media_model(p, caller, &req.model, Modality::Image)?;
    let estimate = maximin_core::billing::Quantities {
        images: u64::from(req.job.n),
        ..Default::default()
    };
    p.reserve(caller, spec, estimate).await?;
    if let Some(r) = &req.reference {
        req.job.reference =
            Some(inputs::read(r, "subject_reference[0].image_file", cfg.allow_private_urls).await?);
    }
    let work = Work::new();
    if caller.key.test {
        let images = sandbox::images(&req.job).await?;
        return Ok(ImagesMade {
            model: spec.id.clone(),
            images,
            deployment: "sandbox".into(),
            sandbox: true,
        });
    }
    let policy = p.policy(caller);
    let job = &req.job;
    let (images, lease) = p
        .router
        .route(&p.catalog, spec, &policy, |target: Arc<Target>| {
            let work = work.clone();
            async move {
                let provider = p
                    .engines
                    .image
                    .get(&target.provider)
                    .ok_or_else(|| no_provider(&target, "image"))?;
                if job.reference.is_some() && !provider.takes_reference() {
                    return Err(Error::invalid(
                        "subject_reference",
                        format!("'{}' cannot start from a reference image.", target.label),
                    ));
                }
                let guard = work.cancel_on_drop();
                let out = provider.generate(&target.spec, job, &work).await;
                guard.disarm();
                out
            }
        })
        .await?;
    Ok(ImagesMade {
        model: spec.id.clone(),
        images,
        deployment: lease.target().label.clone(),
        sandbox: false,
    })
}

/// The error for a target whose provider is not in this binary.
pub fn no_provider(target: &Target, what: &str) -> Error {
    Error::new(
        maximin_types::ErrorCode::ModelUnavailable,
        format!(
            "No {what} provider '{}' in this maximin (deployment {}).",
            target.provider, target.label
        ),
    )
    .with("reason", "routing")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_come_from_the_aspect_ratio_first() {
        let r = parse(&json!({"model": "image-01", "prompt": "a cat", "aspect_ratio": "16:9", "width": 512, "height": 512}))
            .expect("valid");
        assert_eq!((r.job.width, r.job.height), (1280, 720));
        let r =
            parse(&json!({"model": "image-01", "prompt": "a cat", "width": 512, "height": 768}))
                .expect("valid");
        assert_eq!((r.job.width, r.job.height), (512, 768));
        let r = parse(&json!({"model": "image-01", "prompt": "a cat"})).expect("valid");
        assert_eq!((r.job.width, r.job.height, r.job.n), (1024, 1024, 1));
    }

    #[test]
    fn mistakes_name_their_field() {
        for (body, field) in [
            (json!({"prompt": "x"}), "model"),
            (json!({"model": "image-01"}), "prompt"),
            (
                json!({"model": "image-01", "prompt": "x", "aspect_ratio": "5:1"}),
                "aspect_ratio",
            ),
            (
                json!({"model": "image-01", "prompt": "x", "width": 513, "height": 512}),
                "width",
            ),
            (
                json!({"model": "image-01", "prompt": "x", "width": 512}),
                "height",
            ),
            (json!({"model": "image-01", "prompt": "x", "n": 10}), "n"),
            (json!({"model": "image-01", "prompt": "x", "n": "2"}), "n"),
            (
                json!({"model": "image-01", "prompt": "x", "response_format": "png"}),
                "response_format",
            ),
            (
                json!({"model": "image-01", "prompt": "x", "subject_reference": [{"type": "character"}]}),
                "subject_reference[0].image_file",
            ),
        ] {
            let e = parse(&body).expect_err("invalid");
            assert_eq!(e.details["field"], field, "{body}");
        }
    }
}

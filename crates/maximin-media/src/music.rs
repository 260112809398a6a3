//! Music generation (spec §9.1): the request checked, the model routed to a
//! provider (the composer, an upstream, or the sandbox for `mmx_test_`
//! keys), the song encoded as `audio_setting` asks.

use std::sync::Arc;

use maximin_core::providers::media::{Music, MusicJob, Work};
use maximin_core::providers::speech::AudioOutput;
use maximin_core::routing::Target;
use maximin_core::{Caller, Error, Platform, Result};
use maximin_types::Modality;
use serde_json::Value;

use crate::image::{media_model, no_provider};
use crate::{fields, sandbox};

/// The section tags lyrics may carry (spec §9.1).
pub const SECTION_TAGS: [&str; 14] = [
    "Intro",
    "Verse",
    "Pre Chorus",
    "Chorus",
    "Interlude",
    "Bridge",
    "Outro",
    "Post Chorus",
    "Transition",
    "Break",
    "Hook",
    "Build Up",
    "Inst",
    "Solo",
];

/// How a song comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MusicOutput {
    Hex,
    Url,
}

/// A checked music request.
#[derive(Debug, Clone)]
pub struct MusicRequest {
    pub model: String,
    pub job: MusicJob,
    pub stream: bool,
    pub output: MusicOutput,
}

/// Checks a native `/v1/music_generation` body; errors name the field.
pub fn parse(body: &Value) -> Result<MusicRequest> {
    let model = fields::required_str(body, "model")?.to_owned();
    let prompt = fields::opt_str(body, "prompt")?.unwrap_or("").to_owned();
    if prompt.chars().count() > 2000 {
        return Err(Error::invalid(
            "prompt",
            "'prompt' must be at most 2000 characters.",
        ));
    }
    let instrumental = fields::opt_bool(body, "is_instrumental")?.unwrap_or(false);
    let lyrics = fields::opt_str(body, "lyrics")?
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned);
    if let Some(l) = &lyrics {
        if l.chars().count() > 3500 {
            return Err(Error::invalid(
                "lyrics",
                "'lyrics' must be at most 3500 characters.",
            ));
        }
    }
    if instrumental && prompt.trim().is_empty() {
        return Err(Error::invalid(
            "prompt",
            "'prompt' is required for an instrumental (is_instrumental: true).",
        ));
    }
    if !instrumental && lyrics.is_none() {
        return Err(Error::invalid(
            "lyrics",
            "'lyrics' is required unless 'is_instrumental' is true (POST /v1/lyrics_generation writes some).",
        ));
    }
    let stream = fields::opt_bool(body, "stream")?.unwrap_or(false);
    let output = match fields::opt_str(body, "output_format")?.unwrap_or("hex") {
        "hex" => MusicOutput::Hex,
        "url" if stream => return Err(Error::invalid(
            "output_format",
            "A stream carries hex audio only: 'output_format' must be 'hex' with 'stream': true.",
        )),
        "url" => MusicOutput::Url,
        _ => {
            return Err(Error::invalid(
                "output_format",
                "'output_format' must be 'hex' or 'url'.",
            ))
        }
    };
    let settings = body.get("audio_setting").filter(|v| !v.is_null());
    let mut audio = AudioOutput {
        format: "mp3".into(),
        sample_rate: 44_100,
        bitrate: 256_000,
        channels: 2,
    };
    if let Some(s) = settings {
        if !s.is_object() {
            return Err(Error::invalid(
                "audio_setting",
                "'audio_setting' must be an object.",
            ));
        }
        if let Some(r) = fields::opt_u64(s, "sample_rate").map_err(|_| {
            Error::invalid(
                "audio_setting.sample_rate",
                "'audio_setting.sample_rate' must be an integer.",
            )
        })? {
            if ![16_000, 24_000, 32_000, 44_100].contains(&r) {
                return Err(Error::invalid(
                    "audio_setting.sample_rate",
                    "'audio_setting.sample_rate' must be 16000, 24000, 32000 or 44100.",
                ));
            }
            audio.sample_rate = r as u32;
        }
        if let Some(b) = fields::opt_u64(s, "bitrate").map_err(|_| {
            Error::invalid(
                "audio_setting.bitrate",
                "'audio_setting.bitrate' must be an integer.",
            )
        })? {
            if ![32_000, 64_000, 128_000, 256_000].contains(&b) {
                return Err(Error::invalid(
                    "audio_setting.bitrate",
                    "'audio_setting.bitrate' must be 32000, 64000, 128000 or 256000.",
                ));
            }
            audio.bitrate = b as u32;
        }
        if let Some(f) = fields::opt_str(s, "format").map_err(|_| {
            Error::invalid(
                "audio_setting.format",
                "'audio_setting.format' must be a string.",
            )
        })? {
            if !["mp3", "wav", "pcm", "flac"].contains(&f) {
                return Err(Error::invalid(
                    "audio_setting.format",
                    "'audio_setting.format' must be mp3, wav, pcm or flac.",
                ));
            }
            audio.format = f.to_owned();
        }
        if let Some(c) = fields::opt_u64(s, "channel").map_err(|_| {
            Error::invalid(
                "audio_setting.channel",
                "'audio_setting.channel' must be 1 or 2.",
            )
        })? {
            if !(1..=2).contains(&c) {
                return Err(Error::invalid(
                    "audio_setting.channel",
                    "'audio_setting.channel' must be 1 or 2.",
                ));
            }
            audio.channels = c as u16;
        }
    }
    let seed = match fields::opt_u64(body, "seed")? {
        Some(s) => s,
        None => rand::random::<u32>().into(),
    };
    Ok(MusicRequest {
        model,
        job: MusicJob {
            prompt,
            lyrics: if instrumental { None } else { lyrics },
            instrumental,
            seed,
            output: audio,
        },
        stream,
        output,
    })
}

/// What came of a music request.
pub struct SongMade {
    pub model: String,
    pub music: Music,
    pub deployment: String,
    pub sandbox: bool,
}

/// The longest song a request is held credit for (five minutes).
const MAX_SONG_MS: u64 = 300_000;

/// Makes the song of a checked request.
pub async fn generate(p: &Platform, caller: &Caller, req: &MusicRequest) -> Result<SongMade> {
    let spec = media_model(p, caller, &req.model, Modality::Music)?;
    // A song's length is known once composed: held for the longest one.
    let estimate = maximin_core::billing::Quantities {
        media_ms: MAX_SONG_MS,
        ..Default::default()
    };
    p.reserve(caller, spec, estimate).await?;
    if caller.key.test {
        return Ok(SongMade {
            model: spec.id.clone(),
            music: sandbox::music(&req.job).await?,
            deployment: "sandbox".into(),
            sandbox: true,
        });
    }
    let policy = p.policy(caller);
    let job = &req.job;
    let work = Work::new();
    let (music, lease) = p
        .router
        .route(&p.catalog, spec, &policy, |target: Arc<Target>| {
            let work = work.clone();
            async move {
                let provider = p
                    .engines
                    .music
                    .get(&target.provider)
                    .ok_or_else(|| no_provider(&target, "music"))?;
                let guard = work.cancel_on_drop();
                let out = provider.generate(&target.spec, job, &work).await;
                guard.disarm();
                out
            }
        })
        .await?;
    Ok(SongMade {
        model: spec.id.clone(),
        music,
        deployment: lease.target().label.clone(),
        sandbox: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_song_needs_lyrics_unless_instrumental() {
        let r = parse(
            &json!({"model": "music-2.0", "prompt": "upbeat pop", "lyrics": "[Verse]\nla la"}),
        )
        .expect("valid");
        assert_eq!(r.job.output.sample_rate, 44_100);
        assert!(!r.stream);
        let e = parse(&json!({"model": "music-2.0", "prompt": "pop"})).expect_err("no lyrics");
        assert_eq!(e.details["field"], "lyrics");
        let r =
            parse(&json!({"model": "music-2.0", "prompt": "calm piano", "is_instrumental": true}))
                .expect("valid");
        assert!(r.job.lyrics.is_none());
        for (body, field) in [
            (
                json!({"model": "music-2.0", "lyrics": "x", "audio_setting": {"sample_rate": 8000}}),
                "audio_setting.sample_rate",
            ),
            (
                json!({"model": "music-2.0", "lyrics": "x", "audio_setting": {"format": "ogg"}}),
                "audio_setting.format",
            ),
            (
                json!({"model": "music-2.0", "lyrics": "x", "output_format": "url", "stream": true}),
                "output_format",
            ),
            (
                json!({"model": "music-2.0", "is_instrumental": true}),
                "prompt",
            ),
        ] {
            assert_eq!(
                parse(&body).expect_err("invalid").details["field"],
                field,
                "{body}"
            );
        }
    }
}

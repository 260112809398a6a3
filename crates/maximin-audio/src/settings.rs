//! The MiniMax T2A `audio_setting` values (format, sample rate, bitrate,
//! channels) and their validation.

use std::fmt;
use std::str::FromStr;

use crate::{AudioError, Result};

/// Sample rates the API accepts (`audio_setting.sample_rate`).
pub const ALLOWED_SAMPLE_RATES: [u32; 6] = [8000, 16000, 22050, 24000, 32000, 44100];
/// MP3 bitrates the API accepts (`audio_setting.bitrate`), in bits per second.
pub const ALLOWED_BITRATES: [u32; 4] = [32000, 64000, 128000, 256000];
/// Channel counts the API accepts (`audio_setting.channel`).
pub const ALLOWED_CHANNELS: [u16; 2] = [1, 2];

/// Output container/codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// MPEG-1/2 Layer III, constant bitrate.
    Mp3,
    /// Raw signed 16-bit little-endian samples, interleaved, no header.
    Pcm,
    /// FLAC, 16-bit.
    Flac,
    /// RIFF WAVE, 16-bit PCM.
    Wav,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Mp3, Format::Pcm, Format::Flac, Format::Wav];

    /// The wire string (`"mp3"`, `"pcm"`, `"flac"`, `"wav"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Mp3 => "mp3",
            Format::Pcm => "pcm",
            Format::Flac => "flac",
            Format::Wav => "wav",
        }
    }

    /// The HTTP `Content-Type` for a whole file of this format.
    pub fn mime_type(self) -> &'static str {
        match self {
            Format::Mp3 => "audio/mpeg",
            Format::Pcm => "audio/L16",
            Format::Flac => "audio/flac",
            Format::Wav => "audio/wav",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = AudioError;

    /// Parses the wire string exactly as MiniMax spells it (lowercase).
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mp3" => Ok(Format::Mp3),
            "pcm" => Ok(Format::Pcm),
            "flac" => Ok(Format::Flac),
            "wav" => Ok(Format::Wav),
            other => Err(AudioError::InvalidSetting {
                field: "audio_setting.format",
                message: format!("unsupported format {other:?}; use one of mp3, pcm, flac, wav"),
            }),
        }
    }
}

/// What the caller asked for in `audio_setting`. [`AudioSettings::default`] is
/// the API's default: mp3, 32000 Hz, 128000 bit/s, mono.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioSettings {
    pub format: Format,
    /// Output sample rate in Hz.
    pub sample_rate: u32,
    /// MP3 bitrate in bits per second; ignored by the other formats.
    pub bitrate: u32,
    /// Output channels; stereo carries the same signal on both.
    pub channels: u16,
}

impl Default for AudioSettings {
    fn default() -> Self {
        AudioSettings {
            format: Format::Mp3,
            sample_rate: 32000,
            bitrate: 128000,
            channels: 1,
        }
    }
}

impl AudioSettings {
    /// Checks every field against the API's allowed values. The error names the
    /// wire field: `audio_setting.sample_rate`, `audio_setting.bitrate` (checked
    /// for mp3 only, the one format it applies to) or `audio_setting.channel`.
    pub fn validate(&self) -> Result<()> {
        if !ALLOWED_SAMPLE_RATES.contains(&self.sample_rate) {
            return Err(AudioError::InvalidSetting {
                field: "audio_setting.sample_rate",
                message: format!(
                    "{} is not supported; use one of {}",
                    self.sample_rate,
                    list(&ALLOWED_SAMPLE_RATES)
                ),
            });
        }
        if self.format == Format::Mp3 && !ALLOWED_BITRATES.contains(&self.bitrate) {
            return Err(AudioError::InvalidSetting {
                field: "audio_setting.bitrate",
                message: format!(
                    "{} is not supported; use one of {}",
                    self.bitrate,
                    list(&ALLOWED_BITRATES)
                ),
            });
        }
        if !ALLOWED_CHANNELS.contains(&self.channels) {
            return Err(AudioError::InvalidSetting {
                field: "audio_setting.channel",
                message: format!("{} is not supported; use 1 or 2", self.channels),
            });
        }
        Ok(())
    }

    /// The bitrate actually written: for mp3 the nearest one LAME can produce at
    /// this sample rate (see [`mp3_bitrate_for`]); for the other formats the
    /// uncompressed rate (`sample_rate × channels × 16`).
    pub fn effective_bitrate(&self) -> u32 {
        match self.format {
            Format::Mp3 => mp3_bitrate_for(self.sample_rate, self.bitrate),
            Format::Pcm | Format::Flac | Format::Wav => {
                self.sample_rate * u32::from(self.channels) * 16
            }
        }
    }
}

/// The MP3 bitrate written for a requested one at a sample rate.
///
/// MPEG-1 rates (32000, 44100 Hz; also 48000) allow 32–320 kbit/s, so every
/// API value is exact. MPEG-2 rates (16000, 22050, 24000 Hz) stop at 160 kbit/s,
/// and LAME limits MPEG-2.5 (8000 Hz) to 64 kbit/s: a request above the limit
/// gets the nearest bitrate LAME can do (256000 → 160000 at 16–24 kHz;
/// 128000 and 256000 → 64000 at 8 kHz). This is what LAME itself would pick.
pub fn mp3_bitrate_for(sample_rate: u32, requested: u32) -> u32 {
    const MPEG1: [u32; 14] = [
        32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
    ];
    const MPEG2: [u32; 14] = [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
    const MPEG25: [u32; 8] = [8, 16, 24, 32, 40, 48, 56, 64];
    let table: &[u32] = if sample_rate >= 32000 {
        &MPEG1
    } else if sample_rate >= 16000 {
        &MPEG2
    } else {
        &MPEG25
    };
    let kbps = requested / 1000;
    let mut best = table[0];
    for &candidate in table {
        if candidate.abs_diff(kbps) < best.abs_diff(kbps) {
            best = candidate;
        }
    }
    best * 1000
}

fn list<T: fmt::Display>(values: &[T]) -> String {
    values
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_from_their_wire_strings_and_back() {
        for format in Format::ALL {
            assert_eq!(format.as_str().parse::<Format>().ok(), Some(format));
        }
        let err = "opus".parse::<Format>().err();
        assert_eq!(err.and_then(|e| e.field()), Some("audio_setting.format"));
        assert!(
            "MP3".parse::<Format>().is_err(),
            "wire strings are lowercase"
        );
    }

    #[test]
    fn lame_bitrate_limits_per_mpeg_version() {
        for rate in [32000, 44100] {
            for bitrate in ALLOWED_BITRATES {
                assert_eq!(mp3_bitrate_for(rate, bitrate), bitrate);
            }
        }
        for rate in [16000, 22050, 24000] {
            assert_eq!(mp3_bitrate_for(rate, 32000), 32000);
            assert_eq!(mp3_bitrate_for(rate, 128000), 128000);
            assert_eq!(mp3_bitrate_for(rate, 256000), 160000);
        }
        assert_eq!(mp3_bitrate_for(8000, 32000), 32000);
        assert_eq!(mp3_bitrate_for(8000, 64000), 64000);
        assert_eq!(mp3_bitrate_for(8000, 128000), 64000);
        assert_eq!(mp3_bitrate_for(8000, 256000), 64000);
    }
}

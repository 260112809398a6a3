//! Streaming and whole-file encoding to the four API formats.

use crate::flac::{self, FlacSink};
use crate::pcm::f32_to_i16;
use crate::resample::Resampler;
use crate::settings::{AudioSettings, Format};
use crate::{wav, AudioError, Pcm, Result};

/// A streaming encoder: mono `f32` in at `input_rate`, encoded bytes out at the
/// settings' rate, format and channels (stereo carries the mono signal twice).
///
/// Every [`push`](Encoder::push) returns the bytes that are ready, and
/// [`finish`](Encoder::finish) the rest; their concatenation is one valid file
/// or stream. The first bytes carry the header (WAV, FLAC), so a caller can
/// send each piece as soon as it has it. Resampler state is carried across
/// calls: how the input is split into chunks does not change the audio.
///
/// - mp3: LAME, constant bitrate ([`AudioSettings::effective_bitrate`]); LAME
///   emits a frame once it has 1152 (or 576) samples plus look-ahead.
/// - pcm: raw signed 16-bit little-endian, interleaved.
/// - flac: a STREAMINFO header with the length unknown, then one frame per
///   4096 samples.
/// - wav: a header with the maximal-size convention (the length is not known
///   when it is sent), then raw samples.
///
/// A file that is delivered whole (kept until it is complete) must carry exact
/// sizes instead: make it with [`Encoder::whole`] and end it with
/// [`Encoder::finish_whole`], whose corrected head replaces the file's first
/// bytes; [`encode_whole`] does both for a clip in memory.
pub struct Encoder {
    settings: AudioSettings,
    resampler: Resampler,
    sink: Sink,
    started: bool,
    frames_written: u64,
}

/// The end of a whole file ([`Encoder::finish_whole`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WholeEnd {
    /// The last bytes, to append after everything `push` returned.
    pub tail: Vec<u8>,
    /// Bytes that replace the first `head.len()` bytes of the file: the WAV
    /// header with exact sizes, the FLAC STREAMINFO with the sample count,
    /// the MP3 Info/LAME frame (empty for raw PCM).
    pub head: Vec<u8>,
}

impl WholeEnd {
    /// Applies the end to `file`, the concatenation of every `push`'s bytes.
    pub fn apply(self, file: &mut Vec<u8>) {
        file.extend(self.tail);
        if self.head.len() <= file.len() {
            file[..self.head.len()].copy_from_slice(&self.head);
        }
    }
}

enum Sink {
    Pcm,
    Wav,
    Flac(Box<FlacSink>),
    #[cfg(feature = "mp3")]
    Mp3(Box<mp3::Mp3Sink>),
}

impl Encoder {
    /// An encoder for `settings` (validated here) fed mono audio at `input_rate` Hz.
    pub fn new(settings: AudioSettings, input_rate: u32) -> Result<Self> {
        Self::build(settings, input_rate, false)
    }

    /// An encoder for a file delivered whole: it streams the same way, but an
    /// MP3 reserves its first frame for the Info/LAME tag, and
    /// [`finish_whole`](Encoder::finish_whole) returns the exact head.
    pub fn whole(settings: AudioSettings, input_rate: u32) -> Result<Self> {
        Self::build(settings, input_rate, true)
    }

    fn build(settings: AudioSettings, input_rate: u32, whole: bool) -> Result<Self> {
        settings.validate()?;
        if input_rate == 0 {
            return Err(AudioError::Encode(
                "input sample rate must be positive".into(),
            ));
        }
        let sink = match settings.format {
            Format::Pcm => Sink::Pcm,
            Format::Wav => Sink::Wav,
            Format::Flac => Sink::Flac(Box::new(FlacSink::new(
                settings.sample_rate,
                settings.channels,
            )?)),
            Format::Mp3 => mp3_sink(&settings, whole)?,
        };
        Ok(Encoder {
            settings,
            resampler: Resampler::new(input_rate, settings.sample_rate),
            sink,
            started: false,
            frames_written: 0,
        })
    }

    pub fn settings(&self) -> &AudioSettings {
        &self.settings
    }

    /// Output frames (samples per channel) encoded so far, at the output rate.
    pub fn frames_written(&self) -> u64 {
        self.frames_written
    }

    /// Encodes a chunk of mono audio; returns the bytes ready now (possibly none).
    pub fn push(&mut self, mono: &[f32]) -> Result<Vec<u8>> {
        let resampled = self.resampler.process(mono);
        let mut out = Vec::new();
        self.start(&mut out);
        self.write_mono(&resampled, &mut out)?;
        Ok(out)
    }

    /// Ends the stream; returns the last bytes.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        let tail = self.resampler.finish();
        let mut out = Vec::new();
        self.start(&mut out);
        self.write_mono(&tail, &mut out)?;
        self.end(&mut out)?;
        Ok(out)
    }

    /// Ends a whole file: its last bytes and the head with exact sizes (see
    /// [`WholeEnd`]). Only an encoder made by [`Encoder::whole`] has an MP3
    /// Info frame to give; WAV and FLAC heads are exact either way.
    pub fn finish_whole(mut self) -> Result<WholeEnd> {
        let tail = self.resampler.finish();
        let mut out = Vec::new();
        self.start(&mut out);
        self.write_mono(&tail, &mut out)?;
        self.end(&mut out)?;
        let head = self.exact_head();
        Ok(WholeEnd { tail: out, head })
    }

    /// The head of the finished file with its real length (after `end`).
    fn exact_head(&self) -> Vec<u8> {
        let AudioSettings {
            sample_rate,
            channels,
            ..
        } = self.settings;
        match &self.sink {
            Sink::Pcm => Vec::new(),
            Sink::Wav => wav::header(sample_rate, channels, Some(self.frames_written)),
            Sink::Flac(_) => {
                let mut h = FlacSink::header(sample_rate, channels);
                flac::patch_total_samples(&mut h, self.frames_written);
                h
            }
            #[cfg(feature = "mp3")]
            Sink::Mp3(sink) => sink.info_frame(),
        }
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let AudioSettings {
            sample_rate,
            channels,
            ..
        } = self.settings;
        match self.sink {
            Sink::Wav => out.extend(wav::header(sample_rate, channels, None)),
            Sink::Flac(_) => out.extend(FlacSink::header(sample_rate, channels)),
            Sink::Pcm => {}
            #[cfg(feature = "mp3")]
            Sink::Mp3(_) => {}
        }
    }

    fn write_mono(&mut self, mono: &[f32], out: &mut Vec<u8>) -> Result<()> {
        if mono.is_empty() {
            return Ok(());
        }
        let samples: Vec<i16> = mono.iter().map(|&s| f32_to_i16(s)).collect();
        self.write_i16(&samples, 1, out)
    }

    /// Writes 16-bit samples with `channels` interleaved channels (1, or the
    /// output's count); mono is duplicated for stereo output.
    fn write_i16(&mut self, samples: &[i16], channels: u16, out: &mut Vec<u8>) -> Result<()> {
        let out_channels = self.settings.channels;
        let frames = samples.len() / usize::from(channels);
        self.frames_written += frames as u64;
        #[cfg(feature = "mp3")]
        if let Sink::Mp3(sink) = &mut self.sink {
            return sink.write(samples, channels, out);
        }
        let interleaved: std::borrow::Cow<[i16]> = if channels == out_channels {
            samples.into()
        } else {
            samples
                .iter()
                .flat_map(|&s| std::iter::repeat_n(s, usize::from(out_channels)))
                .collect::<Vec<_>>()
                .into()
        };
        match &mut self.sink {
            Sink::Pcm | Sink::Wav => {
                out.reserve(interleaved.len() * 2);
                for s in interleaved.iter() {
                    out.extend_from_slice(&s.to_le_bytes());
                }
                Ok(())
            }
            Sink::Flac(sink) => sink.write(&interleaved, out),
            #[cfg(feature = "mp3")]
            Sink::Mp3(_) => Ok(()),
        }
    }

    fn end(&mut self, out: &mut Vec<u8>) -> Result<()> {
        match &mut self.sink {
            Sink::Pcm | Sink::Wav => Ok(()),
            Sink::Flac(sink) => sink.finish(out),
            #[cfg(feature = "mp3")]
            Sink::Mp3(sink) => sink.finish(out),
        }
    }
}

#[cfg(feature = "mp3")]
fn mp3_sink(settings: &AudioSettings, whole: bool) -> Result<Sink> {
    Ok(Sink::Mp3(Box::new(mp3::Mp3Sink::new(settings, whole)?)))
}

#[cfg(not(feature = "mp3"))]
fn mp3_sink(_settings: &AudioSettings, _whole: bool) -> Result<Sink> {
    Err(AudioError::Encode(
        "mp3 encoding is not built in (feature \"mp3\" of maximin-audio)".into(),
    ))
}

/// Encodes a whole clip, with exact sizes: the WAV header holds the real
/// lengths, the FLAC STREAMINFO the total sample count, and an MP3 starts with
/// a LAME "Info" frame giving the encoder delay and padding (so gapless
/// decoders return exactly the input's length).
///
/// The clip is resampled to the settings' rate; stereo input is kept for
/// stereo output and mixed down for mono output, mono input is duplicated for
/// stereo output.
pub fn encode_whole(settings: &AudioSettings, pcm: &Pcm) -> Result<Vec<u8>> {
    let mut encoder = Encoder::build(*settings, pcm.sample_rate.max(1), true)?;
    let source = if pcm.channels == settings.channels {
        pcm.clone()
    } else {
        pcm.to_mono()
    };
    let source = source.resample(settings.sample_rate);
    let mut out = Vec::new();
    encoder.start(&mut out);
    let samples = source.to_i16();
    let channels = if source.channels == settings.channels {
        settings.channels
    } else {
        1
    };
    encoder.write_i16(&samples, channels, &mut out)?;
    encoder.end(&mut out)?;
    let head = encoder.exact_head();
    WholeEnd {
        tail: Vec::new(),
        head,
    }
    .apply(&mut out);
    Ok(out)
}

#[cfg(feature = "mp3")]
mod mp3 {
    use mp3lame_encoder::{
        max_required_buffer_size, Bitrate, Builder, DualPcm, FlushGap, Mode, MonoPcm, Quality,
    };

    use crate::settings::AudioSettings;
    use crate::{AudioError, Result};

    pub(super) struct Mp3Sink {
        lame: mp3lame_encoder::Encoder,
        channels: u16,
        /// Whether LAME reserved a first frame for the Info tag (whole files only).
        info_frame: bool,
    }

    fn lame_error(what: &str, e: impl std::fmt::Debug) -> AudioError {
        AudioError::Encode(format!("mp3 {what}: {e:?}"))
    }

    fn bitrate(bits_per_second: u32) -> Bitrate {
        match bits_per_second / 1000 {
            8 => Bitrate::Kbps8,
            16 => Bitrate::Kbps16,
            24 => Bitrate::Kbps24,
            32 => Bitrate::Kbps32,
            40 => Bitrate::Kbps40,
            48 => Bitrate::Kbps48,
            64 => Bitrate::Kbps64,
            80 => Bitrate::Kbps80,
            96 => Bitrate::Kbps96,
            112 => Bitrate::Kbps112,
            128 => Bitrate::Kbps128,
            160 => Bitrate::Kbps160,
            192 => Bitrate::Kbps192,
            224 => Bitrate::Kbps224,
            256 => Bitrate::Kbps256,
            _ => Bitrate::Kbps320,
        }
    }

    impl Mp3Sink {
        pub(super) fn new(settings: &AudioSettings, whole: bool) -> Result<Self> {
            let mut builder =
                Builder::new().ok_or_else(|| AudioError::Encode("mp3: LAME init failed".into()))?;
            builder
                .set_num_channels(settings.channels as u8)
                .map_err(|e| lame_error("channels", e))?;
            builder
                .set_sample_rate(settings.sample_rate)
                .map_err(|e| lame_error("sample rate", e))?;
            // Never let LAME pick another output rate for the bitrate.
            builder
                .set_output_sample_rate(std::num::NonZeroU32::new(settings.sample_rate))
                .map_err(|e| lame_error("output sample rate", e))?;
            builder
                .set_brate(bitrate(settings.effective_bitrate()))
                .map_err(|e| lame_error("bitrate", e))?;
            if settings.channels == 2 {
                builder
                    .set_mode(Mode::JointStereo)
                    .map_err(|e| lame_error("mode", e))?;
            }
            builder
                .set_quality(Quality::Good)
                .map_err(|e| lame_error("quality", e))?;
            // The Info/LAME tag can only be written once the length is known, so a
            // stream goes without it; a whole file gets it (see patch_info_frame).
            builder
                .set_to_write_vbr_tag(whole)
                .map_err(|e| lame_error("tag", e))?;
            let lame = builder.build().map_err(|e| lame_error("init", e))?;
            Ok(Mp3Sink {
                lame,
                channels: settings.channels,
                info_frame: whole,
            })
        }

        /// `samples` has `channels` interleaved channels (1, or the output's).
        pub(super) fn write(
            &mut self,
            samples: &[i16],
            channels: u16,
            out: &mut Vec<u8>,
        ) -> Result<()> {
            let frames = samples.len() / usize::from(channels);
            out.reserve(max_required_buffer_size(frames));
            let result = if self.channels == 1 {
                self.lame.encode_to_vec(MonoPcm(samples), out)
            } else if channels == 1 {
                self.lame.encode_to_vec(
                    DualPcm {
                        left: samples,
                        right: samples,
                    },
                    out,
                )
            } else {
                let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
                let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
                self.lame.encode_to_vec(
                    DualPcm {
                        left: &left,
                        right: &right,
                    },
                    out,
                )
            };
            result.map(|_| ()).map_err(|e| lame_error("encode", e))
        }

        pub(super) fn finish(&mut self, out: &mut Vec<u8>) -> Result<()> {
            out.reserve(max_required_buffer_size(0));
            self.lame
                .flush_to_vec::<FlushGap>(out)
                .map(|_| ())
                .map_err(|e| lame_error("flush", e))
        }

        /// The finished Info/LAME tag (frame count, delay, padding) that
        /// replaces the frame LAME reserved at the start of a whole file;
        /// empty for a stream (no frame was reserved).
        pub(super) fn info_frame(&self) -> Vec<u8> {
            if !self.info_frame {
                return Vec::new();
            }
            let mut tag = Vec::new();
            tag.reserve(self.lame.lame_tag_size().max(1));
            match self.lame.lame_tag_encode_to_vec(&mut tag) {
                Some(len) => {
                    tag.truncate(len.get());
                    tag
                }
                None => Vec::new(),
            }
        }
    }
}

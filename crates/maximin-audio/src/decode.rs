//! Decoding uploaded or generated audio with symphonia (pure Rust).

use std::io::{Cursor, ErrorKind};

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use crate::{AudioError, Pcm, Result};

/// Decodes MP3, WAV, FLAC, AAC (ADTS or in MP4/M4A) or Ogg Vorbis into
/// interleaved `f32`, the first audio track only.
///
/// The container is recognised from the bytes themselves (no file name or
/// MIME type is consulted), so a misnamed upload still decodes and a
/// non-audio one is refused. MP3 encoder delay and padding are removed when
/// the file carries a LAME/Info tag (gapless). A damaged packet is skipped;
/// a file that yields no audio at all is an error. A WAV whose header claims
/// more data than there is (a streamed WAV's maximal sizes, or a cut upload) is
/// read to the end of the bytes.
pub fn decode(bytes: &[u8]) -> Result<Pcm> {
    if bytes.is_empty() {
        return Err(AudioError::Decode("empty input".into()));
    }
    let stream = MediaSourceStream::new(
        Box::new(Cursor::new(bytes.to_vec())),
        MediaSourceStreamOptions::default(),
    );
    let format_options = FormatOptions {
        enable_gapless: true,
        ..FormatOptions::default()
    };
    let probed = symphonia::default::get_probe()
        .format(
            &Hint::new(),
            stream,
            &format_options,
            &MetadataOptions::default(),
        )
        .map_err(|e| AudioError::Decode(format!("unrecognised audio container ({e})")))?;
    let mut reader = probed.format;
    let track = reader
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| AudioError::Decode("no audio track".into()))?;
    let track_id = track.id;
    let mut sample_rate = track.codec_params.sample_rate.unwrap_or(0);
    let mut channels = track
        .codec_params
        .channels
        .map(|c| c.count() as u16)
        .unwrap_or(0);
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| AudioError::Decode(format!("unsupported codec ({e})")))?;

    let mut samples: Vec<f32> = Vec::new();
    let mut decoded_packets = 0usize;
    loop {
        let packet = match reader.next_packet() {
            Ok(packet) => packet,
            Err(SymphoniaError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(SymphoniaError::ResetRequired) => break,
            Err(e) => {
                if decoded_packets > 0 {
                    // Trailing garbage after real audio: keep what was decoded.
                    break;
                }
                return Err(AudioError::Decode(e.to_string()));
            }
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => decoded,
            Err(SymphoniaError::DecodeError(_)) => continue,
            Err(SymphoniaError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(AudioError::Decode(e.to_string())),
        };
        decoded_packets += 1;
        let spec = *decoded.spec();
        sample_rate = spec.rate;
        channels = spec.channels.count() as u16;
        let mut buf = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
        buf.copy_interleaved_ref(decoded);
        samples.extend_from_slice(buf.samples());
    }
    if decoded_packets == 0 || sample_rate == 0 || channels == 0 {
        return Err(AudioError::Decode("no audio could be decoded".into()));
    }
    Ok(Pcm::new(samples, sample_rate, channels))
}

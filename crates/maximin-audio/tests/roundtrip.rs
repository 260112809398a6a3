//! Encode real signals in every format, decode them back with symphonia, and
//! check what came out: rate, channels, length, level, and (lossless formats)
//! the samples themselves.

use std::f32::consts::PI;

use maximin_audio::analysis::pitch_track;
use maximin_audio::{
    decode, encode_whole, mp3_bitrate_for, AudioError, AudioSettings, Encoder, Format, Pcm,
    ALLOWED_BITRATES, ALLOWED_SAMPLE_RATES,
};

const SECS: f32 = 1.5;

fn sine(freq: f32, rate: u32, secs: f32) -> Pcm {
    let n = (rate as f32 * secs).round() as usize;
    Pcm::mono(
        (0..n)
            .map(|i| 0.5 * (2.0 * PI * freq * i as f32 / rate as f32).sin())
            .collect(),
        rate,
    )
}

/// Linear sweep from 150 Hz to 3000 Hz (inside every output rate's band).
fn chirp(rate: u32, secs: f32) -> Pcm {
    let n = (rate as f32 * secs).round() as usize;
    let (f0, f1) = (150.0f32, 3000.0f32);
    Pcm::mono(
        (0..n)
            .map(|i| {
                let t = i as f32 / rate as f32;
                let phase = 2.0 * PI * (f0 * t + 0.5 * (f1 - f0) / secs * t * t);
                0.5 * phase.sin()
            })
            .collect(),
        rate,
    )
}

fn settings(format: Format, sample_rate: u32, channels: u16) -> AudioSettings {
    AudioSettings {
        format,
        sample_rate,
        bitrate: 128000,
        channels,
    }
}

/// Raw PCM has no header: read it as the settings say.
fn read_back(format: Format, bytes: &[u8], sample_rate: u32, channels: u16) -> Pcm {
    match format {
        Format::Pcm => {
            assert_eq!(bytes.len() % (2 * usize::from(channels)), 0, "whole frames");
            let samples = bytes
                .chunks_exact(2)
                .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
                .collect();
            Pcm::new(samples, sample_rate, channels)
        }
        _ => match decode(bytes) {
            Ok(pcm) => pcm,
            Err(e) => panic!("{format} ({} bytes) did not decode: {e}", bytes.len()),
        },
    }
}

/// A streamed MP3 has no gapless tag, so its decode is longer than the input:
/// LAME's 576-sample delay in front, and the flush's padding (under two
/// frames) behind. Shorter than input + delay would mean lost audio.
fn assert_mp3_stream_length(pcm: &Pcm, input_frames: usize, what: &str) {
    let frame = if pcm.sample_rate >= 32000 { 1152 } else { 576 };
    let (low, high) = (input_frames + 576, input_frames + 576 + 2 * frame);
    let frames = pcm.frames();
    assert!(
        (low..=high).contains(&frames),
        "{what}: {frames} frames decoded, expected {low}..={high}"
    );
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn whole_files_round_trip_in_every_format_and_rate() {
    for format in Format::ALL {
        for rate in ALLOWED_SAMPLE_RATES {
            for (name, input) in [
                ("sine", sine(220.0, rate, SECS)),
                ("chirp", chirp(rate, SECS)),
            ] {
                let what = format!("{format} {rate} Hz {name}");
                let bytes = match encode_whole(&settings(format, rate, 1), &input) {
                    Ok(bytes) => bytes,
                    Err(e) => panic!("{what}: {e}"),
                };
                let out = read_back(format, &bytes, rate, 1);
                assert_eq!(out.sample_rate, rate, "{what}: rate");
                assert_eq!(out.channels, 1, "{what}: channels");
                assert!(
                    out.rms_dbfs() > -30.0,
                    "{what}: level {} dBFS",
                    out.rms_dbfs()
                );
                if format == Format::Mp3 {
                    // Whole files carry the LAME tag: gapless decoding gives
                    // exactly the input's length.
                    assert_eq!(out.frames(), input.frames(), "{what}: length");
                    assert!(
                        (out.rms_dbfs() - input.rms_dbfs()).abs() < 1.5,
                        "{what}: level {} vs {}",
                        out.rms_dbfs(),
                        input.rms_dbfs()
                    );
                    if name == "sine" {
                        let track = pitch_track(&out);
                        let mut voiced: Vec<f32> = track.into_iter().flatten().collect();
                        voiced.sort_by(f32::total_cmp);
                        let median = voiced[voiced.len() / 2];
                        assert!((median - 220.0).abs() < 4.4, "{what}: pitch {median}");
                    }
                } else {
                    assert_eq!(out.frames(), input.frames(), "{what}: length");
                    let diff = max_abs_diff(&out.samples, &input.samples);
                    assert!(diff < 1e-3, "{what}: samples differ by {diff}");
                }
            }
        }
    }
}

#[test]
fn whole_mp3_files_decode_gaplessly() {
    // The Info/LAME tag tells the decoder the encoder delay and padding, so the
    // decoded clip has the input's length, not whole frames plus delays.
    for rate in [8000, 22050, 44100] {
        let input = sine(220.0, rate, SECS);
        let bytes = encode_whole(&settings(Format::Mp3, rate, 1), &input).expect("encodes");
        let out = read_back(Format::Mp3, &bytes, rate, 1);
        assert_eq!(out.frames(), input.frames(), "mp3 at {rate} Hz");
    }
}

#[test]
fn whole_files_resample_from_another_input_rate() {
    let input = sine(220.0, 24000, SECS);
    for format in [Format::Wav, Format::Flac, Format::Pcm] {
        for rate in [8000, 16000, 44100] {
            let what = format!("{format} 24000 → {rate} Hz");
            let bytes = encode_whole(&settings(format, rate, 1), &input).expect("encodes");
            let out = read_back(format, &bytes, rate, 1);
            let expected = input.resample(rate);
            assert_eq!(out.frames(), expected.frames(), "{what}: length");
            assert_eq!(out.frames(), (rate as f32 * SECS) as usize, "{what}: 1.5 s");
            let diff = max_abs_diff(&out.samples, &expected.samples);
            assert!(diff < 1e-3, "{what}: samples differ by {diff}");
        }
    }
}

/// Feeds `input` in chunks of 1, 37, 1000, 4410, 1, 37, … samples.
fn stream(settings: AudioSettings, input: &Pcm) -> (Vec<u8>, Vec<usize>) {
    let sizes = [1usize, 37, 1000, 4410];
    let mut encoder = Encoder::new(settings, input.sample_rate).expect("valid settings");
    let mut bytes = Vec::new();
    let mut piece_lengths = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < input.samples.len() {
        let end = (at + sizes[i % sizes.len()]).min(input.samples.len());
        let piece = encoder.push(&input.samples[at..end]).expect("push");
        piece_lengths.push(piece.len());
        bytes.extend(piece);
        at = end;
        i += 1;
    }
    let last = encoder.finish().expect("finish");
    piece_lengths.push(last.len());
    bytes.extend(last);
    (bytes, piece_lengths)
}

#[test]
fn streaming_in_uneven_chunks_makes_one_valid_file() {
    for format in Format::ALL {
        for (in_rate, out_rate) in [
            (24000, 16000),
            (22050, 44100),
            (16000, 8000),
            (32000, 32000),
        ] {
            let what = format!("{format} streamed {in_rate} → {out_rate} Hz");
            let input = chirp(in_rate, SECS);
            let settings = settings(format, out_rate, 1);
            let (bytes, pieces) = stream(settings, &input);
            if matches!(format, Format::Wav | Format::Flac) {
                assert!(
                    pieces[0] > 0,
                    "{what}: the header comes with the first chunk"
                );
            }
            assert!(
                pieces.iter().filter(|&&n| n > 0).count() > 2,
                "{what}: bytes must come out while streaming, not only at the end"
            );
            let out = read_back(format, &bytes, out_rate, 1);
            assert_eq!(out.sample_rate, out_rate, "{what}: rate");
            let expected_frames = (out_rate as f32 * SECS).round() as usize;
            assert!(out.rms_dbfs() > -30.0, "{what}: level {}", out.rms_dbfs());
            if format == Format::Mp3 {
                assert_mp3_stream_length(&out, expected_frames, &what);
            } else {
                // Chunk boundaries leave no trace: the same samples as encoding
                // the whole clip at once.
                let whole = encode_whole(&settings, &input).expect("whole");
                let reference = read_back(format, &whole, out_rate, 1);
                assert_eq!(out.frames(), expected_frames, "{what}: length");
                assert_eq!(out.samples, reference.samples, "{what}: samples");
            }
        }
    }
}

#[test]
fn lossless_files_keep_every_sample_whatever_the_length() {
    // FLAC frames hold 4096 samples; the last one holds whatever is left,
    // however short. No sample may be lost or added at the end.
    for frames in [1usize, 5, 31, 4096, 4097, 4096 * 2 + 15, 10_000] {
        let input = Pcm::mono(
            (0..frames)
                .map(|i| ((i % 200) as f32 / 200.0) - 0.5)
                .collect(),
            16000,
        );
        for format in [Format::Flac, Format::Wav] {
            let what = format!("{format} with {frames} samples");
            let s = settings(format, 16000, 1);
            for bytes in [
                encode_whole(&s, &input).expect("whole"),
                stream(s, &input).0,
            ] {
                let out = read_back(format, &bytes, 16000, 1);
                assert_eq!(out.frames(), frames, "{what}: length");
                assert!(
                    max_abs_diff(&out.samples, &input.samples) < 1e-3,
                    "{what}: samples"
                );
            }
        }
    }
}

#[test]
fn streamed_wav_header_uses_the_maximal_size_convention() {
    let (bytes, _) = stream(settings(Format::Wav, 16000, 1), &sine(220.0, 16000, 0.5));
    assert_eq!(&bytes[..4], b"RIFF");
    assert_eq!(&bytes[4..8], &u32::MAX.to_le_bytes());
    let whole =
        encode_whole(&settings(Format::Wav, 16000, 1), &sine(220.0, 16000, 0.5)).expect("whole");
    assert_eq!(
        &whole[4..8],
        &(36u32 + 16000).to_le_bytes(),
        "exact RIFF size"
    );
    assert_eq!(&whole[40..44], &16000u32.to_le_bytes(), "exact data size");
    assert_eq!(&bytes[44..], &whole[44..], "same samples");
}

/// The sizes a strict reader checks: RIFF size = bytes after it, and the
/// data chunk = the bytes that follow its header (the file has no other chunk
/// after `data`). Returns the data size.
fn strict_wav_data_len(bytes: &[u8]) -> usize {
    let u32_at =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    assert_eq!(&bytes[..4], b"RIFF");
    assert_eq!(&bytes[8..12], b"WAVE");
    assert_eq!(u32_at(4) as usize, bytes.len() - 8, "RIFF size");
    let mut at = 12;
    while &bytes[at..at + 4] != b"data" {
        at += 8 + u32_at(at + 4) as usize;
    }
    assert_eq!(u32_at(at + 4) as usize, bytes.len() - at - 8, "data size");
    bytes.len() - at - 8
}

/// The 36-bit total-samples field of a FLAC STREAMINFO.
fn flac_total_samples(bytes: &[u8]) -> u64 {
    assert_eq!(&bytes[..4], b"fLaC");
    let packed = u64::from_be_bytes(bytes[18..26].try_into().expect("8 bytes"));
    packed & ((1 << 36) - 1)
}

/// Like [`stream`], with a whole-file encoder whose head is patched at the end.
fn stream_whole(settings: AudioSettings, input: &Pcm) -> Vec<u8> {
    let sizes = [1usize, 37, 1000, 4410];
    let mut encoder = Encoder::whole(settings, input.sample_rate).expect("valid settings");
    let mut bytes = Vec::new();
    let (mut at, mut i) = (0, 0);
    while at < input.samples.len() {
        let end = (at + sizes[i % sizes.len()]).min(input.samples.len());
        bytes.extend(encoder.push(&input.samples[at..end]).expect("push"));
        at = end;
        i += 1;
    }
    encoder.finish_whole().expect("finish").apply(&mut bytes);
    bytes
}

#[test]
fn whole_files_made_in_pieces_carry_exact_sizes() {
    for (in_rate, out_rate, channels) in [(22050, 16000, 2), (24000, 24000, 1), (16000, 44100, 1)] {
        let input = chirp(in_rate, SECS);
        let frames = (out_rate as f32 * SECS).round() as usize;
        for format in Format::ALL {
            let what = format!("{format} whole {in_rate} → {out_rate} Hz x{channels}");
            let s = settings(format, out_rate, channels);
            let bytes = stream_whole(s, &input);
            match format {
                Format::Wav => {
                    let data = strict_wav_data_len(&bytes);
                    assert_eq!(data, frames * 2 * usize::from(channels), "{what}");
                    assert_eq!(bytes, encode_whole(&s, &input).expect("whole"), "{what}");
                }
                Format::Flac => {
                    assert_eq!(flac_total_samples(&bytes), frames as u64, "{what}");
                    assert_eq!(bytes, encode_whole(&s, &input).expect("whole"), "{what}");
                }
                // The Info/LAME tag: gapless decoding gives the exact length.
                Format::Mp3 => {
                    let out = read_back(format, &bytes, out_rate, channels);
                    assert_eq!(out.frames(), frames, "{what}");
                }
                Format::Pcm => assert_eq!(bytes.len(), frames * 2 * usize::from(channels)),
            }
        }
    }
}

#[test]
fn mp3_bitrate_sets_the_file_size() {
    let secs = 4.0;
    for rate in [8000, 16000, 32000, 44100] {
        let input = sine(220.0, rate, secs);
        let mut previous = 0;
        for bitrate in ALLOWED_BITRATES {
            let s = AudioSettings {
                bitrate,
                ..settings(Format::Mp3, rate, 1)
            };
            let effective = mp3_bitrate_for(rate, bitrate);
            assert_eq!(s.effective_bitrate(), effective);
            let size = encode_whole(&s, &input).expect("encodes").len();
            let expected = (effective as f32 * secs / 8.0) as usize;
            assert!(
                size.abs_diff(expected) <= expected / 10,
                "{rate} Hz at {bitrate} (written as {effective}): {size} bytes, expected ≈{expected}"
            );
            assert!(
                size >= previous,
                "a higher bitrate never gives a smaller file"
            );
            previous = size;
        }
    }
}

#[test]
fn stereo_output_carries_two_equal_channels() {
    let input = sine(220.0, 22050, SECS);
    for format in Format::ALL {
        for streamed in [false, true] {
            let what = format!("{format} stereo (streamed: {streamed})");
            let s = settings(format, 22050, 2);
            let bytes = if streamed {
                stream(s, &input).0
            } else {
                encode_whole(&s, &input).expect("encodes")
            };
            let out = read_back(format, &bytes, 22050, 2);
            assert_eq!(out.channels, 2, "{what}: channels");
            let (left, right) = (out.channel(0), out.channel(1));
            if format == Format::Mp3 && streamed {
                assert_mp3_stream_length(&out, input.frames(), &what);
            } else {
                assert_eq!(out.frames(), input.frames(), "{what}: length");
            }
            assert!(out.rms_dbfs() > -30.0, "{what}: level");
            let diff = max_abs_diff(&left, &right);
            let limit = if format == Format::Mp3 { 0.05 } else { 0.0 };
            assert!(diff <= limit, "{what}: channels differ by {diff}");
        }
    }
}

#[test]
fn stereo_input_stays_stereo_in_whole_files() {
    let rate = 16000;
    let left = sine(220.0, rate, 1.0).samples;
    let mut samples = Vec::new();
    for l in &left {
        samples.extend([*l, 0.0]);
    }
    let input = Pcm::new(samples, rate, 2);
    for format in [Format::Wav, Format::Flac] {
        let out = read_back(
            format,
            &encode_whole(&settings(format, rate, 2), &input).expect("encodes"),
            rate,
            2,
        );
        assert!(
            max_abs_diff(&out.channel(0), &left) < 1e-3,
            "{format}: left kept"
        );
        assert_eq!(
            out.channel(1).iter().fold(0.0f32, |m, s| m.max(s.abs())),
            0.0
        );
        // Mono output mixes both channels.
        let mono = read_back(
            format,
            &encode_whole(&settings(format, rate, 1), &input).expect("encodes"),
            rate,
            1,
        );
        assert!((mono.peak() - 0.25).abs() < 1e-3, "{format}: mixed down");
    }
}

fn field_of(result: Result<impl Sized, AudioError>) -> Option<&'static str> {
    result.err().and_then(|e| e.field())
}

#[test]
fn invalid_settings_are_refused_naming_the_field() {
    let ok = AudioSettings::default();
    assert!(ok.validate().is_ok());
    assert_eq!(ok, settings(Format::Mp3, 32000, 1));

    let bad_rate = AudioSettings {
        sample_rate: 48000,
        ..ok
    };
    let err = bad_rate
        .validate()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("audio_setting.sample_rate") && err.contains("48000"),
        "{err}"
    );
    assert_eq!(
        field_of(Encoder::new(bad_rate, 22050)),
        Some("audio_setting.sample_rate")
    );
    assert_eq!(
        field_of(encode_whole(&bad_rate, &sine(220.0, 16000, 0.1))),
        Some("audio_setting.sample_rate")
    );

    let bad_bitrate = AudioSettings {
        bitrate: 100000,
        ..ok
    };
    assert_eq!(
        field_of(bad_bitrate.validate()),
        Some("audio_setting.bitrate")
    );
    assert_eq!(
        field_of(Encoder::new(bad_bitrate, 16000)),
        Some("audio_setting.bitrate")
    );
    // The bitrate means nothing to the lossless formats.
    for format in [Format::Pcm, Format::Flac, Format::Wav] {
        assert!(AudioSettings {
            format,
            ..bad_bitrate
        }
        .validate()
        .is_ok());
    }

    for channels in [0, 3] {
        let bad = AudioSettings { channels, ..ok };
        assert_eq!(field_of(bad.validate()), Some("audio_setting.channel"));
    }
    assert_eq!(
        field_of("ogg".parse::<Format>()),
        Some("audio_setting.format")
    );
}

#[test]
fn decode_refuses_what_is_not_audio() {
    assert!(matches!(decode(&[]), Err(AudioError::Decode(_))));
    let text = b"this is a text file, not audio at all, whatever its name says".repeat(50);
    assert!(matches!(decode(&text), Err(AudioError::Decode(_))));
    // A valid WAV header with nothing after it has no audio either.
    let wav =
        encode_whole(&settings(Format::Wav, 16000, 1), &Pcm::mono(vec![], 16000)).expect("encodes");
    assert!(decode(&wav).is_err());
}

/// Frequency from zero crossings (linear interpolation between samples).
fn measured_frequency(samples: &[f32], rate: u32) -> f32 {
    let mut crossings = Vec::new();
    for i in 1..samples.len() {
        let (a, b) = (samples[i - 1], samples[i]);
        if a < 0.0 && b >= 0.0 {
            crossings.push((i - 1) as f32 + a / (a - b));
        }
    }
    let (first, last) = (crossings[0], crossings[crossings.len() - 1]);
    (crossings.len() - 1) as f32 * rate as f32 / (last - first)
}

#[test]
fn resampling_keeps_a_tone_frequency_and_level() {
    let rates = [8000, 16000, 22050, 24000, 32000, 44100, 48000];
    for from in rates {
        for to in rates {
            if from == to {
                continue;
            }
            let input = sine(440.0, from, 0.5);
            let out = input.resample(to);
            let what = format!("{from} → {to} Hz");
            assert_eq!(out.sample_rate, to);
            let expected_len = (input.frames() as u64 * u64::from(to)).div_ceil(u64::from(from));
            assert_eq!(out.frames() as u64, expected_len, "{what}: length");
            // Away from the edges (which read zeros), the tone is intact.
            let margin = out.frames() / 10;
            let middle = &out.samples[margin..out.frames() - margin];
            let freq = measured_frequency(middle, to);
            assert!((freq - 440.0).abs() < 0.44, "{what}: {freq} Hz");
            let level = Pcm::mono(middle.to_vec(), to).rms_dbfs();
            assert!(
                (level - input.rms_dbfs()).abs() < 0.05,
                "{what}: level {level}"
            );
        }
    }
}

#[test]
fn the_encoder_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<Encoder>();
}

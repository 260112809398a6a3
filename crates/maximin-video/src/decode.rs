//! [`decode_first_frame`]: the first picture of an MP4's H.264 track, through
//! OpenH264's decoder (for checks and tests).

use openh264::decoder::{Decoder, DecoderConfig};
use openh264::formats::YUVSource;
use openh264::OpenH264API;

use crate::probe::{video_track, TrackTable};
use crate::{Frame, VideoError};

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// Decodes the first frame of the first video track (H.264, `avc1`) to RGB.
pub fn decode_first_frame(mp4: &[u8]) -> Result<Frame, VideoError> {
    let track = video_track(mp4)?;
    if &track.codec != b"avc1" && &track.codec != b"avc3" {
        return Err(VideoError::Decode(format!(
            "codec '{}' is not H.264",
            String::from_utf8_lossy(&track.codec)
        )));
    }
    let mut stream = Vec::new();
    for set in track.sps.iter().chain(&track.pps) {
        stream.extend_from_slice(&START_CODE);
        stream.extend_from_slice(set);
    }
    annex_b_sample(mp4, &track, 0, &mut stream)?;

    let decode_err = |e: openh264::Error| VideoError::Decode(e.to_string());
    let mut decoder = Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())
        .map_err(decode_err)?;
    if let Some(yuv) = decoder.decode(&stream).map_err(decode_err)? {
        return to_frame(&yuv);
    }
    let rest = decoder.flush_remaining().map_err(decode_err)?;
    match rest.first() {
        Some(yuv) => to_frame(yuv),
        None => Err(VideoError::Decode("no picture came out".to_string())),
    }
}

/// Appends sample `index` to `stream` as Annex B NAL units.
fn annex_b_sample(
    mp4: &[u8],
    track: &TrackTable,
    index: usize,
    stream: &mut Vec<u8>,
) -> Result<(), VideoError> {
    let range = track.sample_range(index)?;
    let sample = mp4
        .get(range)
        .ok_or_else(|| VideoError::Container("a sample lies past the end".to_string()))?;
    let n = track.nal_length_size;
    let mut pos = 0usize;
    while pos < sample.len() {
        let len_bytes = sample
            .get(pos..pos + n)
            .ok_or_else(|| VideoError::Container("truncated NAL length".to_string()))?;
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let nal = sample
            .get(pos + n..pos + n + len)
            .ok_or_else(|| VideoError::Container("truncated NAL unit".to_string()))?;
        stream.extend_from_slice(&START_CODE);
        stream.extend_from_slice(nal);
        pos += n + len;
    }
    Ok(())
}

/// Decodes every sample in order; returns the pictures' sizes and the
/// first luma byte of each (tests: the whole track decodes).
#[cfg(test)]
pub(crate) fn decode_all(mp4: &[u8]) -> Result<Vec<(usize, usize)>, VideoError> {
    let track = video_track(mp4)?;
    let decode_err = |e: openh264::Error| VideoError::Decode(e.to_string());
    let mut decoder = Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())
        .map_err(decode_err)?;
    let mut sizes = Vec::new();
    for i in 0..track.sizes.len() {
        let mut stream = Vec::new();
        if i == 0 {
            for set in track.sps.iter().chain(&track.pps) {
                stream.extend_from_slice(&START_CODE);
                stream.extend_from_slice(set);
            }
        }
        annex_b_sample(mp4, &track, i, &mut stream)?;
        if let Some(yuv) = decoder.decode(&stream).map_err(decode_err)? {
            sizes.push(yuv.dimensions());
        }
    }
    for yuv in decoder.flush_remaining().map_err(decode_err)? {
        sizes.push(yuv.dimensions());
    }
    Ok(sizes)
}

fn to_frame(yuv: &openh264::decoder::DecodedYUV<'_>) -> Result<Frame, VideoError> {
    let (w, h) = yuv.dimensions();
    if w == 0 || h == 0 {
        return Err(VideoError::Decode("empty picture".to_string()));
    }
    let mut rgb = vec![0u8; w * h * 3];
    yuv.write_rgb8(&mut rgb);
    Ok(Frame {
        width: w as u32,
        height: h as u32,
        rgb,
    })
}

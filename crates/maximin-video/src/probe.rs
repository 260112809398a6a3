//! Reading an MP4 back: the first video track's size, timing, codec and
//! sample table (enough to find and decode a sample).

use crate::h264::parse_sps;
use crate::VideoError;

/// What [`probe`] finds in an MP4's first video track.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    /// Display size from the track's sample description (for H.264, checked
    /// against the SPS's cropped size).
    pub width: u32,
    pub height: u32,
    /// Track duration in seconds (the sum of the sample durations).
    pub duration_s: f64,
    /// Frames a second (frames / duration).
    pub fps: f64,
    /// Number of samples (frames).
    pub frames: u64,
    /// Number of sync samples (key frames).
    pub key_frames: u64,
    /// The sample entry's four-character code, e.g. `"avc1"`.
    pub codec: String,
    /// H.264 `profile_idc` and `level_idc` from the SPS (0 for other codecs).
    pub profile_idc: u8,
    pub level_idc: u8,
}

fn err(msg: impl Into<String>) -> VideoError {
    VideoError::Container(msg.into())
}

fn be_u16(d: &[u8], at: usize) -> Result<u16, VideoError> {
    d.get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or_else(|| err("box too short"))
}

fn be_u32(d: &[u8], at: usize) -> Result<u32, VideoError> {
    d.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| err("box too short"))
}

fn be_u64(d: &[u8], at: usize) -> Result<u64, VideoError> {
    let hi = be_u32(d, at)?;
    let lo = be_u32(d, at + 4)?;
    Ok((u64::from(hi) << 32) | u64::from(lo))
}

/// A box: its four-character type and its body.
type Mp4Box<'a> = ([u8; 4], &'a [u8]);

/// An `avcC`'s NAL length size, SPSs and PPSs.
type AvcConfig = (usize, Vec<Vec<u8>>, Vec<Vec<u8>>);

/// The boxes directly inside `data`.
fn children(data: &[u8]) -> Result<Vec<Mp4Box<'_>>, VideoError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        if data.len() - pos < 8 {
            return Err(err("truncated box header"));
        }
        let size32 = be_u32(data, pos)?;
        let kind = [data[pos + 4], data[pos + 5], data[pos + 6], data[pos + 7]];
        let (header, size) = match size32 {
            0 => (8usize, (data.len() - pos) as u64),
            1 => (16usize, be_u64(data, pos + 8)?),
            n => (8usize, u64::from(n)),
        };
        let size = usize::try_from(size).map_err(|_| err("box too large"))?;
        if size < header || size > data.len() - pos {
            return Err(err(format!(
                "box '{}' claims {} bytes, {} remain",
                String::from_utf8_lossy(&kind),
                size,
                data.len() - pos
            )));
        }
        out.push((kind, &data[pos + header..pos + size]));
        pos += size;
    }
    Ok(out)
}

fn find<'a>(boxes: &[Mp4Box<'a>], kind: &[u8; 4]) -> Option<&'a [u8]> {
    boxes.iter().find(|(k, _)| k == kind).map(|(_, b)| *b)
}

fn need<'a>(boxes: &[Mp4Box<'a>], kind: &[u8; 4]) -> Result<&'a [u8], VideoError> {
    find(boxes, kind).ok_or_else(|| err(format!("no '{}' box", String::from_utf8_lossy(kind))))
}

/// The parts of a video track this crate reads.
pub(crate) struct TrackTable {
    pub width: u32,
    pub height: u32,
    pub timescale: u32,
    pub codec: [u8; 4],
    pub sps: Vec<Vec<u8>>,
    pub pps: Vec<Vec<u8>>,
    pub nal_length_size: usize,
    /// (sample_count, sample_delta) runs.
    pub stts: Vec<(u32, u32)>,
    pub sizes: Vec<u32>,
    pub key_frames: Option<u64>,
    /// (first_chunk, samples_per_chunk) runs, 1-based chunks.
    pub stsc: Vec<(u32, u32)>,
    pub chunk_offsets: Vec<u64>,
}

impl TrackTable {
    /// The byte range of sample `index` (0-based) in the file.
    pub fn sample_range(&self, index: usize) -> Result<std::ops::Range<usize>, VideoError> {
        let size = *self
            .sizes
            .get(index)
            .ok_or_else(|| err("sample index past the end"))?;
        // Walk the chunks to find which holds the sample.
        let mut sample = 0usize;
        for (chunk, &offset) in self.chunk_offsets.iter().enumerate() {
            let chunk_no = chunk as u32 + 1;
            let per = self
                .stsc
                .iter()
                .rev()
                .find(|(first, _)| *first <= chunk_no)
                .map(|(_, per)| *per as usize)
                .ok_or_else(|| err("sample-to-chunk table does not start at chunk 1"))?;
            if index < sample + per {
                let mut pos = offset;
                for i in sample..index {
                    pos += u64::from(*self.sizes.get(i).ok_or_else(|| err("sizes too short"))?);
                }
                let start = usize::try_from(pos).map_err(|_| err("offset too large"))?;
                return Ok(start..start + size as usize);
            }
            sample += per;
        }
        Err(err("sample not in any chunk"))
    }
}

fn parse_avcc(body: &[u8]) -> Result<AvcConfig, VideoError> {
    if body.len() < 7 || body[0] != 1 {
        return Err(err("bad avcC"));
    }
    let length_size = usize::from(body[4] & 3) + 1;
    let mut pos = 5;
    let take_sets = |count: usize, pos: &mut usize| -> Result<Vec<Vec<u8>>, VideoError> {
        let mut sets = Vec::with_capacity(count);
        for _ in 0..count {
            let len = usize::from(be_u16(body, *pos)?);
            let set = body
                .get(*pos + 2..*pos + 2 + len)
                .ok_or_else(|| err("avcC parameter set truncated"))?;
            sets.push(set.to_vec());
            *pos += 2 + len;
        }
        Ok(sets)
    };
    let sps_count = usize::from(body[pos] & 0x1f);
    pos += 1;
    let sps = take_sets(sps_count, &mut pos)?;
    let pps_count = usize::from(*body.get(pos).ok_or_else(|| err("avcC truncated"))?);
    pos += 1;
    let pps = take_sets(pps_count, &mut pos)?;
    Ok((length_size, sps, pps))
}

fn full_box_version(body: &[u8]) -> Result<u8, VideoError> {
    body.first().copied().ok_or_else(|| err("empty full box"))
}

fn parse_trak(trak: &[u8]) -> Result<Option<TrackTable>, VideoError> {
    let boxes = children(trak)?;
    let mdia = children(need(&boxes, b"mdia")?)?;
    let hdlr = need(&mdia, b"hdlr")?;
    if hdlr.get(8..12) != Some(b"vide") {
        return Ok(None);
    }
    let mdhd = need(&mdia, b"mdhd")?;
    let timescale = if full_box_version(mdhd)? == 1 {
        be_u32(mdhd, 20)?
    } else {
        be_u32(mdhd, 12)?
    };
    if timescale == 0 {
        return Err(err("media timescale is zero"));
    }
    let minf = children(need(&mdia, b"minf")?)?;
    let stbl = children(need(&minf, b"stbl")?)?;

    let stsd = need(&stbl, b"stsd")?;
    let entries = children(stsd.get(8..).ok_or_else(|| err("stsd too short"))?)?;
    let (codec, entry) = *entries.first().ok_or_else(|| err("stsd has no entry"))?;
    let width = u32::from(be_u16(entry, 24)?);
    let height = u32::from(be_u16(entry, 26)?);
    let (mut nal_length_size, mut sps, mut pps) = (4, Vec::new(), Vec::new());
    if let Some(extra) = entry.get(78..) {
        if let Some(avcc) = find(&children(extra)?, b"avcC") {
            (nal_length_size, sps, pps) = parse_avcc(avcc)?;
        }
    }

    let stts_body = need(&stbl, b"stts")?;
    let n = be_u32(stts_body, 4)? as usize;
    let mut stts = Vec::with_capacity(n.min(1 << 16));
    for i in 0..n {
        stts.push((
            be_u32(stts_body, 8 + i * 8)?,
            be_u32(stts_body, 12 + i * 8)?,
        ));
    }

    let stsz = need(&stbl, b"stsz")?;
    let fixed = be_u32(stsz, 4)?;
    let count = be_u32(stsz, 8)? as usize;
    let sizes = if fixed != 0 {
        vec![fixed; count]
    } else {
        let mut sizes = Vec::with_capacity(count.min(1 << 20));
        for i in 0..count {
            sizes.push(be_u32(stsz, 12 + i * 4)?);
        }
        sizes
    };

    let key_frames = match find(&stbl, b"stss") {
        Some(stss) => Some(u64::from(be_u32(stss, 4)?)),
        None => None, // every sample is a sync sample
    };

    let stsc_body = need(&stbl, b"stsc")?;
    let n = be_u32(stsc_body, 4)? as usize;
    let mut stsc = Vec::with_capacity(n.min(1 << 16));
    for i in 0..n {
        stsc.push((
            be_u32(stsc_body, 8 + i * 12)?,
            be_u32(stsc_body, 12 + i * 12)?,
        ));
    }

    let chunk_offsets = if let Some(stco) = find(&stbl, b"stco") {
        let n = be_u32(stco, 4)? as usize;
        let mut v = Vec::with_capacity(n.min(1 << 20));
        for i in 0..n {
            v.push(u64::from(be_u32(stco, 8 + i * 4)?));
        }
        v
    } else if let Some(co64) = find(&stbl, b"co64") {
        let n = be_u32(co64, 4)? as usize;
        let mut v = Vec::with_capacity(n.min(1 << 20));
        for i in 0..n {
            v.push(be_u64(co64, 8 + i * 8)?);
        }
        v
    } else {
        return Err(err("no chunk offsets (stco/co64)"));
    };

    Ok(Some(TrackTable {
        width,
        height,
        timescale,
        codec,
        sps,
        pps,
        nal_length_size,
        stts,
        sizes,
        key_frames,
        stsc,
        chunk_offsets,
    }))
}

/// The first video track of an MP4 file.
pub(crate) fn video_track(mp4: &[u8]) -> Result<TrackTable, VideoError> {
    let top = children(mp4)?;
    if find(&top, b"ftyp").is_none() {
        return Err(err("no 'ftyp' box (not an MP4)"));
    }
    let moov = children(need(&top, b"moov")?)?;
    for (kind, body) in &moov {
        if kind == b"trak" {
            if let Some(track) = parse_trak(body)? {
                return Ok(track);
            }
        }
    }
    Err(err("no video track"))
}

/// Reads an MP4's first video track: size, duration, frame rate, frame count
/// and codec. For H.264 the SPS must agree with the container's size.
pub fn probe(mp4: &[u8]) -> Result<VideoInfo, VideoError> {
    let t = video_track(mp4)?;
    let frames: u64 = t.stts.iter().map(|&(n, _)| u64::from(n)).sum();
    let ticks: u64 = t
        .stts
        .iter()
        .map(|&(n, d)| u64::from(n) * u64::from(d))
        .sum();
    if frames != t.sizes.len() as u64 {
        return Err(err(format!(
            "stts counts {frames} samples, stsz {}",
            t.sizes.len()
        )));
    }
    let duration_s = ticks as f64 / f64::from(t.timescale);
    let fps = if ticks == 0 {
        0.0
    } else {
        frames as f64 * f64::from(t.timescale) / ticks as f64
    };
    let codec = String::from_utf8_lossy(&t.codec).into_owned();
    let (mut profile_idc, mut level_idc) = (0, 0);
    if &t.codec == b"avc1" || &t.codec == b"avc3" {
        if let Some(sps) = t.sps.first() {
            let info = parse_sps(sps).map_err(err)?;
            if info.width != t.width || info.height != t.height {
                return Err(err(format!(
                    "the container says {}x{}, the SPS {}x{}",
                    t.width, t.height, info.width, info.height
                )));
            }
            profile_idc = info.profile_idc;
            level_idc = info.level_idc;
        } else if &t.codec == b"avc1" {
            return Err(err("avc1 track without an SPS in its avcC"));
        }
    }
    Ok(VideoInfo {
        width: t.width,
        height: t.height,
        duration_s,
        fps,
        frames,
        key_frames: t.key_frames.unwrap_or(frames),
        codec,
        profile_idc,
        level_idc,
    })
}

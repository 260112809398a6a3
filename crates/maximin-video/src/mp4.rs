//! The MP4 (ISO BMFF) writer: one H.264 video track, faststart layout
//! (`ftyp`, `moov`, `mdat`), deterministic (all times zero).

use std::io::Write;

/// A finished track ready to be written.
pub(crate) struct Track<'a> {
    pub width: u32,
    pub height: u32,
    pub timescale: u32,
    /// Per-sample durations in `timescale` units.
    pub durations: &'a [u32],
    /// Per-sample sizes in bytes (AVCC, 4-byte lengths).
    pub sizes: &'a [u32],
    /// 1-based numbers of the sync (IDR) samples.
    pub sync: &'a [u32],
    pub sps: &'a [u8],
    pub pps: &'a [u8],
    /// The samples, back to back.
    pub data: &'a [u8],
}

/// Samples per chunk (one `stco` entry each).
const CHUNK: usize = 32;

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}
fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}
fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Writes a box: size, type, then what `body` appends.
fn boxed(out: &mut Vec<u8>, kind: &[u8; 4], body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    put_u32(out, 0);
    out.extend_from_slice(kind);
    body(out);
    let size = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// A full box: a box whose body starts with version and flags.
fn full_box(
    out: &mut Vec<u8>,
    kind: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut Vec<u8>),
) {
    boxed(out, kind, |out| {
        put_u32(out, (u32::from(version) << 24) | (flags & 0x00ff_ffff));
        body(out);
    });
}

const UNITY_MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

fn put_matrix(out: &mut Vec<u8>) {
    for v in UNITY_MATRIX {
        put_u32(out, v);
    }
}

fn ftyp() -> Vec<u8> {
    let mut out = Vec::new();
    boxed(&mut out, b"ftyp", |out| {
        out.extend_from_slice(b"isom");
        put_u32(out, 0x200);
        for brand in [b"isom", b"iso2", b"avc1", b"mp41"] {
            out.extend_from_slice(brand);
        }
    });
    out
}

fn avcc(out: &mut Vec<u8>, sps: &[u8], pps: &[u8]) {
    boxed(out, b"avcC", |out| {
        let profile = sps.get(1).copied().unwrap_or(66);
        out.push(1); // configurationVersion
        out.push(profile);
        out.push(sps.get(2).copied().unwrap_or(0));
        out.push(sps.get(3).copied().unwrap_or(0));
        out.push(0xfc | 3); // lengthSizeMinusOne = 3
        out.push(0xe0 | 1); // one SPS
        put_u16(out, sps.len() as u16);
        out.extend_from_slice(sps);
        out.push(1); // one PPS
        put_u16(out, pps.len() as u16);
        out.extend_from_slice(pps);
        if matches!(profile, 100 | 110 | 122 | 144) {
            let info = crate::h264::parse_sps(sps).ok();
            let chroma = info.map_or(1, |i| i.chroma_format_idc) as u8;
            let luma = info.map_or(8, |i| i.bit_depth_luma) as u8;
            let chroma_depth = info.map_or(8, |i| i.bit_depth_chroma) as u8;
            out.push(0xfc | (chroma & 3));
            out.push(0xf8 | (luma.saturating_sub(8) & 7));
            out.push(0xf8 | (chroma_depth.saturating_sub(8) & 7));
            out.push(0); // no SPS extensions
        }
    });
}

fn moov(t: &Track<'_>, duration: u64, chunk_offsets: &[u64], wide_offsets: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let long = duration > u64::from(u32::MAX);
    let version = u8::from(long);
    let put_duration = |out: &mut Vec<u8>| {
        if long {
            put_u64(out, duration);
        } else {
            put_u32(out, duration as u32);
        }
    };
    let put_times = |out: &mut Vec<u8>| {
        // creation and modification times: zero, so equal input gives equal bytes
        if long {
            put_u64(out, 0);
            put_u64(out, 0);
        } else {
            put_u32(out, 0);
            put_u32(out, 0);
        }
    };
    boxed(&mut out, b"moov", |out| {
        full_box(out, b"mvhd", version, 0, |out| {
            put_times(out);
            put_u32(out, t.timescale);
            put_duration(out);
            put_u32(out, 0x0001_0000); // rate 1.0
            put_u16(out, 0x0100); // volume 1.0
            put_u16(out, 0);
            put_u32(out, 0);
            put_u32(out, 0);
            put_matrix(out);
            for _ in 0..6 {
                put_u32(out, 0); // pre_defined
            }
            put_u32(out, 2); // next_track_ID
        });
        boxed(out, b"trak", |out| {
            // flags: enabled, in movie, in preview
            full_box(out, b"tkhd", version, 0x7, |out| {
                put_times(out);
                put_u32(out, 1); // track_ID
                put_u32(out, 0);
                put_duration(out);
                put_u32(out, 0);
                put_u32(out, 0);
                put_u16(out, 0); // layer
                put_u16(out, 0); // alternate_group
                put_u16(out, 0); // volume (video)
                put_u16(out, 0);
                put_matrix(out);
                put_u32(out, t.width << 16);
                put_u32(out, t.height << 16);
            });
            boxed(out, b"edts", |out| {
                full_box(out, b"elst", version, 0, |out| {
                    put_u32(out, 1);
                    put_duration(out); // segment_duration (movie timescale)
                    if long {
                        put_u64(out, 0);
                    } else {
                        put_u32(out, 0); // media_time
                    }
                    put_u16(out, 1); // media_rate 1.0
                    put_u16(out, 0);
                });
            });
            boxed(out, b"mdia", |out| {
                full_box(out, b"mdhd", version, 0, |out| {
                    put_times(out);
                    put_u32(out, t.timescale);
                    put_duration(out);
                    put_u16(out, 0x55c4); // language "und"
                    put_u16(out, 0);
                });
                full_box(out, b"hdlr", 0, 0, |out| {
                    put_u32(out, 0);
                    out.extend_from_slice(b"vide");
                    for _ in 0..3 {
                        put_u32(out, 0);
                    }
                    out.extend_from_slice(b"VideoHandler\0");
                });
                boxed(out, b"minf", |out| {
                    full_box(out, b"vmhd", 0, 1, |out| {
                        put_u16(out, 0); // graphicsmode
                        for _ in 0..3 {
                            put_u16(out, 0); // opcolor
                        }
                    });
                    boxed(out, b"dinf", |out| {
                        full_box(out, b"dref", 0, 0, |out| {
                            put_u32(out, 1);
                            full_box(out, b"url ", 0, 1, |_| {}); // data in this file
                        });
                    });
                    stbl(out, t, chunk_offsets, wide_offsets);
                });
            });
        });
    });
    out
}

fn stbl(out: &mut Vec<u8>, t: &Track<'_>, chunk_offsets: &[u64], wide_offsets: bool) {
    boxed(out, b"stbl", |out| {
        full_box(out, b"stsd", 0, 0, |out| {
            put_u32(out, 1);
            boxed(out, b"avc1", |out| {
                out.extend_from_slice(&[0; 6]);
                put_u16(out, 1); // data_reference_index
                put_u16(out, 0);
                put_u16(out, 0);
                for _ in 0..3 {
                    put_u32(out, 0);
                }
                put_u16(out, t.width as u16);
                put_u16(out, t.height as u16);
                put_u32(out, 0x0048_0000); // 72 dpi
                put_u32(out, 0x0048_0000);
                put_u32(out, 0);
                put_u16(out, 1); // frame_count
                let mut name = [0u8; 32];
                let label = b"maximin H.264";
                name[0] = label.len() as u8;
                name[1..=label.len()].copy_from_slice(label);
                out.extend_from_slice(&name);
                put_u16(out, 0x18); // depth
                put_u16(out, 0xffff); // pre_defined = -1
                avcc(out, t.sps, t.pps);
            });
        });
        full_box(out, b"stts", 0, 0, |out| {
            let mut runs: Vec<(u32, u32)> = Vec::new();
            for &d in t.durations {
                match runs.last_mut() {
                    Some((count, delta)) if *delta == d => *count += 1,
                    _ => runs.push((1, d)),
                }
            }
            put_u32(out, runs.len() as u32);
            for (count, delta) in runs {
                put_u32(out, count);
                put_u32(out, delta);
            }
        });
        full_box(out, b"stss", 0, 0, |out| {
            put_u32(out, t.sync.len() as u32);
            for &s in t.sync {
                put_u32(out, s);
            }
        });
        full_box(out, b"stsc", 0, 0, |out| {
            let n = t.sizes.len();
            let full = n / CHUNK;
            let rest = n % CHUNK;
            let mut entries = Vec::new();
            if full > 0 {
                entries.push((1u32, CHUNK as u32));
            }
            if rest > 0 {
                entries.push((full as u32 + 1, rest as u32));
            }
            put_u32(out, entries.len() as u32);
            for (first, per) in entries {
                put_u32(out, first);
                put_u32(out, per);
                put_u32(out, 1); // sample_description_index
            }
        });
        full_box(out, b"stsz", 0, 0, |out| {
            put_u32(out, 0); // sizes differ
            put_u32(out, t.sizes.len() as u32);
            for &s in t.sizes {
                put_u32(out, s);
            }
        });
        if wide_offsets {
            full_box(out, b"co64", 0, 0, |out| {
                put_u32(out, chunk_offsets.len() as u32);
                for &o in chunk_offsets {
                    put_u64(out, o);
                }
            });
        } else {
            full_box(out, b"stco", 0, 0, |out| {
                put_u32(out, chunk_offsets.len() as u32);
                for &o in chunk_offsets {
                    put_u32(out, o as u32);
                }
            });
        }
    });
}

/// Chunk offsets relative to the start of the mdat payload.
fn relative_chunk_offsets(sizes: &[u32]) -> Vec<u64> {
    let mut offsets = Vec::with_capacity(sizes.len().div_ceil(CHUNK));
    let mut pos = 0u64;
    for (i, &s) in sizes.iter().enumerate() {
        if i % CHUNK == 0 {
            offsets.push(pos);
        }
        pos += u64::from(s);
    }
    offsets
}

/// Writes the whole file: `ftyp`, `moov`, `mdat`. Returns the bytes written.
pub(crate) fn write_file<W: Write>(t: &Track<'_>, out: &mut W) -> std::io::Result<u64> {
    let duration: u64 = t.durations.iter().map(|&d| u64::from(d)).sum();
    let head = ftyp();
    let relative = relative_chunk_offsets(t.sizes);
    let data_len = t.data.len() as u64;
    let large_mdat = data_len + 8 > u64::from(u32::MAX);
    let mdat_header_len: u64 = if large_mdat { 16 } else { 8 };

    // The moov's size does not depend on the offsets' values, only on their
    // width, so measure it once with zeros, then write it with the real ones.
    let mut wide = false;
    let mut moov_len = moov(t, duration, &relative, wide).len() as u64;
    let mut base = head.len() as u64 + moov_len + mdat_header_len;
    if base + data_len > u64::from(u32::MAX) {
        wide = true;
        moov_len = moov(t, duration, &relative, wide).len() as u64;
        base = head.len() as u64 + moov_len + mdat_header_len;
    }
    let absolute: Vec<u64> = relative.iter().map(|o| o + base).collect();
    let index = moov(t, duration, &absolute, wide);
    debug_assert_eq!(index.len() as u64, moov_len);

    out.write_all(&head)?;
    out.write_all(&index)?;
    if large_mdat {
        out.write_all(&1u32.to_be_bytes())?;
        out.write_all(b"mdat")?;
        out.write_all(&(data_len + 16).to_be_bytes())?;
    } else {
        out.write_all(&((data_len + 8) as u32).to_be_bytes())?;
        out.write_all(b"mdat")?;
    }
    out.write_all(t.data)?;
    out.flush()?;
    Ok(base + data_len)
}

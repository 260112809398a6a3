//! The few H.264 bitstream facts the container needs: Annex B NAL units,
//! and the picture size an SPS describes (with its frame cropping).

pub(crate) const NAL_IDR: u8 = 5;
pub(crate) const NAL_SPS: u8 = 7;
pub(crate) const NAL_PPS: u8 = 8;
pub(crate) const NAL_AUD: u8 = 9;

/// The NAL unit type (low five bits of the first byte).
pub(crate) fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

/// Splits an Annex B byte stream (`00 00 01` / `00 00 00 01` start codes)
/// into NAL units without their start codes. Trailing zero bytes of a unit
/// (the next start code's leading zero) are dropped.
pub(crate) fn annex_b_units(stream: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new(); // index of the first byte after each start code
    let mut i = 0;
    while i + 2 < stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut units = Vec::with_capacity(starts.len());
    for (k, &start) in starts.iter().enumerate() {
        let mut end = match starts.get(k + 1) {
            Some(&next) => next - 3,
            None => stream.len(),
        };
        while end > start && stream[end - 1] == 0 {
            end -= 1;
        }
        if end > start {
            units.push(&stream[start..end]);
        }
    }
    units
}

/// What an SPS says about the picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpsInfo {
    pub profile_idc: u8,
    pub level_idc: u8,
    pub chroma_format_idc: u32,
    pub bit_depth_luma: u32,
    pub bit_depth_chroma: u32,
    /// The size after frame cropping (what a decoder shows).
    pub width: u32,
    pub height: u32,
    /// The coded size in whole macroblocks.
    pub coded_width: u32,
    pub coded_height: u32,
}

struct BitReader {
    data: Vec<u8>,
    pos: usize,
}

impl BitReader {
    /// Reads the RBSP of a NAL unit (emulation prevention bytes removed).
    fn new(nal_payload: &[u8]) -> BitReader {
        let mut data = Vec::with_capacity(nal_payload.len());
        let mut zeros = 0;
        for &b in nal_payload {
            if zeros >= 2 && b == 3 {
                zeros = 0;
                continue;
            }
            if b == 0 {
                zeros += 1;
            } else {
                zeros = 0;
            }
            data.push(b);
        }
        BitReader { data, pos: 0 }
    }

    fn bit(&mut self) -> Result<u32, String> {
        let byte = self
            .data
            .get(self.pos / 8)
            .ok_or_else(|| "SPS ends early".to_string())?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(u32::from(bit))
    }

    fn bits(&mut self, n: u32) -> Result<u32, String> {
        let mut v = 0;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Ok(v)
    }

    fn ue(&mut self) -> Result<u32, String> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err("SPS: Exp-Golomb code too long".to_string());
            }
        }
        if zeros == 0 {
            return Ok(0);
        }
        let rest = self.bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)) as u32)
    }

    fn se(&mut self) -> Result<i64, String> {
        let k = i64::from(self.ue()?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

fn skip_scaling_list(r: &mut BitReader, size: usize) -> Result<(), String> {
    let mut last = 8i64;
    let mut next = 8i64;
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            next = (last + delta + 256).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// Parses a sequence parameter set NAL unit (with its one-byte header).
pub(crate) fn parse_sps(nal: &[u8]) -> Result<SpsInfo, String> {
    if nal_type(nal) != NAL_SPS {
        return Err("not an SPS NAL unit".to_string());
    }
    let mut r = BitReader::new(&nal[1..]);
    let profile_idc = r.bits(8)? as u8;
    let _constraints = r.bits(8)?;
    let level_idc = r.bits(8)? as u8;
    let _sps_id = r.ue()?;
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = 0;
    let mut bit_depth_luma = 8;
    let mut bit_depth_chroma = 8;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.bit()?;
        }
        bit_depth_luma = 8 + r.ue()?;
        bit_depth_chroma = 8 + r.ue()?;
        let _bypass = r.bit()?;
        if r.bit()? == 1 {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? == 1 {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    let _log2_max_frame_num = r.ue()?;
    let poc_type = r.ue()?;
    if poc_type == 0 {
        let _log2_max_poc_lsb = r.ue()?;
    } else if poc_type == 1 {
        let _delta_always_zero = r.bit()?;
        let _offset_non_ref = r.se()?;
        let _offset_top_bottom = r.se()?;
        let cycle = r.ue()?;
        if cycle > 255 {
            return Err("SPS: bad POC cycle".to_string());
        }
        for _ in 0..cycle {
            let _ = r.se()?;
        }
    }
    let _max_refs = r.ue()?;
    let _gaps = r.bit()?;
    let width_mbs = r.ue()?.saturating_add(1);
    let height_map_units = r.ue()?.saturating_add(1);
    let frame_mbs_only = r.bit()?;
    if frame_mbs_only == 0 {
        let _mbaff = r.bit()?;
    }
    let _direct_8x8 = r.bit()?;
    let (mut left, mut right, mut top, mut bottom) = (0, 0, 0, 0);
    if r.bit()? == 1 {
        left = r.ue()?;
        right = r.ue()?;
        top = r.ue()?;
        bottom = r.ue()?;
    }
    let coded_width = width_mbs.saturating_mul(16);
    let coded_height = (2 - frame_mbs_only)
        .saturating_mul(height_map_units)
        .saturating_mul(16);
    let chroma_array_type = if separate_colour_plane == 1 {
        0
    } else {
        chroma_format_idc
    };
    let (crop_x, crop_y) = match chroma_array_type {
        0 => (1, 2 - frame_mbs_only),
        1 => (2, 2 * (2 - frame_mbs_only)),
        2 => (2, 2 - frame_mbs_only),
        _ => (1, 2 - frame_mbs_only),
    };
    let crop_w = crop_x * left.saturating_add(right);
    let crop_h = crop_y * top.saturating_add(bottom);
    if crop_w >= coded_width || crop_h >= coded_height {
        return Err("SPS: cropping larger than the picture".to_string());
    }
    Ok(SpsInfo {
        profile_idc,
        level_idc,
        chroma_format_idc,
        bit_depth_luma,
        bit_depth_chroma,
        width: coded_width - crop_w,
        height: coded_height - crop_h,
        coded_width,
        coded_height,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_annex_b() {
        let s = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 9,
        ];
        let units = annex_b_units(&s);
        assert_eq!(
            units,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 9][..]]
        );
    }

    #[test]
    fn exp_golomb() {
        // 1 -> 0, 010 -> 1, 011 -> 2, 00100 -> 3
        let mut r = BitReader::new(&[0b1010_0110, 0b0100_0000]);
        assert_eq!(r.ue().expect("valid"), 0);
        assert_eq!(r.ue().expect("valid"), 1);
        assert_eq!(r.ue().expect("valid"), 2);
        assert_eq!(r.ue().expect("valid"), 3);
    }

    #[test]
    fn removes_emulation_prevention() {
        let r = BitReader::new(&[0, 0, 3, 1, 0, 0, 3, 0]);
        assert_eq!(r.data, vec![0, 0, 1, 0, 0, 0]);
    }
}

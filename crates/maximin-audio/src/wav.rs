//! RIFF WAVE header for 16-bit PCM.

/// Bytes in the header written here (RIFF + fmt + data chunk headers).
pub(crate) const HEADER_LEN: usize = 44;

/// The 44-byte header of a 16-bit PCM WAV file.
///
/// With `frames = Some(n)` the sizes are exact. With `None` (a stream whose
/// length is not known yet) the RIFF size is `0xFFFFFFFF` and the data size the
/// largest whole number of frames that still fits inside it, the "maximal size"
/// convention streaming writers use: readers take the data to run to the end of
/// the stream, and ones that check chunk sizes against their parent still accept
/// it.
pub(crate) fn header(sample_rate: u32, channels: u16, frames: Option<u64>) -> Vec<u8> {
    let block_align = u32::from(channels) * 2;
    let (riff_len, data_len) = match frames {
        Some(frames) => {
            let data = (frames * u64::from(block_align)).min(u64::from(u32::MAX - 36)) as u32;
            (36 + data, data)
        }
        None => {
            let data = (u32::MAX - 36) / block_align * block_align;
            (u32::MAX, data)
        }
    };
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&riff_len.to_le_bytes());
    h.extend_from_slice(b"WAVE");
    h.extend_from_slice(b"fmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes()); // PCM
    h.extend_from_slice(&channels.to_le_bytes());
    h.extend_from_slice(&sample_rate.to_le_bytes());
    h.extend_from_slice(&(sample_rate * block_align).to_le_bytes());
    h.extend_from_slice(&(block_align as u16).to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_len.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_streaming_sizes() {
        let h = header(16000, 2, Some(100));
        assert_eq!(h.len(), HEADER_LEN);
        assert_eq!(&h[4..8], &(36u32 + 400).to_le_bytes());
        assert_eq!(&h[40..44], &400u32.to_le_bytes());
        assert_eq!(&h[28..32], &64000u32.to_le_bytes()); // byte rate

        let s = header(16000, 2, None);
        assert_eq!(&s[4..8], &u32::MAX.to_le_bytes());
        let data = u32::from_le_bytes([s[40], s[41], s[42], s[43]]);
        assert_eq!(data % 4, 0);
        assert!(u64::from(data) + 36 <= u64::from(u32::MAX));
    }
}

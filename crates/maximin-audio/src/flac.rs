//! Incremental FLAC: the stream header is written by hand, the frames by
//! `flacenc`, one fixed-size block at a time as audio arrives.
//!
//! The header is `fLaC` plus one STREAMINFO block (the last metadata block).
//! A stream writes it before the total length is known, so its sample count is
//! 0 ("unknown") and its MD5 all zeros ("not computed"), both allowed by the
//! FLAC format; [`patch_total_samples`] fills in the count when the whole file
//! is in memory. Frames carry their own frame number, block size, rate and
//! depth, so a decoder can also start mid-stream.

use flacenc::bitsink::ByteSink;
use flacenc::component::{BitRepr, StreamInfo};
use flacenc::error::{Verified, Verify};
use flacenc::source::{Fill, FrameBuf};

use crate::{AudioError, Result};

/// Samples per channel in every frame but the last.
pub(crate) const BLOCK_SIZE: usize = 4096;
const BITS_PER_SAMPLE: usize = 16;
/// Offset of the 36-bit total-samples field's first byte in the header.
const TOTAL_SAMPLES_BYTE: usize = 4 + 4 + 13;

pub(crate) struct FlacSink {
    channels: usize,
    config: Verified<flacenc::config::Encoder>,
    stream_info: StreamInfo,
    /// Reused for every frame; the last one fills only part of it.
    buf: FrameBuf,
    /// Interleaved samples not yet in a frame.
    pending: Vec<i32>,
    frame_number: usize,
}

impl FlacSink {
    pub(crate) fn new(sample_rate: u32, channels: u16) -> Result<Self> {
        let config = flacenc::config::Encoder::default()
            .into_verified()
            .map_err(|(_, e)| AudioError::Encode(format!("flac configuration: {e:?}")))?;
        let stream_info =
            StreamInfo::new(sample_rate as usize, usize::from(channels), BITS_PER_SAMPLE)
                .map_err(|e| AudioError::Encode(format!("flac stream info: {e:?}")))?;
        let buf = FrameBuf::with_size(usize::from(channels), BLOCK_SIZE)
            .map_err(|e| AudioError::Encode(format!("flac frame buffer: {e:?}")))?;
        Ok(FlacSink {
            channels: usize::from(channels),
            config,
            stream_info,
            buf,
            pending: Vec::new(),
            frame_number: 0,
        })
    }

    /// `fLaC` and the STREAMINFO block (total samples unknown).
    pub(crate) fn header(sample_rate: u32, channels: u16) -> Vec<u8> {
        let mut h = Vec::with_capacity(42);
        h.extend_from_slice(b"fLaC");
        // Last-metadata-block flag + type 0 (STREAMINFO), 24-bit length 34.
        h.extend_from_slice(&[0x80, 0, 0, 34]);
        let block = BLOCK_SIZE as u16;
        h.extend_from_slice(&block.to_be_bytes()); // minimum block size
        h.extend_from_slice(&block.to_be_bytes()); // maximum block size
        h.extend_from_slice(&[0; 3]); // minimum frame size: unknown
        h.extend_from_slice(&[0; 3]); // maximum frame size: unknown
        let packed: u64 = (u64::from(sample_rate) << 44)
            | ((u64::from(channels) - 1) << 41)
            | ((BITS_PER_SAMPLE as u64 - 1) << 36); // total samples: 0 = unknown
        h.extend_from_slice(&packed.to_be_bytes());
        h.extend_from_slice(&[0; 16]); // MD5: not computed
        h
    }

    /// Takes interleaved 16-bit samples; appends every completed frame to `out`.
    pub(crate) fn write(&mut self, interleaved: &[i16], out: &mut Vec<u8>) -> Result<()> {
        self.pending
            .extend(interleaved.iter().map(|&s| i32::from(s)));
        let block_len = BLOCK_SIZE * self.channels;
        let full = self.pending.len() / block_len * block_len;
        if full == 0 {
            return Ok(());
        }
        let ready: Vec<i32> = self.pending.drain(..full).collect();
        for block in ready.chunks_exact(block_len) {
            self.encode_block(block, out)?;
        }
        Ok(())
    }

    /// Encodes what is left as the last, shorter frame (FLAC allows any size
    /// there; flacenc stores very short blocks verbatim).
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let last = std::mem::take(&mut self.pending);
        self.encode_block(&last, out)
    }

    fn encode_block(&mut self, interleaved: &[i32], out: &mut Vec<u8>) -> Result<()> {
        self.buf
            .fill_interleaved(interleaved)
            .map_err(|e| AudioError::Encode(format!("flac frame buffer: {e:?}")))?;
        let frame = flacenc::encode_fixed_size_frame(
            &self.config,
            &self.buf,
            self.frame_number,
            &self.stream_info,
        )
        .map_err(|e| AudioError::Encode(format!("flac frame: {e:?}")))?;
        let mut sink = ByteSink::new();
        frame
            .write(&mut sink)
            .map_err(|e| AudioError::Encode(format!("flac frame: {e:?}")))?;
        out.extend_from_slice(sink.as_slice());
        self.frame_number += 1;
        Ok(())
    }
}

/// Writes the total sample count (per channel) into a complete file's
/// STREAMINFO, for files produced whole.
pub(crate) fn patch_total_samples(file: &mut [u8], total: u64) {
    if file.len() < TOTAL_SAMPLES_BYTE + 5 || &file[..4] != b"fLaC" {
        return;
    }
    let total = total & ((1 << 36) - 1);
    let at = TOTAL_SAMPLES_BYTE;
    // The byte holds 4 bits of bits-per-sample above the count's top 4 bits.
    file[at] = (file[at] & 0xF0) | ((total >> 32) as u8 & 0x0F);
    file[at + 1..at + 5].copy_from_slice(&(total as u32).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaminfo_fields_are_where_the_format_puts_them() {
        let mut h = FlacSink::header(44100, 2);
        assert_eq!(h.len(), 42);
        assert_eq!(&h[..4], b"fLaC");
        assert_eq!(&h[8..10], &4096u16.to_be_bytes());
        // 20-bit rate | 3-bit channels-1 | 5-bit bps-1 | 36-bit total.
        let packed = u64::from_be_bytes([h[18], h[19], h[20], h[21], h[22], h[23], h[24], h[25]]);
        assert_eq!(packed >> 44, 44100);
        assert_eq!((packed >> 41) & 7, 1);
        assert_eq!((packed >> 36) & 31, 15);
        assert_eq!(packed & ((1 << 36) - 1), 0);

        patch_total_samples(&mut h, 66150);
        let packed = u64::from_be_bytes([h[18], h[19], h[20], h[21], h[22], h[23], h[24], h[25]]);
        assert_eq!(packed & ((1 << 36) - 1), 66150);
        assert_eq!((packed >> 36) & 31, 15, "bits per sample untouched");
        assert_eq!(packed >> 44, 44100);
    }
}

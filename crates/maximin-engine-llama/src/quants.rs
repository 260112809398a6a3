//! Block codecs of the GGUF quantized types the batched copy converts
//! (`gguf.rs`): each decodes as ggml's own `dequantize_row_*` does, bit for
//! bit (checked against ggml in the tests), and encodes as ggml does.

use half::f16;

pub(crate) const GGML_TYPE_Q5_0: u32 = 6;
pub(crate) const GGML_TYPE_Q8_0: u32 = 8;
pub(crate) const GGML_TYPE_Q4_K: u32 = 12;
pub(crate) const GGML_TYPE_Q6_K: u32 = 14;
pub(crate) const GGML_TYPE_BF16: u32 = 30;
pub(crate) const Q5_0_BYTES: usize = 22;
pub(crate) const Q4_K_BYTES: usize = 144;
pub(crate) const QK_K: usize = 256;
pub(crate) const Q6_K_BYTES: usize = 210;
pub(crate) const QK8_0: usize = 32;
pub(crate) const Q8_0_BYTES: usize = 34;

/// Weights and bytes per block of the types converted here.
pub(crate) fn block(kind: u32) -> Option<(usize, usize)> {
    Some(match kind {
        GGML_TYPE_Q4_K => (QK_K, Q4_K_BYTES),
        GGML_TYPE_Q6_K => (QK_K, Q6_K_BYTES),
        GGML_TYPE_Q5_0 => (QK8_0, Q5_0_BYTES),
        GGML_TYPE_Q8_0 => (QK8_0, Q8_0_BYTES),
        _ => return None,
    })
}

/// One block of `kind` (a type [`block`] knows) as ggml decodes it.
fn dequantize(kind: u32, b: &[u8], y: &mut [f32]) {
    match kind {
        GGML_TYPE_Q4_K => dequantize_q4_k(b, y),
        GGML_TYPE_Q6_K => dequantize_q6_k(b, y),
        GGML_TYPE_Q5_0 => {
            let (d, q) = q5_0_block(b);
            let d = f16::from_le_bytes(d).to_f32();
            for (y, q) in y.iter_mut().zip(q) {
                *y = d * f32::from(q);
            }
        }
        _ => y.copy_from_slice(&dequantize_q8_0(b)),
    }
}

/// Appends the BF16 encoding (rounded to nearest, ties to even) of `blocks`
/// of type `kind` (a type [`block`] knows) to `out`.
pub(crate) fn to_bf16(kind: u32, blocks: &[u8], out: &mut Vec<u8>) {
    let Some((weights, bytes)) = block(kind) else {
        return;
    };
    let mut y = vec![0f32; weights];
    for b in blocks.chunks_exact(bytes) {
        dequantize(kind, b, &mut y);
        out.extend(
            y.iter()
                .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()),
        );
    }
}

/// ggml's `dequantize_row_q8_0` for one block: an f16 scale, 32 signed bytes.
pub(crate) fn dequantize_q8_0(b: &[u8]) -> [f32; QK8_0] {
    let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
    let mut y = [0f32; QK8_0];
    for (y, &q) in y.iter_mut().zip(&b[2..2 + QK8_0]) {
        *y = d * f32::from(q as i8);
    }
    y
}

/// ggml's `dequantize_row_q4_K` for one block: an f16 scale and minimum,
/// twelve bytes of 6-bit sub-block scales and minimums (`get_scale_min_k4`),
/// 128 bytes of nibbles (64 weights per 32 bytes: low nibbles first).
pub(crate) fn dequantize_q4_k(b: &[u8], y: &mut [f32]) {
    let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
    let min = f16::from_le_bytes([b[2], b[3]]).to_f32();
    let scales = &b[4..16];
    let qs = &b[16..16 + QK_K / 2];
    let scale_min = |j: usize| -> (f32, f32) {
        let (sc, m) = if j < 4 {
            (scales[j] & 63, scales[j + 4] & 63)
        } else {
            (
                (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4),
                (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4),
            )
        };
        (d * f32::from(sc), min * f32::from(m))
    };
    for (n, (q, y)) in qs.chunks_exact(32).zip(y.chunks_exact_mut(64)).enumerate() {
        let (d1, m1) = scale_min(2 * n);
        let (d2, m2) = scale_min(2 * n + 1);
        for l in 0..32 {
            y[l] = d1 * f32::from(q[l] & 0xF) - m1;
            y[l + 32] = d2 * f32::from(q[l] >> 4) - m2;
        }
    }
}

/// Appends the Q8_0 encoding of Q6_K `blocks` to `out`.
pub(crate) fn q6_k_to_q8_0(blocks: &[u8], out: &mut Vec<u8>) {
    let mut y = [0f32; QK_K];
    for b in blocks.chunks_exact(Q6_K_BYTES) {
        dequantize_q6_k(b, &mut y);
        for group in y.chunks_exact(QK8_0) {
            quantize_q8_0(group, out);
        }
    }
}

/// Appends the Q8_0 encoding of Q5_0 `blocks` to `out`: the same scale, and
/// each weight's 5-bit value less 16 as a byte.
pub(crate) fn q5_0_to_q8_0(blocks: &[u8], out: &mut Vec<u8>) {
    for b in blocks.chunks_exact(Q5_0_BYTES) {
        let (d, q) = q5_0_block(b);
        out.extend_from_slice(&d);
        out.extend(q.map(|v| v as u8));
    }
}

/// A Q5_0 block's f16 scale (its bytes) and its weights' 5-bit values less
/// 16, in ggml's `dequantize_row_q5_0` layout: the low nibbles of weights j
/// and j + 16 share byte j, the fifth bits sit in a little-endian u32.
fn q5_0_block(b: &[u8]) -> ([u8; 2], [i8; QK8_0]) {
    let (d, rest) = b.split_at(2);
    let (qh, qs) = rest.split_at(4);
    let qh = u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]]);
    let mut q = [0i8; QK8_0];
    for (j, &byte) in qs.iter().enumerate() {
        let hi0 = (((qh >> j) << 4) & 0x10) as u8;
        let hi1 = ((qh >> (j + 12)) & 0x10) as u8;
        q[j] = (((byte & 0x0F) | hi0) as i8) - 16;
        q[j + 16] = (((byte >> 4) | hi1) as i8) - 16;
    }
    ([d[0], d[1]], q)
}

/// ggml's `dequantize_row_q6_K` for one block: 128 bytes of low nibbles, 64
/// of high bit pairs, 16 signed scales, an f16 super-scale.
pub(crate) fn dequantize_q6_k(b: &[u8], y: &mut [f32]) {
    let (ql, rest) = b.split_at(128);
    let (qh, rest) = rest.split_at(64);
    let (sc, d) = rest.split_at(16);
    let d = f16::from_le_bytes([d[0], d[1]]).to_f32();
    for half in 0..2 {
        let ql = &ql[half * 64..];
        let qh = &qh[half * 32..];
        let sc = &sc[half * 8..];
        let y = &mut y[half * 128..];
        for l in 0..32 {
            let is = l / 16;
            let q1 = i32::from((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32;
            let q2 = i32::from((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            let q3 = i32::from((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            let q4 = i32::from((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            let s = |j: usize| d * f32::from(sc[is + j] as i8);
            y[l] = s(0) * q1 as f32;
            y[l + 32] = s(2) * q2 as f32;
            y[l + 64] = s(4) * q3 as f32;
            y[l + 96] = s(6) * q4 as f32;
        }
    }
}

/// ggml's `quantize_row_q8_0_ref` for one block of 32.
pub(crate) fn quantize_q8_0(x: &[f32], out: &mut Vec<u8>) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
    out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
    out.extend(x.iter().map(|v| (v * id).round() as i8 as u8));
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A Q6_K block from chosen 6-bit values and scales.
    fn q6_k_block(q: &[u8; QK_K], scales: &[i8; 16], d: f32) -> Vec<u8> {
        let mut ql = [0u8; 128];
        let mut qh = [0u8; 64];
        for half in 0..2 {
            for l in 0..32 {
                let at = |j: usize| q[half * 128 + l + 32 * j];
                ql[half * 64 + l] = (at(0) & 0xF) | ((at(2) & 0xF) << 4);
                ql[half * 64 + l + 32] = (at(1) & 0xF) | ((at(3) & 0xF) << 4);
                qh[half * 32 + l] =
                    (at(0) >> 4) | ((at(1) >> 4) << 2) | ((at(2) >> 4) << 4) | ((at(3) >> 4) << 6);
            }
        }
        let mut b = Vec::with_capacity(Q6_K_BYTES);
        b.extend_from_slice(&ql);
        b.extend_from_slice(&qh);
        b.extend(scales.iter().map(|&s| s as u8));
        b.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        b
    }

    pub(crate) fn sample_block() -> ([u8; QK_K], [i8; 16], Vec<u8>) {
        let mut q = [0u8; QK_K];
        for (i, v) in q.iter_mut().enumerate() {
            *v = ((i * 37 + 11) % 64) as u8;
        }
        let scales: [i8; 16] = [
            5, -7, 12, 127, -128, 1, 0, 33, -2, 64, 9, -50, 3, 17, -9, 100,
        ];
        let block = q6_k_block(&q, &scales, 0.0125);
        (q, scales, block)
    }

    #[test]
    fn q6_k_decodes_to_scale_times_value() {
        let (q, scales, block) = sample_block();
        let mut y = [0f32; QK_K];
        dequantize_q6_k(&block, &mut y);
        let d = f16::from_f32(0.0125).to_f32();
        for (i, (got, q)) in y.iter().zip(q).enumerate() {
            let want = d * f32::from(scales[i / 16]) * (i32::from(q) - 32) as f32;
            assert_eq!(*got, want, "element {i}");
        }
    }

    #[test]
    fn q8_0_stays_within_half_a_step() {
        let (_, _, block) = sample_block();
        let mut y = [0f32; QK_K];
        dequantize_q6_k(&block, &mut y);
        let mut out = Vec::new();
        q6_k_to_q8_0(&block, &mut out);
        assert_eq!(out.len(), QK_K / QK8_0 * Q8_0_BYTES);
        for (g, chunk) in out.chunks_exact(Q8_0_BYTES).enumerate() {
            let d = f16::from_le_bytes([chunk[0], chunk[1]]).to_f32();
            let amax = y[g * 32..g * 32 + 32]
                .iter()
                .fold(0f32, |m, v| m.max(v.abs()));
            for (j, &q) in chunk[2..].iter().enumerate() {
                let got = d * f32::from(q as i8);
                let want = y[g * 32 + j];
                assert!(
                    (got - want).abs() <= amax / 254.0 * 1.01 + 1e-6,
                    "block {g} element {j}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn q5_0_becomes_the_same_weights_in_q8_0() {
        // Values q[j] in 0..32, scale 0.375.
        let q: Vec<u8> = (0..32).map(|j| ((j * 7 + 3) % 32) as u8).collect();
        let mut qh = 0u32;
        let mut qs = [0u8; 16];
        for (j, byte) in qs.iter_mut().enumerate() {
            *byte = (q[j] & 0xF) | ((q[j + 16] & 0xF) << 4);
            qh |= u32::from(q[j] >> 4) << j;
            qh |= u32::from(q[j + 16] >> 4) << (j + 16);
        }
        let mut block = f16::from_f32(0.375).to_le_bytes().to_vec();
        block.extend_from_slice(&qh.to_le_bytes());
        block.extend_from_slice(&qs);
        let mut out = Vec::new();
        q5_0_to_q8_0(&block, &mut out);
        assert_eq!(out.len(), Q8_0_BYTES);
        assert_eq!(f16::from_le_bytes([out[0], out[1]]).to_f32(), 0.375);
        let got: Vec<i32> = out[2..].iter().map(|&b| i32::from(b as i8)).collect();
        let want: Vec<i32> = q.iter().map(|&v| i32::from(v) - 16).collect();
        assert_eq!(got, want);
    }
    /// `halves` (byte offsets) set to finite scales.
    fn random_blocks(n: usize, bytes: usize, halves: &[usize], seed: u64) -> Vec<u8> {
        let mut x = seed;
        let mut out = Vec::with_capacity(n * bytes);
        for _ in 0..n {
            let mut b: Vec<u8> = (0..bytes)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 24) as u8
                })
                .collect();
            for (k, &at) in halves.iter().enumerate() {
                let v = 0.001 + (b[at] as f32) / 2000.0 * if k == 1 { 0.5 } else { 1.0 };
                b[at..at + 2].copy_from_slice(&f16::from_f32(v).to_le_bytes());
            }
            out.extend_from_slice(&b);
        }
        out
    }

    /// Every dequantizer here gives ggml's own values, bit for bit, and the
    /// BF16 copy is ggml's own rounding of them.
    #[test]
    #[allow(unsafe_code)]
    fn dequantizers_agree_with_ggml() {
        let cases = [
            (GGML_TYPE_Q4_K, QK_K, Q4_K_BYTES, vec![0, 2]),
            (GGML_TYPE_Q6_K, QK_K, Q6_K_BYTES, vec![208]),
            (GGML_TYPE_Q5_0, QK8_0, Q5_0_BYTES, vec![0]),
            (GGML_TYPE_Q8_0, QK8_0, Q8_0_BYTES, vec![0]),
        ];
        for (kind, per_block, size, halves) in cases {
            let blocks = random_blocks(8, size, &halves, 0x9E37_79B9 + u64::from(kind));
            let n = blocks.len() / size * per_block;
            let mut want = vec![0f32; n];
            // SAFETY: ggml's traits table is static; `to_float` reads
            // `n / per_block` whole blocks of `blocks` and writes `n` floats.
            unsafe {
                let traits =
                    llama_cpp_sys_2::ggml_get_type_traits(kind as llama_cpp_sys_2::ggml_type);
                let to_float = (*traits).to_float.expect("to_float");
                to_float(blocks.as_ptr().cast(), want.as_mut_ptr(), n as i64);
            }
            let mut bf16 = Vec::new();
            to_bf16(kind, &blocks, &mut bf16);
            assert_eq!(bf16.len(), n * 2, "type {kind}");
            let mut want_bf16 = vec![0u16; n];
            // SAFETY: `n` floats in, `n` bf16 values out.
            unsafe {
                llama_cpp_sys_2::ggml_fp32_to_bf16_row(
                    want.as_ptr(),
                    want_bf16.as_mut_ptr().cast(),
                    n as i64,
                );
            }
            for (i, (w, &expect)) in bf16.chunks_exact(2).zip(&want_bf16).enumerate() {
                assert_eq!(
                    u16::from_le_bytes([w[0], w[1]]),
                    expect,
                    "type {kind}, weight {i} ({})",
                    want[i]
                );
            }
        }
    }
}

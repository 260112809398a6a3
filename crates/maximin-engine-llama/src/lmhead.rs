//! The output projection (final hidden state → logits) on int8 dot-product
//! instructions, for Q8_0 output matrices on x86-64 CPUs with AVX-512 VNNI
//! or AVX2.
//!
//! Gemma 3 270M's output matrix is its 262,144 × 640 token embedding: 63% of
//! the multiply-adds of a decode step, where llama.cpp's tinyBLAS kernel for
//! Q8_0 spent about half of a 16-stream step (four-row tiles, accumulators
//! spilled to memory, two sign instructions per 32-byte product). Here the
//! matrix is repacked once at load into groups of 16 rows whose bytes are
//! interleaved four at a time, so one `vpdpbusd` multiplies 16 rows by four
//! activations, the activations of up to 16 tokens stay broadcast from
//! memory, and each group's 16 accumulators stay in registers.
//!
//! The arithmetic is llama.cpp's own: activations quantized to Q8_0 per block
//! of 32 exactly as `quantize_row_q8_0` does (scale `amax / 127` rounded to
//! f16), integer dot products per block, scaled by both blocks' scales and
//! summed in f32. `vpdpbusd` takes one unsigned operand, so weights are
//! stored as `q + 128` and `128 · Σ x` is taken off each block's sum.
//!
//! Without AVX-512 VNNI (AMD Zen 2 and 3, most Intel client CPUs), the AVX2
//! kernel reads lines of the same shape as two groups of 8 rows, with the
//! weights kept signed. AVX2 has only `vpmaddubsw` (unsigned × signed bytes,
//! pairs summed to a saturating i16), so, as in llama.cpp's own AVX2 dot
//! product, the weights' magnitudes multiply the activations with the
//! weights' signs applied (`vpsignb`): at most 2 · 128 · 127 per pair, inside
//! i16 (a weight may be -128; an activation never is). `vpmaddwd` then sums
//! each row's four products to i32. Four tokens go together: each weight
//! register's magnitude is taken once for the four, and their sums and
//! accumulators stay in registers; the group's lines (5 KB for a 640-wide
//! model) stay in L1 between passes, so the matrix is read from memory once
//! per step. The integer sums, and so the logits, are the AVX-512 kernel's.

use half::f16;

/// Rows per group: one 512-bit register of f32 lanes.
const ROWS: usize = 16;
const QK: usize = 32;
const Q8_0_BYTES: usize = 34;
/// Lines per (group, block): the 16 rows' scales, then 8 lines of weights.
const LINES: usize = 1 + QK / 4;
/// Tokens per pass over the matrix (one accumulator register each).
const TOKENS: usize = 16;
/// Tokens taken together over one group by the AVX2 kernel: their
/// accumulators and the kernel's operands fit AVX2's 16 registers.
const AVX2_TOKENS: usize = 4;

/// The instructions a kernel is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// AVX-512 F, BW and VNNI: `vpdpbusd`, 16 rows a register.
    Avx512Vnni,
    /// AVX2 and FMA: `vpmaddubsw` and `vpmaddwd`, 8 rows a register.
    Avx2,
}

impl Kernel {
    /// The fastest kernel this CPU runs, if any.
    pub fn for_this_cpu() -> Option<Kernel> {
        Kernel::all().into_iter().find(|k| k.runs_here())
    }

    /// Every kernel, fastest first.
    pub fn all() -> [Kernel; 2] {
        [Kernel::Avx512Vnni, Kernel::Avx2]
    }

    /// Whether this CPU has the kernel's instructions.
    pub fn runs_here(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            match self {
                Kernel::Avx512Vnni => has!("avx512f") && has!("avx512bw") && has!("avx512vnni"),
                Kernel::Avx2 => has!("avx2") && has!("fma"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = self;
            false
        }
    }
}

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([u8; 64]);

/// A Q8_0 output matrix, repacked for one kernel.
pub struct LmHead {
    kernel: Kernel,
    rows: usize,
    cols: usize,
    blocks: usize,
    groups: usize,
    lines: Vec<Line>,
}

/// Hidden states quantized to Q8_0, with each block's correction for the
/// unsigned weights.
struct Acts {
    /// Four int8 values per word, `blocks * 8` words per token.
    words: Vec<i32>,
    /// `-128 · Σ q` per (token, block).
    corr: Vec<i32>,
    /// The block's scale per (token, block).
    scale: Vec<f32>,
}

impl LmHead {
    /// Repacks `rows` rows of `cols` Q8_0 weights (`data`, row after row)
    /// for this CPU's fastest kernel.
    pub fn from_q8_0(rows: usize, cols: usize, data: &[u8]) -> Result<LmHead, String> {
        let kernel = Kernel::for_this_cpu().ok_or("the CPU has neither AVX-512 VNNI nor AVX2")?;
        Self::from_q8_0_for(kernel, rows, cols, data)
    }

    /// [`LmHead::from_q8_0`] for `kernel`, which must run here.
    pub fn from_q8_0_for(
        kernel: Kernel,
        rows: usize,
        cols: usize,
        data: &[u8],
    ) -> Result<LmHead, String> {
        if !kernel.runs_here() {
            return Err(format!("this CPU cannot run the {kernel:?} kernel"));
        }
        // AVX-512 VNNI multiplies unsigned weights; AVX2 signed ones.
        let offset: i16 = match kernel {
            Kernel::Avx512Vnni => 128,
            Kernel::Avx2 => 0,
        };
        if cols == 0 || !cols.is_multiple_of(QK) || rows == 0 {
            return Err(format!(
                "a {rows} × {cols} output matrix cannot be repacked"
            ));
        }
        let blocks = cols / QK;
        if data.len() != rows * blocks * Q8_0_BYTES {
            return Err("the output matrix has the wrong size for Q8_0".into());
        }
        let groups = rows.div_ceil(ROWS);
        let mut lines = vec![Line([0; 64]); groups * blocks * LINES];
        for g in 0..groups {
            for b in 0..blocks {
                let at = (g * blocks + b) * LINES;
                for r in 0..ROWS {
                    let row = g * ROWS + r;
                    let (d, q) = if row < rows {
                        let block = &data[(row * blocks + b) * Q8_0_BYTES..][..Q8_0_BYTES];
                        (
                            f16::from_le_bytes([block[0], block[1]]).to_f32(),
                            &block[2..],
                        )
                    } else {
                        (0.0, &[0u8; QK][..])
                    };
                    lines[at].0[r * 4..r * 4 + 4].copy_from_slice(&d.to_le_bytes());
                    for k in 0..QK / 4 {
                        for j in 0..4 {
                            lines[at + 1 + k].0[r * 4 + j] =
                                (q[k * 4 + j] as i8 as i16 + offset) as u8;
                        }
                    }
                }
            }
        }
        Ok(LmHead {
            kernel,
            rows,
            cols,
            blocks,
            groups,
            lines,
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The kernel the matrix is repacked for.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Logits of `hidden` (`n` rows of `cols`) into `out` (`n` rows of
    /// `rows`), on `threads` threads.
    pub fn logits(&self, hidden: &[f32], out: &mut [f32], threads: usize) {
        let n = hidden.len() / self.cols;
        assert_eq!(hidden.len(), n * self.cols);
        assert_eq!(out.len(), n * self.rows);
        if n == 0 {
            return;
        }
        let acts = self.quantize(hidden);
        let threads = threads.clamp(1, self.groups);
        let per = self.groups.div_ceil(threads);
        // Each thread owns a range of groups, that is a range of every
        // token's row.
        let mut parts: Vec<Vec<&mut [f32]>> = (0..threads).map(|_| Vec::with_capacity(n)).collect();
        for row in out.chunks_mut(self.rows) {
            let mut rest = row;
            for part in &mut parts {
                let take = (per * ROWS).min(rest.len());
                let (mine, tail) = rest.split_at_mut(take);
                part.push(mine);
                rest = tail;
            }
        }
        let acts = &acts;
        std::thread::scope(|s| {
            let mut parts = parts.into_iter().enumerate();
            let first = parts.next();
            for (i, mut part) in parts {
                s.spawn(move || self.run(acts, i * per, &mut part));
            }
            if let Some((_, mut part)) = first {
                self.run(acts, 0, &mut part);
            }
        });
    }

    /// Groups from `g0` on, into `outs` (one slice per token, each starting at
    /// row `g0 * 16`).
    #[allow(unsafe_code)]
    fn run(&self, acts: &Acts, g0: usize, outs: &mut [&mut [f32]]) {
        let Some(len) = outs.first().map(|o| o.len()) else {
            return;
        };
        let g1 = (g0 + len.div_ceil(ROWS)).min(self.groups);
        for (c, chunk) in outs.chunks_mut(TOKENS).enumerate() {
            let t0 = c * TOKENS;
            if self.kernel == Kernel::Avx2 {
                // SAFETY: `from_q8_0_for` checked that the CPU has AVX2 and FMA.
                unsafe { avx2::kernel(self, acts, t0, g0, g1, chunk) };
                continue;
            }
            macro_rules! go {
                ($($n:literal)*) => {
                    match chunk.len() {
                        // SAFETY: `from_q8_0_for` checked the CPU's features.
                        $($n => unsafe { kernel::<$n>(self, acts, t0, g0, g1, chunk) },)*
                        _ => unreachable!(),
                    }
                };
            }
            go!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
        }
    }

    fn quantize(&self, hidden: &[f32]) -> Acts {
        let n = hidden.len() / self.cols;
        let mut acts = Acts {
            words: Vec::with_capacity(n * self.blocks * QK / 4),
            corr: Vec::with_capacity(n * self.blocks),
            scale: Vec::with_capacity(n * self.blocks),
        };
        for x in hidden.chunks_exact(QK) {
            let (d, q) = quantize_block(x);
            acts.scale.push(d);
            acts.corr
                .push(-128 * q.iter().map(|&v| i32::from(v)).sum::<i32>());
            for w in q.chunks_exact(4) {
                acts.words.push(i32::from_le_bytes([
                    w[0] as u8, w[1] as u8, w[2] as u8, w[3] as u8,
                ]));
            }
        }
        acts
    }
}

/// One block of activations as llama.cpp's `quantize_row_q8_0` makes it: the
/// scale (rounded to f16, as stored) and the rounded values.
fn quantize_block(x: &[f32]) -> (f32, [i8; QK]) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 127.0 / amax } else { 0.0 };
    let mut q = [0i8; QK];
    for (q, v) in q.iter_mut().zip(x) {
        *q = (v * id).round_ties_even() as i8;
    }
    (f16::from_f32(d).to_f32(), q)
}

/// # Safety
/// The CPU has AVX-512 F, BW and VNNI; `acts` holds tokens `t0..t0 + N`;
/// `outs` holds N slices of the rows of groups `g0..g1`.
#[allow(unsafe_code)]
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn kernel<const N: usize>(
    head: &LmHead,
    acts: &Acts,
    t0: usize,
    g0: usize,
    g1: usize,
    outs: &mut [&mut [f32]],
) {
    use std::arch::x86_64::*;
    let blocks = head.blocks;
    let lines = head.lines.as_ptr();
    let words = acts.words.as_ptr();
    let corr = acts.corr.as_ptr();
    let scale = acts.scale.as_ptr();
    for g in g0..g1 {
        let mut acc = [_mm512_setzero_ps(); N];
        for b in 0..blocks {
            let l = lines.add((g * blocks + b) * LINES);
            let dw = _mm512_load_ps(l.cast::<f32>());
            let w: [__m512i; 8] = std::array::from_fn(|k| _mm512_load_si512(l.add(1 + k).cast()));
            for (t, acc) in acc.iter_mut().enumerate() {
                let a = (t0 + t) * blocks + b;
                let mut s = _mm512_set1_epi32(*corr.add(a));
                let x = words.add(a * 8);
                for (k, w) in w.iter().enumerate() {
                    s = _mm512_dpbusd_epi32(s, *w, _mm512_set1_epi32(*x.add(k)));
                }
                let sc = _mm512_mul_ps(dw, _mm512_set1_ps(*scale.add(a)));
                *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), sc, *acc);
            }
        }
        let at = (g - g0) * ROWS;
        for (acc, out) in acc.iter().zip(outs.iter_mut()) {
            let left = out.len() - at;
            if left >= ROWS {
                _mm512_storeu_ps(out.as_mut_ptr().add(at), *acc);
            } else {
                _mm512_mask_storeu_ps(out.as_mut_ptr().add(at), (1u16 << left) - 1, *acc);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2 {
    use super::{Acts, LmHead, AVX2_TOKENS, LINES, ROWS};
    use std::arch::x86_64::*;

    /// Rows in one AVX2 register: half a group.
    const HALF: usize = ROWS / 2;

    /// Tokens `t0..t0 + outs.len()` (at most 16) over groups `g0..g1`.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; `acts` holds those tokens; `outs` holds one
    /// slice per token of the rows of groups `g0..g1`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn kernel(
        head: &LmHead,
        acts: &Acts,
        t0: usize,
        g0: usize,
        g1: usize,
        outs: &mut [&mut [f32]],
    ) {
        for g in g0..g1 {
            for half in 0..2 {
                let mut t = 0;
                while t < outs.len() {
                    let m = (outs.len() - t).min(AVX2_TOKENS);
                    let outs = &mut outs[t..t + m];
                    match m {
                        1 => tokens::<1>(head, acts, t0 + t, g, g0, half, outs),
                        2 => tokens::<2>(head, acts, t0 + t, g, g0, half, outs),
                        3 => tokens::<3>(head, acts, t0 + t, g, g0, half, outs),
                        _ => tokens::<4>(head, acts, t0 + t, g, g0, half, outs),
                    }
                    t += m;
                }
            }
        }
    }

    /// `M` tokens from `t0` over the 8 rows of `half` of group `g`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn tokens<const M: usize>(
        head: &LmHead,
        acts: &Acts,
        t0: usize,
        g: usize,
        g0: usize,
        half: usize,
        outs: &mut [&mut [f32]],
    ) {
        let blocks = head.blocks;
        let lines = head.lines.as_ptr();
        let words = acts.words.as_ptr();
        let scale = acts.scale.as_ptr();
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); M];
        for b in 0..blocks {
            // The half's 8 rows of each line: 32 bytes in.
            let l = lines
                .add((g * blocks + b) * LINES)
                .cast::<u8>()
                .add(half * 32);
            let dw = _mm256_load_ps(l.cast::<f32>());
            let x = words.add(((t0 * blocks) + b) * 8);
            let mut s = [_mm256_setzero_si256(); M];
            for k in 0..8 {
                let w = _mm256_load_si256(l.add((1 + k) * 64).cast());
                let aw = _mm256_abs_epi8(w);
                for (t, s) in s.iter_mut().enumerate() {
                    // |w| · (x with w's sign) = w · x, pair by pair.
                    let xb = _mm256_set1_epi32(*x.add(t * blocks * 8 + k));
                    let p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(xb, w));
                    *s = _mm256_add_epi32(*s, _mm256_madd_epi16(p, ones));
                }
            }
            for (t, (acc, s)) in acc.iter_mut().zip(s).enumerate() {
                let sc = _mm256_mul_ps(dw, _mm256_set1_ps(*scale.add((t0 + t) * blocks + b)));
                *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), sc, *acc);
            }
        }
        let at = (g - g0) * ROWS + half * HALF;
        for (acc, out) in acc.iter().zip(outs.iter_mut()) {
            let left = out.len().saturating_sub(at).min(HALF);
            if left == HALF {
                _mm256_storeu_ps(out.as_mut_ptr().add(at), *acc);
            } else if left > 0 {
                let mut lanes = [0f32; HALF];
                _mm256_storeu_ps(lanes.as_mut_ptr(), *acc);
                out[at..at + left].copy_from_slice(&lanes[..left]);
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod avx2 {
    use super::{Acts, LmHead};

    #[allow(unsafe_code)]
    pub(super) unsafe fn kernel(
        _: &LmHead,
        _: &Acts,
        _: usize,
        _: usize,
        _: usize,
        _: &mut [&mut [f32]],
    ) {
        unreachable!("no kernel runs off x86-64")
    }
}

#[allow(unsafe_code)]
#[cfg(not(target_arch = "x86_64"))]
unsafe fn kernel<const N: usize>(
    _: &LmHead,
    _: &Acts,
    _: usize,
    _: usize,
    _: usize,
    _: &mut [&mut [f32]],
) {
    unreachable!("no kernel runs off x86-64")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic Q8_0 matrix and its dequantized rows.
    fn matrix(rows: usize, cols: usize, seed: u64) -> (Vec<u8>, Vec<f32>) {
        let mut s = seed;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) as u32
        };
        let (mut data, mut deq) = (Vec::new(), Vec::new());
        for _ in 0..rows * cols / QK {
            let d = f16::from_f32(0.001 + (next() % 1000) as f32 * 1e-5);
            data.extend_from_slice(&d.to_le_bytes());
            for _ in 0..QK {
                let q = (next() % 255) as i32 - 127;
                data.push(q as i8 as u8);
                deq.push(d.to_f32() * q as f32);
            }
        }
        (data, deq)
    }

    /// The kernels this CPU runs; a note when it runs none.
    fn kernels() -> Vec<Kernel> {
        let k: Vec<_> = Kernel::all()
            .into_iter()
            .filter(|k| k.runs_here())
            .collect();
        if k.is_empty() {
            eprintln!("skipped: this CPU has neither AVX-512 VNNI nor AVX2");
        }
        k
    }

    #[test]
    fn matches_the_q8_0_dot_products() {
        // 37 rows: two full groups and a partial one; 21 tokens: a full pass
        // of 16 and a pass of 5.
        let (rows, cols, n) = (37, 96, 21);
        let (mut data, _) = matrix(rows, cols, 7);
        // The extremes, where AVX2's i16 pair sums are tightest: -128 (which
        // Q8_0 allows though llama.cpp never writes it) twice against two
        // activations of -127 (2 · 128 · 127), then 127 twice against 127.
        for (i, q) in [(2usize, -128i8), (3, -128), (4, 127), (5, 127)] {
            data[i] = q as u8;
        }
        let mut hidden: Vec<f32> = (0..n * cols)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 97.0)
            .collect();
        hidden[..4].copy_from_slice(&[-9.0, -9.0, 9.0, 9.0]);
        let runs = kernels()
            .into_iter()
            .flat_map(|k| [1, 2, 3].map(|threads| (k, threads)));
        for (kernel, threads) in runs {
            let mut out = vec![f32::NAN; n * rows];
            let head = LmHead::from_q8_0_for(kernel, rows, cols, &data).expect("repacked");
            assert_eq!(head.kernel(), kernel);
            head.logits(&hidden, &mut out, threads);
            for t in 0..n {
                for r in 0..rows {
                    // llama.cpp's vec_dot_q8_0_q8_0, written out.
                    let mut want = 0f32;
                    for b in 0..cols / QK {
                        let w = &data[(r * cols / QK + b) * Q8_0_BYTES..][..Q8_0_BYTES];
                        let dw = f16::from_le_bytes([w[0], w[1]]).to_f32();
                        let (dx, qx) = quantize_block(&hidden[t * cols + b * QK..][..QK]);
                        let dot: i32 = (0..QK)
                            .map(|i| i32::from(w[2 + i] as i8) * i32::from(qx[i]))
                            .sum();
                        want += dw * dx * dot as f32;
                    }
                    let got = out[t * rows + r];
                    assert!(
                        (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                        "{kernel:?}, {threads} threads, token {t} row {r}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn is_close_to_the_float_product() {
        let (rows, cols) = (16, 640);
        let (data, deq) = matrix(rows, cols, 3);
        let hidden: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.37).sin()).collect();
        for kernel in kernels() {
            let mut out = vec![0f32; rows];
            let head = LmHead::from_q8_0_for(kernel, rows, cols, &data).expect("repacked");
            head.logits(&hidden, &mut out, 2);
            for r in 0..rows {
                let exact: f32 = (0..cols).map(|i| deq[r * cols + i] * hidden[i]).sum();
                // Rounding an activation moves it by at most half a step (its
                // block's largest magnitude / 254), and the f16 scale by 2^-11.
                let bound: f32 = (0..cols)
                    .map(|i| {
                        let block = &hidden[i / QK * QK..][..QK];
                        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
                        deq[r * cols + i].abs() * (amax / 254.0 + hidden[i].abs() / 2048.0)
                    })
                    .sum();
                assert!(
                    (out[r] - exact).abs() <= bound * 1.01 + 1e-5,
                    "{kernel:?}, row {r}: {} vs {exact} (bound {bound})",
                    out[r]
                );
            }
        }
    }

    #[test]
    fn quantizes_as_llama_cpp() {
        let mut x = [0f32; QK];
        x[3] = -2.54;
        x[5] = 1.0;
        let (d, q) = quantize_block(&x);
        assert_eq!(q[3], -127);
        assert_eq!(q[5], 50);
        assert_eq!(d, f16::from_f32(2.54 / 127.0).to_f32());
        assert_eq!(quantize_block(&[0.0; QK]), (0.0, [0; QK]));
    }

    #[test]
    fn refuses_a_matrix_of_the_wrong_shape() {
        assert!(LmHead::from_q8_0(2, 30, &[0; 68]).is_err());
        assert!(LmHead::from_q8_0(2, 32, &[0; 67]).is_err());
    }
}

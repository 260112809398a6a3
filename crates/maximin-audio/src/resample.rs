//! Band-limited resampling by windowed sinc (Kaiser window), for any pair of
//! integer rates.
//!
//! Output sample `n` is the input's value at time `n · in_rate / out_rate`
//! (no delay), interpolated from the `2·half` nearest input samples with a
//! low-pass kernel cut at 94 % of the lower Nyquist frequency (32 zero
//! crossings, Kaiser β = 9: about −90 dB stop band). The ratio is reduced to
//! `L/M` and the `L` kernel phases are tabulated once, so each output costs one
//! dot product.
//!
//! [`Resampler`] keeps the input it still needs between calls: resampling a
//! stream in chunks of any size gives exactly the samples resampling it whole
//! gives, and `finish` ends it with `ceil(len · out / in)` samples in all.

/// Fraction of the lower Nyquist frequency kept.
const ROLLOFF: f64 = 0.94;
/// Zero crossings of the sinc on each side of the centre.
const ZERO_CROSSINGS: f64 = 32.0;
/// Kaiser window shape.
const KAISER_BETA: f64 = 9.0;
/// Above this many phases the kernel is computed per output instead of tabulated.
const MAX_TABLE_PHASES: u64 = 4096;
/// Consumed input is dropped from the history once this much has piled up.
const TRIM_SLACK: usize = 4096;

/// Streaming single-channel resampler.
#[derive(Debug, Clone)]
pub struct Resampler {
    in_rate: u32,
    out_rate: u32,
    /// out/in = l/m in lowest terms.
    l: u64,
    m: u64,
    /// Taps on each side of the centre.
    half: usize,
    /// Cut-off relative to the input's Nyquist frequency.
    cutoff: f64,
    /// `l` rows of `2·half` normalised taps, when `l` is small enough.
    table: Option<Vec<f32>>,
    /// Input samples from absolute index `hist_start` on.
    hist: Vec<f32>,
    hist_start: u64,
    total_in: u64,
    next_out: u64,
}

impl Resampler {
    /// A resampler from `in_rate` to `out_rate` (Hz, both non-zero).
    ///
    /// # Panics
    /// If a rate is zero.
    pub fn new(in_rate: u32, out_rate: u32) -> Self {
        assert!(in_rate > 0 && out_rate > 0, "sample rates must be positive");
        let g = gcd(u64::from(in_rate), u64::from(out_rate));
        let l = u64::from(out_rate) / g;
        let m = u64::from(in_rate) / g;
        let cutoff = ROLLOFF * (l as f64 / m as f64).min(1.0);
        let half = (ZERO_CROSSINGS / cutoff).ceil() as usize;
        let mut resampler = Resampler {
            in_rate,
            out_rate,
            l,
            m,
            half,
            cutoff,
            table: None,
            hist: Vec::new(),
            hist_start: 0,
            total_in: 0,
            next_out: 0,
        };
        if l != m && l <= MAX_TABLE_PHASES {
            let taps = 2 * half;
            let mut table = Vec::with_capacity(l as usize * taps);
            for phase in 0..l {
                table.extend(resampler.taps_for(phase));
            }
            resampler.table = Some(table);
        }
        resampler
    }

    pub fn in_rate(&self) -> u32 {
        self.in_rate
    }

    pub fn out_rate(&self) -> u32 {
        self.out_rate
    }

    /// Whether input passes through unchanged (equal rates).
    pub fn is_identity(&self) -> bool {
        self.l == self.m
    }

    /// Feeds input; returns every output sample that can be computed now.
    pub fn process(&mut self, input: &[f32]) -> Vec<f32> {
        self.total_in += input.len() as u64;
        if self.is_identity() {
            self.next_out = self.total_in;
            return input.to_vec();
        }
        self.hist.extend_from_slice(input);
        let mut out = Vec::with_capacity((input.len() as u64 * self.l / self.m) as usize + 1);
        loop {
            let pos = self.next_out * self.m;
            let base = pos / self.l;
            // The last input this output reads is base + half.
            if base + self.half as u64 >= self.total_in {
                break;
            }
            out.push(self.output_at(base, pos % self.l));
            self.next_out += 1;
        }
        self.trim();
        out
    }

    /// Ends the stream: the remaining outputs, reading zeros past the end, up to
    /// `ceil(total_in · out / in)` outputs in all. The resampler is then reset.
    pub fn finish(&mut self) -> Vec<f32> {
        let mut out = Vec::new();
        if !self.is_identity() {
            let target = (self.total_in * self.l).div_ceil(self.m);
            while self.next_out < target {
                let pos = self.next_out * self.m;
                out.push(self.output_at(pos / self.l, pos % self.l));
                self.next_out += 1;
            }
        }
        self.hist.clear();
        self.hist_start = 0;
        self.total_in = 0;
        self.next_out = 0;
        out
    }

    /// Resamples a whole signal at once.
    pub fn process_all(&mut self, input: &[f32]) -> Vec<f32> {
        let mut out = self.process(input);
        out.extend(self.finish());
        out
    }

    fn output_at(&self, base: u64, phase: u64) -> f32 {
        let taps = 2 * self.half;
        // First input index read: base - half + 1 (may be before the start).
        let first = base as i64 - self.half as i64 + 1;
        let computed;
        let coeffs: &[f32] = match &self.table {
            Some(table) => {
                let row = phase as usize * taps;
                &table[row..row + taps]
            }
            None => {
                computed = self.taps_for(phase);
                &computed
            }
        };
        let offset = first - self.hist_start as i64;
        if offset >= 0 && offset as usize + taps <= self.hist.len() {
            let window = &self.hist[offset as usize..offset as usize + taps];
            coeffs.iter().zip(window).map(|(c, x)| c * x).sum()
        } else {
            coeffs
                .iter()
                .enumerate()
                .map(|(k, c)| c * self.sample(first + k as i64))
                .sum()
        }
    }

    fn sample(&self, index: i64) -> f32 {
        if index < self.hist_start as i64 {
            return 0.0;
        }
        self.hist
            .get((index - self.hist_start as i64) as usize)
            .copied()
            .unwrap_or(0.0)
    }

    /// Normalised taps for the output whose time falls `phase / l` past an input
    /// sample.
    fn taps_for(&self, phase: u64) -> Vec<f32> {
        let taps = 2 * self.half;
        let frac = phase as f64 / self.l as f64;
        let span = self.half as f64;
        let mut row: Vec<f64> = (0..taps)
            .map(|k| {
                // Distance from the output time to input base - half + 1 + k.
                let d = frac + span - 1.0 - k as f64;
                kernel(d, self.cutoff, span)
            })
            .collect();
        let sum: f64 = row.iter().sum();
        if sum.abs() > f64::EPSILON {
            for tap in &mut row {
                *tap /= sum;
            }
        }
        row.into_iter().map(|t| t as f32).collect()
    }

    /// Drops input no later output will read.
    fn trim(&mut self) {
        let base = self.next_out * self.m / self.l;
        let first_needed = (base + 1).saturating_sub(self.half as u64);
        if first_needed > self.hist_start {
            let drop = (first_needed - self.hist_start) as usize;
            if drop >= TRIM_SLACK {
                let drop = drop.min(self.hist.len());
                self.hist.drain(..drop);
                self.hist_start += drop as u64;
            }
        }
    }
}

/// Low-pass impulse response at distance `d` input samples, windowed over ±`span`.
fn kernel(d: f64, cutoff: f64, span: f64) -> f64 {
    if d.abs() >= span {
        return 0.0;
    }
    let x = std::f64::consts::PI * cutoff * d;
    let sinc = if x.abs() < 1e-12 { 1.0 } else { x.sin() / x };
    let r = d / span;
    let window = bessel_i0(KAISER_BETA * (1.0 - r * r).sqrt()) / bessel_i0(KAISER_BETA);
    cutoff * sinc * window
}

/// Modified Bessel function of the first kind, order 0 (power series).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let q = x * x / 4.0;
    for k in 1..64 {
        term *= q / (k as f64 * k as f64);
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Resamples one channel at once (see [`Resampler`]).
pub fn resample_mono(samples: &[f32], in_rate: u32, out_rate: u32) -> Vec<f32> {
    Resampler::new(in_rate, out_rate).process_all(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f32, rate: u32, secs: f32) -> Vec<f32> {
        let n = (rate as f32 * secs) as usize;
        (0..n)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    #[test]
    fn chunked_processing_equals_whole() {
        let input = tone(440.0, 22050, 0.7);
        for to in [16000, 44100, 8000, 22050] {
            let whole = resample_mono(&input, 22050, to);
            let mut r = Resampler::new(22050, to);
            let mut chunked = Vec::new();
            let sizes = [1usize, 37, 1000, 4410];
            let mut at = 0;
            let mut i = 0;
            while at < input.len() {
                let end = (at + sizes[i % sizes.len()]).min(input.len());
                chunked.extend(r.process(&input[at..end]));
                at = end;
                i += 1;
            }
            chunked.extend(r.finish());
            assert_eq!(chunked.len(), whole.len(), "length for {to} Hz");
            assert!(
                chunked.iter().zip(&whole).all(|(a, b)| a == b),
                "chunked output differs from whole output at {to} Hz"
            );
        }
    }

    #[test]
    fn output_length_follows_the_ratio() {
        let input = vec![0.1f32; 33075]; // 1.5 s at 22050 Hz
        assert_eq!(resample_mono(&input, 22050, 16000).len(), 24000);
        assert_eq!(resample_mono(&input, 22050, 44100).len(), 66150);
        assert_eq!(resample_mono(&input, 22050, 8000).len(), 12000);
        assert_eq!(resample_mono(&[0.1; 7], 48000, 44100).len(), 7); // ceil(6.43)
    }

    #[test]
    fn dc_passes_at_unity_gain() {
        let input = vec![0.25f32; 8000];
        let out = resample_mono(&input, 8000, 44100);
        // Away from the edges (where zeros are read), DC is kept exactly.
        let mid = &out[2000..out.len() - 2000];
        assert!(mid.iter().all(|x| (x - 0.25).abs() < 1e-4));
    }

    #[test]
    fn downsampling_removes_what_the_new_rate_cannot_carry() {
        // 10 kHz cannot exist at 16 kHz; it must be filtered, not aliased to 6 kHz.
        let input = tone(10_000.0, 44100, 0.5);
        let out = resample_mono(&input, 44100, 16000);
        let mid = &out[1000..out.len() - 1000];
        let rms = (mid.iter().map(|x| x * x).sum::<f32>() / mid.len() as f32).sqrt();
        assert!(rms < 0.5 * 1e-3, "aliased energy, rms {rms}");
    }
}

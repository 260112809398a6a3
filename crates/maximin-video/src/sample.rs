//! Bilinear sampling of a window of a frame, and the cover-crop [`resize`].

use std::borrow::Cow;

use crate::Frame;

/// A rectangle of the source in pixels (may be fractional).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Window {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

/// Per output column (or row): the two source indices and the second one's
/// weight in 1/256.
pub(crate) struct Axis {
    i0: Vec<usize>,
    i1: Vec<usize>,
    w1: Vec<u32>,
}

impl Axis {
    /// `out_len` samples spread over `[start, start + span)` of a source
    /// `src_len` long; pixel centres map to pixel centres, so a window equal
    /// to the source copies it exactly.
    pub fn new(out_len: u32, src_len: u32, start: f64, span: f64) -> Axis {
        let n = out_len as usize;
        let mut axis = Axis {
            i0: Vec::with_capacity(n),
            i1: Vec::with_capacity(n),
            w1: Vec::with_capacity(n),
        };
        let last = f64::from(src_len.max(1) - 1);
        let step = span / f64::from(out_len.max(1));
        for i in 0..n {
            let u = (start + (i as f64 + 0.5) * step - 0.5).clamp(0.0, last);
            let mut i0 = u.floor() as usize;
            let mut w1 = ((u - i0 as f64) * 256.0).round() as u32;
            if w1 >= 256 {
                i0 += 1;
                w1 = 0;
            }
            let i0 = i0.min(last as usize);
            axis.i0.push(i0);
            axis.i1.push((i0 + 1).min(last as usize));
            axis.w1.push(w1);
        }
        axis
    }
}

/// A frame whose buffer is exactly `width × height × 3` (padded with black
/// or cut), so sampling never reads out of bounds.
pub(crate) fn sane(frame: &Frame) -> Cow<'_, Frame> {
    if frame.rgb.len() == frame.expected_len() {
        Cow::Borrowed(frame)
    } else {
        let mut fixed = frame.clone();
        fixed.rgb.resize(frame.expected_len(), 0);
        Cow::Owned(fixed)
    }
}

/// Samples `window` of `src` into `out` (`width × height × 3` bytes).
/// `src` must be [`sane`] and not empty.
pub(crate) fn sample_into(src: &Frame, window: Window, width: u32, height: u32, out: &mut [u8]) {
    let ax = Axis::new(width, src.width, window.x, window.w);
    let ay = Axis::new(height, src.height, window.y, window.h);
    sample_axes(src, &ax, &ay, out);
}

pub(crate) fn sample_axes(src: &Frame, ax: &Axis, ay: &Axis, out: &mut [u8]) {
    let stride = src.width as usize * 3;
    let out_stride = ax.i0.len() * 3;
    // Separable: each source row needed is resampled across once (kept as
    // 8.8 fixed point), then each output row is a blend of two such rows.
    let mut rows: [(usize, Vec<u16>); 2] = [
        (usize::MAX, vec![0; out_stride]),
        (usize::MAX, vec![0; out_stride]),
    ];
    for (y, out_row) in out.chunks_exact_mut(out_stride).enumerate() {
        let (r0, r1, wy) = (ay.i0[y], ay.i1[y], ay.w1[y]);
        let slot_of =
            |rows: &[(usize, Vec<u16>); 2], r: usize| rows.iter().position(|(k, _)| *k == r);
        let fill = |rows: &mut [(usize, Vec<u16>); 2], slot: usize, r: usize| {
            resample_row(&src.rgb[r * stride..][..stride], ax, &mut rows[slot].1);
            rows[slot].0 = r;
        };
        let (s0, s1) = match (slot_of(&rows, r0), slot_of(&rows, r1)) {
            (Some(a), Some(b)) => (a, b),
            (Some(a), None) => {
                fill(&mut rows, 1 - a, r1);
                (a, 1 - a)
            }
            (None, Some(b)) => {
                fill(&mut rows, 1 - b, r0);
                (1 - b, b)
            }
            (None, None) => {
                fill(&mut rows, 0, r0);
                if r1 == r0 {
                    (0, 0)
                } else {
                    fill(&mut rows, 1, r1);
                    (0, 1)
                }
            }
        };
        let (top, bottom) = (&rows[s0].1, &rows[s1].1);
        if wy == 0 {
            for (o, &t) in out_row.iter_mut().zip(top) {
                *o = ((u32::from(t) + 128) >> 8) as u8;
            }
        } else {
            let wt = 256 - wy;
            for ((o, &t), &b) in out_row.iter_mut().zip(top).zip(bottom) {
                *o = ((u32::from(t) * wt + u32::from(b) * wy + 32768) >> 16) as u8;
            }
        }
    }
}

/// One source row resampled across: `out[x*3+c] = 256 × value` (8.8 fixed).
fn resample_row(row: &[u8], ax: &Axis, out: &mut [u16]) {
    for (((px, &i0), &i1), &w1) in out.chunks_exact_mut(3).zip(&ax.i0).zip(&ax.i1).zip(&ax.w1) {
        let a = &row[i0 * 3..i0 * 3 + 3];
        let b = &row[i1 * 3..i1 * 3 + 3];
        let w0 = 256 - w1;
        for c in 0..3 {
            px[c] = (u32::from(a[c]) * w0 + u32::from(b[c]) * w1) as u16;
        }
    }
}

/// Halves a frame by averaging 2×2 blocks (an odd last row or column is
/// dropped).
fn halve(src: &Frame) -> Frame {
    let (w, h) = ((src.width / 2).max(1), (src.height / 2).max(1));
    let stride = src.width as usize * 3;
    let mut rgb = Vec::with_capacity(w as usize * h as usize * 3);
    let (max_x, max_y) = (src.width as usize - 1, src.height as usize - 1);
    for y in 0..h as usize {
        let y0 = (2 * y).min(max_y);
        let y1 = (2 * y + 1).min(max_y);
        for x in 0..w as usize {
            let x0 = (2 * x).min(max_x) * 3;
            let x1 = (2 * x + 1).min(max_x) * 3;
            for c in 0..3 {
                let sum = u32::from(src.rgb[y0 * stride + x0 + c])
                    + u32::from(src.rgb[y0 * stride + x1 + c])
                    + u32::from(src.rgb[y1 * stride + x0 + c])
                    + u32::from(src.rgb[y1 * stride + x1 + c]);
                rgb.push(((sum + 2) / 4) as u8);
            }
        }
    }
    Frame {
        width: w,
        height: h,
        rgb,
    }
}

/// Resizes to `width × height` keeping the aspect ratio: the picture is
/// scaled to cover the new size and the excess is cropped evenly from both
/// sides (bilinear; large reductions are box-filtered by halves first).
/// An empty source gives a black frame.
pub fn resize(frame: &Frame, width: u32, height: u32) -> Frame {
    let mut out = vec![0u8; width as usize * height as usize * 3];
    if frame.width == 0 || frame.height == 0 || width == 0 || height == 0 {
        return Frame {
            width,
            height,
            rgb: out,
        };
    }
    if frame.width == width && frame.height == height && frame.rgb.len() == frame.expected_len() {
        return frame.clone();
    }
    let mut src = sane(frame);
    loop {
        let scale = (f64::from(width) / f64::from(src.width))
            .max(f64::from(height) / f64::from(src.height));
        if scale > 0.5 || src.width < 2 || src.height < 2 {
            break;
        }
        src = Cow::Owned(halve(&src));
    }
    let scale =
        (f64::from(width) / f64::from(src.width)).max(f64::from(height) / f64::from(src.height));
    let (cw, ch) = (f64::from(width) / scale, f64::from(height) / scale);
    let window = Window {
        x: (f64::from(src.width) - cw) / 2.0,
        y: (f64::from(src.height) - ch) / 2.0,
        w: cw,
        h: ch,
    };
    sample_into(&src, window, width, height, &mut out);
    Frame {
        width,
        height,
        rgb: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> Frame {
        let mut rgb = Vec::new();
        for y in 0..h {
            for x in 0..w {
                rgb.extend_from_slice(&[
                    (x * 255 / w.max(2).saturating_sub(1).max(1)) as u8,
                    (y * 4) as u8,
                    77,
                ]);
            }
        }
        Frame {
            width: w,
            height: h,
            rgb,
        }
    }

    #[test]
    fn identity_window_copies_exactly() {
        let f = gradient(37, 21);
        let mut out = vec![0; f.rgb.len()];
        sample_into(
            &f,
            Window {
                x: 0.0,
                y: 0.0,
                w: 37.0,
                h: 21.0,
            },
            37,
            21,
            &mut out,
        );
        assert_eq!(out, f.rgb);
    }

    #[test]
    fn resize_keeps_size_and_crops() {
        let f = gradient(100, 50);
        let r = resize(&f, 40, 40);
        assert_eq!((r.width, r.height, r.rgb.len()), (40, 40, 40 * 40 * 3));
        // the square is cut from the middle: the red ramp spans about the middle half
        let left = r.rgb[0];
        let right = r.rgb[39 * 3];
        assert!(left > 50 && left < 90, "left {left}");
        assert!(right > 165 && right < 205, "right {right}");
        // a big reduction stays smooth (box filtered) and in range
        let small = resize(&gradient(640, 360), 64, 36);
        assert_eq!(small.rgb.len(), 64 * 36 * 3);
        assert_eq!(
            resize(
                &Frame {
                    width: 0,
                    height: 0,
                    rgb: vec![]
                },
                4,
                2
            )
            .rgb,
            vec![0; 24]
        );
    }

    #[test]
    fn upscale_of_flat_colour_is_flat() {
        let f = Frame::filled(8, 6, [10, 200, 30]);
        let r = resize(&f, 64, 48);
        assert!(r.rgb.chunks(3).all(|p| p == [10, 200, 30]));
    }
}

//! [`sandbox_clip`]: an obviously synthetic clip for sandbox keys. Integer
//! arithmetic only, so the same seed gives the same bytes on every machine.

use crate::encode::{check_fps, check_size, encode_clip, suggested_bitrate};
use crate::{Frame, VideoError};

/// One turn of the hue wheel.
const HUE_TURN: u32 = 1536;

/// A hue (0..1536) at saturation 70 %, value 90 %.
fn hue_rgb(h: u32) -> [u8; 3] {
    let h = h % HUE_TURN;
    let x = (h % 256) as u8;
    let pure = match h / 256 {
        0 => [255, x, 0],
        1 => [255 - x, 255, 0],
        2 => [0, 255, x],
        3 => [0, 255 - x, 255],
        4 => [x, 0, 255],
        _ => [255, 0, 255 - x],
    };
    pure.map(|c| {
        let saturated = (u32::from(c) * 70 + 255 * 30) / 100; // toward white
        (saturated * 90 / 100) as u8
    })
}

/// A triangle wave over `period`: 0 → 255 → 0.
fn triangle(v: u32, period: u32) -> u32 {
    let p = v % period;
    let half = period / 2;
    if p < half {
        p * 255 / half
    } else {
        (period - p) * 255 / half
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct Pattern {
    width: u32,
    height: u32,
    hue0: u32,
    hue_speed: u32,
    stripe_dir: u32,
    stripe_speed: u32,
    disc_px: u32,
    disc_py: u32,
    hues: Vec<[u8; 3]>,
}

impl Pattern {
    fn new(width: u32, height: u32, seed: u64) -> Pattern {
        let r = splitmix(seed);
        Pattern {
            width,
            height,
            hue0: (r % u64::from(HUE_TURN)) as u32,
            hue_speed: 4 + ((r >> 12) % 8) as u32,
            stripe_dir: 1 + ((r >> 20) % 3) as u32,
            stripe_speed: 2 + ((r >> 24) % 5) as u32,
            disc_px: 97 + ((r >> 32) % 60) as u32,
            disc_py: 71 + ((r >> 40) % 50) as u32,
            hues: (0..HUE_TURN).map(hue_rgb).collect(),
        }
    }

    fn frame(&self, n: u32) -> Frame {
        let (w, h) = (self.width, self.height);
        let mut rgb = vec![0u8; w as usize * h as usize * 3];
        let period = (w.min(h) / 6).max(8);
        let radius = (w.min(h) / 7).max(3);
        let r2 = i64::from(radius) * i64::from(radius);
        // A disc bouncing along triangle waves.
        let span_x = w - 2 * radius;
        let span_y = h - 2 * radius;
        let dcx = i64::from(radius + triangle(n * 1000 / self.disc_px * 4, 1000) * span_x / 255);
        let dcy = i64::from(radius + triangle(n * 1000 / self.disc_py * 4, 1000) * span_y / 255);
        let hue_t = n * self.hue_speed;
        let stripe_t = n * self.stripe_speed;
        let col_hue: Vec<u32> = (0..w).map(|x| x * 768 / w).collect();
        // triangle(v, period) for every v in one period
        let tri: Vec<u32> = (0..period).map(|v| triangle(v, period)).collect();
        for y in 0..h {
            let row_hue = self.hue0 + y * 384 / h + hue_t;
            let dy = i64::from(y) - dcy;
            let mut phase = (y * self.stripe_dir + stripe_t) % period;
            let row = &mut rgb[(y * w * 3) as usize..][..(w * 3) as usize];
            for (x, px) in row.chunks_exact_mut(3).enumerate() {
                let base = self.hues[((row_hue + col_hue[x]) % HUE_TURN) as usize];
                let shade = 170 + tri[phase as usize] * 85 / 255; // 170..255
                phase += 1;
                if phase == period {
                    phase = 0;
                }
                let dx = x as i64 - dcx;
                let inside = dx * dx + dy * dy < r2;
                for c in 0..3 {
                    let v = (u32::from(base[c]) * shade / 255) as u8;
                    px[c] = if inside { 255 - v } else { v };
                }
            }
        }
        Frame {
            width: w,
            height: h,
            rgb,
        }
    }
}

/// A `seconds`-long clip of `width × height` at `fps`: a drifting colour
/// gradient under moving diagonal stripes and a bouncing inverted disc. It
/// is plainly synthetic (no text, nothing resembling a scene), and the same
/// arguments always give the same bytes.
pub fn sandbox_clip(
    width: u32,
    height: u32,
    seconds: u32,
    fps: u32,
    seed: u64,
) -> Result<Vec<u8>, VideoError> {
    check_size(width, height)?;
    check_fps(fps)?;
    if seconds == 0 || seconds > 600 {
        return Err(VideoError::InvalidParameter(format!(
            "seconds must be 1 to 600, got {seconds}"
        )));
    }
    let pattern = Pattern::new(width, height, seed);
    let bitrate = suggested_bitrate(width, height, fps);
    encode_clip(width, height, fps, bitrate, seconds * fps, |n| {
        pattern.frame(n)
    })
}

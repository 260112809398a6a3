//! Motion between key frames: an eased cross-dissolve seen through a
//! virtual camera that crops and scales the picture.
//!
//! The camera is a framing window `(cx, cy, s)` over the key frame: its
//! centre and its size as a fraction of the frame (the aspect never
//! changes). Each group of moves takes an equal share of the clip and moves
//! the window from one state to the next (eased in and out); positions move
//! linearly, the size geometrically (a steady zoom). Before anything is drawn
//! the whole path is scaled and placed so that every window, shake included,
//! stays inside the picture: nothing outside the key frame is ever shown.

use crate::camera::Camera;
use crate::encode::encode_clip;
use crate::sample::{resize, sample_into, sane, Window};
use crate::{Frame, VideoError};

/// How far a pan / tilt slides the framing, as a fraction of the window.
const PAN: f64 = 0.15;
/// How far a truck / pedestal slides it.
const TRUCK: f64 = 0.20;
/// Window size factor of a push in (a pull out is its inverse).
const PUSH: f64 = 0.80;
/// Window size factor of a zoom in (a zoom out is its inverse).
const ZOOM: f64 = 0.70;
/// A tracking shot: a lateral drift and a slight push.
const TRACK_SLIDE: f64 = 0.10;
const TRACK_PUSH: f64 = 0.90;
/// Shake amplitude, as a fraction of the window.
const SHAKE: f64 = 0.018;
/// Frames between two random shake positions.
const SHAKE_KNOT_FRAMES: f64 = 4.0;

#[derive(Debug, Clone, Copy, PartialEq)]
struct State {
    cx: f64,
    cy: f64,
    s: f64,
}

fn after(state: State, group: &[Camera]) -> State {
    let (mut dx, mut dy, mut scale) = (0.0, 0.0, 1.0);
    for cam in group {
        match cam {
            Camera::Static | Camera::Shake => {}
            Camera::PanLeft => dx -= PAN,
            Camera::PanRight => dx += PAN,
            Camera::TruckLeft => dx -= TRUCK,
            Camera::TruckRight => dx += TRUCK,
            Camera::TiltUp => dy -= PAN,
            Camera::TiltDown => dy += PAN,
            Camera::PedestalUp => dy -= TRUCK,
            Camera::PedestalDown => dy += TRUCK,
            Camera::PushIn => scale *= PUSH,
            Camera::PullOut => scale /= PUSH,
            Camera::ZoomIn => scale *= ZOOM,
            Camera::ZoomOut => scale /= ZOOM,
            Camera::TrackingShot => {
                dx += TRACK_SLIDE;
                scale *= TRACK_PUSH;
            }
        }
    }
    State {
        cx: state.cx + dx * state.s,
        cy: state.cy + dy * state.s,
        s: state.s * scale,
    }
}

fn smoothstep(x: f64) -> f64 {
    let x = x.clamp(0.0, 1.0);
    x * x * (3.0 - 2.0 * x)
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A deterministic value in [-1, 1] for (seed, axis, knot).
fn knot(seed: u64, axis: u64, k: u64) -> f64 {
    let h = splitmix(seed ^ splitmix(axis.wrapping_mul(0x1000_0000_01b3) ^ splitmix(k)));
    (h >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

/// Smooth value noise over frame positions.
fn noise(seed: u64, axis: u64, position: f64) -> f64 {
    let x = position / SHAKE_KNOT_FRAMES;
    let k = x.floor();
    let f = smoothstep(x - k);
    let k = k as u64;
    knot(seed, axis, k) * (1.0 - f) + knot(seed, axis, k + 1) * f
}

/// The frames of a clip between key frames, rendered one at a time
/// ([`Motion::frame`]), so a long clip never has to sit in memory whole.
pub struct Motion {
    first: Frame,
    last: Option<Frame>,
    frames: u32,
    states: Vec<State>,
    shaky: Vec<bool>,
    /// Placement of the fitted path: window = (ox + f·cx, oy + f·cy, f·s).
    f: f64,
    ox: f64,
    oy: f64,
    seed: u64,
}

impl std::fmt::Debug for Motion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Motion")
            .field("width", &self.first.width)
            .field("height", &self.first.height)
            .field("frames", &self.frames)
            .field("segments", &self.shaky.len())
            .finish()
    }
}

impl Motion {
    /// `frames` frames from `first` to `last` (resized to `first`'s size if
    /// it differs), with one segment per group of camera moves, the groups
    /// in order, the moves of one group together. `seed` drives the shake.
    pub fn new(
        first: &Frame,
        last: Option<&Frame>,
        frames: u32,
        groups: &[Vec<Camera>],
        seed: u64,
    ) -> Motion {
        let first = sane(first).into_owned();
        let last = last.map(|l| {
            if l.width == first.width && l.height == first.height {
                sane(l).into_owned()
            } else {
                resize(l, first.width, first.height)
            }
        });
        let mut states = vec![State {
            cx: 0.0,
            cy: 0.0,
            s: 1.0,
        }];
        let mut shaky = Vec::with_capacity(groups.len());
        for group in groups {
            let from = states[states.len() - 1];
            states.push(after(from, group));
            shaky.push(group.contains(&Camera::Shake));
        }
        // The extent of every window along the path (shake margins included).
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for (i, st) in states.iter().enumerate() {
            let shaking = (i > 0 && shaky[i - 1]) || shaky.get(i).copied().unwrap_or(false);
            let half = st.s / 2.0 + if shaking { SHAKE * st.s } else { 0.0 };
            x0 = x0.min(st.cx - half);
            x1 = x1.max(st.cx + half);
            y0 = y0.min(st.cy - half);
            y1 = y1.max(st.cy + half);
        }
        let f = 1.0 / (x1 - x0).max(y1 - y0).max(1.0);
        let ox = 0.5 - f * (x0 + x1) / 2.0;
        let oy = 0.5 - f * (y0 + y1) / 2.0;
        Motion {
            first,
            last,
            frames,
            states,
            shaky,
            f,
            ox,
            oy,
            seed,
        }
    }

    /// Number of frames.
    pub fn len(&self) -> u32 {
        self.frames
    }

    /// Whether there are no frames.
    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// The frame size (the first key frame's).
    pub fn size(&self) -> (u32, u32) {
        (self.first.width, self.first.height)
    }

    /// Clip time of frame `index` in [0, 1].
    fn time(&self, index: u32) -> f64 {
        if self.frames <= 1 {
            0.0
        } else {
            f64::from(index.min(self.frames - 1)) / f64::from(self.frames - 1)
        }
    }

    /// The framing window of frame `index`, in source pixels.
    fn window(&self, index: u32) -> Window {
        let t = self.time(index);
        let segments = self.shaky.len();
        let (mut state, mut shake) = (self.states[0], (0.0, 0.0));
        if segments > 0 {
            let pos = t * segments as f64;
            let g = (pos.floor() as usize).min(segments - 1);
            let u = pos - g as f64;
            let p = smoothstep(u);
            let (a, b) = (self.states[g], self.states[g + 1]);
            state = State {
                cx: a.cx + (b.cx - a.cx) * p,
                cy: a.cy + (b.cy - a.cy) * p,
                s: a.s * (b.s / a.s).powf(p),
            };
            if self.shaky[g] {
                let envelope = smoothstep(u / 0.15) * smoothstep((1.0 - u) / 0.15);
                let amp = SHAKE * state.s * envelope;
                let at = f64::from(index);
                shake = (amp * noise(self.seed, 1, at), amp * noise(self.seed, 2, at));
            }
        }
        let (w, h) = (f64::from(self.first.width), f64::from(self.first.height));
        let size = self.f * state.s;
        let cx = self.ox + self.f * (state.cx + shake.0);
        let cy = self.oy + self.f * (state.cy + shake.1);
        Window {
            x: (cx - size / 2.0) * w,
            y: (cy - size / 2.0) * h,
            w: size * w,
            h: size * h,
        }
    }

    /// Renders frame `index` (0-based; past the end gives the last frame).
    pub fn frame(&self, index: u32) -> Frame {
        let (w, h) = self.size();
        if w == 0 || h == 0 {
            return Frame {
                width: w,
                height: h,
                rgb: Vec::new(),
            };
        }
        let window = self.window(index);
        let alpha = match &self.last {
            Some(_) => (smoothstep(self.time(index)) * 256.0).round() as u32,
            None => 0,
        };
        let mut out = vec![0u8; w as usize * h as usize * 3];
        match (&self.last, alpha) {
            (Some(last), 256) => sample_into(last, window, w, h, &mut out),
            (Some(last), a) if a > 0 => {
                // Both key frames share the window, and bilinear sampling is
                // linear: dissolve first, then sample once.
                let rgb = self
                    .first
                    .rgb
                    .iter()
                    .zip(&last.rgb)
                    .map(|(&p, &q)| {
                        ((u32::from(p) * (256 - a) + u32::from(q) * a + 128) >> 8) as u8
                    })
                    .collect();
                let mixed = Frame {
                    width: w,
                    height: h,
                    rgb,
                };
                sample_into(&mixed, window, w, h, &mut out);
            }
            _ => sample_into(&self.first, window, w, h, &mut out),
        }
        Frame {
            width: w,
            height: h,
            rgb: out,
        }
    }

    /// All frames in order.
    pub fn frames(&self) -> impl Iterator<Item = Frame> + '_ {
        (0..self.frames).map(|i| self.frame(i))
    }
}

/// `frames` frames from `first` to `last` (a cross-dissolve, eased in and
/// out; without `last`, the first key frame alone), with the camera moves
/// applied one after another across the clip, each over an equal share.
/// The output keeps `first`'s size; with no move (or only `Static`) and no
/// `last`, every frame equals `first`.
pub fn motion(
    first: &Frame,
    last: Option<&Frame>,
    frames: u32,
    cameras: &[Camera],
    seed: u64,
) -> Vec<Frame> {
    let groups: Vec<Vec<Camera>> = cameras.iter().map(|&c| vec![c]).collect();
    Motion::new(first, last, frames, &groups, seed)
        .frames()
        .collect()
}

/// As [`motion`], but each group of moves is made together (MiniMax's
/// meaning of `[Pan left, Pedestal up]`), the groups one after another; see
/// [`camera_groups`](crate::camera_groups).
pub fn motion_grouped(
    first: &Frame,
    last: Option<&Frame>,
    frames: u32,
    groups: &[Vec<Camera>],
    seed: u64,
) -> Vec<Frame> {
    Motion::new(first, last, frames, groups, seed)
        .frames()
        .collect()
}

/// Renders a [`Motion`] and encodes it with [`encode_clip`]: two threads,
/// each drawing and coding half of the clip, a few frames in memory at most.
/// The video is the first key frame's size, which must suit
/// [`Mp4Encoder::new`](crate::Mp4Encoder::new).
pub fn render_clip(motion: &Motion, fps: u32, bitrate_bps: u32) -> Result<Vec<u8>, VideoError> {
    let (w, h) = motion.size();
    encode_clip(w, h, fps, bitrate_bps, motion.len(), |i| motion.frame(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_path_is_the_whole_frame() {
        let f = Frame::filled(64, 48, [1, 2, 3]);
        let m = Motion::new(&f, None, 10, &[vec![Camera::Static]], 1);
        for i in 0..10 {
            assert_eq!(
                m.window(i),
                Window {
                    x: 0.0,
                    y: 0.0,
                    w: 64.0,
                    h: 48.0
                }
            );
        }
    }

    #[test]
    fn every_window_stays_inside() {
        use Camera::*;
        let f = Frame::filled(100, 60, [0, 0, 0]);
        let paths: Vec<Vec<Vec<Camera>>> = vec![
            vec![vec![PanLeft]],
            vec![vec![ZoomOut], vec![TruckRight, PedestalDown]],
            vec![vec![Shake]],
            vec![
                vec![PushIn, Shake],
                vec![PullOut],
                vec![TiltUp, PanRight, ZoomIn],
            ],
            vec![
                vec![TrackingShot],
                vec![PedestalUp],
                vec![PanLeft],
                vec![PanLeft],
                vec![PanLeft],
            ],
        ];
        for groups in paths {
            let m = Motion::new(&f, None, 50, &groups, 7);
            for i in 0..50 {
                let w = m.window(i);
                let eps = 1e-9;
                assert!(w.x >= -eps && w.y >= -eps, "{groups:?} {i} {w:?}");
                assert!(
                    w.x + w.w <= 100.0 + eps && w.y + w.h <= 60.0 + eps,
                    "{groups:?} {i} {w:?}"
                );
                assert!((w.w / w.h - 100.0 / 60.0).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn moves_go_the_right_way() {
        let f = Frame::filled(100, 60, [0, 0, 0]);
        let m = Motion::new(&f, None, 20, &[vec![Camera::PanLeft]], 0);
        assert!(m.window(19).x < m.window(0).x);
        let m = Motion::new(&f, None, 20, &[vec![Camera::ZoomIn]], 0);
        assert_eq!(
            m.window(0),
            Window {
                x: 0.0,
                y: 0.0,
                w: 100.0,
                h: 60.0
            }
        );
        assert!(m.window(19).w < 75.0);
        let m = Motion::new(&f, None, 20, &[vec![Camera::ZoomOut]], 0);
        assert!(m.window(0).w < 75.0);
        assert!((m.window(19).w - 100.0).abs() < 1e-9);
        let m = Motion::new(&f, None, 20, &[vec![Camera::TiltUp]], 0);
        assert!(m.window(19).y < m.window(0).y);
    }

    #[test]
    fn shake_is_seeded() {
        let f = Frame::filled(100, 60, [0, 0, 0]);
        let a = Motion::new(&f, None, 30, &[vec![Camera::Shake]], 5);
        let b = Motion::new(&f, None, 30, &[vec![Camera::Shake]], 5);
        let c = Motion::new(&f, None, 30, &[vec![Camera::Shake]], 6);
        let wa: Vec<Window> = (0..30).map(|i| a.window(i)).collect();
        let wb: Vec<Window> = (0..30).map(|i| b.window(i)).collect();
        let wc: Vec<Window> = (0..30).map(|i| c.window(i)).collect();
        assert_eq!(wa, wb);
        assert_ne!(wa, wc);
        assert!(wa.windows(2).any(|p| p[0] != p[1]));
    }
}

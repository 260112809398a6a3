//! Encoding speed at the sizes the server asks for.
//!
//! ```text
//! cargo run --release -p maximin-video --example encode_bench            # 768P and 1080P
//! cargo run --release -p maximin-video --example encode_bench -- 1280 720 # one size
//! cargo run --release -p maximin-video --example encode_bench -- emit 1366 768 25 6 | ffprobe -i pipe:0
//! cargo run --release -p maximin-video --example encode_bench -- sandbox 1280 720 25 6 | ffprobe -i pipe:0
//! ```
//!
//! For each size it times, over a 6-second clip at 25 fps: drawing the
//! motion frames alone ([`Motion::frame`]), encoding alone
//! ([`Mp4Encoder::push`], frames drawn beforehand), and [`render_clip`]
//! (both, on two threads). The key frames are synthetic but textured
//! (gradients, edges and noise), closer to a photograph's cost than a flat
//! test card. `emit` writes one clip to stdout (never to a file), and `sandbox` a
//! [`sandbox_clip`](maximin_video::sandbox_clip).

use std::io::Write;
use std::time::Instant;

use maximin_video::{
    probe, render_clip, suggested_bitrate, Camera, Frame, Motion, Mp4Encoder, VideoError,
};

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A textured key frame: soft gradients, a few hard-edged shapes, grain.
fn key_frame(w: u32, h: u32, seed: u64) -> Frame {
    let mut rgb = Vec::with_capacity((w * h * 3) as usize);
    let mut state = seed;
    for y in 0..h {
        for x in 0..w {
            state = splitmix(state);
            let grain = (state % 17) as i32 - 8;
            let fx = f64::from(x) / f64::from(w);
            let fy = f64::from(y) / f64::from(h);
            let s = (seed % 7) as f64;
            let mut r = 128.0 + 100.0 * (fx * 6.0 + s).sin() * (fy * 3.0).cos();
            let mut g = 128.0 + 90.0 * (fy * 5.0 - s).sin();
            let mut b = 128.0 + 80.0 * ((fx + fy) * 4.0).cos();
            let (dx, dy) = (fx - 0.3 - s / 20.0, fy - 0.5);
            if dx * dx + dy * dy < 0.04 {
                r = 240.0;
                g = 220.0;
                b = 60.0;
            }
            if (0.6..0.8).contains(&fx) && (0.2..0.7).contains(&fy) {
                r *= 0.4;
                g *= 0.6;
            }
            for v in [r, g, b] {
                rgb.push((v as i32 + grain).clamp(0, 255) as u8);
            }
        }
    }
    Frame {
        width: w,
        height: h,
        rgb,
    }
}

fn bench(w: u32, h: u32, fps: u32, seconds: u32) -> Result<(), VideoError> {
    let n = fps * seconds;
    let first = key_frame(w, h, 1);
    let last = key_frame(w, h, 2);
    let groups = vec![vec![Camera::PushIn], vec![Camera::PanRight, Camera::Shake]];
    let motion = Motion::new(&first, Some(&last), n, &groups, 7);
    let bitrate = suggested_bitrate(w, h, fps);

    // Drawing alone, then encoding alone: every frame is drawn, then pushed;
    // each step is timed by this thread's CPU time (the machine may be busy).
    let (mut draw_cpu, mut encode_cpu, mut encode_wall) = (0u64, 0u64, 0.0f64);
    let mut enc = Mp4Encoder::new(w, h, fps, bitrate)?;
    for i in 0..n {
        let c = cpu_ns();
        let frame = motion.frame(i);
        let c2 = cpu_ns();
        let t = Instant::now();
        enc.push(&frame)?;
        encode_wall += t.elapsed().as_secs_f64();
        draw_cpu += c2 - c;
        encode_cpu += cpu_ns() - c2;
    }
    let mp4 = enc.finish()?;
    let draw = draw_cpu as f64 / 1e9 / f64::from(n);
    let encode = encode_cpu as f64 / 1e9;

    // Both, as the server would: render_clip (two threads).
    let (t, cpu) = (Instant::now(), process_cpu_s());
    let clip = render_clip(&motion, fps, bitrate)?;
    let both = t.elapsed().as_secs_f64();
    let both_cpu = process_cpu_s() - cpu;
    let info = probe(&clip)?;

    println!(
        "{w}x{h} @ {fps} fps, {seconds} s ({n} frames), target {:.2} Mbit/s:",
        f64::from(bitrate) / 1e6
    );
    println!(
        "  draw motion frame   {:7.1} ms CPU/frame ({:6.1} frames/s)",
        draw * 1e3,
        1.0 / draw
    );
    println!(
        "  encode only         {:7.2} s CPU      ({:6.1} frames/s; {:.2} s wall; {:.2} Mbit/s actual)",
        encode,
        f64::from(n) / encode,
        encode_wall,
        mp4.len() as f64 * 8.0 / f64::from(seconds) / 1e6
    );
    println!(
        "  render_clip         {:7.2} s wall     ({:6.1} frames/s; {:.2} s CPU; {:.2} Mbit/s actual, {} key frames, {:.3} s)",
        both,
        f64::from(n) / both,
        both_cpu,
        clip.len() as f64 * 8.0 / f64::from(seconds) / 1e6,
        info.key_frames,
        info.duration_s
    );
    Ok(())
}

/// CPU time of this thread in nanoseconds (Linux; 0 elsewhere).
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU time of the whole process in seconds (Linux; 0 elsewhere).
fn process_cpu_s() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which ends with ')'): utime is the 12th, stime the 13th.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: u32| -> u32 {
        args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
    };
    if args.first().map(String::as_str) == Some("sandbox") {
        let (w, h, fps, seconds) = (num(1, 1280), num(2, 720), num(3, 25), num(4, 6));
        let t = Instant::now();
        let clip = maximin_video::sandbox_clip(w, h, seconds, fps, 1)?;
        eprintln!(
            "sandbox_clip {w}x{h} {seconds} s: {:.2} s",
            t.elapsed().as_secs_f64()
        );
        std::io::stdout().lock().write_all(&clip)?;
        return Ok(());
    }
    if args.first().map(String::as_str) == Some("emit") {
        let (w, h, fps, seconds) = (num(1, 1366), num(2, 768), num(3, 25), num(4, 6));
        let motion = Motion::new(
            &key_frame(w, h, 1),
            Some(&key_frame(w, h, 2)),
            fps * seconds,
            &[vec![Camera::ZoomIn], vec![Camera::PanLeft]],
            3,
        );
        let clip = render_clip(&motion, fps, suggested_bitrate(w, h, fps))?;
        std::io::stdout().lock().write_all(&clip)?;
        return Ok(());
    }
    if args.len() >= 2 {
        bench(num(0, 1366), num(1, 768), num(2, 25), num(3, 6))?;
    } else {
        bench(1366, 768, 25, 6)?;
        bench(1920, 1080, 25, 6)?;
    }
    Ok(())
}

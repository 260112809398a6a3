//! End-to-end checks: encode, read the container back, decode, motion, sandbox.

use maximin_video::{
    camera_commands, camera_groups, decode_first_frame, motion, motion_grouped, probe, render_clip,
    resize, sandbox_clip, Camera, Frame, Motion, Mp4Encoder, VideoError,
};

/// A smooth, structured test picture that moves with `t`.
fn picture(w: u32, h: u32, t: u32) -> Frame {
    let mut rgb = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let r = (x * 255 / (w - 1)) as u8;
            let g = (y * 255 / (h - 1)) as u8;
            let b = (((x + t * 2) / 8 + y / 8) % 2 * 120 + 60) as u8;
            rgb.extend_from_slice(&[r, g, b]);
        }
    }
    Frame {
        width: w,
        height: h,
        rgb,
    }
}

fn encode(w: u32, h: u32, fps: u32, n: u32) -> Vec<u8> {
    let mut enc = Mp4Encoder::new(w, h, fps, 1_000_000).expect("valid");
    for t in 0..n {
        enc.push(&picture(w, h, t)).expect("valid");
    }
    assert_eq!(enc.frames(), u64::from(n));
    enc.finish().expect("valid")
}

/// Top-level box types in order.
fn top_boxes(mp4: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 8 <= mp4.len() {
        let size = u32::from_be_bytes(mp4[pos..pos + 4].try_into().expect("valid")) as usize;
        out.push(String::from_utf8_lossy(&mp4[pos + 4..pos + 8]).into_owned());
        assert!(size >= 8);
        pos += size;
    }
    assert_eq!(pos, mp4.len(), "boxes tile the file");
    out
}

#[test]
fn encode_then_probe_gives_exact_size_and_duration() {
    let mp4 = encode(64, 48, 25, 10);
    assert_eq!(top_boxes(&mp4), vec!["ftyp", "moov", "mdat"]);
    let info = probe(&mp4).expect("valid");
    assert_eq!((info.width, info.height), (64, 48));
    assert_eq!(info.frames, 10);
    assert_eq!(info.codec, "avc1");
    assert_eq!(info.duration_s, 0.4);
    assert_eq!(info.fps, 25.0);
    assert!(info.key_frames >= 1);
    assert_eq!(info.profile_idc, 66, "Constrained Baseline");

    // 24 fps, a frame count that is no whole number of seconds: still exact.
    let mp4 = encode(64, 48, 24, 7);
    let info = probe(&mp4).expect("valid");
    assert_eq!(info.frames, 7);
    assert_eq!(info.duration_s * 24.0, 7.0);
    assert_eq!(info.fps, 24.0);
}

#[test]
fn key_frames_every_two_seconds() {
    let mp4 = encode(64, 48, 10, 45);
    let info = probe(&mp4).expect("valid");
    assert_eq!(info.frames, 45);
    assert!(info.key_frames >= 3, "{info:?}");
}

#[test]
fn sizes_off_the_macroblock_grid_are_cropped_exactly() {
    // 200x120: coded as 208x128, cropped by the SPS.
    let mp4 = encode(200, 120, 25, 3);
    let info = probe(&mp4).expect("valid");
    assert_eq!((info.width, info.height), (200, 120));
    let first = decode_first_frame(&mp4).expect("valid");
    assert_eq!((first.width, first.height), (200, 120));
    let mae = first.mean_abs_diff(&picture(200, 120, 0)).expect("valid");
    assert!(mae < 6.0, "mean abs error {mae}");

    // 1366x768-like odd multiples at small scale: 114x66 (both ≡ 2 mod 16).
    let mp4 = encode(114, 66, 25, 2);
    let first = decode_first_frame(&mp4).expect("valid");
    assert_eq!((first.width, first.height), (114, 66));
}

#[test]
fn first_frame_decodes_like_the_input() {
    let mp4 = encode(64, 48, 25, 5);
    let first = decode_first_frame(&mp4).expect("valid");
    assert_eq!((first.width, first.height), (64, 48));
    let mae = first.mean_abs_diff(&picture(64, 48, 0)).expect("valid");
    assert!(mae < 6.0, "mean abs error {mae}");
    // and not like a different picture
    let other = Frame::filled(64, 48, [255, 0, 255]);
    assert!(first.mean_abs_diff(&other).expect("valid") > 40.0);
}

#[test]
fn finish_to_a_writer_gives_the_same_bytes() {
    let build = || {
        let mut enc = Mp4Encoder::new(64, 48, 25, 300_000).expect("valid");
        for t in 0..4 {
            enc.push(&picture(64, 48, t)).expect("valid");
        }
        enc
    };
    let whole = build().finish().expect("valid");
    let mut written = Vec::new();
    let n = build().finish_to(&mut written).expect("valid");
    assert_eq!(n as usize, written.len());
    assert_eq!(whole, written, "encoding is deterministic");
}

#[test]
fn invalid_sizes_and_parameters_are_clear_errors() {
    for (w, h) in [
        (63, 48),
        (64, 47),
        (0, 48),
        (8, 8),
        (4000, 1000),
        (2400, 2400),
    ] {
        match Mp4Encoder::new(w, h, 25, 1_000_000) {
            Err(e @ VideoError::InvalidSize { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(&format!("{w}x{h}")), "{msg}");
            }
            other => panic!("{w}x{h}: {other:?}"),
        }
    }
    assert!(matches!(
        Mp4Encoder::new(64, 48, 0, 1_000_000),
        Err(VideoError::InvalidParameter(_))
    ));
    assert!(matches!(
        Mp4Encoder::new(64, 48, 500, 1_000_000),
        Err(VideoError::InvalidParameter(_))
    ));
    assert!(matches!(
        Mp4Encoder::new(64, 48, 25, 10),
        Err(VideoError::InvalidParameter(_))
    ));
    // 1366x768 and 1920x1080 are fine
    assert!(Mp4Encoder::new(1366, 768, 25, 2_000_000).is_ok());
    assert!(Mp4Encoder::new(1920, 1080, 24, 4_000_000).is_ok());

    let mut enc = Mp4Encoder::new(64, 48, 25, 1_000_000).expect("valid");
    let wrong = Frame::filled(32, 48, [0, 0, 0]);
    assert!(matches!(enc.push(&wrong), Err(VideoError::InvalidFrame(_))));
    let short = Frame {
        width: 64,
        height: 48,
        rgb: vec![0; 10],
    };
    assert!(matches!(enc.push(&short), Err(VideoError::InvalidFrame(_))));
    assert!(matches!(enc.finish(), Err(VideoError::NoFrames)));

    assert!(matches!(
        sandbox_clip(65, 48, 1, 25, 0),
        Err(VideoError::InvalidSize { .. })
    ));
    assert!(matches!(
        sandbox_clip(64, 48, 0, 25, 0),
        Err(VideoError::InvalidParameter(_))
    ));
}

#[test]
fn probe_rejects_what_is_not_an_mp4() {
    assert!(matches!(
        probe(b"hello world, not a video"),
        Err(VideoError::Container(_))
    ));
    assert!(matches!(probe(&[]), Err(VideoError::Container(_))));
    let mp4 = encode(64, 48, 25, 2);
    // cut inside the moov
    assert!(matches!(probe(&mp4[..200]), Err(VideoError::Container(_))));
    assert!(decode_first_frame(&mp4[..200]).is_err());
}

#[test]
fn motion_goes_from_first_to_last() {
    let first = Frame::filled(64, 48, [20, 40, 200]);
    let last = picture(64, 48, 3);
    let frames = motion(&first, Some(&last), 9, &[], 1);
    assert_eq!(frames.len(), 9);
    assert!(frames
        .iter()
        .all(|f| f.width == 64 && f.height == 48 && f.rgb.len() == 64 * 48 * 3));
    assert_eq!(frames[0], first);
    assert_eq!(frames[8], last);
    let d_first: Vec<f64> = frames
        .iter()
        .map(|f| f.mean_abs_diff(&first).expect("valid"))
        .collect();
    let total = last.mean_abs_diff(&first).expect("valid");
    // strictly moving away from the first, towards the last
    assert!(d_first.windows(2).all(|p| p[1] > p[0]), "{d_first:?}");
    let mid = d_first[4];
    assert!(mid > total * 0.3 && mid < total * 0.7, "{mid} of {total}");

    // Static keeps the first key frame exactly, and a last key frame of
    // another size is resized to the first's.
    let still = motion(&first, None, 3, &[Camera::Static], 1);
    assert!(still.iter().all(|f| *f == first));
    let big_last = resize(&last, 128, 96);
    let frames = motion(&first, Some(&big_last), 4, &[Camera::Static], 1);
    assert!(frames[3].mean_abs_diff(&last).expect("valid") < 3.0);
}

#[test]
fn camera_moves_change_the_framing_but_not_the_size() {
    let key = picture(96, 64, 0);
    let frames = motion(
        &key,
        None,
        12,
        &[Camera::PanLeft, Camera::ZoomIn, Camera::Shake],
        9,
    );
    assert_eq!(frames.len(), 12);
    assert!(frames.iter().all(|f| f.width == 96 && f.height == 64));
    // the picture slides right under a left pan: its red ramp's left edge brightens less
    assert_ne!(frames[0], frames[11]);
    // zoom in keeps the first frame identical to the key frame
    let zoom = motion(&key, None, 6, &[Camera::ZoomIn], 0);
    assert_eq!(zoom[0], key);
    assert_ne!(zoom[5], key);
    // grouped: the moves of a bracket together
    let groups = camera_groups("[Pan left, Pedestal up] then [Zoom out]");
    assert_eq!(
        groups,
        vec![
            vec![Camera::PanLeft, Camera::PedestalUp],
            vec![Camera::ZoomOut]
        ]
    );
    let g = motion_grouped(&key, None, 8, &groups, 0);
    assert_eq!(g.len(), 8);
    // no frames asked, none given
    assert!(motion(&key, None, 0, &[Camera::PanLeft], 0).is_empty());
}

#[test]
fn camera_commands_in_order() {
    assert_eq!(
        camera_commands("[Pan left] a cat [Zoom in, Shake]"),
        vec![Camera::PanLeft, Camera::ZoomIn, Camera::Shake]
    );
    assert_eq!(
        camera_commands("[Unknown move] a dog [Tilt up]"),
        vec![Camera::TiltUp]
    );
}

#[test]
fn render_clip_streams_motion_into_an_mp4() {
    let first = picture(64, 48, 0);
    let last = picture(64, 48, 20);
    let m = Motion::new(&first, Some(&last), 12, &[vec![Camera::PushIn]], 3);
    let mp4 = render_clip(&m, 24, 500_000).expect("valid");
    let info = probe(&mp4).expect("valid");
    assert_eq!((info.width, info.height, info.frames), (64, 48, 12));
    assert_eq!(info.duration_s, 0.5);
    let odd = Motion::new(&picture(63, 48, 0), None, 2, &[], 0);
    assert!(matches!(
        render_clip(&odd, 24, 500_000),
        Err(VideoError::InvalidSize { .. })
    ));
}

#[test]
fn sandbox_clip_is_deterministic_and_valid() {
    let a = sandbox_clip(64, 48, 1, 10, 42).expect("valid");
    let b = sandbox_clip(64, 48, 1, 10, 42).expect("valid");
    let c = sandbox_clip(64, 48, 1, 10, 43).expect("valid");
    assert_eq!(a, b);
    assert_ne!(a, c);
    let info = probe(&a).expect("valid");
    assert_eq!(
        (info.width, info.height, info.frames, info.codec.as_str()),
        (64, 48, 10, "avc1")
    );
    assert_eq!(info.duration_s, 1.0);
    let first = decode_first_frame(&a).expect("valid");
    assert_eq!((first.width, first.height), (64, 48));
    // colourful, not a flat or black picture
    let mean: f64 = first.rgb.iter().map(|&v| f64::from(v)).sum::<f64>() / first.rgb.len() as f64;
    assert!(mean > 60.0 && mean < 220.0, "{mean}");
}

#[test]
fn encoder_and_motion_cross_threads() {
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    send::<Mp4Encoder>();
    send::<Motion>();
    sync::<Motion>();
    send::<Frame>();
}

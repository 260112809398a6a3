//! The composer: determinism, tags, tempo, mode, lengths, the sung line.

use maximin_engine_music::{compose, Mode, Role, SectionKind, SongRequest, DRUM_CHANNEL, TAIL_S};

const LYRICS: &str = "[Intro]\n\n[Verse]\nWalking down the empty street tonight\nEvery window holds a little light\n\n[Pre Chorus]\nAnd I know\n\n[Chorus]\nSing it loud, sing it clear\nEverybody gather here\n\n[Bridge]\nHold on\n\n[Chorus]\nSing it loud, sing it clear\nEverybody gather here\n\n[Outro]\n";

fn req(prompt: &str, lyrics: Option<&str>, seed: u64) -> SongRequest {
    SongRequest {
        prompt: prompt.to_string(),
        lyrics: lyrics.map(str::to_string),
        seed,
        ..SongRequest::default()
    }
}

#[test]
fn deterministic_for_a_seed() {
    let a = compose(&req("upbeat pop song with piano", Some(LYRICS), 42));
    let b = compose(&req("upbeat pop song with piano", Some(LYRICS), 42));
    assert_eq!(a, b);
    let c = compose(&req("upbeat pop song with piano", Some(LYRICS), 43));
    assert_ne!(a.vocal, c.vocal);
    let d = compose(&req("jazz", None, 7));
    assert_eq!(d, compose(&req("jazz", None, 7)));
}

#[test]
fn sections_follow_the_tags() {
    let a = compose(&req("pop", Some(LYRICS), 1));
    let kinds: Vec<SectionKind> = a.sections.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            SectionKind::Intro,
            SectionKind::Verse,
            SectionKind::PreChorus,
            SectionKind::Chorus,
            SectionKind::Bridge,
            SectionKind::Chorus,
            SectionKind::Outro
        ]
    );
    let chorus = &a.sections[3];
    assert_eq!(chorus.label, "Chorus");
    assert_eq!(
        chorus.lines,
        ["Sing it loud, sing it clear", "Everybody gather here"]
    );
    assert!(a.sections[0].lines.is_empty());
    // Sections are contiguous, one chord per bar.
    for w in a.sections.windows(2) {
        assert!((w[0].end_s - w[1].start_s).abs() < 1e-3);
    }
    for s in &a.sections {
        assert_eq!(s.chords.len() as u32, s.bars);
    }
    // The chorus is sung inside its section, the same tune both times.
    let sung = |s: &maximin_engine_music::Section| {
        a.vocal
            .iter()
            .filter(|n| n.start_s >= s.start_s - 1e-3 && n.start_s < s.end_s)
            .map(|n| (n.text.clone(), n.pitch))
            .collect::<Vec<_>>()
    };
    let first = sung(&a.sections[3]);
    let texts: Vec<&str> = first.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(&texts[..4], ["Sing", "it", "loud", "sing"]);
    assert_eq!(first, sung(&a.sections[5]));
    assert!(sung(&a.sections[0]).is_empty());
    // Untagged lyrics: verses.
    let b = compose(&req("pop", Some("just one line to sing"), 1));
    assert!(b.sections.iter().any(|s| s.kind == SectionKind::Verse));
    assert_eq!(b.vocal.len(), 5);
}

#[test]
fn tempo_and_mode_from_the_prompt() {
    assert_eq!(
        compose(&req("rock song at 140 bpm", None, 3)).tempo_bpm,
        140.0
    );
    assert_eq!(compose(&req("tempo 90, reggae", None, 3)).tempo_bpm, 90.0);
    for seed in 0..6 {
        let sad = compose(&req("a sad piano ballad", None, seed));
        assert_eq!(sad.key.mode, Mode::Minor, "seed {seed}");
        let dark = compose(&req("dark cinematic strings", None, seed));
        assert_eq!(dark.key.mode, Mode::Minor);
        let happy = compose(&req("happy summer pop", None, seed));
        assert_eq!(happy.key.mode, Mode::Major);
    }
    let slow = compose(&req("slow ambient", None, 1)).tempo_bpm;
    let fast = compose(&req("fast metal", None, 1)).tempo_bpm;
    assert!(slow < 80.0 && fast > 150.0, "{slow} {fast}");
}

#[test]
fn instruments_and_drums() {
    let a = compose(&req(
        "jazz trio with piano, upright bass and drums",
        None,
        5,
    ));
    let prog = |role: Role| {
        a.tracks
            .iter()
            .find(|t| t.role == role)
            .map(|t| t.instrument.program)
    };
    assert_eq!(prog(Role::Harmony), Some(0));
    assert_eq!(prog(Role::Bass), Some(32));
    let drums = a
        .tracks
        .iter()
        .find(|t| t.role == Role::Drums)
        .expect("drums");
    assert_eq!(drums.channel, DRUM_CHANNEL);
    assert!(!drums.notes.is_empty());
    for t in &a.tracks {
        assert!(!t.notes.is_empty(), "{:?} silent", t.role);
        for n in &t.notes {
            assert!(n.start_s >= 0.0 && n.start_s + n.dur_s <= a.duration_s + 1e-3);
            assert!(n.velocity > 0 && n.pitch < 128);
        }
    }
    let classical = compose(&req("classical string quartet", None, 5));
    assert!(classical.tracks.iter().all(|t| t.role != Role::Drums));
    let channels: Vec<u8> = a.tracks.iter().map(|t| t.channel).collect();
    let mut dedup = channels.clone();
    dedup.dedup();
    assert_eq!(channels, dedup);
}

#[test]
fn lengths() {
    for (prompt, target) in [
        ("edm", 30.0f32),
        ("slow folk", 45.0),
        ("metal 180 bpm", 12.0),
    ] {
        let mut r = req(prompt, None, 9);
        r.target_seconds = Some(target);
        let a = compose(&r);
        assert!(
            (a.duration_s - target).abs() < 0.01,
            "{prompt}: {}",
            a.duration_s
        );
        assert!(a.vocal.is_empty());
        let last = a.sections.last().expect("sections");
        assert!(last.end_s + TAIL_S <= a.duration_s);
    }
    // Lyrics set the length; a target caps it.
    let full = compose(&req("pop 120 bpm", Some(LYRICS), 2));
    let mut r = req("pop 120 bpm", Some(LYRICS), 2);
    r.target_seconds = Some(30.0);
    let capped = compose(&r);
    assert!(full.duration_s > 40.0);
    assert!(
        (capped.duration_s - 30.0).abs() < 0.01,
        "{}",
        capped.duration_s
    );
    assert!(capped.vocal.len() < full.vocal.len());
    assert!(capped.vocal.iter().all(|n| n.start_s + n.dur_s < 30.0));
    // Padded when the lyrics are short.
    let mut r = req("pop 120 bpm", Some("[Verse]\nshort and sweet"), 2);
    r.target_seconds = Some(40.0);
    let padded = compose(&r);
    assert!((padded.duration_s - 40.0).abs() < 0.01);
}

#[test]
fn sung_line_on_the_melody() {
    let a = compose(&req("pop", Some(LYRICS), 11));
    assert!(!a.vocal.is_empty());
    for w in a.vocal.windows(2) {
        assert!(
            w[0].start_s + w[0].dur_s <= w[1].start_s + 1e-4,
            "overlap {:?} {:?}",
            w[0],
            w[1]
        );
    }
    for n in &a.vocal {
        assert!((50..=84).contains(&n.pitch), "{n:?}");
        assert!(n.dur_s > 0.05);
        assert!(n.syllable < n.syllables);
    }
    // A word's syllables are consecutive notes that spell it.
    let every: Vec<&maximin_engine_music::SungNote> =
        a.vocal.iter().filter(|n| n.word == "Everybody").collect();
    let count = usize::from(every[0].syllables);
    assert!(count >= 4);
    let spelled: String = every.iter().take(count).map(|n| n.text.as_str()).collect();
    assert_eq!(spelled, "Everybody");
    // Instrumental: the melody instrument plays the tune instead.
    let mut r = req("pop", Some(LYRICS), 11);
    r.instrumental = true;
    let b = compose(&r);
    assert!(b.vocal.is_empty());
    let melody = b
        .tracks
        .iter()
        .find(|t| t.role == Role::Melody)
        .expect("melody");
    assert!(melody.notes.len() > a.vocal.len());
    // CJK: a syllable per character.
    let c = compose(&req("pop", Some("[Verse]\n我爱你中国"), 1));
    let texts: Vec<&str> = c.vocal.iter().map(|n| n.text.as_str()).collect();
    assert_eq!(texts, ["我", "爱", "你", "中", "国"]);
}

#[test]
fn odd_inputs_compose_without_panicking() {
    let long_line = "la ".repeat(200);
    let lyrics = [
        "",
        "[Chorus]",
        "[]\n[[x]]\n!!!\n...",
        "🎵🎶 ❤️\n[Verse]\n😀 smile 😀",
        long_line.as_str(),
        "[Verse]\nÀ la claire fontaine, m'en allant promener\n[Chorus]\nНе уходи, побудь со мною\n[Bridge]\n사랑해요 あいしてる 我爱你",
        "[Verse]\nrhythm strengths twelfths\ny y y\n'quoted' — dashes – and ’curly’ quotes",
    ];
    for (i, l) in lyrics.iter().enumerate() {
        for target in [None, Some(0.0), Some(f32::NAN), Some(3.0), Some(10_000.0)] {
            for instrumental in [false, true] {
                let a = compose(&SongRequest {
                    prompt: "☃ weird ✓ prompt 999999 bpm in h# minor".into(),
                    lyrics: Some(l.to_string()),
                    instrumental,
                    seed: u64::MAX - i as u64,
                    target_seconds: target,
                    ..SongRequest::default()
                });
                assert!(a.duration_s.is_finite() && a.duration_s > 0.0);
                assert!(
                    a.duration_s <= maximin_engine_music::MAX_SECONDS + 120.0,
                    "{}",
                    a.duration_s
                );
                assert!(a.tempo_bpm >= 40.0 && a.tempo_bpm <= 240.0);
                for t in &a.tracks {
                    for n in &t.notes {
                        assert!(n.start_s.is_finite() && n.dur_s > 0.0);
                    }
                }
                if instrumental {
                    assert!(a.vocal.is_empty());
                }
            }
        }
    }
}

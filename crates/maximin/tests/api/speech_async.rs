//! Long text as a durable task (spec §4): create, poll, fetch the output
//! through the file API; subtitles; the illegal-character rule both ways;
//! a task queued before a restart finishes after it.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::Server;

/// The members of a tar archive: (name, bytes).
pub(crate) fn untar(mut b: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    while b.len() >= 512 && b[..512].iter().any(|x| *x != 0) {
        let h = &b[..512];
        let name = String::from_utf8_lossy(&h[..100])
            .trim_end_matches('\0')
            .to_owned();
        let size_field = String::from_utf8_lossy(&h[124..135]).to_string();
        let size = usize::from_str_radix(size_field.trim_matches(char::from(0)).trim(), 8)
            .expect("octal size");
        let data = b[512..512 + size].to_vec();
        out.push((name, data));
        let padded = size.div_ceil(512) * 512;
        b = &b[512 + padded..];
    }
    out
}

pub(crate) async fn create(s: &Server, key: &str, body: Value) -> Value {
    let r = s.post("/v1/t2a_async_v2", key, body).await;
    assert_eq!(r.status, 200);
    r.body
}

/// Polls until the task leaves Processing; returns the last query body.
pub(crate) async fn wait(s: &Server, key: &str, task_id: i64, limit: Duration) -> Value {
    let start = Instant::now();
    loop {
        let r = s
            .get(
                &format!("/v1/query/t2a_async_query_v2?task_id={task_id}"),
                key,
            )
            .await;
        assert_eq!(r.body["base_resp"]["status_code"], 0, "{:?}", r.body);
        if r.body["status"] != "Processing" || start.elapsed() > limit {
            return r.body;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) async fn output(s: &Server, key: &str, file_id: i64) -> Vec<(String, Vec<u8>)> {
    let (status, bytes) = s
        .get_bytes(
            &s.url(&format!("/v1/files/retrieve_content?file_id={file_id}")),
            Some(key),
        )
        .await;
    assert_eq!(status, 200);
    untar(&bytes)
}

pub(crate) fn member<'a>(members: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
    &members
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| {
            panic!(
                "no {name} in {:?}",
                members.iter().map(|m| &m.0).collect::<Vec<_>>()
            )
        })
        .1
}

/// Checks a subtitle file against the audio: segments in order, each at most
/// 50 characters, times increasing, covering the audio.
fn check_subtitles(subs: &[u8], audio_secs: f64, sentences: usize) {
    let subs: Vec<Value> = serde_json::from_slice(subs).expect("subtitle json");
    assert!(
        subs.len() >= sentences,
        "{} segments for {sentences} sentences",
        subs.len()
    );
    let mut last_end = 0.0;
    for s in &subs {
        let text = s["text"].as_str().expect("text");
        assert!(!text.is_empty() && text.chars().count() <= 50, "{s}");
        let b = s["time_begin"].as_f64().expect("time_begin");
        let e = s["time_end"].as_f64().expect("time_end");
        assert!(
            b >= last_end - 1e-6 && e > b,
            "segments must increase: {s} after {last_end}"
        );
        last_end = e;
    }
    let first = subs[0]["time_begin"].as_f64().expect("begin");
    assert!(first < 300.0, "the first segment starts at {first} ms");
    let audio_ms = audio_secs * 1000.0;
    assert!(
        (last_end - audio_ms).abs() < 250.0,
        "subtitles end at {last_end} ms, the audio at {audio_ms:.0} ms"
    );
}

const TEXT: &str = "Long texts are spoken by a task. It runs in the background and keeps going. \
    The output is a file: the audio, the subtitles and a summary. Each sentence gets its own time. \
    This is the fifth sentence, and it is a little longer than the others so that it needs two subtitle segments.";

#[tokio::test]
async fn a_task_speaks_text_and_files_audio_with_subtitles() {
    let s = Server::with_models("").await;
    let (_, key) = s.admin("payg");
    let created = create(
        &s,
        &key,
        json!({
            "model": "speech-2.8-hd", "text": TEXT,
            "voice_setting": {"voice_id": "English_expressive_narrator"},
            "audio_setting": {"audio_sample_rate": 24000, "format": "mp3"},
        }),
    )
    .await;
    assert_eq!(created["base_resp"]["status_code"], 0, "{created}");
    let task_id = created["task_id"].as_i64().expect("task_id");
    let file_id = created["file_id"].as_i64().expect("file_id");
    assert!(created["task_token"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    assert!(
        created["usage_characters"]
            .as_u64()
            .expect("usage_characters")
            > 200
    );

    let done = wait(&s, &key, task_id, Duration::from_secs(120)).await;
    assert_eq!(done["status"], "Success", "{done}");
    assert_eq!(done["file_id"], file_id);
    let members = output(&s, &key, file_id).await;
    let audio = member(&members, "speech.mp3");
    let pcm = maximin_audio::decode(audio).expect("mp3 decodes");
    assert_eq!(pcm.sample_rate, 24_000);
    let secs = pcm.duration_secs();
    assert!(
        (8.0..40.0).contains(&secs),
        "{secs:.1} s for five sentences"
    );
    assert!(pcm.rms_dbfs() > -35.0, "the audio is not silent");
    let extra: Value =
        serde_json::from_slice(member(&members, "speech.extra.json")).expect("extra");
    let reported = extra["audio_length"].as_f64().expect("ms") / 1000.0;
    assert!(
        (reported - secs).abs() < 0.2 + secs * 0.03,
        "{reported} vs {secs}"
    );
    assert_eq!(extra["audio_size"], audio.len());
    check_subtitles(member(&members, "speech.subtitle.json"), secs, 5);
    assert_eq!(done["extra_info"]["audio_length"], extra["audio_length"]);
    assert_eq!(
        done["extra_info"]["usage_characters"],
        created["usage_characters"]
    );

    // The output is listed as the account's file, and another account cannot query the task.
    let list = s.get("/v1/files/list?purpose=t2a_async", &key).await;
    assert_eq!(list.body["files"][0]["file_id"], file_id);
    let (_, other) = s.admin("payg");
    let r = s
        .get(
            &format!("/v1/query/t2a_async_query_v2?task_id={task_id}"),
            &other,
        )
        .await;
    assert_eq!(r.body["base_resp"]["status_code"], 2013, "{:?}", r.body);

    // Metered at creation, in characters.
    let usage = s.get("/v1/account/usage", &key).await;
    let by_model = usage.body["data"]["by_model"].to_string();
    assert!(by_model.contains("speech-2.8-hd"), "{by_model}");
    assert_eq!(
        usage.body["data"]["total"]["characters"], created["usage_characters"],
        "{by_model}"
    );
}

#[tokio::test]
async fn a_text_file_speaks_and_the_illegal_character_rule_holds_both_ways() {
    let s = Server::with_models("").await;
    let (_, key) = s.admin("payg");
    // A text with 5% control characters is spoken, and the ratio is reported.
    let mut text = String::from("Files can hold the text. ");
    text.push_str(&"Here is more of it. ".repeat(3));
    let n = text.chars().count();
    let bad = n / 19; // ≈ 5% of the whole
    text.push_str(&"\u{7}".repeat(bad));
    let up = s
        .upload(&key, "t2a_async_input", "in.txt", text.clone().into_bytes())
        .await;
    let text_file = up.body["file"]["file_id"].as_i64().expect("file id");
    let created = create(
        &s,
        &key,
        json!({
            "model": "speech-2.8-turbo", "text_file_id": text_file,
            "voice_setting": {"voice_id": "male-qn-qingse"},
            "language_boost": "English",
        }),
    )
    .await;
    assert_eq!(created["base_resp"]["status_code"], 0, "{created}");
    let done = wait(
        &s,
        &key,
        created["task_id"].as_i64().expect("id"),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(done["status"], "Success", "{done}");
    let ratio = done["extra_info"]["invisible_character_ratio"]
        .as_f64()
        .expect("ratio");
    assert!((0.03..=0.10).contains(&ratio), "ratio {ratio}");
    let members = output(&s, &key, done["file_id"].as_i64().expect("file")).await;
    let pcm = maximin_audio::decode(member(&members, "speech.mp3")).expect("decodes");
    assert!(pcm.duration_secs() > 2.0);

    // More than 10%: refused at creation with 1042, as text and as a file.
    let worse = format!("Too many. {}", "\u{1}".repeat(10));
    let r = create(
        &s,
        &key,
        json!({"model": "speech-2.8-turbo", "text": worse, "voice_setting": {"voice_id": "male-qn-qingse"}}),
    )
    .await;
    assert_eq!(r["base_resp"]["status_code"], 1042, "{r}");
    let up = s
        .upload(&key, "t2a_async_input", "bad.txt", worse.into_bytes())
        .await;
    let r = create(
        &s,
        &key,
        json!({
            "model": "speech-2.8-turbo",
            "text_file_id": up.body["file"]["file_id"].to_string(),
            "voice_setting": {"voice_id": "male-qn-qingse"},
        }),
    )
    .await;
    assert_eq!(r["base_resp"]["status_code"], 1042, "{r}");

    // Mistakes name their field.
    for (body, field) in [
        (
            json!({"model": "speech-2.8-turbo", "voice_setting": {"voice_id": "male-qn-qingse"}}),
            "text",
        ),
        (
            json!({"model": "speech-2.8-turbo", "text": "a", "text_file_id": 5, "voice_setting": {"voice_id": "male-qn-qingse"}}),
            "text_file_id",
        ),
        (
            json!({"model": "speech-2.8-turbo", "text_file_id": 12345, "voice_setting": {"voice_id": "male-qn-qingse"}}),
            "file_id",
        ),
        (
            json!({"model": "speech-2.8-turbo", "text": "Hello.", "voice_setting": {"voice_id": "nobody_at_all"}}),
            "voice_id",
        ),
    ] {
        let r = create(&s, &key, body).await;
        assert_ne!(r["base_resp"]["status_code"], 0, "{r}");
        let msg = r["base_resp"]["status_msg"].as_str().unwrap_or("");
        assert!(msg.contains(field), "'{msg}' should name {field}");
    }
}

#[tokio::test]
async fn a_task_queued_before_a_restart_finishes_after_it() {
    // The first server runs no tasks: the task waits in the database.
    let s = Server::with_models("[tasks]\nworkers = 0\n").await;
    let (_, key) = s.admin("payg");
    let created = create(
        &s,
        &key,
        json!({
            "model": "speech-2.8-turbo", "text": "Tasks outlive the process that queued them.",
            "voice_setting": {"voice_id": "female-shaonv"}, "language_boost": "English",
        }),
    )
    .await;
    let task_id = created["task_id"].as_i64().expect("task_id");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let q = wait(&s, &key, task_id, Duration::ZERO).await;
    assert_eq!(q["status"], "Processing", "{q}");

    let s = s.restart("[tasks]\nworkers = 1\n", &[]).await;
    let done = wait(&s, &key, task_id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "Success", "{done}");
    let members = output(&s, &key, done["file_id"].as_i64().expect("file")).await;
    let pcm = maximin_audio::decode(member(&members, "speech.mp3")).expect("decodes");
    assert!(pcm.duration_secs() > 1.0);
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A zip of `files`, stored (no compression).
fn stored_zip(files: &[(&str, &[u8])]) -> Vec<u8> {
    let (mut out, mut central) = (Vec::new(), Vec::new());
    let le16 = |v: &mut Vec<u8>, n: usize| v.extend_from_slice(&(n as u16).to_le_bytes());
    let le32 = |v: &mut Vec<u8>, n: u32| v.extend_from_slice(&n.to_le_bytes());
    for (name, data) in files {
        let (crc, len, at) = (crc32(data), data.len() as u32, out.len() as u32);
        le32(&mut out, 0x0403_4b50);
        le16(&mut out, 20);
        le16(&mut out, 0);
        le16(&mut out, 0);
        le32(&mut out, 0);
        le32(&mut out, crc);
        le32(&mut out, len);
        le32(&mut out, len);
        le16(&mut out, name.len());
        le16(&mut out, 0);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        le32(&mut central, 0x0201_4b50);
        le16(&mut central, 20);
        le16(&mut central, 20);
        le16(&mut central, 0);
        le16(&mut central, 0);
        le32(&mut central, 0);
        le32(&mut central, crc);
        le32(&mut central, len);
        le32(&mut central, len);
        le16(&mut central, name.len());
        for _ in 0..3 {
            le16(&mut central, 0);
        }
        le16(&mut central, 0);
        le32(&mut central, 0);
        le32(&mut central, at);
        central.extend_from_slice(name.as_bytes());
    }
    let (cd_at, cd_len) = (out.len() as u32, central.len() as u32);
    out.extend(central);
    le32(&mut out, 0x0605_4b50);
    le32(&mut out, 0);
    le16(&mut out, files.len());
    le16(&mut out, files.len());
    le32(&mut out, cd_len);
    le32(&mut out, cd_at);
    le16(&mut out, 0);
    out
}

/// Committed blobs and temporary files under the data dir's `files/`.
fn blobs(data: &std::path::Path) -> (usize, usize) {
    let (mut committed, mut temp) = (0, 0);
    for dir in std::fs::read_dir(data.join("files"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for e in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().to_string();
            committed += usize::from(name.ends_with(".mxf"));
            temp += usize::from(name.starts_with(".tmp-"));
        }
    }
    (committed, temp)
}

#[tokio::test]
async fn parts_a_crash_left_go_when_the_task_runs_again() {
    let s = Server::with_models("").await;
    let (_, key) = s.admin("payg");
    let long = "A long file keeps the task busy while the server is stopped. ".repeat(60);
    let zip = stored_zip(&[
        ("a.txt", b"The first part is short."),
        ("b.txt", long.as_bytes()),
    ]);
    let up = s.upload(&key, "t2a_async_input", "in.zip", zip).await;
    assert_eq!(up.body["base_resp"]["status_code"], 0, "{:?}", up.body);
    let created = create(
        &s,
        &key,
        json!({
            "model": "speech-2.8-turbo", "text_file_id": up.body["file"]["file_id"],
            "voice_setting": {"voice_id": "English_expressive_narrator"},
        }),
    )
    .await;
    assert_eq!(created["base_resp"]["status_code"], 0, "{created}");
    let task_id = created["task_id"].as_i64().expect("task_id");
    // The upload and the first part are committed; the second is being written.
    let data = s.dir.path().to_path_buf();
    let start = Instant::now();
    loop {
        let (committed, temp) = blobs(&data);
        if committed >= 2 && temp >= 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no part in progress: {committed} blobs, {temp} temporary"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let dir = s.crash();
    assert_eq!(blobs(dir.path()).0, 2, "the crash left the first part");

    let s = Server::start_in(dir, &[]).await;
    let done = wait(&s, &key, task_id, Duration::from_secs(120)).await;
    assert_eq!(done["status"], "Success", "{done}");
    let members = output(&s, &key, done["file_id"].as_i64().expect("file")).await;
    assert!(maximin_audio::decode(member(&members, "b.mp3")).is_ok());
    // What is left: the upload and the output, nothing of either attempt's parts.
    let list = s.get("/v1/files/list", &key).await;
    let files = list.body["files"].as_array().expect("files").len();
    assert_eq!(files, 2, "{:?}", list.body);
    assert_eq!(
        blobs(s.dir.path()).0,
        files,
        "only recorded files have blobs"
    );
}

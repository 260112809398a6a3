//! Media (issue 15) over HTTP: images, video tasks and templates, music,
//! lyrics; the sandbox for `mmx_test_` keys; webhooks signed and verified
//! by a receiver in the test; tasks that outlive a restart.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::helpers::Server;

/// A sandbox key on a fresh payg account: (account id, secret).
fn sandbox(s: &Server) -> (String, String) {
    let a = s.account("payg");
    let (_, secret) = s.key(&a, &["--test"]);
    (a, secret)
}

fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

/// Polls a video query until the task ends.
async fn wait_video(s: &Server, key: &str, path: &str, task_id: &str) -> Value {
    let start = Instant::now();
    loop {
        let r = s.get(&format!("{path}?task_id={task_id}"), key).await;
        assert_eq!(r.status, 200);
        let st = r.body["status"].as_str().unwrap_or_default().to_owned();
        if st == "Success" || st == "Fail" || start.elapsed() > Duration::from_secs(120) {
            return r.body;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn data_url(bytes: &[u8]) -> String {
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// A small PNG of one colour.
fn solid_png(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut e = png::Encoder::new(&mut out, w, h);
        e.set_color(png::ColorType::Rgb);
        e.set_depth(png::BitDepth::Eight);
        let mut wr = e.write_header().expect("header");
        let px: Vec<u8> = (0..w * h).flat_map(|_| rgb).collect();
        wr.write_image_data(&px).expect("data");
    }
    out
}

#[tokio::test]
async fn sandbox_images_match_the_request_and_the_seed() {
    let s = Server::start().await;
    let (account, key) = sandbox(&s);
    let body = |seed: u64, fmt: &str| {
        json!({"model": "image-01", "prompt": "a red lighthouse at dusk", "width": 768, "height": 512,
               "n": 2, "seed": seed, "response_format": fmt})
    };
    let a = s
        .post("/v1/image_generation", &key, body(42, "base64"))
        .await;
    assert_eq!(a.body["base_resp"]["status_code"], 0, "{}", a.body);
    assert_eq!(a.body["metadata"]["sandbox"], true);
    assert_eq!(a.body["metadata"]["success_count"], 2);
    assert_eq!(a.header("x-maximin-upstream"), Some("sandbox"));
    let decode = |v: &Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64"))
            .expect("decodes")
    };
    let first = decode(&a.body["data"]["image_base64"][0]);
    assert_eq!(png_size(&first), (768, 512));
    let again = s
        .post("/v1/image_generation", &key, body(42, "base64"))
        .await;
    assert_eq!(
        decode(&again.body["data"]["image_base64"][0]),
        first,
        "same seed, same image"
    );
    let other = s
        .post("/v1/image_generation", &key, body(43, "base64"))
        .await;
    assert_ne!(decode(&other.body["data"]["image_base64"][0]), first);

    // Links by default, readable without a key until they expire.
    let linked = s.post("/v1/image_generation", &key, body(42, "url")).await;
    assert!(linked.body["data"]["image_base64"].is_null());
    let url = linked.body["data"]["image_urls"][0].as_str().expect("url");
    let (status, bytes) = s.get_bytes(url, None).await;
    assert_eq!(status, 200);
    assert_eq!(bytes, first);

    // The aspect ratio wins over width and height.
    let wide = s
        .post("/v1/image_generation", &key, json!({"model": "image-01", "prompt": "x", "aspect_ratio": "16:9", "width": 512, "height": 512, "response_format": "base64"}))
        .await;
    assert_eq!(
        png_size(&decode(&wide.body["data"]["image_base64"][0])),
        (1280, 720)
    );

    // Metered per image made: 2 + 2 + 2 + 2 + 1.
    let (_, admin) = s.key(&account, &["--scope", "admin"]);
    let usage = s.get("/v1/account/usage", &admin).await;
    assert_eq!(usage.body["data"]["total"]["images"], 9, "{}", usage.body);
}

#[tokio::test]
async fn image_mistakes_name_the_field_and_missing_weights_say_what_to_bring() {
    let s = Server::start().await;
    let (_, key) = s.admin("payg");
    let r = s
        .post(
            "/v1/image_generation",
            &key,
            json!({"model": "image-01", "prompt": "x", "width": 500, "height": 512}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["base_resp"]["status_code"], 2013);
    assert!(r.body["base_resp"]["status_msg"]
        .as_str()
        .unwrap_or("")
        .contains("width"));
    // A live key on an install without image weights: the model is unavailable, and the message says how to mend it.
    let r = s
        .post(
            "/v1/image_generation",
            &key,
            json!({"model": "image-01", "prompt": "a cat"}),
        )
        .await;
    let msg = r.body["base_resp"]["status_msg"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert_eq!(r.body["base_resp"]["status_code"], 2061, "{}", r.body);
    assert!(msg.contains("maximin models pull image-01"), "{msg}");
    let m = s.get("/v1/models/image-01", &key).await;
    assert_eq!(m.body["data"]["available"], false);
    assert!(m.body["data"]["setup_hint"]
        .as_str()
        .unwrap_or("")
        .contains("diffusers"));
}

#[tokio::test]
async fn sandbox_video_tasks_end_in_mp4s_of_the_asked_size_and_length() {
    let s = Server::start().await;
    let (account, key) = sandbox(&s);
    let r = s
        .post("/v1/video_generation", &key, json!({"model": "MiniMax-Hailuo-02", "prompt": "waves [Pan left]", "duration": 6, "resolution": "768P"}))
        .await;
    assert_eq!(r.body["base_resp"]["status_code"], 0, "{}", r.body);
    let task = r.body["task_id"]
        .as_str()
        .expect("task_id is a string")
        .to_owned();
    let done = wait_video(&s, &key, "/v1/query/video_generation", &task).await;
    assert_eq!(done["status"], "Success", "{done}");
    assert_eq!(done["sandbox"], true);
    assert_eq!(
        (done["video_width"].clone(), done["video_height"].clone()),
        (json!(1366), json!(768))
    );
    let file_id = done["file_id"].as_str().expect("file_id is a string");
    let f = s
        .get(&format!("/v1/files/retrieve?file_id={file_id}"), &key)
        .await;
    assert_eq!(f.body["file"]["purpose"], "video_generation");
    let url = f.body["file"]["download_url"].as_str().expect("link");
    let (status, mp4) = s.get_bytes(url, None).await;
    assert_eq!(status, 200);
    let info = maximin_video::probe(&mp4).expect("an MP4");
    assert_eq!((info.width, info.height), (1366, 768));
    assert!((info.duration_s - 6.0).abs() < 0.05, "{}", info.duration_s);

    // First and last frame: Hailuo-02 only.
    let frame = data_url(&solid_png(320, 320, [200, 30, 30]));
    let r = s
        .post("/v1/video_generation", &key, json!({"model": "MiniMax-Hailuo-2.3", "first_frame_image": frame, "last_frame_image": frame}))
        .await;
    assert_eq!(r.body["base_resp"]["status_code"], 2013);
    assert!(r.body["base_resp"]["status_msg"]
        .as_str()
        .unwrap_or("")
        .contains("MiniMax-Hailuo-02"));
    // Durations the model does not take are refused with what it takes.
    let r = s
        .post("/v1/video_generation", &key, json!({"model": "MiniMax-Hailuo-02", "prompt": "x", "resolution": "1080P", "duration": 10}))
        .await;
    assert_eq!(r.body["base_resp"]["status_code"], 2013);
    assert!(
        r.body["base_resp"]["status_msg"]
            .as_str()
            .unwrap_or("")
            .contains("6s"),
        "{}",
        r.body
    );
    // Another account's task is not there.
    let (_, stranger) = sandbox(&s);
    let q = s
        .get(
            &format!("/v1/query/video_generation?task_id={task}"),
            &stranger,
        )
        .await;
    assert_ne!(q.body["base_resp"]["status_code"], 0);

    // Metered per second of video asked for: the one 6-second task (the
    // refused requests are not counted).
    let (_, admin) = s.key(&account, &["--scope", "admin"]);
    let usage = s.get("/v1/account/usage", &admin).await;
    assert_eq!(
        usage.body["data"]["total"]["media_ms"], 6_000,
        "{}",
        usage.body
    );
}

#[tokio::test]
async fn templates_need_their_inputs() {
    let s = Server::start().await;
    let (_, key) = sandbox(&s);
    let r = s
        .post(
            "/v1/video_template_generation",
            &key,
            json!({"template_id": "393769180141805569", "text_inputs": [{"value": "Lion"}]}),
        )
        .await;
    assert_eq!(r.body["base_resp"]["status_code"], 2013, "{}", r.body);
    assert!(r.body["base_resp"]["status_msg"]
        .as_str()
        .unwrap_or("")
        .contains("media_inputs"));
    let photo = data_url(&solid_png(320, 320, [20, 120, 220]));
    let r = s
        .post(
            "/v1/video_template_generation",
            &key,
            json!({"template_id": "393769180141805569", "media_inputs": [{"value": photo}]}),
        )
        .await;
    assert!(
        r.body["base_resp"]["status_msg"]
            .as_str()
            .unwrap_or("")
            .contains("text_inputs"),
        "{}",
        r.body
    );
    let r = s
        .post("/v1/video_template_generation", &key, json!({"template_id": "393769180141805569", "media_inputs": [{"value": photo}], "text_inputs": [{"value": "Lion"}]}))
        .await;
    assert_eq!(r.body["base_resp"]["status_code"], 0, "{}", r.body);
    let task = r.body["task_id"].as_str().expect("task_id").to_owned();
    let done = wait_video(&s, &key, "/v1/query/video_template_generation", &task).await;
    assert_eq!(done["status"], "Success", "{done}");
    let (status, mp4) = s
        .get_bytes(done["video_url"].as_str().expect("video_url"), None)
        .await;
    assert_eq!(status, 200);
    assert!(maximin_video::probe(&mp4).is_ok());
}

#[tokio::test]
async fn sandbox_music_decodes_to_its_stated_length() {
    let s = Server::start().await;
    let (account, key) = sandbox(&s);
    let lyrics = "[Verse]\nMorning light on the water\nWe walk the long way home\n[Chorus]\nSing it loud\nSing it clear";
    let r = s
        .post(
            "/v1/music_generation",
            &key,
            json!({"model": "music-2.0", "prompt": "upbeat pop", "lyrics": lyrics}),
        )
        .await;
    assert_eq!(r.body["base_resp"]["status_code"], 0, "{}", r.body);
    assert_eq!(r.body["data"]["status"], 2);
    assert_eq!(r.body["extra_info"]["sandbox"], true);
    let mp3 = hex::decode(r.body["data"]["audio"].as_str().expect("hex")).expect("hex decodes");
    assert_eq!(r.body["extra_info"]["music_size"], mp3.len());
    let pcm = maximin_audio::decode(&mp3).expect("an MP3");
    let first_ms = r.body["extra_info"]["music_duration"].as_u64().expect("ms");
    let stated = first_ms as f64 / 1000.0;
    assert!(
        (pcm.duration_secs() - stated).abs() < 0.1,
        "{} vs {stated}",
        pcm.duration_secs()
    );
    assert_eq!(pcm.sample_rate, 44_100);

    let r = s
        .post("/v1/music_generation", &key, json!({"model": "music-2.0", "prompt": "calm", "lyrics": lyrics, "output_format": "url", "audio_setting": {"format": "wav", "sample_rate": 24000}}))
        .await;
    assert_eq!(r.body["data"]["audio"], r.body["data"]["audio_url"]);
    let second_ms = r.body["extra_info"]["music_duration"].as_u64().expect("ms");
    let (status, wav) = s
        .get_bytes(r.body["data"]["audio"].as_str().expect("url"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(&wav[..4], b"RIFF");
    let r = s
        .post(
            "/v1/music_generation",
            &key,
            json!({"model": "music-2.0", "prompt": "pop"}),
        )
        .await;
    assert_eq!(r.body["base_resp"]["status_code"], 2013);

    // Metered per second of music made (the refused request not at all).
    let (_, admin) = s.key(&account, &["--scope", "admin"]);
    let usage = s.get("/v1/account/usage", &admin).await;
    assert_eq!(
        usage.body["data"]["total"]["media_ms"],
        first_ms + second_ms,
        "{}",
        usage.body
    );
}

/// Serves `app` on a loopback port: the URL of its `/hook`.
async fn on_loopback(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/hook")
}

/// Creates a text-to-video task with `callback_url: hook` and waits for
/// its success: (task id, the final query).
async fn video_with_hook(s: &Server, key: &str, hook: &str) -> (String, Value) {
    let r = s
        .post(
            "/v1/video_generation",
            key,
            json!({"model": "T2V-01", "prompt": "a kite", "callback_url": hook}),
        )
        .await;
    assert_eq!(r.body["base_resp"]["status_code"], 0, "{}", r.body);
    let task = r.body["task_id"].as_str().expect("task").to_owned();
    let done = wait_video(s, key, "/v1/query/video_generation", &task).await;
    assert_eq!(done["status"], "Success");
    (task, done)
}

/// A webhook receiver: answers the handshake, records the signed posts.
async fn receiver() -> (String, Arc<Mutex<Vec<(String, String, Value)>>>) {
    use axum::routing::post;
    let seen: Arc<Mutex<Vec<(String, String, Value)>>> = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: axum::http::HeaderMap, body: String| {
            let record = record.clone();
            async move {
                let v: Value = serde_json::from_str(&body).unwrap_or_default();
                if let Some(c) = v.get("challenge") {
                    return axum::Json(json!({"challenge": c}));
                }
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                let signed = format!("{}|{}", h("x-maximin-timestamp"), h("x-maximin-signature"));
                record.lock().expect("lock").push((signed, body, v));
                axum::Json(json!({}))
            }
        }),
    );
    (on_loopback(app).await, seen)
}

fn hmac_hex(secret: &str, msg: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(msg);
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn webhooks_are_verified_signed_and_sent_once_per_status() {
    let s = Server::with_models("[media]\nallow_private_urls = true\n").await;
    let (account, key) = sandbox(&s);
    let (_, admin) = s.key(&account, &["--scope", "admin"]);
    let secret = s.get("/v1/account/webhook_secret", &admin).await;
    let secret = secret.body["data"]["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let (hook, seen) = receiver().await;
    let (task, done) = video_with_hook(&s, &key, &hook).await;
    let start = Instant::now();
    while seen.lock().expect("lock").len() < 2 && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = seen.lock().expect("lock").clone();
    let statuses: Vec<&str> = seen
        .iter()
        .map(|(_, _, v)| v["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(statuses, ["processing", "success"], "each status once");
    for (signed, body, v) in &seen {
        let (ts, sig) = signed.split_once('|').expect("headers");
        assert_eq!(
            *sig,
            format!(
                "v1={}",
                hmac_hex(&secret, format!("{ts}.{body}").as_bytes())
            )
        );
        assert_eq!(v["task_id"], task.as_str());
    }
    assert_eq!(seen[1].2["file_id"], done["file_id"]);

    // A receiver that does not echo the challenge: no task.
    let r = s
        .post(
            "/v1/video_generation",
            &key,
            json!({"model": "T2V-01", "prompt": "a kite", "callback_url": s.url("/healthz")}),
        )
        .await;
    assert_eq!(r.body["base_resp"]["status_code"], 2013, "{}", r.body);
    assert!(r.body["base_resp"]["status_msg"]
        .as_str()
        .unwrap_or("")
        .contains("callback_url"));
}

/// A receiver that answers the handshake but refuses deliveries (503)
/// until `open` is set; records what it took.
async fn closed_receiver() -> (
    String,
    Arc<std::sync::atomic::AtomicBool>,
    Arc<Mutex<Vec<Value>>>,
    Arc<Mutex<Vec<String>>>,
) {
    use axum::routing::post;
    use std::sync::atomic::{AtomicBool, Ordering};
    let open = Arc::new(AtomicBool::new(false));
    // The status of every delivery refused, in order.
    let refused: Arc<Mutex<Vec<String>>> = Arc::default();
    let taken: Arc<Mutex<Vec<Value>>> = Arc::default();
    let (o, r, t) = (open.clone(), refused.clone(), taken.clone());
    let app = axum::Router::new().route(
        "/hook",
        post(move |body: String| {
            let (o, r, t) = (o.clone(), r.clone(), t.clone());
            async move {
                let v: Value = serde_json::from_str(&body).unwrap_or_default();
                if let Some(c) = v.get("challenge") {
                    return (
                        axum::http::StatusCode::OK,
                        axum::Json(json!({"challenge": c})),
                    );
                }
                if !o.load(Ordering::SeqCst) {
                    r.lock()
                        .expect("lock")
                        .push(v["status"].as_str().unwrap_or("").to_owned());
                    return (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(json!({})),
                    );
                }
                t.lock().expect("lock").push(v);
                (axum::http::StatusCode::OK, axum::Json(json!({})))
            }
        }),
    );
    (on_loopback(app).await, open, taken, refused)
}

#[tokio::test]
async fn webhook_deliveries_refused_before_a_restart_arrive_after_it_once_each() {
    use std::sync::atomic::Ordering;
    let config = "[media]\nallow_private_urls = true\n";
    let env = [("MAXIMIN_WEBHOOK_RETRY_MS", "200")];
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("maximin.toml"), config).expect("config");
    let s = Server::start_with_env(dir, &[], &env).await;
    let (_, key) = sandbox(&s);
    let (hook, open, taken, refused) = closed_receiver().await;
    let (task, _) = video_with_hook(&s, &key, &hook).await;
    // Both statuses refused, and retried, before the restart (the task
    // has ended then: nothing is left for the restarted server but the
    // deliveries themselves).
    let both = || {
        let r = refused.lock().expect("lock");
        r.len() >= 4 && r.iter().any(|s| s == "processing") && r.iter().any(|s| s == "success")
    };
    let start = Instant::now();
    while !both() && start.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        both(),
        "retries before the restart: {:?}",
        refused.lock().expect("lock")
    );
    let s = s.restart("", &env).await;
    open.store(true, Ordering::SeqCst);
    let start = Instant::now();
    while taken.lock().expect("lock").len() < 2 && start.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Time for a duplicate to show up, were there one.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let taken = taken.lock().expect("lock").clone();
    let mut statuses: Vec<&str> = taken
        .iter()
        .map(|v| v["status"].as_str().unwrap_or(""))
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        ["processing", "success"],
        "each status once: {taken:?}"
    );
    assert!(taken.iter().all(|v| v["task_id"] == task.as_str()));
    drop(s);
}

#[tokio::test]
async fn loopback_webhooks_are_refused_unless_the_operator_allows_them() {
    let s = Server::start().await;
    let (_, key) = sandbox(&s);
    let (hook, seen) = receiver().await;
    let r = s
        .post(
            "/v1/video_generation",
            &key,
            json!({"model": "T2V-01", "prompt": "a kite", "callback_url": hook}),
        )
        .await;
    assert_eq!(r.body["base_resp"]["status_code"], 2013, "{}", r.body);
    assert!(r.body["base_resp"]["status_msg"]
        .as_str()
        .unwrap_or("")
        .contains("callback_url"));
    assert!(seen.lock().expect("lock").is_empty(), "nothing was sent");
}

#[tokio::test]
async fn a_video_task_queued_before_a_restart_finishes_after_it() {
    let s = Server::with_models("[tasks]\nworkers = 0\n").await;
    let (_, key) = sandbox(&s);
    let r = s
        .post(
            "/v1/video_generation",
            &key,
            json!({"model": "T2V-01", "prompt": "snow"}),
        )
        .await;
    let task = r.body["task_id"].as_str().expect("task").to_owned();
    let q = s
        .get(&format!("/v1/query/video_generation?task_id={task}"), &key)
        .await;
    assert_eq!(q.body["status"], "Queueing");
    let s = s.restart("[tasks]\nworkers = 1\n", &[]).await;
    let done = wait_video(&s, &key, "/v1/query/video_generation", &task).await;
    assert_eq!(done["status"], "Success", "{done}");
    assert_eq!(done["video_width"], 1280);
}

#[tokio::test]
async fn lyrics_come_with_section_tags_from_the_local_chat_model() {
    let s = Server::with_models("").await;
    let (_, key) = s.admin("payg");
    let r = s
        .post(
            "/v1/lyrics_generation",
            &key,
            json!({"mode": "write_full_song", "prompt": "a happy pop song about the sea"}),
        )
        .await;
    assert_eq!(r.body["base_resp"]["status_code"], 0, "{}", r.body);
    let lyrics = r.body["lyrics"].as_str().expect("lyrics");
    let tags = lyrics
        .lines()
        .filter(|l| l.starts_with('[') && l.ends_with(']'))
        .count();
    assert!(tags >= 3, "{lyrics}");
    assert!(!r.body["song_title"].as_str().unwrap_or("").is_empty());
    assert!(r.body["style_tags"].as_str().unwrap_or("").contains("Pop"));
    let r = s
        .post("/v1/lyrics_generation", &key, json!({"mode": "edit"}))
        .await;
    assert_eq!(r.body["base_resp"]["status_code"], 2013);
}

#[tokio::test]
async fn the_minimax_cloud_makes_images_videos_and_songs_kept_in_our_file_store() {
    use crate::upstream_mock::{MockKind, MockUpstream};
    let mock = MockUpstream::start(MockKind::MiniMax).await;
    mock.expect_key("cloud-key");
    let config = format!(
        r#"
[upstreams.mm]
kind = "minimax"
base_url = "{base}"
api_key_env = "MM_KEY"
paid = true

[[models]]
id = "image-01"
modality = "image"
context_window = 0
engine = "upstream:mm"
capabilities = ["text-to-image", "image-to-image"]

[[models]]
id = "MiniMax-Hailuo-02"
modality = "video"
context_window = 0
engine = "upstream:mm"
capabilities = ["text-to-video", "image-to-video", "first-last-frame"]

[[models]]
id = "music-2.0"
modality = "music"
context_window = 0
engine = "upstream:mm"
capabilities = ["music"]
"#,
        base = mock.url
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("maximin.toml"), config).expect("config");
    let s = Server::start_with_env(
        dir,
        &[],
        &[("MM_KEY", "cloud-key"), ("MAXIMIN_MEDIA_POLL_MS", "50")],
    )
    .await;
    let (_, key) = s.admin("payg");

    let r = s
        .post("/v1/image_generation", &key, json!({"model": "image-01", "prompt": "a boat", "width": 512, "height": 512, "seed": 3, "response_format": "base64"}))
        .await;
    assert_eq!(r.body["base_resp"]["status_code"], 0, "{}", r.body);
    assert_eq!(r.header("x-maximin-upstream"), Some("mm:image-01"));
    let png = base64::engine::general_purpose::STANDARD
        .decode(r.body["data"]["image_base64"][0].as_str().expect("b64"))
        .expect("decodes");
    assert_eq!(png_size(&png), (512, 512));
    assert!(r.body["metadata"].get("sandbox").is_none());

    let r = s
        .post(
            "/v1/video_generation",
            &key,
            json!({"model": "MiniMax-Hailuo-02", "prompt": "a boat"}),
        )
        .await;
    let task = r.body["task_id"].as_str().expect("task").to_owned();
    let done = wait_video(&s, &key, "/v1/query/video_generation", &task).await;
    assert_eq!(done["status"], "Success", "{done}");
    // The video lives in maximin's store: our file id, our link.
    let file_id = done["file_id"].as_str().expect("file");
    let f = s
        .get(&format!("/v1/files/retrieve?file_id={file_id}"), &key)
        .await;
    let url = f.body["file"]["download_url"]
        .as_str()
        .expect("link")
        .to_owned();
    assert!(url.starts_with(&s.base), "{url}");
    let (_, mp4) = s.get_bytes(&url, None).await;
    assert_eq!(
        mp4,
        maximin_video::sandbox_clip(64, 48, 2, 24, 1).expect("clip")
    );
    // The cloud's download URL was fetched without the key.
    let dl = mock
        .received()
        .into_iter()
        .find(|r| r.path.starts_with("/download/"))
        .expect("fetched");
    assert!(dl.header("authorization").is_none());

    let r = s
        .post(
            "/v1/music_generation",
            &key,
            json!({"model": "music-2.0", "prompt": "folk", "lyrics": "[Verse]\none\ntwo\nthree"}),
        )
        .await;
    assert_eq!(r.body["base_resp"]["status_code"], 0, "{}", r.body);
    let mp3 = hex::decode(r.body["data"]["audio"].as_str().expect("hex")).expect("hex");
    let pcm = maximin_audio::decode(&mp3).expect("mp3");
    assert!(
        (pcm.duration_secs() - 4.0).abs() < 0.2,
        "{}",
        pcm.duration_secs()
    );

    // Sandbox keys never reach the cloud.
    let before = mock.hits();
    let (_, test_key) = sandbox(&s);
    let r = s
        .post(
            "/v1/image_generation",
            &test_key,
            json!({"model": "image-01", "prompt": "a boat", "response_format": "base64"}),
        )
        .await;
    assert_eq!(r.body["metadata"]["sandbox"], true);
    assert_eq!(mock.hits(), before);
}

#[tokio::test]
async fn the_openai_sdk_generates_images() {
    let s = Server::start().await;
    let (_, key) = sandbox(&s);
    let out = crate::sdk::sdk(&s, &key, "openai_sdk.py", "images", &[]);
    assert_eq!(out["count"], 2, "{out}");
    assert_eq!(out["sizes"], json!([[768, 512], [768, 512]]));
    assert_eq!(out["png"], true);
    assert_eq!(out["distinct"], true);
    let (status, bytes) = s.get_bytes(out["url"].as_str().expect("url"), None).await;
    assert_eq!(status, 200);
    assert_eq!(png_size(&bytes), (512, 512));
    assert_eq!(out["small"]["param"], "size", "{out}");
    assert_eq!(out["edit_size"], json!([512, 512]), "{out}");
}

/// A server whose data dir holds the tiny self-built Stable Diffusion model
/// (random weights, the real architecture) as `image-01`.
async fn with_tiny_image_model() -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("models").join("image-01");
    std::fs::create_dir_all(&model).expect("models dir");
    maximin_engine_diffusion::testing::write_tiny_model(&model, 11).expect("tiny model");
    Server::start_in(dir, &[]).await
}

fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let img = maximin_engine_diffusion::decode_image(bytes).expect("decodes");
    (img.width, img.height, img.pixels)
}

fn variance(px: &[u8]) -> f64 {
    let n = px.len() as f64;
    let mean = px.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    px.iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n
}

#[tokio::test]
async fn the_local_diffusion_engine_draws_images_of_the_asked_size_and_seed() {
    let s = with_tiny_image_model().await;
    let (_, key) = s.admin("payg");
    let m = s.get("/v1/models/image-01", &key).await;
    assert_eq!(m.body["data"]["available"], true, "{}", m.body);
    let ask = |seed: u64| json!({"model": "image-01", "prompt": "a lighthouse", "width": 512, "height": 768, "seed": seed, "response_format": "base64"});
    let a = s.post("/v1/image_generation", &key, ask(1)).await;
    assert_eq!(a.body["base_resp"]["status_code"], 0, "{}", a.body);
    assert_eq!(a.header("x-maximin-upstream"), Some("local:diffusion"));
    assert!(a.body["metadata"].get("sandbox").is_none());
    let png = |r: &crate::helpers::Resp| {
        base64::engine::general_purpose::STANDARD
            .decode(r.body["data"]["image_base64"][0].as_str().expect("b64"))
            .expect("b64 decodes")
    };
    let first = png(&a);
    let (w, h, px) = decode_png(&first);
    assert_eq!((w, h), (512, 768));
    assert!(
        variance(&px) > 20.0,
        "not blank: variance {}",
        variance(&px)
    );
    let b = s.post("/v1/image_generation", &key, ask(1)).await;
    assert_eq!(png(&b), first, "same seed, same image");
    let c = s.post("/v1/image_generation", &key, ask(2)).await;
    assert_ne!(png(&c), first, "another seed, another image");
}

/// Mean colour of RGB pixels.
fn mean_rgb(px: &[u8]) -> [f64; 3] {
    let mut sum = [0f64; 3];
    for p in px.chunks(3) {
        for i in 0..3 {
            sum[i] += f64::from(p[i]);
        }
    }
    let n = (px.len() / 3) as f64;
    sum.map(|v| v / n)
}

#[tokio::test]
async fn local_videos_from_text_and_from_first_and_last_frames() {
    let s = with_tiny_image_model().await;
    let (_, key) = s.admin("payg");
    let first = solid_png(400, 400, [220, 30, 30]);
    let last = solid_png(400, 400, [30, 30, 220]);
    let r = s
        .post("/v1/video_generation", &key, json!({"model": "MiniMax-Hailuo-02", "prompt": "red to blue [Push in]",
            "first_frame_image": data_url(&first), "last_frame_image": data_url(&last), "resolution": "768P", "duration": 6}))
        .await;
    assert_eq!(r.body["base_resp"]["status_code"], 0, "{}", r.body);
    let task = r.body["task_id"].as_str().expect("task").to_owned();
    let done = wait_video(&s, &key, "/v1/query/video_generation", &task).await;
    assert_eq!(done["status"], "Success", "{done}");
    assert_eq!(done["progress_percent"], 100);
    let file_id = done["file_id"].as_str().expect("file");
    let (status, mp4) = s
        .get_bytes(
            &s.url(&format!("/v1/files/retrieve_content?file_id={file_id}")),
            Some(&key),
        )
        .await;
    assert_eq!(status, 200);
    let info = maximin_video::probe(&mp4).expect("an MP4");
    assert_eq!((info.width, info.height), (1366, 768));
    assert!((info.duration_s - 6.0).abs() < 0.05, "{}", info.duration_s);
    let frame = maximin_video::decode_first_frame(&mp4).expect("decodes");
    let [r0, g0, b0] = mean_rgb(&frame.rgb);
    assert!(
        r0 > 150.0 && g0 < 80.0 && b0 < 80.0,
        "the first frame is the given red one: {r0} {g0} {b0}"
    );

    let r = s
        .post(
            "/v1/video_generation",
            &key,
            json!({"model": "T2V-01", "prompt": "a harbour at dawn [Pan left]"}),
        )
        .await;
    let task = r.body["task_id"].as_str().expect("task").to_owned();
    let done = wait_video(&s, &key, "/v1/query/video_generation", &task).await;
    assert_eq!(done["status"], "Success", "{done}");
    assert_eq!(
        (done["video_width"].clone(), done["video_height"].clone()),
        (json!(1280), json!(720))
    );
}

/// Share of the signal's energy between 300 and 3400 Hz (a high-pass then a
/// low-pass, one pole each, twice).
fn vocal_band_share(samples: &[f32], rate: u32) -> f64 {
    let one_pole = |x: &[f64], fc: f64, high: bool| -> Vec<f64> {
        let a = (-2.0 * std::f64::consts::PI * fc / f64::from(rate)).exp();
        let mut y = vec![0.0; x.len()];
        let mut lp = 0.0;
        for (i, v) in x.iter().enumerate() {
            lp = (1.0 - a) * v + a * lp;
            y[i] = if high { v - lp } else { lp };
        }
        y
    };
    let x: Vec<f64> = samples.iter().map(|&v| f64::from(v)).collect();
    let mut band = one_pole(&x, 300.0, true);
    band = one_pole(&band, 300.0, true);
    band = one_pole(&band, 3400.0, false);
    band = one_pole(&band, 3400.0, false);
    let e = |v: &[f64]| v.iter().map(|s| s * s).sum::<f64>();
    e(&band) / e(&x).max(1e-12)
}

#[tokio::test]
async fn the_composer_sings_the_lyrics_over_its_arrangement() {
    let s = Server::start().await;
    let (_, key) = s.admin("payg");
    let lyrics = "[Verse]\nMorning light upon the water\nWe walk the long way home\n[Chorus]\nSing it loud and sing it clear\nThe summer is here";
    let song = |body: Value| {
        let s = &s;
        let key = key.clone();
        async move {
            let r = s.post("/v1/music_generation", &key, body).await;
            assert_eq!(r.body["base_resp"]["status_code"], 0, "{}", r.body);
            assert_eq!(r.header("x-maximin-upstream"), Some("local:composer"));
            let mp3 = hex::decode(r.body["data"]["audio"].as_str().expect("hex")).expect("hex");
            let pcm = maximin_audio::decode(&mp3).expect("an MP3");
            let stated = r.body["extra_info"]["music_duration"].as_f64().expect("ms") / 1000.0;
            assert!(
                (pcm.duration_secs() - stated).abs() < 0.15,
                "{} vs {stated}",
                pcm.duration_secs()
            );
            pcm
        }
    };
    let sung = song(json!({"model": "music-2.0", "prompt": "calm acoustic folk, 90 bpm, piano", "lyrics": lyrics, "seed": 4})).await;
    let plain = song(json!({"model": "music-2.0", "prompt": "calm acoustic folk, 90 bpm, piano", "is_instrumental": true, "seed": 4})).await;
    assert!(sung.duration_secs() > 8.0, "{}", sung.duration_secs());
    let mono = |p: &maximin_audio::Pcm| p.to_mono().samples;
    let (a, b) = (
        vocal_band_share(&mono(&sung), sung.sample_rate),
        vocal_band_share(&mono(&plain), plain.sample_rate),
    );
    assert!(
        a > b * 1.3,
        "the sung song has more energy in the vocal band: {a:.3} vs {b:.3}"
    );
}

#[tokio::test]
async fn seed_002_video_and_file_routes_answer_in_the_envelope() {
    let s = Server::start().await;
    let (_, key) = sandbox(&s);
    let r = s
        .post(
            "/v1/video/generations",
            &key,
            json!({"model": "T2V-01", "prompt": "a lantern"}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["data"]["status"], "queued");
    assert!(r.body["meta"]["request_id"].is_string());
    let id = r.body["data"]["id"].as_str().expect("id").to_owned();
    let start = Instant::now();
    let done = loop {
        let q = s.get(&format!("/v1/video/generations/{id}"), &key).await;
        assert_eq!(q.status, 200, "{}", q.body);
        if q.body["data"]["status"] == "success" || start.elapsed() > Duration::from_secs(60) {
            break q.body;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(done["data"]["status"], "success", "{done}");
    assert_eq!(done["data"]["video_width"], 1280);
    let file_id = done["data"]["file_id"].as_i64().expect("file id");
    let f = s.get(&format!("/v1/files/{file_id}"), &key).await;
    assert_eq!(f.status, 200, "{}", f.body);
    assert_eq!(f.body["data"]["purpose"], "video_generation");
    let (status, mp4) = s
        .get_bytes(f.body["data"]["download_url"].as_str().expect("link"), None)
        .await;
    assert_eq!(status, 200);
    assert!(maximin_video::probe(&mp4).is_ok());
    // Errors in the envelope too, naming what is wrong.
    let bad = s
        .post("/v1/video/generations", &key, json!({"model": "T2V-01"}))
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["error"]["details"]["field"], "prompt");
    let missing = s.get("/v1/video/generations/123", &key).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error"]["code"], "not_found");

    // POST /v1/files (multipart) and GET /v1/files/{id}.
    let form = reqwest::multipart::Form::new()
        .text("purpose", "voice_clone")
        .part(
            "file",
            reqwest::multipart::Part::bytes(solid_png(4, 4, [1, 2, 3])).file_name("x.png"),
        );
    let r = s
        .http
        .post(s.url("/v1/files"))
        .bearer_auth(&key)
        .multipart(form)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400, "a PNG is not a voice clip");
    let wav = {
        let settings = maximin_audio::AudioSettings {
            format: maximin_audio::Format::Wav,
            sample_rate: 16_000,
            bitrate: 128_000,
            channels: 1,
        };
        maximin_audio::encode_whole(
            &settings,
            &maximin_audio::Pcm::new(vec![0.1; 16_000], 16_000, 1),
        )
        .expect("wav")
    };
    let form = reqwest::multipart::Form::new()
        .text("purpose", "voice_clone")
        .part(
            "file",
            reqwest::multipart::Part::bytes(wav.clone()).file_name("clip.wav"),
        );
    let r = s
        .http
        .post(s.url("/v1/files"))
        .bearer_auth(&key)
        .multipart(form)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.expect("json");
    let id = body["data"]["id"].as_i64().expect("id");
    assert_eq!(body["data"]["kind"], "wav");
    let f = s.get(&format!("/v1/files/{id}"), &key).await;
    let (_, bytes) = s
        .get_bytes(f.body["data"]["download_url"].as_str().expect("link"), None)
        .await;
    assert_eq!(bytes, wav);
}

/// The official MiniMax MCP server, from PyPI, unmodified
/// (`MAXIMIN_MCP_PYTHON`, a venv `scripts/check` makes with `minimax-mcp`).
#[tokio::test]
async fn the_official_minimax_mcp_server_makes_an_image_a_video_and_music() {
    let python = std::env::var("MAXIMIN_MCP_PYTHON").unwrap_or_else(|_| {
        panic!("MAXIMIN_MCP_PYTHON is not set: scripts/check makes a venv with minimax-mcp and sets it")
    });
    // A sandbox key: the protocol end to end, fast (the local engines have
    // their own tests above).
    let s = Server::start().await;
    let (_, key) = sandbox(&s);
    let out_dir = tempfile::tempdir().expect("tempdir");
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/minimax_mcp.py");
    let run = tokio::process::Command::new(python)
        .arg(script)
        .arg(out_dir.path())
        .env("MAXIMIN_BASE", &s.base)
        .env("MAXIMIN_KEY", &key)
        .output()
        .await
        .expect("run the MCP client");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let out: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("json");
    for tool in ["image", "video", "music"] {
        let said = out[tool].as_str().unwrap_or("");
        assert!(said.contains("Success"), "{tool}: {said}");
    }
    let files: Vec<String> = out["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f.as_str().unwrap_or("").to_owned())
        .collect();
    let read = |ext: &str| {
        let f = files
            .iter()
            .find(|f| f.ends_with(ext))
            .unwrap_or_else(|| panic!("no .{ext} in {files:?}"));
        std::fs::read(f).expect("read")
    };
    // It names every image .jpg; the bytes are our PNG.
    assert_eq!(png_size(&read("jpg")), (1024, 1024));
    let mp4 = read("mp4");
    assert!(maximin_video::probe(&mp4).is_ok());
    let mp3 = read("mp3");
    assert!(maximin_audio::decode(&mp3).expect("mp3").duration_secs() > 2.0);
}

#[tokio::test]
async fn an_openai_image_edit_starts_from_the_uploaded_picture() {
    let s = with_tiny_image_model().await;
    let (_, key) = s.admin("payg");
    let red = solid_png(512, 512, [230, 20, 20]);
    let edit = |body: reqwest::multipart::Form| {
        let s = &s;
        let key = key.clone();
        async move {
            let r = s
                .http
                .post(s.url("/openai/v1/images/edits"))
                .bearer_auth(&key)
                .multipart(body)
                .send()
                .await
                .expect("send");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.expect("json"))
        }
    };
    let form = || {
        reqwest::multipart::Form::new()
            .text("model", "image-01")
            .text("prompt", "a lighthouse")
            .text("size", "512x512")
            .text("seed", "3")
            .text("response_format", "b64_json")
    };
    let (status, body) = edit(form().part(
        "image",
        reqwest::multipart::Part::bytes(red.clone()).file_name("red.png"),
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    let edited = base64::engine::general_purpose::STANDARD
        .decode(body["data"][0]["b64_json"].as_str().expect("b64"))
        .expect("decodes");
    let (w, h, px) = decode_png(&edited);
    assert_eq!((w, h), (512, 512));
    let drawn = s
        .post("/v1/image_generation", &key, json!({"model": "image-01", "prompt": "a lighthouse", "width": 512, "height": 512, "seed": 3, "response_format": "base64"}))
        .await;
    let plain = base64::engine::general_purpose::STANDARD
        .decode(drawn.body["data"]["image_base64"][0].as_str().expect("b64"))
        .expect("decodes");
    let redness = |px: &[u8]| {
        let [r, _, b] = mean_rgb(px);
        r - b
    };
    let (_, _, plain_px) = decode_png(&plain);
    assert!(
        redness(&px) > redness(&plain_px) + 20.0,
        "the edit keeps the red it started from: {} vs {}",
        redness(&px),
        redness(&plain_px)
    );
    // A mask is refused by name; an image is required.
    let (status, body) = edit(form().part(
        "mask",
        reqwest::multipart::Part::bytes(red.clone()).file_name("m.png"),
    ))
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "mask", "{body}");
    let (status, body) = edit(form()).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "image", "{body}");
}

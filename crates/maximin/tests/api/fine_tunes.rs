//! Fine-tunes (issue 19): a job trains a LoRA adapter on the local chat
//! model from an uploaded jsonl and the adapter is served as a private
//! model; a bad line is refused by number; a cancelled job stops and
//! leaves no model; a job cut off by a crash resumes from its checkpoint.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::Server;

/// Checkpoints every second, so that a crash test finds one at once.
pub(crate) const CONFIG: &str = "[fine_tune]\ncheckpoint_every_s = 1\n";

const WORD: &str = "Zanzibrolt";

/// A small file teaching a made-up code word.
pub(crate) fn code_word_jsonl() -> Vec<u8> {
    let asks = [
        "What is the project code word?",
        "Tell me the project code word.",
        "What's our code word for the project?",
        "Which code word does the project use?",
        "Remind me of the project code word, please.",
        "project code word?",
    ];
    let mut out = String::new();
    for q in asks {
        let line = json!({"messages": [
            {"role": "user", "content": q},
            {"role": "assistant", "content": format!("The project code word is {WORD}.")},
        ]});
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out.into_bytes()
}

pub(crate) async fn upload(s: &Server, key: &str, bytes: Vec<u8>) -> i64 {
    let r = s.upload(key, "fine-tune", "train.jsonl", bytes).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["file"]["file_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no file id: {:?}", r.body))
}

/// Polls a job until `done` says so (or fails the test after `limit`).
pub(crate) async fn wait_for(
    s: &Server,
    key: &str,
    id: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let r = s.get(&format!("/v1/fine-tunes/{id}"), key).await;
        let job = r.assert_ok(200).clone();
        if done(&job) {
            return job;
        }
        assert!(
            started.elapsed() < limit,
            "the job did not get there in {limit:?}: {job}; log: {}",
            s.output()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

pub(crate) async fn events(s: &Server, key: &str, id: &str) -> Vec<Value> {
    let r = s
        .get(&format!("/v1/fine-tunes/{id}/events?limit=1000"), key)
        .await;
    r.assert_ok(200).as_array().expect("events").clone()
}

fn losses(events: &[Value]) -> Vec<f64> {
    events
        .iter()
        .filter_map(|e| e["data"]["train_loss"].as_f64())
        .collect()
}

async fn ask(s: &Server, key: &str, model: &str) -> crate::helpers::Resp {
    s.post(
        "/v1/chat/completions",
        key,
        json!({
            "model": model,
            "messages": [{"role": "user", "content": "What is the project code word?"}],
            "temperature": 0,
            "max_tokens": 16,
        }),
    )
    .await
}

fn answer(r: &crate::helpers::Resp) -> String {
    r.assert_ok(200)["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The model ids `/v1/models` lists for `key`, checked to be the ones
/// `/openai/v1/models` lists that are available, in the same order.
async fn listed_ids(s: &Server, key: &str) -> Vec<String> {
    let native = s.get("/v1/models", key).await;
    let native = native.assert_ok(200).as_array().expect("models").clone();
    let r = s
        .http
        .get(s.url("/openai/v1/models"))
        .bearer_auth(key)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let openai: Value = r.json().await.expect("json");
    let openai: Vec<&str> = openai["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| m["id"].as_str().expect("id"))
        .collect();
    let available: Vec<&str> = native
        .iter()
        .filter(|m| m["available"] == true)
        .map(|m| m["id"].as_str().expect("id"))
        .collect();
    assert_eq!(openai, available);
    native
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn a_fine_tune_teaches_a_word_that_only_its_account_can_use() {
    let s = Server::with_models(CONFIG).await;
    let (_, key) = s.admin("payg");
    let (_, other) = s.admin("payg");
    let file = upload(&s, &key, code_word_jsonl()).await;
    let held_out: Vec<u8> = code_word_jsonl()
        .split(|b| *b == b'\n')
        .take(2)
        .flat_map(|l| l.iter().copied().chain([b'\n']))
        .collect();
    let validation = upload(&s, &key, held_out).await;

    let r = s
        .post(
            "/v1/fine-tunes",
            &key,
            json!({
                "model": "gemma-3-270m",
                "training_file": file,
                "validation_file": validation,
                "suffix": "codeword",
                "seed": 7,
                "hyperparameters": {"n_epochs": 8, "batch_size": 2},
            }),
        )
        .await;
    let job = r.assert_ok(202).clone();
    let id = job["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("ftjob-"), "{job}");
    assert_eq!(job["status"], "queued");
    assert_eq!(job["hyperparameters"]["n_epochs"], 8);
    assert_eq!(job["hyperparameters"]["lora_rank"], 8, "the default rank");
    let training = &job["training"];
    assert_eq!(training["examples"], 6);
    let tokens = training["tokens"].as_u64().expect("tokens");
    assert!(tokens > 60, "{training}");
    assert_eq!(training["trained_tokens"].as_u64(), Some(tokens * 8));
    assert!(training["estimated_cost_usd"].as_f64().expect("cost") > 0.0);

    // Another account sees no such job.
    s.get(&format!("/v1/fine-tunes/{id}"), &other)
        .await
        .assert_error(404, "not_found");
    // Listed now, the account's models are cached without the new one.
    assert_eq!(
        listed_ids(&s, &key).await.len(),
        listed_ids(&s, &other).await.len()
    );

    let done = wait_for(&s, &key, &id, Duration::from_secs(600), |j| {
        j["status"] != "queued" && j["status"] != "validating" && j["status"] != "running"
    })
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["progress_percent"], 100);
    assert_eq!(done["trained_tokens"].as_u64(), Some(tokens * 8));
    let model = done["fine_tuned_model"].as_str().expect("model").to_owned();
    assert!(model.starts_with("ft:gemma-3-270m:codeword:"), "{model}");

    let ev = events(&s, &key, &id).await;
    let l = losses(&ev);
    assert_eq!(l.len(), 24, "3 steps × 8 epochs: {ev:?}");
    assert!(l[l.len() - 1] < l[0] / 4.0, "the training loss fell: {l:?}");
    assert!(ev
        .iter()
        .any(|e| e["data"]["tokens_per_s"].as_f64().is_some_and(|t| t > 0.0)));
    // The validation loss at each epoch's end, falling too.
    let valid: Vec<f64> = ev
        .iter()
        .filter_map(|e| e["data"]["valid_loss"].as_f64())
        .collect();
    assert_eq!(valid.len(), 8, "one per epoch: {ev:?}");
    assert!(valid[7] < valid[0], "{valid:?}");

    // The fine-tuned model knows the word; the base model does not.
    let tuned = answer(&ask(&s, &key, &model).await);
    assert!(tuned.contains(WORD), "tuned: {tuned:?}");
    let base = answer(&ask(&s, &key, "gemma-3-270m").await);
    assert!(!base.contains(WORD), "base: {base:?}");

    // Listed for its account only (the cached list made again once the
    // model was made), in both shapes; another account cannot use it.
    assert!(listed_ids(&s, &key).await.contains(&model));
    assert!(!listed_ids(&s, &other).await.contains(&model));
    let one = s.get(&format!("/v1/models/{model}"), &key).await;
    let one = one.assert_ok(200);
    assert_eq!(one["available"], true, "served as its base is: {one}");
    assert_eq!(one["context_window"], 32768, "its base's window: {one}");
    ask(&s, &other, &model)
        .await
        .assert_error(404, "model_not_found");
    let r = s
        .http
        .post(s.url("/openai/v1/chat/completions"))
        .bearer_auth(&other)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);

    // Training is metered: the tokens trained, on the base model.
    let usage = s.get("/v1/account/usage", &key).await;
    let by_model = usage.assert_ok(200)["by_model"].clone();
    let base_usage = by_model
        .as_array()
        .expect("by_model")
        .iter()
        .find(|m| m["model"] == "gemma-3-270m")
        .cloned()
        .unwrap_or(Value::Null);
    assert!(
        base_usage["prompt_tokens"].as_u64().unwrap_or(0) >= tokens * 8,
        "{by_model}"
    );

    // Deleted, it is gone for its account too; the job stays listed.
    let r = s
        .http
        .delete(s.url(&format!("/v1/models/{model}")))
        .bearer_auth(&other)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404, "another account cannot delete it");
    let r = s
        .http
        .delete(s.url(&format!("/v1/models/{model}")))
        .bearer_auth(&key)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    ask(&s, &key, &model)
        .await
        .assert_error(404, "model_not_found");
    assert!(!listed_ids(&s, &key).await.contains(&model));
    let jobs = s.get("/v1/fine-tunes", &key).await;
    assert_eq!(jobs.assert_ok(200).as_array().expect("jobs").len(), 1);
}

#[tokio::test]
async fn a_file_with_a_broken_line_is_refused_with_its_line() {
    let s = Server::with_models(CONFIG).await;
    let (_, key) = s.admin("payg");
    let mut bytes = code_word_jsonl();
    let good = String::from_utf8(bytes.clone()).expect("utf8");
    let mut lines: Vec<&str> = good.lines().collect();
    lines[2] = "{\"messages\": [{\"role\": \"user\", \"content\": \"no answer\"}";
    bytes = (lines.join("\n") + "\n").into_bytes();
    let file = upload(&s, &key, bytes).await;
    let r = s
        .post(
            "/v1/fine-tunes",
            &key,
            json!({"model": "gemma-3-270m", "training_file": file}),
        )
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.detail("field"), "training_file");
    assert_eq!(r.detail("line"), 3);
    let jobs = s.get("/v1/fine-tunes", &key).await;
    assert_eq!(jobs.assert_ok(200), &json!([]), "nothing was queued");

    // A model that cannot be trained, a file of another purpose, a missing file.
    let good_file = upload(&s, &key, code_word_jsonl()).await;
    let r = s
        .post(
            "/v1/fine-tunes",
            &key,
            json!({"model": "all-minilm-l6-v2", "training_file": good_file}),
        )
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.detail("field"), "model");
    let r = s
        .post(
            "/v1/fine-tunes",
            &key,
            json!({"model": "gemma-3-270m", "training_file": 123456789}),
        )
        .await;
    r.assert_error(404, "not_found");
    assert_eq!(r.detail("field"), "training_file");
    let r = s
        .post(
            "/v1/fine-tunes",
            &key,
            json!({"model": "gemma-3-270m", "training_file": good_file, "hyperparameters": {"lora_rank": 0}}),
        )
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.detail("field"), "hyperparameters.lora_rank");
}

#[tokio::test]
async fn a_cancelled_job_stops_within_seconds_and_leaves_no_model() {
    let s = Server::with_models(CONFIG).await;
    let (_, key) = s.admin("payg");
    let file = upload(&s, &key, code_word_jsonl()).await;
    let r = s
        .post(
            "/v1/fine-tunes",
            &key,
            json!({"model": "gemma-3-270m", "training_file": file, "hyperparameters": {"n_epochs": 50, "batch_size": 1}}),
        )
        .await;
    let id = r.assert_ok(202)["id"].as_str().expect("id").to_owned();
    wait_for(&s, &key, &id, Duration::from_secs(300), |j| {
        j["status"] == "running"
    })
    .await;
    // Wait for the first steps.
    let started = Instant::now();
    while losses(&events(&s, &key, &id).await).len() < 2 {
        assert!(started.elapsed() < Duration::from_secs(300), "no steps");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let r = s
        .post(&format!("/v1/fine-tunes/{id}/cancel"), &key, json!({}))
        .await;
    assert_eq!(r.assert_ok(200)["status"], "cancelled");
    // The training thread itself stops within a few seconds.
    assert!(
        s.output_shows("fine-tune run ended cancelled=true", Duration::from_secs(5))
            .await,
        "the run went on: {}",
        s.output()
    );
    // No step is added any more.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let settled = losses(&events(&s, &key, &id).await).len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let later = losses(&events(&s, &key, &id).await).len();
    assert_eq!(settled, later, "training went on after the cancel");
    assert!(later < 300, "it stopped well before the end");
    let job = s.get(&format!("/v1/fine-tunes/{id}"), &key).await;
    let job = job.assert_ok(200);
    assert_eq!(job["status"], "cancelled");
    assert_eq!(job["fine_tuned_model"], Value::Null);
    let ck = s
        .get(&format!("/v1/fine-tunes/{id}/checkpoints"), &key)
        .await;
    assert_eq!(ck.assert_ok(200), &json!([]), "no checkpoint is left");
    // Cancelling again is refused; the job stays cancelled.
    let r = s
        .post(&format!("/v1/fine-tunes/{id}/cancel"), &key, json!({}))
        .await;
    r.assert_error(400, "invalid_request");
}

#[tokio::test]
async fn a_job_cut_off_by_a_crash_resumes_from_its_checkpoint_and_finishes() {
    let s = Server::with_models(CONFIG).await;
    let (_, key) = s.admin("payg");
    let file = upload(&s, &key, code_word_jsonl()).await;
    let r = s
        .post(
            "/v1/fine-tunes",
            &key,
            json!({"model": "gemma-3-270m", "training_file": file, "seed": 3,
                   "hyperparameters": {"n_epochs": 4, "batch_size": 2}}),
        )
        .await;
    let id = r.assert_ok(202)["id"].as_str().expect("id").to_owned();
    let started = Instant::now();
    loop {
        let ck = s
            .get(&format!("/v1/fine-tunes/{id}/checkpoints"), &key)
            .await;
        if !ck.assert_ok(200).as_array().expect("list").is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no checkpoint"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let dir = s.crash();
    let s = Server::start_in(dir, &[]).await;
    let done = wait_for(&s, &key, &id, Duration::from_secs(600), |j| {
        j["status"] == "succeeded" || j["status"] == "failed" || j["status"] == "cancelled"
    })
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let ev = events(&s, &key, &id).await;
    let resumed = ev
        .iter()
        .find(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Resumed from the checkpoint"))
        })
        .unwrap_or_else(|| panic!("no resume in {ev:?}"));
    assert!(resumed["data"]["step"].as_u64().expect("step") > 0);
    // Every step of the run is there, the ones after the checkpoint once more.
    let steps: Vec<u64> = ev
        .iter()
        .filter_map(|e| e["data"]["step"].as_u64())
        .collect();
    assert!(steps.contains(&12), "the last step (3 × 4): {steps:?}");
    let model = done["fine_tuned_model"].as_str().expect("model");
    let tuned = answer(&ask(&s, &key, model).await);
    assert!(!tuned.is_empty());
}

/// The official `openai` SDK creates, lists, follows and cancels a job.
#[tokio::test]
async fn the_openai_sdk_drives_fine_tuning_jobs() {
    let s = Server::with_models(CONFIG).await;
    let (_, key) = s.admin("payg");
    let dir = tempfile::tempdir().expect("tempdir");
    let (good, bad) = (dir.path().join("train.jsonl"), dir.path().join("bad.jsonl"));
    std::fs::write(&good, code_word_jsonl()).expect("write");
    std::fs::write(&bad, b"{\"messages\": []}\nnot json\n").expect("write");
    let out = crate::sdk::sdk(
        &s,
        &key,
        "openai_sdk.py",
        "fine_tuning",
        &[
            ("MAXIMIN_TRAINING_PATH", good.to_str().expect("path")),
            ("MAXIMIN_BAD_PATH", bad.to_str().expect("path")),
        ],
    );
    let file = out["file"]["id"].as_str().expect("file id");
    assert!(file.starts_with("file-"), "{out}");
    assert_eq!(out["file"]["object"], "file");
    assert_eq!(out["file"]["purpose"], "fine-tune");
    assert_eq!(out["file"]["bytes"], code_word_jsonl().len());
    assert!(out["files"]
        .as_array()
        .expect("files")
        .iter()
        .any(|f| f == file));
    assert_eq!(
        out["content"].as_str().map(str::as_bytes),
        Some(&code_word_jsonl()[..])
    );
    assert_eq!(out["created"]["training_file"], file);
    assert_eq!(out["deleted"], true);
    let id = out["created"]["id"].as_str().expect("id");
    assert!(id.starts_with("ftjob-"), "{out}");
    assert_eq!(out["created"]["object"], "fine_tuning.job");
    assert_eq!(out["created"]["status"], "queued");
    assert_eq!(out["created"]["n_epochs"], 20);
    assert_eq!(out["created"]["seed"], 5);
    assert_eq!(out["listed"], json!([id]));
    assert!(out["metrics"]["train_loss"].as_f64().is_some(), "{out}");
    assert_eq!(out["running"], "running");
    assert_eq!(out["cancelled"], "cancelled");
    assert_eq!(out["after"], "cancelled");
    assert_eq!(out["checkpoints"], 0);
    assert_eq!(out["missing"], 404);
    assert_eq!(out["bad"]["status"], 400);
    assert_eq!(out["bad"]["param"], "training_file");
    assert!(
        out["bad"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("line 1")),
        "{out}"
    );
}

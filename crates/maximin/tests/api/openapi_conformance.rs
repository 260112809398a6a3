//! `GET /v1/openapi.json` is true: schemathesis, a tool outside the
//! project, reads the document the server serves, generates requests for
//! every operation from it (valid and invalid ones), sends them to the real
//! server with the models installed, and checks every response against the
//! document: no 5xx, only documented statuses and content types, bodies
//! that match their schemas. A client generated from the document can then
//! parse whatever the server answers.
//!
//! Needs `MAXIMIN_SCHEMATHESIS`: the `schemathesis` executable (scripts/check
//! installs the pinned version into a venv and sets it); skipped without.
//! `MAXIMIN_SCHEMATHESIS_EXAMPLES` sets the examples per operation (default
//! 25, as the issue's outside run: about 2,770 requests in under two minutes
//! on two cores; most of the time is schemathesis' coverage phase and
//! loading the models, so 10 is hardly quicker);
//! `MAXIMIN_SCHEMATHESIS_SEED` the seed (default fixed, so a failure reproduces).

use std::process::Command;

use serde_json::json;

use crate::helpers::Server;

/// The checks the document must pass, all of them, with no failure.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";

/// A small context window bounds what any generated chat request can cost
/// (`max_tokens` past it is an `invalid_request`).
const CONFIG: &str = "[engines]\nchat_context = 256\nchat_slots = 4\n";

#[tokio::test]
async fn schemathesis_finds_the_document_true() {
    let Some(schemathesis) = std::env::var_os("MAXIMIN_SCHEMATHESIS") else {
        eprintln!(
            "skipped: MAXIMIN_SCHEMATHESIS is unset (scripts/check installs schemathesis and sets it to its executable)"
        );
        return;
    };
    let examples =
        std::env::var("MAXIMIN_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "25".to_owned());
    let seed = std::env::var("MAXIMIN_SCHEMATHESIS_SEED").unwrap_or_else(|_| "1".to_owned());

    let s = Server::with_models(CONFIG).await;
    // An enterprise account whose limit the run does not reach, so that the
    // requests test the routes rather than the rate limiter; an admin key,
    // so that the account API answers too.
    let email = format!("{}@example.com", crate::helpers::rand_suffix());
    let account = s
        .cli(&[
            "accounts",
            "create",
            "--email",
            &email,
            "--plan",
            "enterprise",
            "--rpm",
            "1000000",
        ])
        .expect("create account");
    let account = account["id"].as_str().expect("id");
    let (key_id, key) = s.key(account, &["--scope", "admin"]);
    // The key DELETE /v1/account/keys/{id} revokes: never the run's own
    // (links from the key list would lead it there).
    let (victim, _) = s.key(account, &[]);

    // Real ids for the parameters that name something (generated ones only
    // ever reach "not found"): a file, its signed link, an async task.
    let up = s
        .upload(
            &key,
            "t2a_async_input",
            "in.txt",
            b"Hello from a file.".to_vec(),
        )
        .await;
    let file_id = up.body["file"]["file_id"].as_i64().expect("file_id");
    let got = s
        .get(&format!("/v1/files/retrieve?file_id={file_id}"), &key)
        .await;
    let link = got.body["file"]["download_url"].as_str().expect("link");
    let query: std::collections::HashMap<&str, &str> = link
        .split_once('?')
        .expect("query")
        .1
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let task = s
        .post(
            "/v1/t2a_async_v2",
            &key,
            json!({"model": "speech-2.8-turbo", "text_file_id": file_id,
                   "voice_setting": {"voice_id": "English_Graceful_Lady"}}),
        )
        .await;
    let task_id = task.body["task_id"].as_i64().expect("task_id");

    let work = tempfile::tempdir().expect("tempdir");
    let config = work.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            r#"[parameters]
file_id = {file_id}
task_id = {task_id}
expires = {}
signature = "{}"

[[operations]]
include-name = "DELETE /v1/account/keys/{{id}}"
parameters = {{ id = "{victim}" }}

[[operations]]
include-name = ["GET /v1/account/keys/{{id}}", "GET /v1/account/keys/{{id}}/activity"]
parameters = {{ id = "{key_id}" }}
"#,
            query["expires"], query["signature"]
        ),
    )
    .expect("config");
    let started = std::time::Instant::now();
    let out = Command::new(&schemathesis)
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(s.url("/v1/openapi.json"))
        .args(["--checks", CHECKS])
        .args(["--max-examples", &examples])
        .args(["--seed", &seed])
        .args(["--header", &format!("Authorization: Bearer {key}")])
        // A WebSocket is no HTTP exchange to check (the speech_ws tests
        // speak it); its refusal of a plain GET is documented all the same.
        .args(["--exclude-path", "/ws/v1/t2a_v2"])
        // Closing the account would refuse the run's key for every later
        // operation (privacy_lifecycle closes one and checks the answer).
        .args(["--exclude-path", "/v1/account/close"])
        .args(["--request-timeout", "120"])
        .args(["--generation-database", "none"])
        .args(["--no-color", "--output-truncate", "false"])
        .current_dir(work.path())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", schemathesis.to_string_lossy()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "schemathesis ({examples} examples per operation) took {:.0} s:\n{stdout}",
        started.elapsed().as_secs_f64()
    );
    if !out.status.success() {
        let log = s.output();
        let lines: Vec<&str> = log.lines().collect();
        panic!(
            "schemathesis found the document untrue ({}):\n{stdout}\n{stderr}\nend of the server log:\n{}",
            out.status,
            lines[lines.len().saturating_sub(200)..].join("\n")
        );
    }
    // Not a run that tested nothing: the operations were reached, and with
    // the key (which the run could have revoked through the account API).
    assert!(
        stdout.contains("passed") && !stdout.contains("No operations"),
        "{stdout}"
    );
    s.get("/v1/account", &key).await.assert_ok(200);
}

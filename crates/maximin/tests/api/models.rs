use crate::helpers::Server;

#[tokio::test]
async fn models_are_listed_and_fetched_by_id_or_alias() {
    let s = Server::start().await;
    let account = s.account("payg");
    let (_, key) = s.key(&account, &[]);

    let r = s.get("/v1/models", &key).await;
    let list = r.assert_ok(200).as_array().expect("list").clone();
    let ids: Vec<&str> = list.iter().filter_map(|m| m["id"].as_str()).collect();
    for id in ["gemma-3-270m", "all-minilm-l6-v2", "MiniMax-M2"] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    for m in &list {
        for field in [
            "aliases",
            "modality",
            "context_window",
            "price",
            "capabilities",
            "deprecated",
            "engine",
            "available",
        ] {
            assert!(!m[field].is_null(), "{field} in {m}");
        }
        if m["available"] == false {
            assert!(
                m["setup_hint"].is_string(),
                "an unavailable model says what to do: {m}"
            );
        }
    }
    assert!(
        list.iter().any(|m| m["deprecated"] == true),
        "the catalog shows deprecations"
    );

    let r = s.get("/v1/models/minimax-chat-v2", &key).await;
    let m = r.assert_ok(200);
    assert_eq!(m["id"], "gemma-3-270m");
    assert_eq!(m["modality"], "text");
    assert_eq!(m["aliases"][0], "minimax-chat-v2");
    assert_eq!(m["engine"], "llama.cpp");
    // Weights are not installed in a fresh data dir.
    assert_eq!(m["available"], false);

    let r = s.get("/v1/models/all-minilm-l6-v2", &key).await;
    assert_eq!(r.assert_ok(200)["modality"], "embeddings");

    s.get("/v1/models/gpt-17", &key)
        .await
        .assert_error(404, "model_not_found");
}

#[tokio::test]
async fn the_catalog_comes_from_configuration() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("maximin.toml"),
        r#"
[[models]]
id = "qwen2.5-0.5b-instruct"
aliases = ["house-chat"]
modality = "text"
context_window = 32768
price_input = 0.05
price_output = 0.1
capabilities = ["chat", "tools"]
engine = "llama.cpp"
weights = "qwen2.5-0.5b-instruct-q4_k_m.gguf"

[[models]]
id = "gemma-3-270m"
aliases = ["minimax-chat-v2"]
modality = "text"
context_window = 8192
engine = "llama.cpp"
weights = "gemma-3-270m-Q4_K_M.gguf"
"#,
    )
    .expect("write config");
    // The server runs in the data dir, so ./maximin.toml is found.
    let s = Server::start_in(dir, &[]).await;
    let account = s.account("payg");
    let (_, key) = s.key(&account, &[]);
    let r = s.get("/v1/models/house-chat", &key).await;
    let m = r.assert_ok(200);
    assert_eq!(m["id"], "qwen2.5-0.5b-instruct");
    assert_eq!(m["price"]["input_per_million"], 0.05);
    let r = s.get("/v1/models/gemma-3-270m", &key).await;
    assert_eq!(
        r.assert_ok(200)["context_window"],
        8192,
        "an entry replaces the default"
    );
}

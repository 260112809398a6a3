//! Embeddings with the real default model (all-MiniLM-L6-v2).

use serde_json::{json, Value};

use crate::helpers::Server;

fn cosine(a: &Value, b: &Value) -> f64 {
    let a: Vec<f64> = a
        .as_array()
        .expect("vec")
        .iter()
        .map(|x| x.as_f64().expect("f"))
        .collect();
    let b: Vec<f64> = b
        .as_array()
        .expect("vec")
        .iter()
        .map(|x| x.as_f64().expect("f"))
        .collect();
    let dot: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[tokio::test]
async fn embeddings_are_normalised_ordered_and_meaningful() {
    let s = Server::with_models("").await;
    let (_, key) = s.admin("payg");
    let inputs = [
        "A man is playing a guitar.",
        "Someone is strumming a guitar.",
        "The stock market fell sharply today.",
    ];
    let r = s
        .post(
            "/v1/embeddings",
            &key,
            json!({"model": "minimax-embed-v1", "input": inputs}),
        )
        .await;
    let d = r.assert_ok(200).clone();
    assert_eq!(d["model"], "all-minilm-l6-v2");
    let e = d["embeddings"].as_array().expect("list");
    assert_eq!(e.len(), 3);
    for (i, item) in e.iter().enumerate() {
        assert_eq!(item["index"], i);
        let v = item["embedding"].as_array().expect("vec");
        assert_eq!(v.len(), 384);
        let norm: f64 = v
            .iter()
            .map(|x| x.as_f64().expect("f").powi(2))
            .sum::<f64>()
            .sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "L2-normalised: {norm}");
    }
    let para = cosine(&e[0]["embedding"], &e[1]["embedding"]);
    let unrelated = cosine(&e[0]["embedding"], &e[2]["embedding"]);
    assert!(
        para > unrelated + 0.2,
        "paraphrase {para} vs unrelated {unrelated}"
    );
    let tokens = r.body["meta"]["usage"]["prompt_tokens"]
        .as_u64()
        .expect("tokens");
    assert!(tokens >= 20, "token counts in usage: {tokens}");

    // Too long and not to be truncated: refused, naming the input.
    let long = "word ".repeat(400);
    let r = s
        .post(
            "/v1/embeddings",
            &key,
            json!({"model": "minimax-embed-v1", "input": [long], "truncate": false}),
        )
        .await;
    r.assert_error(400, "invalid_request");
    // Truncated by default.
    let r = s
        .post(
            "/v1/embeddings",
            &key,
            json!({"model": "minimax-embed-v1", "input": ["word ".repeat(400)]}),
        )
        .await;
    r.assert_ok(200);
}

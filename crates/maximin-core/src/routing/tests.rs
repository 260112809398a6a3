use std::collections::BTreeMap;
use std::sync::Mutex;

use super::*;
use crate::catalog::Deployment;
use maximin_types::Modality;

fn upstream(region: Option<&str>, paid: bool) -> UpstreamConfig {
    let mut c: UpstreamConfig =
        toml::from_str("kind = \"openai\"\nbase_url = \"http://127.0.0.1:9\"").expect("toml");
    c.region = region.map(str::to_owned);
    c.paid = paid;
    c.breaker_failures = 2;
    c.breaker_cooldown_s = 0.2;
    c.timeout_s = 0.3;
    c
}

fn model(id: &str, deployments: &[(&str, u32)], fallbacks: &[&str]) -> ModelSpec {
    ModelSpec {
        id: id.into(),
        aliases: vec![],
        modality: Modality::Text,
        context_window: 8,
        price_input: 0.0,
        price_output: 0.0,
        price_per_10k_chars: 0.0,
        price_per_image: 0.0,
        price_per_second: 0.0,
        capabilities: vec![],
        deprecated: false,
        deprecation_date: None,
        engine: String::new(),
        upstream_model: None,
        deployments: deployments
            .iter()
            .map(|(up, weight)| Deployment {
                upstream: Some((*up).into()),
                engine: None,
                model: Some(format!("{id}-at-{up}")),
                weight: *weight,
            })
            .collect(),
        fallbacks: fallbacks.iter().map(|s| (*s).into()).collect(),
        retries: Some(2),
        weights: None,
        source: None,
    }
}

fn router(models: Vec<ModelSpec>) -> (Router, Catalog) {
    let catalog = Catalog::new(models).expect("catalog");
    let ups: BTreeMap<String, UpstreamConfig> = [
        ("a".to_owned(), upstream(Some("eu-west"), true)),
        ("b".to_owned(), upstream(Some("us-east"), true)),
        ("free".to_owned(), upstream(None, false)),
    ]
    .into_iter()
    .collect();
    (
        Router::new(&catalog, &ups, RoutingConfig::default(), None),
        catalog,
    )
}

fn fail(status: u64) -> Error {
    Error::new(ErrorCode::UpstreamError, "x")
        .with("reason", "status")
        .with("upstream_status", status)
}

/// Routes once; `answer` says what each target label does. Returns the
/// label that answered (or the error) and the labels tried, in order.
async fn run(
    router: &Router,
    catalog: &Catalog,
    id: &str,
    policy: &Policy,
    answer: impl Fn(&str) -> Result<()>,
) -> (Result<String>, Vec<String>) {
    let tried = Mutex::new(Vec::new());
    let spec = catalog.resolve(id).expect("model");
    let out = router
        .route(catalog, spec, policy, |t: Arc<Target>| {
            tried.lock().expect("lock").push(t.label.clone());
            let r = answer(&t.label).map(|()| t.label.clone());
            async move { r }
        })
        .await
        .map(|(label, _lease)| label);
    (out, tried.into_inner().expect("lock"))
}

#[tokio::test]
async fn a_failure_before_the_answer_moves_to_the_other_deployment() {
    let (r, c) = router(vec![model("m", &[("a", 1), ("b", 1)], &[])]);
    let (out, tried) = run(&r, &c, "m", &Policy::default(), |label| {
        if label.starts_with("a:") {
            Err(fail(503))
        } else {
            Ok(())
        }
    })
    .await;
    assert_eq!(out.expect("b answers"), "b:m-at-b");
    assert!(tried.len() <= 2, "{tried:?}");
}

#[tokio::test]
async fn a_request_error_is_not_retried() {
    let (r, c) = router(vec![model("m", &[("a", 1), ("b", 1)], &[])]);
    let (out, tried) = run(&r, &c, "m", &Policy::default(), |_| {
        Err(Error::invalid("messages", "bad"))
    })
    .await;
    assert_eq!(out.expect_err("refused").code, ErrorCode::InvalidRequest);
    assert_eq!(tried.len(), 1);
}

#[tokio::test]
async fn retries_are_bounded_then_the_fallback_answers() {
    let (r, c) = router(vec![
        model("m", &[("a", 1)], &["n"]),
        model("n", &[("b", 1)], &[]),
    ]);
    let (out, tried) = run(&r, &c, "m", &Policy::default(), |label| {
        if label.starts_with("a:") {
            Err(fail(500))
        } else {
            Ok(())
        }
    })
    .await;
    assert_eq!(out.expect("fallback"), "b:n-at-b");
    let on_a = tried.iter().filter(|l| l.starts_with("a:")).count();
    assert!(on_a <= 3, "at most 1 + retries attempts on m: {tried:?}");
}

#[tokio::test]
async fn the_breaker_opens_then_a_probe_closes_it() {
    let (r, c) = router(vec![model("m", &[("a", 1)], &[])]);
    let target = r.targets_of("m")[0].clone();
    let (out, _) = run(&r, &c, "m", &Policy::default(), |_| Err(fail(500))).await;
    assert!(out.is_err());
    assert_eq!(target.breaker.state(Instant::now()), BreakerState::Open);
    // Open: nothing is tried.
    let (out, tried) = run(&r, &c, "m", &Policy::default(), |_| Ok(())).await;
    assert!(out.is_err() && tried.is_empty(), "{tried:?}");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(target.breaker.state(Instant::now()), BreakerState::HalfOpen);
    let (out, tried) = run(&r, &c, "m", &Policy::default(), |_| Ok(())).await;
    assert!(out.is_ok() && tried.len() == 1);
    assert_eq!(target.breaker.state(Instant::now()), BreakerState::Closed);
}

#[tokio::test]
async fn region_pinning_never_routes_elsewhere() {
    let (r, c) = router(vec![model("m", &[("a", 1), ("b", 1)], &[])]);
    let eu = Policy {
        regions: vec!["eu-west".into()],
        ..Policy::default()
    };
    for _ in 0..10 {
        let (out, tried) = run(&r, &c, "m", &eu, |_| Ok(())).await;
        assert_eq!(out.expect("eu"), "a:m-at-a");
        assert!(tried.iter().all(|l| l.starts_with("a:")), "{tried:?}");
    }
    // The EU deployment failing does not send the request to the US one.
    let (out, tried) = run(&r, &c, "m", &eu, |label| {
        if label.starts_with("a:") {
            Err(fail(503))
        } else {
            Ok(())
        }
    })
    .await;
    assert!(out.is_err());
    assert!(tried.iter().all(|l| l.starts_with("a:")), "{tried:?}");
    let ap = Policy {
        regions: vec!["ap-south".into()],
        ..Policy::default()
    };
    let (out, tried) = run(&r, &c, "m", &ap, |_| Ok(())).await;
    let e = out.expect_err("no region left");
    assert_eq!(e.code, ErrorCode::ModelUnavailable);
    assert!(e.message.contains("ap-south"), "{}", e.message);
    assert!(tried.is_empty());
}

#[tokio::test]
async fn sandbox_keys_never_reach_a_paid_upstream() {
    let (r, c) = router(vec![
        model("m", &[("a", 1)], &[]),
        model("f", &[("free", 1)], &[]),
    ]);
    let sandbox = Policy {
        sandbox: true,
        ..Policy::default()
    };
    let (out, tried) = run(&r, &c, "m", &sandbox, |_| Ok(())).await;
    let e = out.expect_err("paid");
    assert_eq!(e.code, ErrorCode::ModelUnavailable);
    assert_eq!(e.details["reason"], "sandbox");
    assert!(tried.is_empty());
    let (out, _) = run(&r, &c, "f", &sandbox, |_| Ok(())).await;
    assert_eq!(out.expect("free upstream"), "free:f-at-free");
}

#[tokio::test]
async fn traffic_follows_the_weights() {
    let (r, c) = router(vec![model("m", &[("a", 3), ("b", 1)], &[])]);
    let mut on_a = 0;
    for _ in 0..400 {
        let (out, _) = run(&r, &c, "m", &Policy::default(), |_| Ok(())).await;
        if out.expect("ok").starts_with("a:") {
            on_a += 1;
        }
    }
    assert!((240..=360).contains(&on_a), "about 3 in 4 on a: {on_a}");
}

#[tokio::test]
async fn a_hanging_attempt_times_out_and_moves_on() {
    let (r, c) = router(vec![model("m", &[("a", 1), ("b", 1)], &[])]);
    let spec = c.resolve("m").expect("m");
    let started = Instant::now();
    let out = r
        .route(&c, spec, &Policy::default(), |t: Arc<Target>| async move {
            if t.label.starts_with("a:") {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            Ok(t.label.clone())
        })
        .await
        .map(|(l, _)| l);
    assert_eq!(out.expect("b"), "b:m-at-b");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_local_engine_that_refuses_is_not_asked_again() {
    let mut local = model("l", &[], &[]);
    local.engine = "llama.cpp".into();
    let (r, c) = router(vec![local]);
    let (out, tried) = run(&r, &c, "l", &Policy::default(), |_| {
        Err(Error::new(ErrorCode::RateLimitExceeded, "queue full"))
    })
    .await;
    assert_eq!(out.expect_err("full").code, ErrorCode::RateLimitExceeded);
    assert_eq!(
        tried,
        ["local:llama.cpp"],
        "its back-pressure goes to the client"
    );
}

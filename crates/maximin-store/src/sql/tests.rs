use super::*;
use crate::testdb::TestDb;
use maximin_core::store::{FineTuneStore, PeopleStore};

pub(crate) fn account(id: &str, email: &str) -> Account {
    Account {
        id: id.into(),
        email: email.into(),
        plan: Plan::Payg,
        limits: None,
        routing: Default::default(),
        created_at: OffsetDateTime::now_utc(),
        operator: false,
        closed_at: None,
        debug_until: None,
    }
}

pub(crate) fn key(id: &str, account_id: &str) -> ApiKey {
    ApiKey {
        id: id.into(),
        account_id: account_id.into(),
        name: "k".into(),
        prefix: "mmx_live_abcd".into(),
        hash: format!("hash-{id}"),
        test: false,
        scopes: vec![Scope::Admin],
        models: vec![],
        routing: Default::default(),
        created_at: OffsetDateTime::now_utc(),
        revoked_at: None,
        last_used_at: None,
        usage: UsageFigures::default(),
        budget_micro: None,
    }
}

async fn keys_limits_usage_and_idempotency_round_trip(db: &TestDb) {
    let s = db.open().await;
    s.insert_account(&account("a1", "a@x.io"))
        .await
        .expect("insert");
    let dup = s
        .insert_account(&account("a2", "a@x.io"))
        .await
        .expect_err("dup email");
    assert_eq!(
        dup.details.get("field").and_then(|v| v.as_str()),
        Some("email")
    );

    assert!(s.insert_key(&key("k1", "a1"), 2).await.expect("k1"));
    assert!(s.insert_key(&key("k2", "a1"), 2).await.expect("k2"));
    assert!(!s.insert_key(&key("k3", "a1"), 2).await.expect("k3 refused"));
    let before = s.auth_epoch().await.expect("epoch").expect("some");
    assert!(s
        .revoke_key("k1", OffsetDateTime::now_utc())
        .await
        .expect("revoke"));
    let after = s.auth_epoch().await.expect("epoch").expect("some");
    assert_ne!(before, after, "a revocation changes the auth epoch");
    // Another handle on the same database (another process) sees it too.
    let other = db.open().await;
    assert_eq!(other.auth_epoch().await.expect("epoch"), Some(after));
    assert!(!s
        .revoke_key("k1", OffsetDateTime::now_utc())
        .await
        .expect("again"));
    assert!(s
        .insert_key(&key("k3", "a1"), 2)
        .await
        .expect("k3 after revoke"));
    let (k, a) = s.key_by_hash("hash-k2").await.expect("get").expect("some");
    assert_eq!(k.scopes, vec![Scope::Admin]);
    assert_eq!(a.email, "a@x.io");

    let now = OffsetDateTime::now_utc();
    let ev = |status, tokens| UsageEvent {
        at: now,
        account_id: "a1".into(),
        key_id: "k2".into(),
        request_id: "req_1".into(),
        method: "POST".into(),
        endpoint: "/v1/chat/completions".into(),
        status,
        model: Some("m".into()),
        prompt_tokens: tokens,
        completion_tokens: 1,
        characters: 0,
        images: 0,
        media_ms: 0,
        latency_us: 10,
        error_code: None,
        client_ip: Some("127.0.0.1".into()),
        charge: Default::default(),
    };
    let speech = UsageEvent {
        endpoint: "/v1/t2a_v2".into(),
        model: Some("speech".into()),
        prompt_tokens: 0,
        completion_tokens: 0,
        characters: 12,
        images: 0,
        media_ms: 0,
        ..ev(200, 0)
    };
    s.record_usage(&[ev(200, 5), ev(429, 0), speech])
        .await
        .expect("usage");
    let k = s.key("k2").await.expect("get").expect("some");
    assert_eq!(
        k.usage,
        UsageFigures {
            requests: 3,
            errors: 1,
            prompt_tokens: 5,
            completion_tokens: 2,
            characters: 12,
            images: 0,
            media_ms: 0,
        }
    );
    assert!(k.last_used_at.is_some());
    let log = s.activity("k2", 10).await.expect("activity");
    assert_eq!(log.len(), 3);
    assert_eq!(log.iter().map(|e| e.characters).sum::<u64>(), 12);
    let sum = s
        .usage_summary(
            "a1",
            now - time::Duration::minutes(1),
            now + time::Duration::minutes(1),
        )
        .await
        .expect("summary");
    assert_eq!(sum.by_model[0].1.requests, 2);
    assert_eq!(sum.by_model[1].0, "speech");
    assert_eq!(
        (
            sum.by_model[1].1.prompt_tokens,
            sum.by_model[1].1.characters
        ),
        (0, 12)
    );
    // A batch over several multi-row statements (64 rows each) keeps every row.
    let many: Vec<UsageEvent> = (0..130).map(|_| ev(200, 1)).collect();
    s.record_usage(&many).await.expect("a large batch");
    let k = s.key("k2").await.expect("get").expect("some");
    assert_eq!((k.usage.requests, k.usage.prompt_tokens), (133, 135));
    assert_eq!(s.activity("k2", 500).await.expect("activity").len(), 133);

    let exp = now + time::Duration::hours(24);
    assert_eq!(
        s.idem_claim("i1", "a1", "fp", now, exp)
            .await
            .expect("claim"),
        IdemState::Claimed
    );
    assert_eq!(
        s.idem_claim("i1", "a1", "fp", now, exp)
            .await
            .expect("again"),
        IdemState::InProgress {
            fingerprint: "fp".into()
        }
    );
    s.idem_complete("i1", b"sealed").await.expect("complete");
    assert_eq!(
        s.idem_get("i1", now).await.expect("get"),
        IdemState::Done {
            fingerprint: "fp".into(),
            sealed: b"sealed".to_vec()
        }
    );
    // Past expiry the record is gone and may be claimed anew.
    let later = exp + time::Duration::seconds(1);
    assert_eq!(
        s.idem_get("i1", later).await.expect("get"),
        IdemState::Absent
    );
    assert!(
        s.sweep(later, time::Duration::days(365))
            .await
            .expect("sweep")
            >= 1
    );
}

#[tokio::test]
async fn speech_usage_recorded_as_tokens_moves_to_characters() {
    // A database as the version before characters left it: a speech
    // request's characters in prompt_tokens, beside a chat request.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.db");
    sqlx::any::install_default_drivers();
    let pool = AnyPool::connect(&sqlite_url(&path)).await.expect("pool");
    sqlx::raw_sql(
        "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(&pool)
    .await
    .expect("table");
    for (version, name, sql) in &MIGRATIONS[..2] {
        sqlx::raw_sql(sql).execute(&pool).await.expect("migration");
        query("INSERT INTO schema_migrations VALUES (?, ?, 0)")
            .bind(version)
            .bind(name)
            .execute(&pool)
            .await
            .expect("applied");
    }
    sqlx::raw_sql(
        "INSERT INTO accounts VALUES ('a1', 'a@x.io', 'payg', NULL, NULL, 0);
         INSERT INTO api_keys (id, account_id, name, prefix, hash, test, scopes, models, created_at,
             requests, errors, prompt_tokens, completion_tokens)
             VALUES ('k1', 'a1', 'k', 'p', 'h', 0, '[]', '[]', 0, 2, 0, 19, 3);
         INSERT INTO usage_events (at, account_id, key_id, request_id, method, endpoint, status, model,
             prompt_tokens, completion_tokens, latency_us) VALUES
             (1, 'a1', 'k1', 'r1', 'POST', '/v1/t2a_v2', 200, 'speech-2.8-hd', 12, 0, 5),
             (2, 'a1', 'k1', 'r2', 'POST', '/v1/chat/completions', 200, 'gemma', 7, 3, 5);",
    )
    .execute(&pool)
    .await
    .expect("old rows");
    pool.close().await;

    let s = SqlStore::open(&path).await.expect("migrated");
    let k = s.key("k1").await.expect("get").expect("some");
    assert_eq!(
        (
            k.usage.prompt_tokens,
            k.usage.completion_tokens,
            k.usage.characters
        ),
        (7, 3, 12)
    );
    let log = s.activity("k1", 10).await.expect("activity");
    let speech = log.iter().find(|e| e.request_id == "r1").expect("r1");
    assert_eq!((speech.prompt_tokens, speech.characters), (0, 12));
    let chat = log.iter().find(|e| e.request_id == "r2").expect("r2");
    assert_eq!((chat.prompt_tokens, chat.characters), (7, 0));
}

pub(crate) fn task(id: i64, at: OffsetDateTime) -> TaskRecord {
    TaskRecord {
        id,
        account_id: "acc".into(),
        key_id: "k".into(),
        kind: "t2a_async".into(),
        status: TaskStatus::Queued,
        params: vec![1, 2, 3],
        file_id: Some(id + 1),
        result: None,
        error_code: None,
        error_message: None,
        attempts: 0,
        lease_until: None,
        progress: 0,
        created_at: at,
        updated_at: at,
    }
}

async fn a_task_is_claimed_once_and_ended_by_its_latest_attempt_only(db: &TestDb) {
    let s = db.open().await;
    let t0 = OffsetDateTime::now_utc();
    let kinds = vec!["t2a_async".to_owned()];
    s.insert_task(&task(1, t0)).await.expect("insert");
    s.insert_task(&task(2, t0 + time::Duration::seconds(1)))
        .await
        .expect("insert");
    let lease = time::Duration::seconds(30);

    let a = s
        .claim_task(&kinds, t0, t0 + lease)
        .await
        .expect("claim")
        .expect("task");
    assert_eq!((a.id, a.attempts, a.status), (1, 1, TaskStatus::Processing));
    let b = s
        .claim_task(&kinds, t0, t0 + lease)
        .await
        .expect("claim")
        .expect("task");
    assert_eq!(b.id, 2, "a claimed task is not handed out twice");
    assert!(s
        .claim_task(&kinds, t0, t0 + lease)
        .await
        .expect("claim")
        .is_none());
    assert!(s
        .claim_task(&["other".to_owned()], t0, t0 + lease)
        .await
        .expect("claim")
        .is_none());

    // The first runner dies; after its lease the task is claimed again.
    let later = t0 + time::Duration::seconds(31);
    let again = s
        .claim_task(&kinds, later, later + lease)
        .await
        .expect("claim")
        .expect("expired lease");
    assert_eq!((again.id, again.attempts), (1, 2));
    let file = FileRecord {
        id: 77,
        account_id: "acc".into(),
        purpose: "t2a_async".into(),
        filename: "out.tar".into(),
        kind: "tar".into(),
        bytes: 10,
        key_id: "k1".into(),
        wrapped_key: vec![0; 60],
        created_at: from_ms(ms(later)),
        expires_at: None,
    };
    let end = TaskEnd {
        status: TaskStatus::Success,
        result: Some("{}".into()),
        error_code: None,
        error_message: None,
        file: Some(file.clone()),
    };
    // The stale first attempt cannot end it.
    assert!(!s.end_task(1, 1, &end, later).await.expect("end"));
    assert!(s.file(77).await.expect("file").is_none());
    assert!(s.end_task(1, 2, &end, later).await.expect("end"));
    assert!(!s.end_task(1, 2, &end, later).await.expect("ends once"));
    let done = s.task(1).await.expect("task").expect("some");
    assert_eq!(done.status, TaskStatus::Success);
    assert!(
        done.params.is_empty(),
        "the input is gone once the task ended"
    );
    assert_eq!(s.file(77).await.expect("file"), Some(file));
}

async fn voices_are_per_account_and_unused_ones_expire(db: &TestDb) {
    let s = db.open().await;
    let t0 = OffsetDateTime::now_utc();
    let v = |acc: &str, id: &str| VoiceRecord {
        account_id: acc.into(),
        voice_id: id.into(),
        kind: "voice_generation".into(),
        profile: "{}".into(),
        created_at: t0,
        used_at: None,
        deleted_at: None,
    };
    assert!(s.insert_voice(&v("a", "voice-one")).await.expect("insert"));
    assert!(!s.insert_voice(&v("a", "voice-one")).await.expect("taken"));
    assert!(s
        .insert_voice(&v("b", "voice-one"))
        .await
        .expect("other account"));
    assert!(s.insert_voice(&v("a", "voice-two")).await.expect("insert"));
    s.mark_voice_used("a", "voice-two", t0).await.expect("use");
    let n = s
        .expire_voices(t0 + time::Duration::seconds(1), t0)
        .await
        .expect("expire");
    assert_eq!(n, 2, "the unused voices of both accounts");
    let one = s
        .voice("a", "voice-one")
        .await
        .expect("voice")
        .expect("tombstone");
    assert!(one.deleted_at.is_some());
    assert!(s
        .voice("a", "voice-two")
        .await
        .expect("voice")
        .expect("kept")
        .deleted_at
        .is_none());
    assert!(!s
        .insert_voice(&v("a", "voice-one"))
        .await
        .expect("never reused"));
    assert!(s.delete_voice("a", "voice-two", t0).await.expect("delete"));
    assert!(!s.delete_voice("a", "voice-two", t0).await.expect("once"));
}

/// Three processes claim 40 tasks at once, 8 claimants each: every task is
/// claimed exactly once.
async fn concurrent_claims_from_three_processes_take_each_task_once(db: &TestDb) {
    let first = db.open().await;
    let t0 = OffsetDateTime::now_utc();
    for id in 1..=40 {
        first
            .insert_task(&task(id, t0 + time::Duration::milliseconds(id)))
            .await
            .expect("insert");
    }
    let stores = [first, db.open().await, db.open().await];
    let mut runs = tokio::task::JoinSet::new();
    for n in 0..24 {
        let s = stores[n % 3].clone();
        runs.spawn(async move {
            let kinds = vec!["t2a_async".to_owned()];
            let mut got = Vec::new();
            let now = t0 + time::Duration::seconds(1);
            while let Some(t) = s
                .claim_task(&kinds, now, now + time::Duration::seconds(30))
                .await
                .expect("claim")
            {
                got.push(t.id);
            }
            got
        });
    }
    let mut all: Vec<i64> = runs.join_all().await.into_iter().flatten().collect();
    all.sort_unstable();
    assert_eq!(all, (1..=40).collect::<Vec<_>>(), "each task once");
}

/// Two processes write usage batches for the same six keys at once, in
/// opposite orders, with a charge to each account: every batch is stored
/// (none lost to a deadlock) and the figures add up.
async fn concurrent_usage_batches_from_two_processes_all_land(db: &TestDb) {
    let a = db.open().await;
    let b = db.open().await;
    for n in 0..3 {
        a.insert_account(&account(&format!("a{n}"), &format!("{n}@x.io")))
            .await
            .expect("account");
        for m in 0..2 {
            a.insert_key(&key(&format!("k{n}{m}"), &format!("a{n}")), 9)
                .await
                .expect("key");
        }
    }
    let now = OffsetDateTime::now_utc();
    let event = |k: &str| UsageEvent {
        at: now,
        account_id: format!("a{}", &k[1..2]),
        key_id: k.to_owned(),
        request_id: "r".into(),
        method: "POST".into(),
        endpoint: "/v1/chat/completions".into(),
        status: 200,
        model: Some("m".into()),
        prompt_tokens: 3,
        completion_tokens: 1,
        characters: 0,
        images: 0,
        media_ms: 0,
        latency_us: 1,
        error_code: None,
        client_ip: None,
        charge: maximin_core::store::Charge {
            cost_micro: 2,
            debit: true,
            ..Default::default()
        },
    };
    let keys = ["k00", "k01", "k10", "k11", "k20", "k21"];
    let mut runs = tokio::task::JoinSet::new();
    for round in 0..16 {
        let s = if round % 2 == 0 { a.clone() } else { b.clone() };
        let mut batch: Vec<UsageEvent> = keys.iter().map(|k| event(k)).collect();
        if round % 2 == 1 {
            batch.reverse();
        }
        runs.spawn(async move { s.record_usage(&batch).await });
    }
    for r in runs.join_all().await {
        r.expect("every batch stored");
    }
    for k in keys {
        let got = a.key(k).await.expect("read").expect("key");
        assert_eq!(
            (got.usage.requests, got.usage.prompt_tokens),
            (16, 48),
            "{k}"
        );
    }
    let (balance, _) = a.credit("a0", now).await.expect("credit");
    assert_eq!(balance, -2 * 2 * 16, "two keys of a0, 16 rounds, 2 each");
}

async fn people_sessions_invites_and_guards(db: &TestDb) {
    use maximin_core::people::store::{InviteRecord, MembershipRecord, SessionRecord, UserRecord};
    let s = db.open().await;
    let now = from_ms(ms(OffsetDateTime::now_utc()));
    let user = UserRecord {
        id: "u1".into(),
        email: "a@x.io".into(),
        password_hash: "$argon2id$…".into(),
        totp: None,
        totp_pending: Some(vec![1, 2, 3]),
        totp_step: 0,
        operator: false,
        created_at: now,
    };
    assert!(s.insert_user(&user).await.expect("user"));
    assert!(
        !s.insert_user(&UserRecord {
            id: "u2".into(),
            ..user.clone()
        })
        .await
        .expect("dup"),
        "an e-mail signs up once"
    );
    let mut changed = user.clone();
    changed.totp = Some(vec![9; 40]);
    changed.totp_pending = None;
    changed.totp_step = 42;
    changed.operator = true;
    s.update_user(&changed).await.expect("update");
    assert_eq!(
        s.user_by_email("a@x.io").await.expect("by email"),
        Some(changed.clone())
    );

    s.set_recovery_codes("u1", &["h1".into(), "h2".into()])
        .await
        .expect("codes");
    assert_eq!(s.unused_recovery_codes("u1").await.expect("n"), 2);
    assert!(s.use_recovery_code("u1", "h1", now).await.expect("use"));
    assert!(
        !s.use_recovery_code("u1", "h1", now).await.expect("reuse"),
        "a code works once"
    );
    assert_eq!(s.unused_recovery_codes("u1").await.expect("n"), 1);

    let m = MembershipRecord {
        account_id: "a1".into(),
        user_id: "u1".into(),
        role: "owner".into(),
        created_at: now,
    };
    s.put_membership(&m).await.expect("member");
    s.put_membership(&MembershipRecord {
        role: "developer".into(),
        ..m.clone()
    })
    .await
    .expect("role");
    let ms_ = s.memberships_of_user("u1").await.expect("of user");
    assert_eq!(ms_.len(), 1);
    assert_eq!(ms_[0].role, "developer");
    assert_eq!(
        s.members_of_account("a1").await.expect("of account").len(),
        1
    );

    let session = SessionRecord {
        id: "s1".into(),
        user_id: "u1".into(),
        account_id: Some("a1".into()),
        stage: "totp".into(),
        created_at: now,
        seen_at: now,
        expires_at: now + time::Duration::hours(1),
        playground_key: None,
    };
    s.insert_session(&session).await.expect("session");
    s.insert_session(&SessionRecord {
        id: "s2".into(),
        ..session.clone()
    })
    .await
    .expect("session 2");
    let full = SessionRecord {
        stage: "full".into(),
        playground_key: Some("key_1".into()),
        ..session.clone()
    };
    s.update_session(&full).await.expect("update session");
    assert_eq!(s.session("s1").await.expect("get"), Some(full));
    let ended = s
        .delete_sessions_of("u1", Some("s1"))
        .await
        .expect("others");
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].id, "s2");
    assert!(s.session("s1").await.expect("kept").is_some());
    assert!(s.delete_session("s1").await.expect("delete"));

    let invite = InviteRecord {
        id: "inv1".into(),
        account_id: "a1".into(),
        email: "b@x.io".into(),
        role: "billing".into(),
        token_hash: "th".into(),
        created_at: now,
        expires_at: now + time::Duration::days(7),
        accepted_at: None,
    };
    s.insert_invite(&invite).await.expect("invite");
    assert_eq!(
        s.invite_by_token("th").await.expect("by token"),
        Some(invite.clone())
    );
    assert!(s.accept_invite("inv1", now).await.expect("accept"));
    assert!(
        !s.accept_invite("inv1", now).await.expect("again"),
        "an invitation works once"
    );
    assert!(!s.delete_invite("other", "inv1").await.expect("not theirs"));
    assert!(s.delete_invite("a1", "inv1").await.expect("delete"));
    assert!(s.remove_membership("a1", "u1").await.expect("remove"));

    // Five failures lock; parallel failures each count.
    let (window, lock) = (15 * 60_000, 15 * 60_000);
    let fails = fail_five_at_once(&s, now, window, lock).await;
    assert!(
        fails.iter().any(|g| g.locked_until.is_some()),
        "the fifth locks"
    );
    let g = s.guard("password:a@x.io").await.expect("guard");
    assert_eq!(
        g.locked_until,
        Some(now + time::Duration::milliseconds(lock))
    );
    // A lock that ran out starts a new window.
    let later = now + time::Duration::milliseconds(lock + 1);
    let g = s
        .fail_guard("password:a@x.io", later, window, 5, lock)
        .await
        .expect("after the lock");
    assert_eq!((g.failures, g.locked_until), (1, None));
    s.clear_guard("password:a@x.io").await.expect("clear");
    assert_eq!(
        s.guard("password:a@x.io").await.expect("cleared").failures,
        0
    );
}

async fn fail_five_at_once(
    s: &SqlStore,
    now: OffsetDateTime,
    window: i64,
    lock: i64,
) -> Vec<maximin_core::people::store::GuardState> {
    let attempts = (0..5).map(|_| s.fail_guard("password:a@x.io", now, window, 5, lock));
    let mut out = Vec::new();
    for r in futures_util::future::join_all(attempts).await {
        out.push(r.expect("fail"));
    }
    let mut counts: Vec<i64> = out.iter().map(|g| g.failures).collect();
    counts.sort_unstable();
    assert_eq!(counts, vec![1, 2, 3, 4, 5], "each failure counts once");
    out
}

/// Ids of the jobs whose models are served (succeeded, not deleted), of
/// these accounts.
pub(crate) async fn served(s: &SqlStore, accounts: &[&str]) -> Vec<i64> {
    let mut out = Vec::new();
    for a in accounts {
        for j in s.fine_tunes_of(a).await.expect("of") {
            if j.status == "succeeded" && j.fine_tuned_model.is_some() && !j.model_deleted {
                out.push(j.id);
            }
        }
    }
    out.sort_unstable();
    out
}

pub(crate) fn fine_tune(
    id: i64,
    account_id: &str,
    at: OffsetDateTime,
) -> maximin_core::finetune::store::FineTuneRecord {
    maximin_core::finetune::store::FineTuneRecord {
        id,
        account_id: account_id.into(),
        key_id: format!("key-{account_id}"),
        task_id: 1000 + id,
        base_model: "base".into(),
        training_file: 2000 + id,
        validation_file: None,
        hyperparameters: r#"{"n_epochs":3}"#.into(),
        suffix: None,
        seed: 42,
        status: "queued".into(),
        fine_tuned_model: None,
        adapter_file: None,
        trained_tokens: None,
        error: None,
        created_at: at,
        updated_at: at,
        finished_at: None,
        model_deleted: false,
    }
}

async fn fine_tunes_jobs_events_checkpoints_and_purge(db: &TestDb) {
    use maximin_core::finetune::store::{FineTuneCheckpoint, FineTuneRecord};
    let s = db.open().await;
    for a in ["a1", "a2"] {
        s.insert_account(&account(a, &format!("{a}@x.io")))
            .await
            .expect("account");
    }
    let now = from_ms(ms(OffsetDateTime::now_utc()));
    let sec = time::Duration::seconds(1);
    let j1 = fine_tune(1, "a1", now);
    let j2 = FineTuneRecord {
        validation_file: Some(3002),
        suffix: Some("mine".into()),
        created_at: now + sec,
        updated_at: now + sec,
        ..fine_tune(2, "a1", now)
    };
    let j3 = fine_tune(3, "a2", now);
    // Listed by creation whatever the order they went in.
    for j in [&j2, &j1, &j3] {
        s.insert_fine_tune(j).await.expect("insert");
    }
    assert_eq!(s.fine_tune(2).await.expect("get"), Some(j2.clone()));
    assert_eq!(s.fine_tune(99).await.expect("get"), None);
    let ids = |v: Vec<FineTuneRecord>| v.iter().map(|j| j.id).collect::<Vec<_>>();
    assert_eq!(ids(s.fine_tunes_of("a1").await.expect("of")), [1, 2]);
    assert_eq!(ids(s.fine_tunes_of("a2").await.expect("of")), [3]);

    // Status moves until a final one; the first end wins.
    assert!(s
        .set_fine_tune_status(1, "validating", now + sec)
        .await
        .expect("move"));
    assert!(s
        .set_fine_tune_status(1, "running", now + 2 * sec)
        .await
        .expect("move"));
    let got = s.fine_tune(1).await.expect("get").expect("j1");
    assert_eq!(
        (got.status.as_str(), got.updated_at, got.finished_at),
        ("running", now + 2 * sec, None)
    );
    assert!(s
        .finish_fine_tune(
            1,
            "succeeded",
            Some("ft:base:x:1"),
            Some(77),
            Some(1234),
            None,
            now + 3 * sec
        )
        .await
        .expect("finish"));
    assert!(
        !s.finish_fine_tune(1, "cancelled", None, None, None, None, now + 4 * sec)
            .await
            .expect("again"),
        "a job ends once"
    );
    assert!(
        !s.set_fine_tune_status(1, "running", now + 4 * sec)
            .await
            .expect("final"),
        "a final status stays"
    );
    let done = s.fine_tune(1).await.expect("get").expect("j1");
    assert_eq!(
        (
            done.status.as_str(),
            done.fine_tuned_model.as_deref(),
            done.adapter_file,
            done.trained_tokens,
            done.finished_at,
            done.updated_at,
        ),
        (
            "succeeded",
            Some("ft:base:x:1"),
            Some(77),
            Some(1234),
            Some(now + 3 * sec),
            now + 3 * sec
        )
    );
    // A cancel and a failure racing (from two processes): one ends it.
    let other = db.open().await;
    let error = r#"{"code":"x","message":"m","param":null}"#;
    let (a, b) = tokio::join!(
        s.finish_fine_tune(2, "cancelled", None, None, None, None, now + 5 * sec),
        other.finish_fine_tune(2, "failed", None, None, None, Some(error), now + 5 * sec),
    );
    let (a, b) = (a.expect("cancel"), b.expect("fail"));
    assert!(a ^ b, "exactly one ends it: {a} {b}");
    let j2_done = s.fine_tune(2).await.expect("get").expect("j2");
    assert_eq!(j2_done.status, if a { "cancelled" } else { "failed" });
    assert_eq!(j2_done.error.is_some(), b);
    assert!(s
        .finish_fine_tune(
            3,
            "succeeded",
            Some("ft:base:x:3"),
            Some(78),
            Some(9),
            None,
            now
        )
        .await
        .expect("finish j3"));

    // Models: by name and the catalog's list, without deleted ones.
    assert_eq!(
        s.fine_tune_by_model("ft:base:x:1")
            .await
            .expect("by model")
            .map(|j| j.id),
        Some(1)
    );
    assert_eq!(served(&s, &["a1", "a2"]).await, [1, 3]);
    assert!(s.delete_fine_tuned_model(1).await.expect("delete"));
    assert!(!s.delete_fine_tuned_model(1).await.expect("again"));
    assert_eq!(
        s.fine_tune_by_model("ft:base:x:1").await.expect("by model"),
        None
    );
    assert_eq!(served(&s, &["a1", "a2"]).await, [3]);
    let kept = s.fine_tune(1).await.expect("get").expect("still listed");
    assert!(kept.model_deleted);

    // Events: 20 appends at once, from two processes, numbered 1..=20.
    let appends = (0..20).map(|i| {
        let store = if i % 2 == 0 { &s } else { &other };
        async move {
            store
                .add_fine_tune_event(1, "info", &format!("step {i}"), Some(r#"{"step":1}"#), now)
                .await
                .expect("append")
        }
    });
    let mut seqs = futures_util::future::join_all(appends).await;
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=20).collect::<Vec<i64>>());
    assert_eq!(
        s.add_fine_tune_event(3, "warn", "other job", None, now)
            .await
            .expect("append"),
        1,
        "numbered per job"
    );
    let seqs_of = |v: Vec<maximin_core::finetune::store::FineTuneEvent>| {
        v.iter().map(|e| e.seq).collect::<Vec<_>>()
    };
    assert_eq!(
        seqs_of(s.fine_tune_events(1, 0, 5).await.expect("page")),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(
        seqs_of(s.fine_tune_events(1, 5, 100).await.expect("page")),
        (6..=20).collect::<Vec<i64>>()
    );
    assert!(s.fine_tune_events(1, 20, 10).await.expect("end").is_empty());
    let e = &s.fine_tune_events(3, 0, 10).await.expect("j3")[0];
    assert_eq!(
        (
            e.job_id,
            e.level.as_str(),
            e.message.as_str(),
            e.data.as_deref(),
            e.created_at
        ),
        (3, "warn", "other job", None, now)
    );
    assert_eq!(
        s.fine_tune_events(1, 0, 1).await.expect("first")[0]
            .data
            .as_deref(),
        Some(r#"{"step":1}"#)
    );

    // Checkpoints: one per step (a second replaces it), deleted below a step.
    let cp = |job_id, step, file_id| FineTuneCheckpoint {
        job_id,
        step,
        file_id,
        metrics: format!(r#"{{"step":{step}}}"#),
        created_at: now,
    };
    for c in [
        cp(1, 20, 200),
        cp(1, 10, 100),
        cp(1, 30, 300),
        cp(1, 10, 101),
        cp(3, 5, 500),
    ] {
        s.add_fine_tune_checkpoint(&c).await.expect("checkpoint");
    }
    let cps = s.fine_tune_checkpoints(1).await.expect("list");
    assert_eq!(
        cps.iter().map(|c| (c.step, c.file_id)).collect::<Vec<_>>(),
        [(10, 101), (20, 200), (30, 300)]
    );
    assert_eq!(cps[0], cp(1, 10, 101));
    let mut gone = s.delete_fine_tune_checkpoints(1, 30).await.expect("delete");
    gone.sort_unstable();
    assert_eq!(gone, [101, 200]);
    assert_eq!(
        s.fine_tune_checkpoints(1).await.expect("list"),
        [cp(1, 30, 300)]
    );
    assert!(s
        .delete_fine_tune_checkpoints(1, 30)
        .await
        .expect("none")
        .is_empty());

    // Closure takes the account's models out of the catalog; the purge
    // takes its jobs, events and checkpoints, and leaves another's.
    assert_eq!(s.close_account("a1", now).await.expect("close"), Some(0));
    assert_eq!(served(&s, &["a1", "a2"]).await, [3]);
    assert!(s.purge_account("a1").await.expect("purge"));
    assert!(s.fine_tunes_of("a1").await.expect("of").is_empty());
    assert!(s.fine_tune(1).await.expect("get").is_none());
    assert!(s
        .fine_tune_events(1, 0, 100)
        .await
        .expect("events")
        .is_empty());
    assert!(s.fine_tune_checkpoints(1).await.expect("cps").is_empty());
    assert_eq!(ids(s.fine_tunes_of("a2").await.expect("of")), [3]);
    assert_eq!(
        s.fine_tune_events(3, 0, 100).await.expect("events").len(),
        1
    );
    assert_eq!(s.fine_tune_checkpoints(3).await.expect("cps").len(), 1);
}

crate::store_tests!(
    keys_limits_usage_and_idempotency_round_trip,
    a_task_is_claimed_once_and_ended_by_its_latest_attempt_only,
    voices_are_per_account_and_unused_ones_expire,
    concurrent_claims_from_three_processes_take_each_task_once,
    concurrent_usage_batches_from_two_processes_all_land,
    people_sessions_invites_and_guards,
    fine_tunes_jobs_events_checkpoints_and_purge,
);

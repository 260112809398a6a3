//! The hub over plain HTTP, as a browser without script speaks it: cookies,
//! forms with their CSRF tokens, redirects. Sign-up, TOTP, log-in, keys,
//! lock-outs, CSRF refusals, and one account's session against another's
//! every route. The browser tests (`hub_browser.rs`) drive the same pages in
//! Chromium.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};

use crate::helpers::Server;

/// A browser without script: one cookie jar, no redirects followed.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
    /// The CSRF token of the last page that had one.
    pub csrf: String,
    /// Every HTML page served to this browser, in order.
    pub pages: Vec<String>,
}

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub body: String,
}

impl Browser {
    pub fn new(server: &Server) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base: server.base.clone(),
            cookies: BTreeMap::new(),
            csrf: String::new(),
            pages: Vec::new(),
        }
    }

    pub fn cookie(&self, name: &str) -> Option<&String> {
        self.cookies.get(name)
    }

    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.cookies.insert(name.into(), value.into());
    }

    async fn take(&mut self, r: reqwest::Response) -> Page {
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let set_cookies: Vec<String> = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect();
        for c in &set_cookies {
            let pair = c.split(';').next().unwrap_or("");
            if let Some((k, v)) = pair.split_once('=') {
                if v.is_empty() || c.contains("Max-Age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.into(), v.into());
                }
            }
        }
        // As a reader sees it: entities undone (the templates escape '/').
        let body = r
            .text()
            .await
            .expect("body")
            .replace("&#x2f;", "/")
            .replace("&#x27;", "'")
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        if let Some(t) = between(&body, "name=\"csrf\" value=\"", "\"") {
            self.csrf = t.to_owned();
        }
        self.pages.push(body.clone());
        Page {
            status,
            location,
            set_cookies,
            body,
        }
    }

    fn jar(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.jar())
            .send()
            .await
            .expect("get");
        self.take(r).await
    }

    /// Posts a form with the last page's CSRF token.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.csrf.clone();
        let mut all: Vec<(&str, &str)> = vec![("csrf", &csrf)];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    /// Posts exactly these fields (no CSRF token added).
    pub async fn post_raw(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body: String = fields
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.jar())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("post");
        self.take(r).await
    }

    /// Follows a redirect (the way a browser would, with GET).
    pub async fn follow(&mut self, p: &Page) -> Page {
        let to = p.location.clone().expect("a redirect");
        self.get(&to).await
    }

    /// Signs up a new person with a new account; lands on the overview.
    pub async fn sign_up(&mut self, email: &str, password: &str) -> Page {
        self.get("/hub/signup").await;
        let p = self
            .post(
                "/hub/signup",
                &[
                    ("email", email),
                    ("password", password),
                    ("password_again", password),
                ],
            )
            .await;
        assert_eq!(p.status, 303, "signed up: {}", p.body);
        self.follow(&p).await
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = s.find(start)? + start.len();
    let len = s[from..].find(end)?;
    Some(&s[from..from + len])
}

/// RFC 6238 (SHA-1, 30 s, 6 digits) written here, apart from the server's.
pub fn totp(secret_b32: &str, at_unix: i64) -> String {
    let mut bits = 0u32;
    let mut buf = 0u64;
    let mut key = Vec::new();
    for c in secret_b32.chars() {
        let v = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".find(c).expect("base32") as u64;
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            key.push((buf >> bits) as u8);
        }
    }
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&key).expect("key");
    mac.update(&((at_unix / 30) as u64).to_be_bytes());
    let d = mac.finalize().into_bytes();
    let o = (d[19] & 0xf) as usize;
    let n = u32::from_be_bytes([d[o] & 0x7f, d[o + 1], d[o + 2], d[o + 3]]) % 1_000_000;
    format!("{n:06}")
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

const PASSWORD: &str = "Blue-Kettle-42-river";

/// Turns TOTP on from the security page; returns the secret and the
/// recovery codes.
async fn enrol_totp(b: &mut Browser) -> (String, Vec<String>) {
    b.get("/hub/security").await;
    let p = b.post("/hub/security/totp", &[]).await;
    assert_eq!(p.status, 303);
    let page = b.get("/hub/security").await;
    assert!(page.body.contains("<svg"), "a QR code drawn on the server");
    let secret = between(&page.body, "id=\"totp-secret\">", "<")
        .expect("the secret")
        .to_owned();
    // A wrong code is refused with the field named.
    let p = b
        .post("/hub/security/totp/confirm", &[("code", "000000")])
        .await;
    assert_eq!(p.status, 400, "{}", p.body);
    assert!(p.body.contains("aria-invalid=\"true\""));
    let code = totp(&secret, now_unix());
    let p = b
        .post("/hub/security/totp/confirm", &[("code", &code)])
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    let codes: Vec<String> = p
        .body
        .split("<li><code>")
        .skip(1)
        .filter_map(|s| s.split('<').next())
        .map(str::to_owned)
        .collect();
    assert_eq!(codes.len(), 10, "ten recovery codes");
    (secret, codes)
}

#[tokio::test]
async fn sign_up_totp_log_in_keys_and_revocation_over_http() {
    let s = Server::start().await;
    let mut b = Browser::new(&s);
    // Pages need a session: the overview sends a stranger to log in.
    let p = b.get("/hub").await;
    assert_eq!((p.status, p.location.as_deref()), (303, Some("/hub/login")));
    // The session cookie: HttpOnly, SameSite=Lax, no expiry (ends with the browser).
    let p = b.get("/hub/signup").await;
    let cookie = p
        .set_cookies
        .iter()
        .find(|c| c.starts_with("maximin_session="))
        .expect("a session cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
    assert!(!cookie.contains("Max-Age") && !cookie.contains("Expires"));
    assert!(p.body.contains("<label for=\"email\">"));

    // A weak password is refused with its reason, the field marked.
    let p = b
        .post(
            "/hub/signup",
            &[
                ("email", "owner@example.com"),
                ("password", "password123"),
                ("password_again", "password123"),
            ],
        )
        .await;
    assert_eq!(p.status, 400);
    assert!(p.body.contains("most common"), "{}", p.body);
    let overview = b.sign_up("owner@example.com", PASSWORD).await;
    assert!(overview.body.contains("Overview"), "{}", overview.body);
    let csp = "default-src 'self'";
    let r = reqwest::get(s.url("/hub/login")).await.expect("get");
    assert!(r
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(csp)));
    assert_eq!(
        r.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );

    let (secret, codes) = enrol_totp(&mut b).await;

    // Log out, then in: the password, then the code.
    let p = b.post("/hub/logout", &[]).await;
    assert_eq!(p.location.as_deref(), Some("/hub/login"));
    assert_eq!(b.get("/hub/keys").await.status, 303, "logged out");
    b.get("/hub/login").await;
    let p = b
        .post(
            "/hub/login",
            &[("email", "owner@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(p.location.as_deref(), Some("/hub/login/code"));
    // Half signed in: no page but the code's.
    assert_eq!(
        b.get("/hub/keys").await.location.as_deref(),
        Some("/hub/login/code")
    );
    b.get("/hub/login/code").await;
    // A recovery code stands in for the app's code.
    let p = b.post("/hub/login/code", &[("code", &codes[0])]).await;
    assert_eq!(
        (p.status, p.location.as_deref()),
        (303, Some("/hub")),
        "{}",
        p.body
    );
    let p = b.follow(&p).await;
    assert!(p.body.contains("owner@example.com"));
    // A recovery code works once.
    b.post("/hub/logout", &[]).await;
    b.get("/hub/login").await;
    b.post(
        "/hub/login",
        &[("email", "owner@example.com"), ("password", PASSWORD)],
    )
    .await;
    b.get("/hub/login/code").await;
    let p = b.post("/hub/login/code", &[("code", &codes[0])]).await;
    assert_eq!(p.status, 401, "a used recovery code: {}", p.body);

    // With a second factor from the app.
    let code = totp(&secret, now_unix() + 30);
    let p = b.post("/hub/login/code", &[("code", &code)]).await;
    assert_eq!(p.location.as_deref(), Some("/hub"), "{}", p.body);

    // A key: created with scopes and a budget, its secret shown once.
    b.get("/hub/keys").await;
    let p = b
        .post(
            "/hub/keys",
            &[
                ("name", "ci"),
                ("mode", "live"),
                ("scopes", "text"),
                ("scopes", "read"),
                ("budget_usd", "12.5"),
            ],
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    let key = between(&p.body, "id=\"secret\">", "<")
        .expect("the secret")
        .to_owned();
    assert!(key.starts_with("mmx_live_"));
    let r = s.get("/v1/models", &key).await;
    assert_eq!(r.status, 200);
    let list = b.get("/hub/keys").await;
    assert!(list.body.contains("read, text") || list.body.contains("text, read"));
    assert!(list.body.contains("$12.50/month"), "{}", list.body);
    let key_id = between(&list.body, "href=\"/hub/keys/", "\"")
        .expect("the key's page")
        .to_owned();
    let page = b.get(&format!("/hub/keys/{key_id}")).await;
    assert!(
        page.body.contains("/v1/models"),
        "the activity log: {}",
        page.body
    );

    // Revocation asks for confirmation, then the key is refused at once.
    let p = b.post(&format!("/hub/keys/{key_id}/revoke"), &[]).await;
    assert_eq!(p.status, 400);
    assert_eq!(s.get("/v1/models", &key).await.status, 200);
    let p = b
        .post(&format!("/hub/keys/{key_id}/revoke"), &[("confirm", "yes")])
        .await;
    assert_eq!(p.location.as_deref(), Some("/hub/keys?done=key_revoked"));
    s.get("/v1/models", &key)
        .await
        .assert_error(401, "authentication_failed");

    // The secret was in exactly one page of all served.
    let seen: usize = b.pages.iter().map(|p| p.matches(&key).count()).sum();
    assert_eq!(seen, 1, "the key's secret appears once in all HTML");
    for code in &codes {
        let seen: usize = b
            .pages
            .iter()
            .map(|p| p.matches(code.as_str()).count())
            .sum();
        assert_eq!(seen, 1, "a recovery code appears once");
    }
}

#[tokio::test]
async fn forms_without_the_right_csrf_token_are_refused() {
    let s = Server::start().await;
    let mut b = Browser::new(&s);
    b.sign_up("csrf@example.com", PASSWORD).await;
    b.get("/hub/keys").await;
    let good = b.csrf.clone();
    // Missing, wrong, and one made for another browser's cookie.
    let p = b.post_raw("/hub/keys", &[("name", "x")]).await;
    assert_eq!(p.status, 403, "missing");
    assert!(p.body.contains("This form has expired"));
    let p = b
        .post_raw(
            "/hub/keys",
            &[("csrf", "0".repeat(64).as_str()), ("name", "x")],
        )
        .await;
    assert_eq!(p.status, 403, "wrong");
    let mut other = Browser::new(&s);
    other.get("/hub/login").await;
    let p = b
        .post_raw("/hub/keys", &[("csrf", other.csrf.as_str()), ("name", "x")])
        .await;
    assert_eq!(p.status, 403, "another cookie's token");
    // Log-in and sign-up forms too (no cookie at all: refused).
    let mut fresh = Browser::new(&s);
    let p = fresh
        .post_raw(
            "/hub/login",
            &[("email", "csrf@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(p.status, 403);
    // Nothing was made by the refused posts; the right token works.
    let list = b.get("/hub/keys").await;
    assert!(list.body.contains("No keys yet."));
    assert_eq!(b.csrf, good, "the token is the session's");
    let p = b.post("/hub/keys", &[("name", "x")]).await;
    assert_eq!(p.status, 200);
}

#[tokio::test]
async fn repeated_wrong_passwords_and_codes_lock_out() {
    let s = Server::start().await;
    let mut b = Browser::new(&s);
    b.sign_up("lock@example.com", PASSWORD).await;
    let (secret, _) = enrol_totp(&mut b).await;
    b.post("/hub/logout", &[]).await;

    // Wrong codes after the right password: the fifth locks.
    b.get("/hub/login").await;
    b.post(
        "/hub/login",
        &[("email", "lock@example.com"), ("password", PASSWORD)],
    )
    .await;
    b.get("/hub/login/code").await;
    for i in 1..=5 {
        let p = b.post("/hub/login/code", &[("code", "123456")]).await;
        let want = if i < 5 { 401 } else { 429 };
        assert_eq!(p.status, want, "attempt {i}: {}", p.body);
    }
    let code = totp(&secret, now_unix());
    let p = b.post("/hub/login/code", &[("code", &code)]).await;
    assert_eq!(p.status, 429, "the right code is refused while locked");
    assert!(p.body.contains("locked for 15 more minutes"), "{}", p.body);

    // Wrong passwords: the fifth locks, and then the right one is refused too.
    let mut other = Browser::new(&s);
    other.get("/hub/login").await;
    for i in 1..=5 {
        let p = other
            .post(
                "/hub/login",
                &[
                    ("email", "lock@example.com"),
                    ("password", "Wrong-Password-9"),
                ],
            )
            .await;
        let want = if i < 5 { 401 } else { 429 };
        assert_eq!(p.status, want, "attempt {i}");
    }
    let p = other
        .post(
            "/hub/login",
            &[("email", "lock@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(p.status, 429);
    assert!(p.body.contains("Too many failed attempts"));
    // An unknown address locks the same way (no telling who exists).
    for _ in 0..5 {
        other
            .post(
                "/hub/login",
                &[
                    ("email", "nobody@example.com"),
                    ("password", "Wrong-Password-9"),
                ],
            )
            .await;
    }
    let p = other
        .post(
            "/hub/login",
            &[
                ("email", "nobody@example.com"),
                ("password", "Wrong-Password-9"),
            ],
        )
        .await;
    assert_eq!(p.status, 429);
}

/// The hub's route templates, read from its router: the matrix below
/// must name every one, so a new route cannot go untested.
fn hub_routes() -> Vec<String> {
    let src = include_str!("../../../maximin-hub/src/lib.rs");
    let mut out = Vec::new();
    for part in src.split(".route(").skip(1) {
        if let Some(path) = between(part.trim_start(), "\"", "\"") {
            out.push(path.to_owned());
        }
    }
    out
}

/// Every hub route, from account A's session, with account B's ids where
/// the route takes one: nothing of B's is shown or changed. Routes without
/// an id act on the session's own account by construction; A's pages are
/// checked to show nothing of B's.
#[tokio::test]
async fn one_accounts_session_reaches_nothing_of_another() {
    let s = Server::start().await;
    let mut a = Browser::new(&s);
    a.sign_up("a@example.com", PASSWORD).await;
    let mut bb = Browser::new(&s);
    bb.sign_up("b@example.com", PASSWORD).await;

    // B's things: a key, a file, a ticket, an export, an invitation, B's
    // account and user ids.
    bb.get("/hub/keys").await;
    let p = bb.post("/hub/keys", &[("name", "b-key")]).await;
    let b_secret = between(&p.body, "id=\"secret\">", "<")
        .expect("secret")
        .to_owned();
    let list = bb.get("/hub/keys").await;
    let b_key = between(&list.body, "href=\"/hub/keys/", "\"")
        .expect("key")
        .to_owned();
    let up = s
        .upload(&b_secret, "retrieval", "b-notes.txt", b"B's notes".to_vec())
        .await;
    let b_file = up.body["file"]["file_id"]
        .as_i64()
        .or_else(|| {
            up.body["data"]["id"]
                .as_str()
                .and_then(|i| i.trim_start_matches("file_").parse().ok())
        })
        .map(|i| i.to_string())
        .unwrap_or_else(|| panic!("B's file: {:?}", up.body));
    bb.get("/hub/support").await;
    let p = bb
        .post(
            "/hub/support",
            &[("subject", "b-ticket"), ("message", "B's question")],
        )
        .await;
    let b_ticket = p
        .location
        .as_deref()
        .and_then(|l| l.strip_prefix("/hub/support/"))
        .expect("B's ticket")
        .to_owned();
    bb.get("/hub/privacy").await;
    let p = bb.post("/hub/privacy/export", &[]).await;
    let b_export = p
        .location
        .as_deref()
        .and_then(|l| l.strip_prefix("/hub/privacy/export/"))
        .expect("B's export")
        .to_owned();
    bb.get("/hub/members").await;
    let p = bb
        .post(
            "/hub/members",
            &[("email", "c@example.com"), ("role", "developer")],
        )
        .await;
    let b_invite_token = between(&p.body, "/hub/invite/", "<")
        .expect("link")
        .to_owned();
    let members = bb.get("/hub/members").await;
    let b_invite = between(&members.body, "/hub/members/invites/", "/cancel")
        .expect("invite")
        .to_owned();
    let b_user = between(&members.body, "action=\"/hub/members/user_", "\"")
        .map(|u| format!("user_{u}"))
        .expect("user");
    let overview = bb.get("/hub").await;
    let b_account = between(&overview.body, "<code>acct_", "<")
        .map(|a| format!("acct_{a}"))
        .expect("B's account");

    // (template, method, path with B's ids, form fields)
    type Probe<'a> = (&'a str, &'a str, String, Vec<(&'a str, &'a str)>);
    let matrix: Vec<Probe> = vec![
        ("/keys/{id}", "GET", format!("/hub/keys/{b_key}"), vec![]),
        (
            "/keys/{id}/revoke",
            "POST",
            format!("/hub/keys/{b_key}/revoke"),
            vec![("confirm", "yes")],
        ),
        (
            "/files/{id}/delete",
            "POST",
            format!("/hub/files/{b_file}/delete"),
            vec![],
        ),
        (
            "/support/{id}",
            "GET",
            format!("/hub/support/{b_ticket}"),
            vec![],
        ),
        (
            "/support/{id}",
            "POST",
            format!("/hub/support/{b_ticket}"),
            vec![("action", "reply"), ("message", "from A")],
        ),
        (
            "/support/{id}",
            "POST",
            format!("/hub/support/{b_ticket}"),
            vec![("action", "close")],
        ),
        (
            "/privacy/export/{task_id}",
            "GET",
            format!("/hub/privacy/export/{b_export}"),
            vec![],
        ),
        (
            "/members/{user_id}",
            "POST",
            format!("/hub/members/{b_user}"),
            vec![("action", "remove")],
        ),
        (
            "/members/{user_id}",
            "POST",
            format!("/hub/members/{b_user}"),
            vec![("action", "role"), ("role", "read-only")],
        ),
        (
            "/members/invites/{id}/cancel",
            "POST",
            format!("/hub/members/invites/{b_invite}/cancel"),
            vec![],
        ),
        (
            "/account",
            "POST",
            "/hub/account".into(),
            vec![("account_id", b_account.as_str())],
        ),
        // An invitation is for its address: A's session cannot take B's.
        (
            "/invite/{token}",
            "POST",
            format!("/hub/invite/{b_invite_token}"),
            vec![],
        ),
        // The operator's view is the operator's: not A's, whatever the ids.
        ("/operator", "GET", "/hub/operator".into(), vec![]),
        (
            "/operator/plan",
            "POST",
            "/hub/operator/plan".into(),
            vec![("account_id", b_account.as_str()), ("plan", "free")],
        ),
        (
            "/operator/credits",
            "POST",
            "/hub/operator/credits".into(),
            vec![("account_id", b_account.as_str()), ("usd", "100")],
        ),
    ];
    // Routes that take no id: they act on the session's own account (or
    // on no account at all), so B's ids cannot be named to them.
    let own_only = [
        "/",
        "/assets/hub.css",
        "/assets/hub.js",
        "/prefs",
        "/signup",
        "/login",
        "/login/code",
        "/logout",
        "/security",
        "/security/password",
        "/security/totp",
        "/security/totp/confirm",
        "/security/totp/disable",
        "/security/recovery",
        "/keys",
        "/usage",
        "/billing",
        "/billing/invoices/{id}",
        "/privacy",
        "/privacy/export",
        "/privacy/delete",
        "/privacy/debug",
        "/privacy/routing",
        "/privacy/close",
        "/files",
        "/support",
        "/playground",
        "/playground/send",
        "/members",
    ];
    for route in hub_routes() {
        assert!(
            matrix.iter().any(|(t, ..)| *t == route) || own_only.contains(&route.as_str()),
            "the route {route} is in neither the matrix nor the own-account list"
        );
    }

    for (template, method, path, fields) in &matrix {
        a.get("/hub").await;
        let p = if *method == "GET" {
            a.get(path).await
        } else {
            a.post(path, fields).await
        };
        assert!(
            matches!(p.status, 400 | 403 | 404),
            "{method} {template} as A: {} {}",
            p.status,
            p.body
        );
        for theirs in [
            "b-key",
            "b-ticket",
            "B's question",
            "b@example.com",
            "b-notes.txt",
        ] {
            assert!(
                !p.body.contains(theirs),
                "{method} {template} shows {theirs}"
            );
        }
    }
    // A's own pages, and A's invoice of the same month id, show none of B's.
    for path in [
        "/hub",
        "/hub/keys",
        "/hub/usage",
        "/hub/billing",
        "/hub/billing/invoices/inv_2026-12",
        "/hub/privacy",
        "/hub/files",
        "/hub/support",
        "/hub/members",
        "/hub/playground",
    ] {
        let p = a.get(path).await;
        for theirs in [
            "b-key",
            "b-ticket",
            "b@example.com",
            "b-notes.txt",
            b_account.as_str(),
        ] {
            assert!(!p.body.contains(theirs), "GET {path} as A shows {theirs}");
        }
    }
    // Everything of B's is as it was.
    assert_eq!(
        s.get("/v1/models", &b_secret).await.status,
        200,
        "B's key works"
    );
    let members = bb.get("/hub/members").await;
    assert!(members.body.contains("b@example.com") && members.body.contains("owner"));
    assert!(members.body.contains(&b_invite), "B's invitation is open");
    let files = bb.get("/hub/files").await;
    assert!(files.body.contains("b-notes.txt"), "B's file is there");
    let ticket = bb.get(&format!("/hub/support/{b_ticket}")).await;
    assert!(ticket.body.contains("open") && !ticket.body.contains("from A"));
    let overview = bb.get("/hub").await;
    assert!(overview.body.contains("payg"), "B's plan is unchanged");
    // B's cookie is B's session: it shows B's keys, not A's.
    let mut stolen = Browser::new(&s);
    stolen.set_cookie(
        "maximin_session",
        bb.cookie("maximin_session").expect("B's cookie"),
    );
    let p = stolen.get("/hub/keys").await;
    assert!(p.body.contains("b-key") && !p.body.contains("a@example.com"));
}

/// The playground's calls pass the request path (metered on the session's
/// own key) and keep no content: not even with debug logging on, which
/// keeps the same request sent with a key.
#[tokio::test]
async fn playground_calls_are_metered_and_keep_no_content() {
    let s = Server::with_models("").await;
    let mut b = Browser::new(&s);
    b.sign_up("play@example.com", PASSWORD).await;
    b.get("/hub/privacy").await;
    let p = b
        .post(
            "/hub/privacy/debug",
            &[("enabled", "yes"), ("duration_hours", "1")],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let canary = format!("canary-{}", crate::helpers::rand_suffix());
    b.get("/hub/playground").await;
    for stream in ["yes", "no"] {
        let message = format!("Repeat after me: {canary}");
        let p = b
            .post(
                "/hub/playground/send",
                &[
                    ("endpoint", "chat"),
                    ("model", "gemma-3-270m"),
                    ("message", message.as_str()),
                    ("max_tokens", "8"),
                    ("stream", stream),
                ],
            )
            .await;
        assert_eq!(p.status, 200, "{}", p.body);
        if stream == "yes" {
            assert!(p.body.contains("data: "), "a stream: {}", p.body);
        } else {
            assert!(p.body.contains("\"choices\""), "{}", p.body);
        }
        assert!(!p.body.contains("mmx_live_"), "no key in the answer");
    }
    // The page without script: the answer in the page, the curl command
    // with the key left to the environment.
    let p = b
        .post(
            "/hub/playground",
            &[
                ("endpoint", "chat"),
                ("model", "gemma-3-270m"),
                ("message", "Hi"),
                ("max_tokens", "4"),
            ],
        )
        .await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains("id=\"pg-text-out\""), "{}", p.body);
    assert!(p.body.contains("Bearer $MAXIMIN_API_KEY") && !p.body.contains("mmx_live_"));

    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let usage = b.get("/hub/usage").await;
    assert!(
        usage.body.contains("<td>gemma-3-270m</td><td>3</td>"),
        "{}",
        usage.body
    );
    assert!(usage.body.contains("Hub playground (play@example.com)"));
    let debug_logs = |page: &str| -> String {
        between(
            page,
            "<label for=\"cat-debug_logs\">debug_logs</label></th>",
            "</tr>",
        )
        .and_then(|row| row.split("<td>").nth(2))
        .and_then(|c| c.split('<').next())
        .expect("the debug logs row")
        .to_owned()
    };
    let privacy = b.get("/hub/privacy").await;
    assert_eq!(debug_logs(&privacy.body), "0", "no playground content kept");

    // The same request with a key is kept (sealed): the switch is on.
    b.get("/hub/keys").await;
    let p = b.post("/hub/keys", &[("name", "k")]).await;
    let key = between(&p.body, "id=\"secret\">", "<")
        .expect("secret")
        .to_owned();
    let r = s
        .post(
            "/v1/chat/completions",
            &key,
            serde_json::json!({"model": "gemma-3-270m", "max_tokens": 4,
                "messages": [{"role": "user", "content": canary}]}),
        )
        .await;
    assert_eq!(r.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let privacy = b.get("/hub/privacy").await;
    assert_eq!(debug_logs(&privacy.body), "1", "a key's request is kept");
    // And the canary is nowhere in the data dir in the clear.
    for entry in walk(s.dir.path()) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        assert!(
            !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
            "{} holds the playground's content",
            entry.display()
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_symlink() {
            continue;
        }
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The operator's view: only for a user the CLI made operator, only with
/// two-factor sign-in on; plan changes and credit grants hold at once.
#[tokio::test]
async fn the_operator_view_needs_the_role_and_a_second_factor() {
    let s = Server::start().await;
    let mut op = Browser::new(&s);
    op.sign_up("op@example.com", PASSWORD).await;
    let mut cust = Browser::new(&s);
    cust.sign_up("cust@example.com", PASSWORD).await;
    let overview = cust.get("/hub").await;
    let cust_account = between(&overview.body, "<code>acct_", "<")
        .map(|a| format!("acct_{a}"))
        .expect("account");

    assert_eq!(
        op.get("/hub/operator").await.status,
        403,
        "not yet an operator"
    );
    let users = s.cli(&["users", "list"]).expect("users list");
    assert_eq!(users.as_array().map(Vec::len), Some(2));
    assert!(!users.to_string().contains("argon2"), "no hash printed");
    s.cli(&["users", "operator", "op@example.com"])
        .expect("operator");
    let p = op.get("/hub/operator").await;
    assert_eq!(p.status, 403, "an operator without a second factor");
    assert!(p.body.contains("two-factor sign-in"));
    enrol_totp(&mut op).await;
    let p = op.get("/hub/operator").await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body.contains("cust@example.com") && p.body.contains("Upstreams"));

    // A plan change and a grant, checked where the customer sees them.
    let p = op
        .post(
            "/hub/operator/plan",
            &[("account_id", cust_account.as_str()), ("plan", "free")],
        )
        .await;
    assert_eq!(p.location.as_deref(), Some("/hub/operator?done=plan"));
    op.get("/hub/operator").await;
    let p = op
        .post(
            "/hub/operator/credits",
            &[
                ("account_id", cust_account.as_str()),
                ("usd", "12.5"),
                ("note", "goodwill"),
            ],
        )
        .await;
    assert_eq!(p.location.as_deref(), Some("/hub/operator?done=credits"));
    op.get("/hub/operator").await;
    let p = op
        .post(
            "/hub/operator/credits",
            &[("account_id", cust_account.as_str()), ("usd", "-3")],
        )
        .await;
    assert_eq!(p.status, 400);
    assert!(p.body.contains("above 0"));
    let billing = cust.get("/hub/billing").await;
    assert!(billing.body.contains("goodwill") && billing.body.contains("$12.50"));
    let overview = cust.get("/hub").await;
    assert!(overview.body.contains("<dd>free</dd>"), "{}", overview.body);

    // Taken away by the CLI: the page refuses at once.
    s.cli(&["users", "operator", "op@example.com", "--off"])
        .expect("off");
    assert_eq!(op.get("/hub/operator").await.status, 403);

    // The CLI's invitation brings someone into an account it made.
    let acct = s.account("payg");
    let inv = s
        .cli(&[
            "users",
            "invite",
            "--account",
            &acct,
            "--email",
            "new@example.com",
            "--role",
            "developer",
        ])
        .expect("invite");
    let link = inv["link"].as_str().expect("link").to_owned();
    let token = link.trim_start_matches("/hub/invite/").to_owned();
    let mut newbie = Browser::new(&s);
    let page = newbie.get(&link).await;
    assert!(page.body.contains("new@example.com") && page.body.contains("developer"));
    newbie.get(&format!("/hub/signup?invite={token}")).await;
    let p = newbie
        .post(
            "/hub/signup",
            &[
                ("email", "new@example.com"),
                ("password", PASSWORD),
                ("password_again", PASSWORD),
                ("invite", token.as_str()),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let overview = newbie.follow(&p).await;
    assert!(overview.body.contains(&acct) && overview.body.contains("developer"));
    // A developer manages keys but not members or privacy.
    assert_eq!(newbie.get("/hub/keys").await.status, 200);
    assert_eq!(newbie.get("/hub/members").await.status, 403);
    assert_eq!(newbie.get("/hub/privacy").await.status, 403);
    // The link worked once.
    assert_eq!(Browser::new(&s).get(&link).await.status, 404);
}

/// Members are a data category of their own: counted, exported without a
/// hash or a secret, and removed with the profile 90 days after closure,
/// together with logins left in no account.
#[tokio::test]
async fn members_are_exported_and_purged_with_the_closed_account() {
    let s = Server::start().await;
    let mut owner = Browser::new(&s);
    owner.sign_up("owner@example.com", PASSWORD).await;
    let overview = owner.get("/hub").await;
    let account = between(&overview.body, "<code>acct_", "<")
        .map(|a| format!("acct_{a}"))
        .expect("account");
    // Two members: one only here, one with an account of her own too.
    for (email, role) in [
        ("only@example.com", "billing"),
        ("both@example.com", "read-only"),
    ] {
        owner.get("/hub/members").await;
        let p = owner
            .post("/hub/members", &[("email", email), ("role", role)])
            .await;
        let token = between(&p.body, "/hub/invite/", "<")
            .expect("link")
            .to_owned();
        let mut m = Browser::new(&s);
        if email.starts_with("both") {
            m.sign_up(email, PASSWORD).await;
            m.get(&format!("/hub/invite/{token}")).await;
            let p = m.post(&format!("/hub/invite/{token}"), &[]).await;
            assert_eq!(
                p.location.as_deref(),
                Some("/hub?done=joined"),
                "{}",
                p.body
            );
        } else {
            m.get(&format!("/hub/signup?invite={token}")).await;
            let p = m
                .post(
                    "/hub/signup",
                    &[
                        ("email", email),
                        ("password", PASSWORD),
                        ("password_again", PASSWORD),
                        ("invite", token.as_str()),
                    ],
                )
                .await;
            assert_eq!(p.status, 303, "{}", p.body);
        }
    }
    let cats = s
        .cli(&["privacy", "categories", "--account", &account])
        .expect("categories");
    let members = cats
        .as_array()
        .and_then(|c| c.iter().find(|c| c["category"] == "members"))
        .expect("a members category")
        .clone();
    assert_eq!(members["count"], 3);
    assert_eq!(members["deletable"], false);
    let doc_path = s.dir.path().join("export.json");
    s.cli(&[
        "privacy",
        "export",
        "--account",
        &account,
        "--out",
        doc_path.to_str().expect("path"),
    ])
    .expect("export");
    let doc = std::fs::read_to_string(&doc_path).expect("export file");
    assert!(!doc.contains("argon2"), "no password hash in the export");
    let doc: serde_json::Value = serde_json::from_str(&doc).expect("JSON");
    let records = doc["categories"]["members"]["records"]
        .as_array()
        .expect("member records")
        .clone();
    assert_eq!(records.len(), 3);
    assert!(records
        .iter()
        .any(|r| r["email"] == "only@example.com" && r["role"] == "billing"));

    owner.get("/hub/privacy").await;
    let p = owner
        .post("/hub/privacy/close", &[("confirm", account.as_str())])
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body.contains("Account closed"));
    let users = s.cli(&["users", "list"]).expect("users");
    assert_eq!(
        users.as_array().map(Vec::len),
        Some(3),
        "logins stay until the purge"
    );

    let s = s
        .restart("", &[("MAXIMIN_CLOCK_OFFSET", &(91 * 86_400).to_string())])
        .await;
    let users = s.cli(&["users", "list"]).expect("users");
    let emails: Vec<&str> = users
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|u| u["email"].as_str())
        .collect();
    assert_eq!(
        emails,
        vec!["both@example.com"],
        "only the login with an account of its own stays"
    );
    assert_eq!(users[0]["accounts"].as_array().map(Vec::len), Some(1));
}

/// A new master key rewraps the TOTP secrets: with the old key dropped,
/// the second factor still works.
#[tokio::test]
async fn totp_secrets_survive_a_master_key_rotation() {
    let s = Server::start().await;
    let mut b = Browser::new(&s);
    b.sign_up("rotate@example.com", PASSWORD).await;
    let (secret, _) = enrol_totp(&mut b).await;
    let out = s.cli(&["files", "rotate-key"]).expect("rotate");
    assert!(out["tasks_rewrapped"].as_u64() >= Some(1), "{out}");
    let path = s.dir.path().join("master.key");
    let keys = std::fs::read_to_string(&path).expect("key file");
    let lines: Vec<&str> = keys.lines().filter(|l| !l.starts_with('#')).collect();
    std::fs::write(&path, format!("{}\n", lines[1])).expect("drop the old key");
    let s = s.restart("", &[]).await;
    let mut b = Browser::new(&s);
    b.get("/hub/login").await;
    b.post(
        "/hub/login",
        &[("email", "rotate@example.com"), ("password", PASSWORD)],
    )
    .await;
    b.get("/hub/login/code").await;
    let p = b
        .post(
            "/hub/login/code",
            &[("code", &totp(&secret, now_unix() + 30))],
        )
        .await;
    assert_eq!(p.location.as_deref(), Some("/hub"), "{}", p.body);
}

/// A new password ends every other session; the old one stops working.
/// Behind TLS (`public_url` is https) the session cookie is `Secure`.
#[tokio::test]
async fn a_password_change_ends_other_sessions_and_tls_makes_cookies_secure() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("maximin.toml"),
        "public_url = \"https://hub.example.com\"\n",
    )
    .expect("config");
    let s = Server::start_in(dir, &[]).await;
    let mut first = Browser::new(&s);
    let p = first.get("/hub/signup").await;
    assert!(
        p.set_cookies
            .iter()
            .any(|c| c.starts_with("maximin_session=") && c.contains("; Secure")),
        "{:?}",
        p.set_cookies
    );
    first.sign_up("pw@example.com", PASSWORD).await;
    let mut second = Browser::new(&s);
    second.get("/hub/login").await;
    second
        .post(
            "/hub/login",
            &[("email", "pw@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(second.get("/hub/keys").await.status, 200, "signed in twice");

    first.get("/hub/security").await;
    let p = first
        .post(
            "/hub/security/password",
            &[
                ("current_password", "Wrong-Password-1"),
                ("new_password", "Green-Teapot-77-lake"),
                ("new_password_again", "Green-Teapot-77-lake"),
            ],
        )
        .await;
    assert_eq!(p.status, 400, "the current password is checked");
    let p = first
        .post(
            "/hub/security/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "Green-Teapot-77-lake"),
                ("new_password_again", "Green-Teapot-77-lake"),
            ],
        )
        .await;
    assert_eq!(
        p.location.as_deref(),
        Some("/hub/security?done=password"),
        "{}",
        p.body
    );
    assert_eq!(
        first.get("/hub/keys").await.status,
        200,
        "this session stays"
    );
    assert_eq!(
        second.get("/hub/keys").await.location.as_deref(),
        Some("/hub/login"),
        "the other session ended"
    );
    let mut third = Browser::new(&s);
    third.get("/hub/login").await;
    let p = third
        .post(
            "/hub/login",
            &[("email", "pw@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(p.status, 401, "the old password");
    let p = third
        .post(
            "/hub/login",
            &[
                ("email", "pw@example.com"),
                ("password", "Green-Teapot-77-lake"),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "the new one");
}

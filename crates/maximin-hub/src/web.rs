//! What every page shares: the cookies, the visitor behind a request, CSRF
//! tokens, form bodies, rendering and redirects.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, Mac};
use maximin_core::people::{HubSession, Permission, Role};
use maximin_core::store::Account;
use maximin_core::{Error, Platform};
use maximin_types::ErrorCode;
use minijinja::{context, Environment, Value};
use sha2::Sha256;

use crate::HubConfig;

pub const SESSION_COOKIE: &str = "maximin_session";
pub const PREFS_COOKIE: &str = "maximin_prefs";
/// Form bodies are small: a key's settings, a password, a ticket.
const MAX_FORM: usize = 256 * 1024;

/// The hub's shared parts.
#[derive(Clone)]
pub struct Hub(Arc<Inner>);

pub struct Inner {
    pub platform: Arc<Platform>,
    /// The API itself, for the playground's calls (in-process, through
    /// the whole request path).
    pub api: axum::Router,
    env: Environment<'static>,
    csrf_key: [u8; 32],
    secure: bool,
}

impl std::ops::Deref for Hub {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

macro_rules! templates {
    ($env:ident, $($name:literal),* $(,)?) => {
        $(
            $env.add_template($name, include_str!(concat!("../templates/", $name)))
                .unwrap_or_else(|e| panic!("template {}: {e}", $name));
        )*
    };
}

impl Hub {
    pub fn new(platform: Arc<Platform>, api: axum::Router, config: HubConfig) -> Hub {
        let mut env = Environment::new();
        templates!(
            env,
            "base.html",
            "message.html",
            "signup.html",
            "login.html",
            "code.html",
            "invite.html",
            "overview.html",
            "security.html",
            "keys.html",
            "key.html",
            "key_created.html",
            "members.html",
            "usage.html",
            "billing.html",
            "privacy.html",
            "export.html",
            "closed.html",
            "files.html",
            "support.html",
            "ticket.html",
            "playground.html",
            "operator.html",
        );
        env.add_filter("usd", |micro: i64| {
            let usd = micro as f64 / 1_000_000.0;
            if micro != 0 && usd.abs() < 0.01 {
                // A small spend reads as what it is, not as $0.00.
                format!("${usd:.6}").trim_end_matches('0').to_owned()
            } else {
                format!("${usd:.2}")
            }
        });
        env.add_filter("hex_to_base64", |hex_text: String| {
            use base64::Engine;
            hex::decode(hex_text.trim())
                .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
                .unwrap_or_default()
        });
        env.add_filter("when", |unix_ms: Option<i64>| match unix_ms {
            Some(ms) => time::OffsetDateTime::from_unix_timestamp(ms / 1000)
                .ok()
                .and_then(|t| {
                    t.format(time::macros::format_description!(
                        "[year]-[month]-[day] [hour]:[minute] UTC"
                    ))
                    .ok()
                })
                .unwrap_or_default(),
            None => "never".to_owned(),
        });
        Hub(Arc::new(Inner {
            csrf_key: platform.files.keys().derive("hub-csrf"),
            platform,
            api,
            env,
            secure: config.secure_cookies,
        }))
    }

    /// The CSRF token of forms served to the holder of `token`: it cannot
    /// be made without the cookie, which other sites cannot read.
    fn csrf_for(&self, token: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.csrf_key) else {
            return String::new();
        };
        mac.update(b"csrf:");
        mac.update(token.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn cookie(&self, name: &str, value: &str, max_age: Option<i64>) -> String {
        let mut c = format!("{name}={value}; Path=/hub; HttpOnly; SameSite=Lax");
        if let Some(age) = max_age {
            c.push_str(&format!("; Max-Age={age}"));
        }
        if self.secure {
            c.push_str("; Secure");
        }
        c
    }

    /// The session cookie for a token: no expiry, so it ends with the browser.
    pub fn session_cookie(&self, token: &str) -> String {
        self.cookie(SESSION_COOKIE, token, None)
    }

    pub fn clear_session_cookie(&self) -> String {
        self.cookie(SESSION_COOKIE, "", Some(0))
    }

    /// Renders a page with what every page shows (the visitor, the account,
    /// the navigation the role allows).
    pub fn page(&self, v: &Visitor, template: &str, ctx: Value) -> Response {
        self.page_status(v, StatusCode::OK, template, ctx)
    }

    pub fn page_status(
        &self,
        v: &Visitor,
        status: StatusCode,
        template: &str,
        ctx: Value,
    ) -> Response {
        let nav = match template {
            "keys.html" | "key.html" | "key_created.html" => "keys",
            "export.html" | "closed.html" => "privacy",
            "ticket.html" => "support",
            t => t.trim_end_matches(".html"),
        };
        let common = context! { nav, ..self.common(v) };
        let html = self
            .env
            .get_template(template)
            .and_then(|t| t.render(context! { ..ctx, ..common }));
        match html {
            Ok(html) => {
                let mut resp = (status, axum::response::Html(html)).into_response();
                v.set_cookies(self, &mut resp);
                resp
            }
            Err(e) => {
                tracing::error!(template, error = %e, "a hub page failed to render");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    axum::response::Html("<!doctype html><title>Error</title><p>This page failed to render; the server log has the details.</p>"),
                )
                    .into_response()
            }
        }
    }

    /// A page that says one thing (an error, a refusal), with a way on.
    pub fn message(&self, v: &Visitor, status: StatusCode, title: &str, text: &str) -> Response {
        self.page_status(
            v,
            status,
            "message.html",
            context! { title => title, text => text },
        )
    }

    /// The signed-in member and the account shown, when their role allows
    /// `p`; otherwise the response that says why (to the log-in page, or a
    /// refusal).
    pub fn allowed<'v>(
        &self,
        v: &'v Visitor,
        p: Permission,
    ) -> Result<(&'v HubSession, &'v Account), Response> {
        let s = v.member()?;
        let account = s.require(p).map_err(|e| self.error(v, &e))?;
        Ok((s, account))
    }

    /// A core operation's value, or its error as a page.
    pub fn or_page<T>(&self, v: &Visitor, r: maximin_core::Result<T>) -> Result<T, Response> {
        r.map_err(|e| self.error(v, &e))
    }

    /// A core error as a page of its own, with the status its code has.
    pub fn error(&self, v: &Visitor, e: &Error) -> Response {
        let status = status_of(e);
        let title = match e.code {
            ErrorCode::PermissionDenied => "Not allowed",
            ErrorCode::NotFound => "Not found",
            ErrorCode::RateLimitExceeded => "Too many attempts",
            ErrorCode::ServerError => "Something failed",
            _ => "That did not work",
        };
        self.message(v, status, title, &e.message)
    }

    fn common(&self, v: &Visitor) -> Value {
        let s = v.session.as_ref().filter(|s| s.complete());
        let role = s.and_then(|s| s.role);
        let can = |p: Permission| role.is_some_and(|r| r.can(p));
        context! {
            csrf => v.token.as_deref().map(|t| self.csrf_for(t)).unwrap_or_default(),
            theme => v.prefs.get("theme").cloned().unwrap_or_else(|| "auto".into()),
            lang => v.prefs.get("lang").cloned().unwrap_or_else(|| "en".into()),
            signed_in => s.is_some(),
            me => s.map(|s| context! {
                email => s.user.email.clone(),
                operator => s.user.operator,
                totp => s.user.totp.is_some(),
            }),
            account => s.and_then(|s| s.account.as_ref()).map(|a| context! {
                id => a.id.clone(),
                email => a.email.clone(),
                plan => a.plan.as_str(),
                closed => a.closed_at.is_some(),
            }),
            role => role.map(Role::as_str),
            accounts => s.map(|s| s.memberships.iter().map(|m| context! {
                id => m.account_id.clone(),
                role => m.role.clone(),
                current => Some(&m.account_id) == s.record.account_id.as_ref(),
            }).collect::<Vec<_>>()).unwrap_or_default(),
            can => context! {
                keys => can(Permission::ViewKeys),
                manage_keys => can(Permission::ManageKeys),
                usage => can(Permission::ViewUsage),
                billing => can(Permission::ViewBilling),
                members => can(Permission::ManageMembers),
                privacy => can(Permission::ManagePrivacy),
                files => can(Permission::ViewFiles),
                manage_files => can(Permission::ManageFiles),
                playground => can(Permission::UseApi),
                support => can(Permission::Support),
            },
            notice => v.notice,
            origin => v.origin.clone(),
            back => if v.path.is_empty() { "/hub".to_owned() } else { v.path.clone() },
        }
    }
}

/// The value of a `Result<T, Response>`, or the response returned from
/// the handler: what `?` is for handlers that answer with a page either way.
#[macro_export]
macro_rules! page_or_return {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(response) => return response,
        }
    };
}

/// A form's refusal for its page: the field at fault (marked
/// `aria-invalid` by the templates) and the message.
pub fn form_error(e: &Error) -> Value {
    context! {
        field => e.details.get("field").and_then(|f| f.as_str()).map(str::to_owned),
        error => e.message.clone(),
    }
}

/// The HTTP status of a core error on a page.
pub fn status_of(e: &Error) -> StatusCode {
    StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A 303 to another hub page.
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Who is asking: the cookie's token (a session's, or a form-binding one
/// made now), the live session it names, the preferences.
pub struct Visitor {
    pub token: Option<String>,
    /// A token made for this response (no cookie came): set with it.
    fresh: bool,
    pub session: Option<HubSession>,
    pub prefs: BTreeMap<String, String>,
    /// A short message after a redirect (`?done=…`, from a fixed list).
    pub notice: Option<&'static str>,
    /// Where the visitor reached this server (`http://host:port`), for the
    /// commands the pages show.
    pub origin: String,
    /// The page's path, to come back to after saving preferences.
    pub path: String,
}

impl Visitor {
    fn set_cookies(&self, hub: &Hub, resp: &mut Response) {
        if let (true, Some(t)) = (self.fresh, &self.token) {
            if let Ok(v) = HeaderValue::from_str(&hub.session_cookie(t)) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
        }
    }

    /// The same visitor with another reading of the session.
    pub fn with_session(&self, session: Option<HubSession>) -> Visitor {
        Visitor {
            token: self.token.clone(),
            fresh: self.fresh,
            session,
            prefs: self.prefs.clone(),
            notice: None,
            origin: self.origin.clone(),
            path: self.path.clone(),
        }
    }

    /// The signed-in session, or a redirect to the log-in page.
    pub fn member(&self) -> Result<&HubSession, Response> {
        match &self.session {
            Some(s) if s.complete() => Ok(s),
            Some(_) => Err(see_other("/hub/login/code")),
            None => Err(see_other("/hub/login")),
        }
    }
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn parse_prefs(raw: Option<&str>) -> BTreeMap<String, String> {
    raw.unwrap_or("")
        .split('.')
        .filter_map(|kv| kv.split_once(':'))
        .filter(|(k, v)| {
            matches!(
                (*k, *v),
                ("theme", "light" | "dark" | "auto") | ("lang", "en")
            )
        })
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Messages a redirect may name (`?done=`): fixed texts, so that a link
/// cannot put words in the hub's mouth.
fn notice(code: &str) -> Option<&'static str> {
    Some(match code {
        "welcome" => "Welcome to maximin. Create an API key to start.",
        "key_revoked" => "The key is revoked; requests with it are refused from now on.",
        "password" => "Your password is changed; your other sessions have ended.",
        "totp_off" => "Two-factor sign-in is off.",
        "invited" => "The invitation is made.",
        "member" => "The member is changed.",
        "invite_cancelled" => "The invitation is cancelled.",
        "joined" => "You joined the account.",
        "prefs" => "Preferences saved.",
        "plan" => "The plan is changed.",
        "credits" => "The credit is granted.",
        "file_deleted" => "The file is deleted.",
        "debug" => "Debug logging is changed.",
        "routing" => "Region and PII settings are saved.",
        _ => return None,
    })
}

impl FromRequestParts<Hub> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, hub: &Hub) -> Result<Self, Response> {
        let prefs = parse_prefs(cookie_value(&parts.headers, PREFS_COOKIE));
        let done = parts
            .uri
            .query()
            .and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "done")
                    .map(|(_, v)| v.into_owned())
            })
            .and_then(|c| notice(&c));
        let token = cookie_value(&parts.headers, crate::web::SESSION_COOKIE)
            .filter(|t| t.len() == 43 && t.bytes().all(|b| b.is_ascii_alphanumeric()))
            .map(str::to_owned);
        let session = match &token {
            Some(t) => hub.platform.hub_session(t).await.map_err(|e| {
                let v = Visitor {
                    token: None,
                    fresh: false,
                    session: None,
                    prefs: prefs.clone(),
                    notice: None,
                    origin: String::new(),
                    path: String::new(),
                };
                hub.error(&v, &e)
            })?,
            None => None,
        };
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| {
                h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
            })
            .unwrap_or("localhost");
        let origin = format!("{}://{host}", if hub.secure { "https" } else { "http" });
        let (token, fresh) = match token {
            Some(t) => (t, false),
            None => (maximin_core::secrets::random_token(43), true),
        };
        Ok(Visitor {
            token: Some(token),
            fresh,
            session,
            prefs,
            notice: done,
            origin,
            // Nested at /hub: the router sees the rest of the path.
            path: format!("/hub{}", parts.uri.path())
                .trim_end_matches('/')
                .to_owned(),
        })
    }
}

/// A form as posted: every field in order (a field may repeat: checkboxes).
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// A posted form from the visitor, its CSRF token checked: every state
/// change in the hub arrives as one.
pub struct Post {
    pub visitor: Visitor,
    pub form: Form,
}

impl FromRequest<Hub> for Post {
    type Rejection = Response;

    async fn from_request(req: Request, hub: &Hub) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let visitor = Visitor::from_request_parts(&mut parts, hub).await?;
        let req = Request::from_parts(parts, body);
        let bytes = match Bytes::from_request(req, hub).await {
            Ok(b) if b.len() <= MAX_FORM => b,
            _ => {
                return Err(hub.message(
                    &visitor,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Too large",
                    "The form is too large.",
                ))
            }
        };
        let form = Form(
            form_urlencoded::parse(&bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        );
        let expected = match (&visitor.fresh, &visitor.token) {
            (false, Some(t)) => hub.csrf_for(t),
            _ => String::new(),
        };
        let sent = form.get("csrf");
        if expected.is_empty() || !maximin_core::secrets::constant_time_eq(sent, &expected) {
            return Err(hub.message(
                &visitor,
                StatusCode::FORBIDDEN,
                "This form has expired",
                "The form was not sent from this page, or it is too old. Reload the page and send it again.",
            ));
        }
        Ok(Post { visitor, form })
    }
}

pub async fn not_found(State(hub): State<Hub>, v: Visitor) -> Response {
    hub.message(
        &v,
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such page in the hub.",
    )
}

pub async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", include_str!("../assets/hub.css"))
}

pub async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../assets/hub.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// Saves the language and theme in the 12-month preference cookie.
pub async fn set_prefs(State(hub): State<Hub>, post: Post) -> Response {
    let theme = match post.form.get("theme") {
        t @ ("light" | "dark" | "auto") => t,
        _ => "auto",
    };
    let value = format!("lang:en.theme:{theme}");
    let back = back_to(post.form.get("back"), "/hub");
    let mut resp = see_other(&format!("{back}?done=prefs"));
    if let Ok(v) = HeaderValue::from_str(&hub.cookie(PREFS_COOKIE, &value, Some(365 * 24 * 3600))) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// A hub path to return to, or `default` (never another site).
pub fn back_to(path: &str, default: &str) -> String {
    if path.starts_with("/hub")
        && !path.contains("//")
        && !path.contains('\\')
        && !path.contains('?')
    {
        path.to_owned()
    } else {
        default.to_owned()
    }
}

/// What every hub response carries: no caching of pages, no framing, and a
/// content policy that lets only the hub's own script and style run.
pub async fn headers(req: Request, next: axum::middleware::Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

//! Signing up, logging in (password, then the second factor), logging out,
//! and invitations.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use maximin_core::people::SignedIn;
use minijinja::context;
use serde::Deserialize;

use crate::page_or_return;
use crate::web::{form_error, see_other, status_of, Hub, Post, Visitor};

#[derive(Deserialize)]
pub struct InviteQuery {
    invite: Option<String>,
}

/// A redirect that sets the new session's cookie.
fn signed_in(hub: &Hub, s: &SignedIn, to: &str) -> Response {
    let mut resp = see_other(if s.needs_second_factor {
        "/hub/login/code"
    } else {
        to
    });
    if let Ok(v) = HeaderValue::from_str(&hub.session_cookie(&s.token)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

pub async fn signup_form(
    State(hub): State<Hub>,
    v: Visitor,
    Query(q): Query<InviteQuery>,
) -> Response {
    if v.member().is_ok() && q.invite.is_none() {
        return see_other("/hub");
    }
    let invite = match &q.invite {
        Some(t) => hub.platform.invitation(t).await.ok(),
        None => None,
    };
    hub.page(
        &v,
        "signup.html",
        context! {
            invite => q.invite,
            email => invite.map(|i| i.email),
        },
    )
}

pub async fn signup(State(hub): State<Hub>, post: Post) -> Response {
    let f = &post.form;
    let invite = Some(f.get("invite")).filter(|t| !t.is_empty());
    if f.get("password") != f.get("password_again") {
        return hub.page_status(
            &post.visitor,
            StatusCode::BAD_REQUEST,
            "signup.html",
            context! {
                email => f.get("email"), invite => invite,
                field => "password_again", error => "The two passwords differ.",
            },
        );
    }
    match hub
        .platform
        .sign_up(f.get("email"), f.get("password"), invite)
        .await
    {
        Ok(s) => signed_in(&hub, &s, "/hub?done=welcome"),
        Err(e) => hub.page_status(
            &post.visitor,
            status_of(&e),
            "signup.html",
            context! { email => f.get("email"), invite => invite, ..form_error(&e) },
        ),
    }
}

pub async fn login_form(State(hub): State<Hub>, v: Visitor) -> Response {
    if v.member().is_ok() {
        return see_other("/hub");
    }
    hub.page(&v, "login.html", context! {})
}

pub async fn login(State(hub): State<Hub>, post: Post) -> Response {
    let f = &post.form;
    match hub.platform.log_in(f.get("email"), f.get("password")).await {
        Ok(s) => signed_in(&hub, &s, "/hub"),
        Err(e) => hub.page_status(
            &post.visitor,
            status_of(&e),
            "login.html",
            context! { email => f.get("email"), ..form_error(&e) },
        ),
    }
}

pub async fn code_form(State(hub): State<Hub>, v: Visitor) -> Response {
    match &v.session {
        Some(s) if !s.complete() => hub.page(&v, "code.html", context! {}),
        Some(_) => see_other("/hub"),
        None => see_other("/hub/login"),
    }
}

pub async fn code(State(hub): State<Hub>, post: Post) -> Response {
    let token = post.visitor.token.clone().unwrap_or_default();
    match hub
        .platform
        .second_factor(&token, post.form.get("code"))
        .await
    {
        Ok(s) => signed_in(&hub, &s, "/hub"),
        Err(e) => hub.page_status(&post.visitor, status_of(&e), "code.html", form_error(&e)),
    }
}

pub async fn logout(State(hub): State<Hub>, post: Post) -> Response {
    if let Some(t) = &post.visitor.token {
        if let Err(e) = hub.platform.log_out(t).await {
            return hub.error(&post.visitor, &e);
        }
    }
    let mut resp = see_other("/hub/login");
    if let Ok(v) = HeaderValue::from_str(&hub.clear_session_cookie()) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// An invitation link: join (signed in as its address), or sign up.
pub async fn invite_page(
    State(hub): State<Hub>,
    v: Visitor,
    Path(token): Path<String>,
) -> Response {
    let invite = page_or_return!(hub.or_page(&v, hub.platform.invitation(&token).await));
    let signed = v.member().ok();
    hub.page(
        &v,
        "invite.html",
        context! {
            token,
            email => invite.email.clone(),
            role => invite.role,
            account_id => invite.account_id,
            matches => signed.is_some_and(|s| s.user.email == invite.email),
        },
    )
}

pub async fn accept_invite(
    State(hub): State<Hub>,
    Path(token): Path<String>,
    post: Post,
) -> Response {
    let s = page_or_return!(post.visitor.member());
    match hub.platform.join(s, &token).await {
        Ok(_) => see_other("/hub?done=joined"),
        Err(e) => hub.error(&post.visitor, &e),
    }
}

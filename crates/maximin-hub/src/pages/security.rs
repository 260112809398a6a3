//! The person's own sign-in: password, two-factor sign-in (TOTP) and
//! recovery codes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maximin_core::people::otpauth_uri;
use maximin_core::Error;
use minijinja::{context, Value};

use crate::page_or_return;
use crate::qr;
use crate::web::{form_error, see_other, status_of, Hub, Post, Visitor};

/// What the security page shows, with `extra` on top.
async fn render(hub: &Hub, v: &Visitor, status: StatusCode, extra: Value) -> Response {
    let s = page_or_return!(v.member());
    let pending = page_or_return!(hub.or_page(v, hub.platform.totp_pending(s)));
    let codes_left = if s.user.totp.is_some() {
        match hub.platform.recovery_codes_left(&s.user.id).await {
            Ok(n) => Some(n),
            Err(e) => return hub.error(v, &e),
        }
    } else {
        None
    };
    let enrol = pending.map(|secret| {
        let uri = otpauth_uri(&s.user.email, &secret);
        context! { secret, qr => Value::from_safe_string(qr::svg(&uri)), uri }
    });
    hub.page_status(
        v,
        status,
        "security.html",
        context! { enrol, codes_left, ..extra },
    )
}

pub async fn show(State(hub): State<Hub>, v: Visitor) -> Response {
    render(&hub, &v, StatusCode::OK, context! {}).await
}

pub async fn password(State(hub): State<Hub>, post: Post) -> Response {
    let v = &post.visitor;
    let s = page_or_return!(v.member());
    let f = &post.form;
    if f.get("new_password") != f.get("new_password_again") {
        let e = Error::invalid("new_password_again", "The two new passwords differ.");
        return render(&hub, v, StatusCode::BAD_REQUEST, form_error(&e)).await;
    }
    match hub
        .platform
        .change_password(s, f.get("current_password"), f.get("new_password"))
        .await
    {
        Ok(()) => see_other("/hub/security?done=password"),
        Err(e) => render(&hub, v, status_of(&e), form_error(&e)).await,
    }
}

pub async fn totp_begin(State(hub): State<Hub>, post: Post) -> Response {
    let v = &post.visitor;
    let s = page_or_return!(v.member());
    match hub.platform.totp_begin(s).await {
        Ok(_) => see_other("/hub/security#totp"),
        Err(e) => render(&hub, v, status_of(&e), form_error(&e)).await,
    }
}

pub async fn totp_confirm(State(hub): State<Hub>, post: Post) -> Response {
    let v = &post.visitor;
    let s = page_or_return!(v.member());
    match hub.platform.totp_confirm(s, post.form.get("code")).await {
        // Shown this once, on this response; never stored in the clear.
        Ok(codes) => {
            render(
                &hub,
                &refreshed(&hub, v).await,
                StatusCode::OK,
                context! { codes },
            )
            .await
        }
        Err(e) => render(&hub, v, status_of(&e), form_error(&e)).await,
    }
}

pub async fn totp_disable(State(hub): State<Hub>, post: Post) -> Response {
    let v = &post.visitor;
    let s = page_or_return!(v.member());
    match hub
        .platform
        .totp_disable(s, post.form.get("password"))
        .await
    {
        Ok(()) => see_other("/hub/security?done=totp_off"),
        Err(e) => render(&hub, v, status_of(&e), form_error(&e)).await,
    }
}

pub async fn recovery(State(hub): State<Hub>, post: Post) -> Response {
    let v = &post.visitor;
    let s = page_or_return!(v.member());
    if s.user.totp.is_none() {
        let e = Error::invalid("totp", "Turn two-factor sign-in on first.");
        return render(&hub, v, StatusCode::BAD_REQUEST, form_error(&e)).await;
    }
    match hub.platform.new_recovery_codes(&s.user.id).await {
        Ok(codes) => {
            render(
                &hub,
                &refreshed(&hub, v).await,
                StatusCode::OK,
                context! { codes },
            )
            .await
        }
        Err(e) => render(&hub, v, status_of(&e), form_error(&e)).await,
    }
}

/// The visitor with their session read again (after a change to the user).
async fn refreshed(hub: &Hub, v: &Visitor) -> Visitor {
    let session = match &v.token {
        Some(t) => hub.platform.hub_session(t).await.ok().flatten(),
        None => None,
    };
    v.with_session(session)
}

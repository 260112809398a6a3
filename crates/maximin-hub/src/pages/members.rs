//! The people of an account: invitations, roles, removal (owners only).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maximin_core::people::Role;
use minijinja::{context, Value};

use crate::page_or_return;
use crate::web::{form_error, see_other, status_of, Hub, Post, Visitor};

async fn page(hub: &Hub, v: &Visitor, status: StatusCode, extra: Value) -> Response {
    let s = page_or_return!(v.member());
    let members = page_or_return!(hub.or_page(v, hub.platform.members(s).await));
    let invites = page_or_return!(hub.or_page(v, hub.platform.pending_invites(s).await));
    let members: Vec<Value> = members
        .into_iter()
        .map(|(m, email)| {
            context! { user_id => m.user_id.clone(), email, role => m.role, me => m.user_id == s.user.id }
        })
        .collect();
    let invites: Vec<Value> = invites
        .into_iter()
        .map(|i| context! { id => i.id, email => i.email, role => i.role, expires => i.expires_at.unix_timestamp() * 1000 })
        .collect();
    hub.page_status(
        v,
        status,
        "members.html",
        context! {
            members, invites,
            roles => Role::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            ..extra
        },
    )
}

pub async fn list(State(hub): State<Hub>, v: Visitor) -> Response {
    page(&hub, &v, StatusCode::OK, context! {}).await
}

pub async fn invite(State(hub): State<Hub>, post: Post) -> Response {
    let v = &post.visitor;
    let s = page_or_return!(v.member());
    match hub
        .platform
        .invite_member(s, post.form.get("email"), post.form.get("role"))
        .await
    {
        // The link is shown this once (only its hash is kept).
        Ok(i) => {
            page(
                &hub,
                v,
                StatusCode::OK,
                context! { link => format!("/hub/invite/{}", i.token), invited => i.invite.email },
            )
            .await
        }
        Err(e) => {
            let extra = form_error(&e);
            page(&hub, v, status_of(&e), extra).await
        }
    }
}

pub async fn change(State(hub): State<Hub>, Path(user_id): Path<String>, post: Post) -> Response {
    let v = &post.visitor;
    let s = page_or_return!(v.member());
    let role = match post.form.get("action") {
        "remove" => None,
        _ => Some(post.form.get("role")),
    };
    match hub.platform.set_member(s, &user_id, role).await {
        Ok(()) => see_other("/hub/members?done=member"),
        Err(e) => hub.error(v, &e),
    }
}

pub async fn cancel(State(hub): State<Hub>, Path(id): Path<String>, post: Post) -> Response {
    let v = &post.visitor;
    let s = page_or_return!(v.member());
    match hub.platform.cancel_invite(s, &id).await {
        Ok(()) => see_other("/hub/members?done=invite_cancelled"),
        Err(e) => hub.error(v, &e),
    }
}

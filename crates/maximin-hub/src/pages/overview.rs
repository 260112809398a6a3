//! The first page after signing in: the account at a glance.

use axum::extract::State;
use axum::response::Response;
use maximin_core::people::Permission;
use minijinja::{context, Value};

use crate::web::{see_other, Hub, Post, Visitor};

pub async fn show(State(hub): State<Hub>, v: Visitor) -> Response {
    let s = match v.member() {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(account) = s.require(Permission::ViewUsage) else {
        return hub.page(&v, "overview.html", context! { no_account => true });
    };
    let usage = match hub.platform.usage(&account.id, None, None).await {
        Ok(u) => u,
        Err(e) => return hub.error(&v, &e),
    };
    let billing = if s.role.is_some_and(|r| r.can(Permission::ViewBilling)) {
        match hub.platform.billing_view(&account.id).await {
            Ok(b) => Some(Value::from_serialize(&b)),
            Err(e) => return hub.error(&v, &e),
        }
    } else {
        None
    };
    let keys = match hub.platform.list_keys(&account.id).await {
        Ok(k) => k,
        Err(e) => return hub.error(&v, &e),
    };
    let live_keys = keys.iter().filter(|k| k.revoked_at.is_none()).count();
    hub.page(
        &v,
        "overview.html",
        context! {
            usage => Value::from_serialize(&usage),
            billing,
            live_keys,
        },
    )
}

/// Shows another of the member's accounts.
pub async fn switch_account(State(hub): State<Hub>, post: Post) -> Response {
    let s = match post.visitor.member() {
        Ok(s) => s,
        Err(r) => return r,
    };
    match hub
        .platform
        .switch_account(s, post.form.get("account_id"))
        .await
    {
        Ok(()) => see_other("/hub"),
        Err(e) => hub.error(&post.visitor, &e),
    }
}

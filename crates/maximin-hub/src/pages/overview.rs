//! The first page after signing in: the account at a glance.

use axum::extract::State;
use axum::response::Response;
use maximin_core::people::Permission;
use minijinja::{context, Value};

use crate::page_or_return;
use crate::web::{see_other, Hub, Post, Visitor};

pub async fn show(State(hub): State<Hub>, v: Visitor) -> Response {
    let s = page_or_return!(v.member());
    let Ok(account) = s.require(Permission::ViewUsage) else {
        return hub.page(&v, "overview.html", context! { no_account => true });
    };
    let usage = page_or_return!(hub.or_page(&v, hub.platform.usage(&account.id, None, None).await));
    let billing = if s.role.is_some_and(|r| r.can(Permission::ViewBilling)) {
        match hub.platform.billing_view(&account.id).await {
            Ok(b) => Some(Value::from_serialize(&b)),
            Err(e) => return hub.error(&v, &e),
        }
    } else {
        None
    };
    let keys = page_or_return!(hub.or_page(&v, hub.platform.list_keys(&account.id).await));
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
    let s = page_or_return!(post.visitor.member());
    match hub
        .platform
        .switch_account(s, post.form.get("account_id"))
        .await
    {
        Ok(()) => see_other("/hub"),
        Err(e) => hub.error(&post.visitor, &e),
    }
}

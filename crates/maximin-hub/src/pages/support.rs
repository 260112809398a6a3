//! Support tickets: open one, read the replies, answer, close it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maximin_core::people::Permission;
use minijinja::{context, Value};

use crate::page_or_return;
use crate::web::{form_error, see_other, status_of, Hub, Post, Visitor};

async fn list_page(hub: &Hub, v: &Visitor, status: StatusCode, extra: Value) -> Response {
    let (_, account) = page_or_return!(hub.allowed(v, Permission::Support));
    match hub.platform.list_tickets(&account.id).await {
        Ok(t) => hub.page_status(
            v,
            status,
            "support.html",
            context! { tickets => Value::from_serialize(&t), ..extra },
        ),
        Err(e) => hub.error(v, &e),
    }
}

pub async fn list(State(hub): State<Hub>, v: Visitor) -> Response {
    list_page(&hub, &v, StatusCode::OK, context! {}).await
}

pub async fn open(State(hub): State<Hub>, post: Post) -> Response {
    let v = &post.visitor;
    let (_, account) = page_or_return!(hub.allowed(v, Permission::Support));
    let f = &post.form;
    match hub
        .platform
        .open_ticket(&account.id, f.get("subject"), f.get("message"))
        .await
    {
        Ok(t) => see_other(&format!("/hub/support/{}", t.id)),
        Err(e) => {
            let extra = context! {
                subject => f.get("subject"), message => f.get("message"),
                ..form_error(&e)
            };
            list_page(&hub, v, status_of(&e), extra).await
        }
    }
}

pub async fn show(State(hub): State<Hub>, v: Visitor, Path(id): Path<String>) -> Response {
    let (_, account) = page_or_return!(hub.allowed(&v, Permission::Support));
    match hub.platform.ticket(Some(&account.id), &id).await {
        Ok(t) => hub.page(
            &v,
            "ticket.html",
            context! { ticket => Value::from_serialize(&t) },
        ),
        Err(e) => hub.error(&v, &e),
    }
}

pub async fn reply(State(hub): State<Hub>, Path(id): Path<String>, post: Post) -> Response {
    let v = &post.visitor;
    let (_, account) = page_or_return!(hub.allowed(v, Permission::Support));
    let result = if post.form.get("action") == "close" {
        hub.platform.close_ticket(Some(&account.id), &id).await
    } else {
        hub.platform
            .reply_ticket(Some(&account.id), &id, post.form.get("message"))
            .await
    };
    match result {
        Ok(t) => see_other(&format!("/hub/support/{}", t.id)),
        Err(e) => hub.error(v, &e),
    }
}

//! The account's files (download by a signed link, delete) and its async
//! tasks with their status and results.

use axum::extract::{Path, State};
use axum::response::Response;
use maximin_core::files::LINK_TTL;
use maximin_core::people::Permission;
use maximin_core::Error;
use minijinja::{context, Value};

use crate::page_or_return;
use crate::web::{see_other, Hub, Post, Visitor};

fn when(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub async fn list(State(hub): State<Hub>, v: Visitor) -> Response {
    let (_, account) = page_or_return!(hub.allowed(&v, Permission::ViewFiles));
    let files = &hub.platform.files;
    let (records, tasks) = match (
        files.list(&account.id, None).await,
        hub.platform.tasks.list(&account.id).await,
    ) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return hub.error(&v, &e),
    };
    let list: Vec<Value> = records
        .iter()
        .map(|f| {
            context! {
                id => f.id, name => f.filename.clone(), purpose => f.purpose.clone(),
                kind => f.kind.clone(), bytes => f.bytes, created => when(f.created_at),
                expires => f.expires_at.map(when),
                // Signed links, good for a while; the page is never cached.
                link => files.link(&v.origin, f, LINK_TTL),
            }
        })
        .collect();
    let tasks: Vec<Value> = tasks
        .iter()
        .take(200)
        .map(|t| {
            let link = t.file_id.and_then(|id| {
                records
                    .iter()
                    .find(|f| f.id == id)
                    .map(|f| files.link(&v.origin, f, LINK_TTL))
            });
            context! {
                id => t.id, kind => t.kind.clone(), status => t.status.as_str(),
                progress => t.progress, created => when(t.created_at), updated => when(t.updated_at),
                error => t.error_message.clone(), file_id => t.file_id, link,
            }
        })
        .collect();
    hub.page(&v, "files.html", context! { files => list, tasks })
}

pub async fn delete(State(hub): State<Hub>, Path(id): Path<String>, post: Post) -> Response {
    let v = &post.visitor;
    let (_, account) = page_or_return!(hub.allowed(v, Permission::ManageFiles));
    let Ok(id) = id.parse::<i64>() else {
        return hub.error(v, &Error::not_found("file", &id));
    };
    match hub.platform.files.delete(&account.id, id).await {
        Ok(_) => see_other("/hub/files?done=file_deleted"),
        Err(e) => hub.error(v, &e),
    }
}

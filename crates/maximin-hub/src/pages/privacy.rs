//! The privacy dashboard (seed 001): every data category held, the export
//! (progress, then the download), deletion of what may be deleted, debug
//! logging with its end, region and PII settings, the privacy log, closing
//! the account. Owners only.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maximin_core::people::Permission;
use maximin_core::{Error, RoutingUpdate};
use maximin_types::privacy::{DebugLoggingRequest, ExportRequest};
use maximin_types::PiiMode;
use minijinja::{context, Value};

use crate::page_or_return;
use crate::web::{form_error, see_other, status_of, Hub, Post, Visitor};

async fn page(hub: &Hub, v: &Visitor, status: StatusCode, extra: Value) -> Response {
    let (_, account) = page_or_return!(hub.allowed(v, Permission::ManagePrivacy));
    let p = &hub.platform;
    let (categories, debug, log) = match (
        p.categories(&account.id).await,
        p.debug_logging(&account.id).await,
        p.privacy_log(&account.id).await,
    ) {
        (Ok(c), Ok(d), Ok(l)) => (c, d, l),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return hub.error(v, &e),
    };
    let routing = &account.routing;
    let log: Vec<Value> = log
        .iter()
        .rev()
        .take(200)
        .map(|e| {
            context! {
                at => e.at.clone(), action => e.action.clone(), subject => e.subject.clone(),
                detail => serde_json::to_string(&e.detail).unwrap_or_default(),
            }
        })
        .collect();
    hub.page_status(
        v,
        status,
        "privacy.html",
        context! {
            categories => Value::from_serialize(&categories),
            debug => Value::from_serialize(&debug),
            regions => routing.regions.join(", "),
            pii => routing.pii.unwrap_or_default().as_str(),
            pii_local => routing.pii_local,
            log,
            ..extra
        },
    )
}

pub async fn show(State(hub): State<Hub>, v: Visitor) -> Response {
    page(&hub, &v, StatusCode::OK, context! {}).await
}

/// The owner's account, or the response that refuses.
fn owner<'a>(hub: &Hub, post: &'a Post) -> Result<&'a maximin_core::store::Account, Response> {
    hub.allowed(&post.visitor, Permission::ManagePrivacy)
        .map(|(_, account)| account)
}

pub async fn export(State(hub): State<Hub>, post: Post) -> Response {
    let account = page_or_return!(owner(&hub, &post));
    let by = post
        .visitor
        .session
        .as_ref()
        .map(|s| format!("hub:{}", s.user.id))
        .unwrap_or_default();
    let req = ExportRequest {
        include_files: post.form.get("include_files") == "yes",
    };
    match hub.platform.queue_export(&account.id, &by, &req).await {
        Ok(view) => see_other(&format!("/hub/privacy/export/{}", view.task_id)),
        Err(e) => page(&hub, &post.visitor, status_of(&e), form_error(&e)).await,
    }
}

/// The export's progress (the page refreshes itself until it is done),
/// then its download link.
pub async fn export_status(
    State(hub): State<Hub>,
    v: Visitor,
    Path(task_id): Path<String>,
) -> Response {
    let (_, account) = page_or_return!(hub.allowed(&v, Permission::ManagePrivacy));
    let Ok(id) = task_id.parse::<i64>() else {
        return hub.error(&v, &Error::not_found("export", &task_id));
    };
    match hub.platform.export_status(&account.id, id, &v.origin).await {
        Ok(view) => {
            let done = matches!(view.status.as_str(), "success" | "failed");
            hub.page(
                &v,
                "export.html",
                context! { export => Value::from_serialize(&view), done },
            )
        }
        Err(e) => hub.error(&v, &e),
    }
}

pub async fn delete(State(hub): State<Hub>, post: Post) -> Response {
    let account = page_or_return!(owner(&hub, &post));
    let names = post.form.all("categories");
    match hub.platform.delete_categories(&account.id, &names).await {
        Ok(done) => {
            let deleted: Vec<String> = done
                .deleted
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            page(
                &hub,
                &post.visitor,
                StatusCode::OK,
                context! { deleted => deleted.join(", ") },
            )
            .await
        }
        Err(e) => page(&hub, &post.visitor, status_of(&e), form_error(&e)).await,
    }
}

pub async fn debug(State(hub): State<Hub>, post: Post) -> Response {
    let account = page_or_return!(owner(&hub, &post));
    let enabled = post.form.get("enabled") == "yes";
    let hours = post.form.get("duration_hours");
    let duration_hours = if enabled && !hours.is_empty() {
        match hours.parse::<u32>() {
            Ok(h) => Some(h),
            Err(_) => {
                let e = Error::invalid("duration_hours", "Hours are a whole number from 1 to 168.");
                return page(&hub, &post.visitor, StatusCode::BAD_REQUEST, form_error(&e)).await;
            }
        }
    } else {
        None
    };
    let req = DebugLoggingRequest {
        enabled,
        duration_hours,
    };
    match hub.platform.set_debug_logging(&account.id, &req).await {
        Ok(_) => see_other("/hub/privacy?done=debug#debug"),
        Err(e) => page(&hub, &post.visitor, status_of(&e), form_error(&e)).await,
    }
}

pub async fn routing(State(hub): State<Hub>, post: Post) -> Response {
    let account = page_or_return!(owner(&hub, &post));
    let f = &post.form;
    let pii = match f.get("pii") {
        "off" => PiiMode::Off,
        "redact" => PiiMode::Redact,
        "block" => PiiMode::Block,
        other => {
            let e = Error::invalid(
                "pii",
                format!("PII protection is off, redact or block, not '{other}'."),
            );
            return page(&hub, &post.visitor, StatusCode::BAD_REQUEST, form_error(&e)).await;
        }
    };
    let regions: Vec<String> = f
        .get("regions")
        .split(',')
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
        .collect();
    let update = RoutingUpdate {
        regions: Some(regions),
        pii: Some(pii),
        pii_local: Some(f.get("pii_local") == "yes"),
    };
    match hub
        .platform
        .update_account_routing(&account.id, update)
        .await
    {
        Ok(_) => see_other("/hub/privacy?done=routing#routing"),
        Err(e) => page(&hub, &post.visitor, status_of(&e), form_error(&e)).await,
    }
}

/// Closes the account, after its id is typed in as confirmation.
pub async fn close(State(hub): State<Hub>, post: Post) -> Response {
    let account = page_or_return!(owner(&hub, &post));
    if post.form.get("confirm").trim() != account.id {
        let e = Error::invalid(
            "confirm",
            "Type the account's id exactly to confirm closing it.",
        );
        return page(&hub, &post.visitor, StatusCode::BAD_REQUEST, form_error(&e)).await;
    }
    match hub.platform.close_account(&account.id).await {
        Ok(view) => hub.page(
            &post.visitor,
            "closed.html",
            context! { closure => Value::from_serialize(&view) },
        ),
        Err(e) => page(&hub, &post.visitor, status_of(&e), form_error(&e)).await,
    }
}

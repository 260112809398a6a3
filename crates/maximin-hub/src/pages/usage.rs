//! Usage and billing: charts by day (requests, tokens, characters, spend),
//! the split by model and by key, the balance and credits, invoices.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maximin_core::people::Permission;
use minijinja::{context, Value};
use serde::Deserialize;

use crate::charts;
use crate::page_or_return;
use crate::web::{Hub, Visitor};

#[derive(Deserialize)]
pub struct Period {
    days: Option<u32>,
}

pub async fn usage(State(hub): State<Hub>, v: Visitor, Query(q): Query<Period>) -> Response {
    let (s, account) = page_or_return!(hub.allowed(&v, Permission::ViewUsage));
    let days = q.days.filter(|d| matches!(d, 7 | 30 | 90)).unwrap_or(30);
    let series =
        page_or_return!(hub.or_page(&v, hub.platform.usage_by_day(&account.id, days).await));
    // Keys by name where the viewer may see the key list.
    let names: std::collections::HashMap<String, String> =
        if s.role.is_some_and(|r| r.can(Permission::ViewKeys)) {
            match hub.platform.list_keys(&account.id).await {
                Ok(keys) => keys.into_iter().map(|k| (k.id, k.name)).collect(),
                Err(e) => return hub.error(&v, &e),
            }
        } else {
            Default::default()
        };
    let as_f = |v: &[u64]| v.iter().map(|x| *x as f64).collect::<Vec<_>>();
    let spend: Vec<f64> = series
        .cost_micro
        .iter()
        .map(|c| *c as f64 / 1_000_000.0)
        .collect();
    let show_spend = s.role.is_some_and(|r| r.can(Permission::ViewBilling));
    let mut charts = vec![
        context! { title => "Requests", svg => Value::from_safe_string(charts::bars("Requests by day", &series.days, &as_f(&series.requests), false)) },
        context! { title => "Tokens", svg => Value::from_safe_string(charts::bars("Tokens by day", &series.days, &as_f(&series.tokens), false)) },
        context! { title => "Characters", svg => Value::from_safe_string(charts::bars("Characters by day", &series.days, &as_f(&series.characters), false)) },
    ];
    if show_spend {
        charts.push(context! { title => "Spend", svg => Value::from_safe_string(charts::bars("Spend by day", &series.days, &spend, true)) });
    }
    let by_key: Vec<Value> = series
        .by_key
        .iter()
        .map(|t| {
            context! {
                id => t.name.clone(),
                name => names.get(&t.name).cloned(),
                requests => t.requests, tokens => t.tokens, characters => t.characters,
                cost_micro => t.cost_micro,
            }
        })
        .collect();
    let days_table: Vec<Value> = (0..series.days.len())
        .rev()
        .filter(|&i| series.requests[i] > 0)
        .map(|i| {
            context! {
                day => series.days[i].clone(), requests => series.requests[i],
                tokens => series.tokens[i], characters => series.characters[i],
                cost_micro => series.cost_micro[i],
            }
        })
        .collect();
    hub.page(
        &v,
        "usage.html",
        context! {
            days, charts, show_spend, by_key, days_table,
            by_model => Value::from_serialize(&series.by_model),
        },
    )
}

pub async fn billing(State(hub): State<Hub>, v: Visitor) -> Response {
    let (_, account) = page_or_return!(hub.allowed(&v, Permission::ViewBilling));
    let view = page_or_return!(hub.or_page(&v, hub.platform.billing_view(&account.id).await));
    let invoices = page_or_return!(hub.or_page(&v, hub.platform.invoices(&account.id).await));
    let months: Vec<String> = view.months.iter().map(|m| m.month.clone()).collect();
    let spend: Vec<f64> = view.months.iter().map(|m| m.cost_usd).collect();
    let chart = charts::bars("Spend by month", &months, &spend, true);
    hub.page(
        &v,
        "billing.html",
        context! {
            billing => Value::from_serialize(&view),
            invoices => Value::from_serialize(&invoices),
            chart => Value::from_safe_string(chart),
        },
    )
}

#[derive(Deserialize)]
pub struct Download {
    download: Option<String>,
}

/// An invoice as its HTML page; `?download=1` saves it as a file.
pub async fn invoice(
    State(hub): State<Hub>,
    v: Visitor,
    Path(id): Path<String>,
    Query(q): Query<Download>,
) -> Response {
    let (_, account) = page_or_return!(hub.allowed(&v, Permission::ViewBilling));
    let invoice = page_or_return!(hub.or_page(&v, hub.platform.invoice(&account.id, &id).await));
    let html = maximin_core::invoices::invoice_html(&invoice);
    let mut resp = axum::response::Html(html).into_response();
    if q.download.is_some() {
        let name = format!("attachment; filename=\"{}.html\"", invoice.summary.id);
        if let Ok(v) = header::HeaderValue::from_str(&name) {
            resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
    }
    resp
}

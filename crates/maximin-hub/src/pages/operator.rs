//! The operator's view (a role the CLI gives: `maximin users operator`):
//! every account with its plan, plan changes, credit grants, the plans'
//! limits, and the upstreams' health. Two-factor sign-in is required.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maximin_core::people::HubSession;
use maximin_core::ratelimit::limit_for;
use maximin_core::Error;
use maximin_types::{Plan, RateClass};
use minijinja::{context, Value};

use crate::page_or_return;
use crate::web::{form_error, see_other, status_of, Hub, Post, Visitor};

/// The operator's session, or the page that refuses.
fn operator<'v>(hub: &Hub, v: &'v Visitor) -> Result<&'v HubSession, Response> {
    let s = v.member()?;
    if !s.user.operator {
        return Err(hub.error(
            v,
            &Error::permission_denied("Only the operator sees this page (maximin users operator)."),
        ));
    }
    if s.user.totp.is_none() {
        return Err(hub.message(
            v,
            StatusCode::FORBIDDEN,
            "Two-factor sign-in needed",
            "The operator's view needs two-factor sign-in: turn it on under Security first.",
        ));
    }
    Ok(s)
}

async fn page(hub: &Hub, v: &Visitor, status: StatusCode, extra: Value) -> Response {
    page_or_return!(operator(hub, v));
    let accounts = page_or_return!(hub.or_page(v, hub.platform.list_accounts().await));
    let mut rows = Vec::with_capacity(accounts.len());
    for a in &accounts {
        let billing = page_or_return!(hub.or_page(v, hub.platform.billing_view(&a.id).await));
        rows.push(context! {
            account => Value::from_serialize(a),
            available_usd => billing.available_usd,
            invoiced => billing.invoiced,
            month_usd => billing.this_month.cost_usd,
        });
    }
    let plans: Vec<Value> = Plan::ALL
        .iter()
        .map(|p| {
            let limits: Vec<String> = RateClass::ALL
                .iter()
                .map(|c| {
                    let (counter, rpm) = limit_for(*p, None, *c);
                    format!(
                        "{}: {rpm}/min{}",
                        c.as_str(),
                        if counter == "all" { " (shared)" } else { "" }
                    )
                })
                .collect();
            context! { name => p.as_str(), limits => limits.join(", ") }
        })
        .collect();
    let upstreams = maximin_http::routes::upstreams::views(&hub.platform.router);
    hub.page_status(
        v,
        status,
        "operator.html",
        context! {
            accounts => rows, plans,
            plan_names => Plan::ALL.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
            upstreams => Value::from_serialize(&upstreams),
            ..extra
        },
    )
}

pub async fn show(State(hub): State<Hub>, v: Visitor) -> Response {
    page(&hub, &v, StatusCode::OK, context! {}).await
}

pub async fn plan(State(hub): State<Hub>, post: Post) -> Response {
    let v = &post.visitor;
    page_or_return!(operator(&hub, v));
    let f = &post.form;
    let result = match f.get("plan").parse::<Plan>() {
        Ok(plan) => hub.platform.set_plan(f.get("account_id"), plan, None).await,
        Err(e) => Err(Error::invalid("plan", e.to_string())),
    };
    match result {
        Ok(_) => see_other("/hub/operator?done=plan"),
        Err(e) => page(&hub, v, status_of(&e), form_error(&e)).await,
    }
}

pub async fn credits(State(hub): State<Hub>, post: Post) -> Response {
    let v = &post.visitor;
    page_or_return!(operator(&hub, v));
    let f = &post.form;
    let result = match f.get("usd").trim().parse::<f64>() {
        Ok(usd) if usd.is_finite() && usd > 0.0 => {
            hub.platform
                .grant_credit(f.get("account_id"), usd, f.get("note").trim())
                .await
        }
        _ => Err(Error::invalid(
            "usd",
            "The amount is in USD above 0, such as 25 or 7.50.",
        )),
    };
    match result {
        Ok(_) => see_other("/hub/operator?done=credits"),
        Err(e) => page(&hub, v, status_of(&e), form_error(&e)).await,
    }
}

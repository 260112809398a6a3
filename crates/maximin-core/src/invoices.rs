//! Monthly statements (issue 16): one per account and month, made from the
//! billing lines and the credit ledger (billing records, kept 7 years). A
//! month's statement is open while the month runs and closes on the 1st
//! of the next, 00:00 UTC.

use maximin_types::billing::{CreditEntry, Invoice, InvoiceLine, InvoiceSummary};
use time::OffsetDateTime;

use crate::billing::{invoiced, micro_to_usd, month_of, months_back};
use crate::clock::iso8601;
use crate::store::{BillingLine, LedgerEntry};
use crate::{Error, Platform, Result};

/// How far back statements go: billing records are kept 7 years.
const MONTHS_KEPT: u32 = 7 * 12;

/// `2026-11` from `inv_2026-11`, checked.
fn month_of_id(id: &str) -> Option<String> {
    let m = id.strip_prefix("inv_")?;
    let (y, mo) = m.split_once('-')?;
    let ok = y.len() == 4
        && mo.len() == 2
        && y.bytes().chain(mo.bytes()).all(|b| b.is_ascii_digit())
        && (1..=12).contains(&mo.parse::<u8>().ok()?);
    ok.then(|| m.to_owned())
}

/// The 1st of the month after `month` (`2026-12` → 2027-01-01T00:00:00Z).
fn closes_at(month: &str) -> String {
    let (y, m) = month.split_once('-').unwrap_or(("1970", "01"));
    let (y, m): (i32, u8) = (y.parse().unwrap_or(1970), m.parse().unwrap_or(1));
    let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    format!("{y:04}-{m:02}-01T00:00:00Z")
}

fn summary(
    month: &str,
    now: OffsetDateTime,
    lines: &[&BillingLine],
    credits: &[&LedgerEntry],
    invoiced_plan: bool,
) -> InvoiceSummary {
    let total: i64 = lines
        .iter()
        .filter(|l| !l.sandbox)
        .map(|l| l.cost_micro)
        .sum();
    InvoiceSummary {
        id: format!("inv_{month}"),
        month: month.to_owned(),
        status: if month == month_of(now) {
            "open"
        } else {
            "closed"
        }
        .into(),
        closes_at: closes_at(month),
        total_usd: micro_to_usd(total),
        credits_usd: micro_to_usd(credits.iter().map(|c| c.amount_micro).sum()),
        amount_due_usd: if invoiced_plan {
            micro_to_usd(total)
        } else {
            0.0
        },
    }
}

impl Platform {
    /// The account's statements, newest first: every month with spend or
    /// credit in the last 7 years, and the current one.
    pub async fn invoices(&self, account_id: &str) -> Result<Vec<InvoiceSummary>> {
        let account = self.account(account_id).await?;
        let now = self.clock.now();
        let current = month_of(now);
        let lines = self
            .store
            .billing_lines(account_id, &months_back(now, MONTHS_KEPT - 1), &current)
            .await?;
        let ledger = self.store.ledger(account_id).await?;
        let mut months: Vec<String> = lines
            .iter()
            .map(|l| l.month.clone())
            .chain(ledger.iter().map(|e| month_of(e.at)))
            .chain(std::iter::once(current))
            .collect();
        months.sort_unstable_by(|a, b| b.cmp(a));
        months.dedup();
        Ok(months
            .iter()
            .map(|m| {
                let ls: Vec<&BillingLine> = lines.iter().filter(|l| &l.month == m).collect();
                let cs: Vec<&LedgerEntry> =
                    ledger.iter().filter(|e| &month_of(e.at) == m).collect();
                summary(m, now, &ls, &cs, invoiced(account.plan))
            })
            .collect())
    }

    /// One statement with its lines.
    pub async fn invoice(&self, account_id: &str, id: &str) -> Result<Invoice> {
        let month = month_of_id(id).ok_or_else(|| Error::not_found("invoice", id))?;
        let account = self.account(account_id).await?;
        let now = self.clock.now();
        if month > month_of(now) || month < months_back(now, MONTHS_KEPT - 1) {
            return Err(Error::not_found("invoice", id));
        }
        let lines = self.store.billing_lines(account_id, &month, &month).await?;
        let ledger: Vec<LedgerEntry> = self
            .store
            .ledger(account_id)
            .await?
            .into_iter()
            .filter(|e| month_of(e.at) == month)
            .collect();
        let s = summary(
            &month,
            now,
            &lines.iter().collect::<Vec<_>>(),
            &ledger.iter().collect::<Vec<_>>(),
            invoiced(account.plan),
        );
        Ok(Invoice {
            summary: s,
            account_id: account.id,
            email: account.email,
            plan: account.plan,
            sandbox_requests: lines.iter().filter(|l| l.sandbox).map(|l| l.requests).sum(),
            lines: lines
                .iter()
                .filter(|l| !l.sandbox)
                .map(|l| InvoiceLine {
                    key_id: l.key_id.clone(),
                    model: l.model.clone(),
                    requests: l.requests,
                    prompt_tokens: l.prompt_tokens,
                    completion_tokens: l.completion_tokens,
                    characters: l.characters,
                    images: l.images,
                    media_ms: l.media_ms,
                    cost_usd: micro_to_usd(l.cost_micro),
                })
                .collect(),
            credits: ledger
                .into_iter()
                .map(|e| CreditEntry {
                    at: iso8601(e.at),
                    amount_usd: micro_to_usd(e.amount_micro),
                    kind: e.kind,
                    note: e.note,
                })
                .collect(),
        })
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A statement as a printable HTML page.
pub fn invoice_html(inv: &Invoice) -> String {
    let s = &inv.summary;
    let mut rows = String::new();
    for l in &inv.lines {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{:.1}</td><td class=n>${:.6}</td></tr>\n",
            escape(&l.key_id),
            escape(&l.model),
            l.requests,
            l.prompt_tokens,
            l.completion_tokens,
            l.characters,
            l.images,
            l.media_ms as f64 / 1000.0,
            l.cost_usd
        ));
    }
    let mut credits = String::new();
    for c in &inv.credits {
        credits.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=n>${:.2}</td></tr>\n",
            escape(&c.at),
            escape(&c.kind),
            escape(&c.note),
            c.amount_usd
        ));
    }
    format!(
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8><title>Statement {id}</title>\n\
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:.3em .6em}}.n{{text-align:right}}</style></head><body>\n\
<h1>Statement {month}</h1>\n\
<p>Account {account} ({email}), plan {plan}. Status: {status}; closes {closes}.</p>\n\
<table><tr><th>Key</th><th>Model</th><th>Requests</th><th>Prompt tokens</th><th>Completion tokens</th><th>Characters</th><th>Images</th><th>Seconds</th><th>Cost</th></tr>\n{rows}\
<tr><th colspan=8>Total</th><th class=n>${total:.6}</th></tr></table>\n\
<p>Amount due: ${due:.6}. Sandbox requests (not charged): {sandbox}.</p>\n\
<h2>Credits</h2>\n<table><tr><th>At</th><th>Kind</th><th>Note</th><th>Amount</th></tr>\n{credits}</table>\n</body></html>\n",
        id = escape(&s.id),
        month = escape(&s.month),
        account = escape(&inv.account_id),
        email = escape(&inv.email),
        plan = inv.plan,
        status = escape(&s.status),
        closes = escape(&s.closes_at),
        total = s.total_usd,
        due = s.amount_due_usd,
        sandbox = inv.sandbox_requests,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_a_month_and_statements_close_on_the_first() {
        assert_eq!(month_of_id("inv_2026-11").as_deref(), Some("2026-11"));
        for bad in [
            "inv_2026-13",
            "inv_2026-1",
            "2026-11",
            "inv_20x6-11",
            "inv_2026-00",
        ] {
            assert_eq!(month_of_id(bad), None, "{bad}");
        }
        assert_eq!(closes_at("2026-12"), "2027-01-01T00:00:00Z");
        assert_eq!(closes_at("2026-02"), "2026-03-01T00:00:00Z");
    }

    #[test]
    fn html_escapes_what_it_shows() {
        let inv = Invoice {
            summary: InvoiceSummary {
                id: "inv_2026-11".into(),
                month: "2026-11".into(),
                status: "closed".into(),
                closes_at: closes_at("2026-11"),
                total_usd: 1.5,
                credits_usd: 0.0,
                amount_due_usd: 1.5,
            },
            account_id: "acct_1".into(),
            email: "a<b>@x.io".into(),
            plan: maximin_types::Plan::Enterprise,
            lines: vec![],
            sandbox_requests: 0,
            credits: vec![],
        };
        let html = invoice_html(&inv);
        assert!(html.contains("a&lt;b&gt;@x.io"));
        assert!(html.contains("Amount due: $1.500000"));
    }
}

//! Support tickets (issue 16): an account owner opens one, both sides
//! reply, either closes it; subjects and messages are sealed at rest and
//! kept 2 years after the ticket closes (seed 001).

use maximin_types::privacy::{TicketMessage, TicketView};

use crate::clock::iso8601;
use crate::store::{TicketMessageRecord, TicketRecord};
use crate::{secrets, Error, Platform, Result};

/// Closed tickets are kept this long (seed 001).
pub const SUPPORT_RETENTION: time::Duration = time::Duration::days(2 * 365);
const MAX_SUBJECT: usize = 200;
const MAX_MESSAGE: usize = 20_000;

/// Rewraps the data keys of every support subject and message and every
/// debug log under the current master key (`maximin files rotate-key`);
/// returns how many.
pub async fn rewrap_sealed(
    store: &dyn crate::store::Store,
    keys: &crate::crypto::MasterKeys,
) -> Result<u64> {
    use crate::store::SealedRow;
    let mut n = 0;
    for (row, sealed) in store.sealed_rows().await? {
        let aad = match &row {
            SealedRow::TicketSubject { ticket_id } => aad(ticket_id, "subject"),
            SealedRow::TicketMessage { ticket_id, .. } => aad(ticket_id, "message"),
            SealedRow::DebugLog {
                account_id,
                request_id,
                ..
            } => crate::debuglog::aad(account_id, request_id),
        };
        let sealed = keys.rewrap_value(&sealed, &aad)?;
        store.set_sealed_row(&row, &sealed).await?;
        n += 1;
    }
    Ok(n)
}

fn aad(ticket_id: &str, part: &str) -> Vec<u8> {
    format!("maximin/support/{ticket_id}/{part}").into_bytes()
}

fn check(field: &str, text: &str, max: usize) -> Result<String> {
    let t = text.trim();
    if t.is_empty() || t.chars().count() > max {
        return Err(Error::invalid(
            field,
            format!("The {field} must be 1 to {max} characters."),
        ));
    }
    Ok(t.to_owned())
}

impl Platform {
    /// Opens a ticket with its first message (the customer's).
    pub async fn open_ticket(
        &self,
        account_id: &str,
        subject: &str,
        message: &str,
    ) -> Result<TicketView> {
        self.account(account_id).await?;
        let subject = check("subject", subject, MAX_SUBJECT)?;
        let message = check("message", message, MAX_MESSAGE)?;
        let id = secrets::new_id("tkt");
        let now = self.clock.now();
        let keys = self.files.keys();
        let ticket = TicketRecord {
            id: id.clone(),
            account_id: account_id.to_owned(),
            subject: keys.seal_value(subject.as_bytes(), &aad(&id, "subject"))?,
            status: "open".to_owned(),
            created_at: now,
            updated_at: now,
            closed_at: None,
        };
        let first = TicketMessageRecord {
            id: 0,
            ticket_id: id.clone(),
            account_id: account_id.to_owned(),
            at: now,
            author: "customer".to_owned(),
            body: keys.seal_value(message.as_bytes(), &aad(&id, "message"))?,
        };
        self.store.insert_ticket(&ticket, &first).await?;
        self.ticket(Some(account_id), &id).await
    }

    /// A ticket with its messages (`account_id: None` for the operator).
    pub async fn ticket(&self, account_id: Option<&str>, id: &str) -> Result<TicketView> {
        let t = self.ticket_record(account_id, id).await?;
        let mut view = self.ticket_view(&t)?;
        let keys = self.files.keys();
        let mut messages = Vec::new();
        for m in self.store.ticket_messages(id).await? {
            let body = keys.open_value(&m.body, &aad(id, "message"))?;
            messages.push(TicketMessage {
                at: iso8601(m.at),
                author: m.author,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        view.messages = Some(messages);
        Ok(view)
    }

    async fn ticket_record(&self, account_id: Option<&str>, id: &str) -> Result<TicketRecord> {
        match self.store.ticket(id).await? {
            Some(t) if account_id.is_none_or(|a| a == t.account_id) => Ok(t),
            _ => Err(Error::not_found("ticket", id).with("field", "ticket_id")),
        }
    }

    fn ticket_view(&self, t: &TicketRecord) -> Result<TicketView> {
        let subject = self
            .files
            .keys()
            .open_value(&t.subject, &aad(&t.id, "subject"))?;
        Ok(TicketView {
            id: t.id.clone(),
            subject: String::from_utf8_lossy(&subject).into_owned(),
            status: t.status.clone(),
            created_at: iso8601(t.created_at),
            updated_at: iso8601(t.updated_at),
            closed_at: t.closed_at.map(iso8601),
            messages: None,
        })
    }

    /// The account's tickets, newest first, without their messages.
    pub async fn list_tickets(&self, account_id: &str) -> Result<Vec<TicketView>> {
        self.account(account_id).await?;
        self.store
            .tickets_of(account_id)
            .await?
            .iter()
            .map(|t| self.ticket_view(t))
            .collect()
    }

    /// Adds a reply to an open ticket: the customer's through the API
    /// (`account_id` set), the operator's through the CLI.
    pub async fn reply_ticket(
        &self,
        account_id: Option<&str>,
        id: &str,
        message: &str,
    ) -> Result<TicketView> {
        let t = self.ticket_record(account_id, id).await?;
        let message = check("message", message, MAX_MESSAGE)?;
        let record = TicketMessageRecord {
            id: 0,
            ticket_id: id.to_owned(),
            account_id: t.account_id.clone(),
            at: self.clock.now(),
            author: if account_id.is_some() {
                "customer"
            } else {
                "operator"
            }
            .to_owned(),
            body: self
                .files
                .keys()
                .seal_value(message.as_bytes(), &aad(id, "message"))?,
        };
        if !self.store.add_ticket_message(&record).await? {
            return Err(Error::invalid(
                "ticket_id",
                "This ticket is closed; open a new one.",
            ));
        }
        self.ticket(account_id, id).await
    }

    /// Closes a ticket; its 2 years of retention start now.
    pub async fn close_ticket(&self, account_id: Option<&str>, id: &str) -> Result<TicketView> {
        self.ticket_record(account_id, id).await?;
        if !self.store.close_ticket(id, self.clock.now()).await? {
            return Err(Error::invalid(
                "ticket_id",
                "This ticket is already closed.",
            ));
        }
        self.ticket(account_id, id).await
    }

    /// Every ticket of the account with its messages (for its export).
    pub async fn tickets_with_messages(&self, account_id: &str) -> Result<Vec<TicketView>> {
        let mut out = Vec::new();
        for t in self.store.tickets_of(account_id).await? {
            out.push(self.ticket(Some(account_id), &t.id).await?);
        }
        Ok(out)
    }
}

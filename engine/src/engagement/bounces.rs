//! Bounces and complaints: reported by a mail provider's webhook or as delivery status
//! notifications (RFC 3464). Hard bounces and complaints suppress the address at once;
//! soft bounces after [`SOFT_BOUNCE_LIMIT`] of them.

use rapport_schema::{bounce_event, contact};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QuerySelect, Set,
};

use crate::clock;
use crate::engagement::{suppression, tracking};
use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::values::{EmailAddress, Scope, SuppressionReason, Text};

/// Soft bounces an address may have before it is suppressed.
pub const SOFT_BOUNCE_LIMIT: u64 = 3;

/// What kind of failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Permanent (5.x.x): the address does not work.
    Hard,
    /// Temporary (4.x.x): a full mailbox, a greylisting server.
    Soft,
    /// The person marked the mail as spam.
    Complaint,
}

impl Kind {
    /// Parses `hard`, `soft` or `complaint`.
    pub fn parse(raw: &str) -> Result<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "hard" => Ok(Kind::Hard),
            "soft" => Ok(Kind::Soft),
            "complaint" => Ok(Kind::Complaint),
            _ => Err(EngineError::invalid(
                "type",
                format!("'{raw}' is not one of hard, soft, complaint"),
            )),
        }
    }

    fn as_str(&self) -> &'static str {
        match self {
            Kind::Hard => "hard",
            Kind::Soft => "soft",
            Kind::Complaint => "complaint",
        }
    }
}

/// One reported failure.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The address that failed.
    pub email: EmailAddress,
    /// How.
    pub kind: Kind,
    /// The enhanced status code, when known.
    pub status: Option<String>,
    /// The server's words, when given.
    pub diagnostic: Option<String>,
}

/// What a report led to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the address is suppressed now.
    pub suppressed: bool,
    /// Soft bounces on record for it.
    pub soft_bounces: u64,
}

/// Records a report and suppresses the address when it should be (write scope).
pub async fn record(db: &impl ConnectionTrait, who: &Principal, report: Report) -> Result<Outcome> {
    who.require(Scope::Write)?;
    let hash = suppression::email_hash(&report.email);
    bounce_event::ActiveModel {
        workspace_id: Set(who.workspace_id),
        email_hash: Set(hash.clone()),
        kind: Set(report.kind.as_str().into()),
        status: Set(report.status.clone()),
        diagnostic: Set(Text::parse_multiline_opt(
            "diagnostic",
            report.diagnostic.as_deref(),
            1000,
        )
        .unwrap_or(None)
        .map(Text::into_string)),
        received_at: Set(clock::now()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    let soft_bounces = bounce_event::Entity::find()
        .filter(bounce_event::Column::WorkspaceId.eq(who.workspace_id))
        .filter(bounce_event::Column::EmailHash.eq(hash.clone()))
        .filter(bounce_event::Column::Kind.eq(Kind::Soft.as_str()))
        .count(db)
        .await?;
    let reason = match report.kind {
        Kind::Hard => Some((SuppressionReason::HardBounce, None)),
        Kind::Complaint => Some((SuppressionReason::Complaint, None)),
        Kind::Soft if soft_bounces >= SOFT_BOUNCE_LIMIT => Some((
            SuppressionReason::HardBounce,
            Some(format!("{soft_bounces} soft bounces")),
        )),
        Kind::Soft => None,
    };
    if let Some((reason, note)) = reason {
        suppression::add(db, who.workspace_id, &hash, reason, note).await?;
    }
    if report.kind != Kind::Complaint {
        let bounced: Vec<i64> = contact::Entity::find()
            .select_only()
            .column(contact::Column::Id)
            .filter(contact::Column::WorkspaceId.eq(who.workspace_id))
            .filter(contact::Column::Email.eq(report.email.as_str()))
            .into_tuple()
            .all(db)
            .await?;
        for contact_id in bounced {
            note_bounce(db, who.workspace_id, contact_id).await?;
        }
    }
    let suppressed = suppression::lookup(db, who.workspace_id, &report.email)
        .await?
        .is_some();
    Ok(Outcome {
        suppressed,
        soft_bounces,
    })
}

/// Puts a bounce on the email it answers: the latest sent to the contact, a campaign's
/// (marked bounced, for its statistics), a sequence's or a transactional one; each
/// reports `message.bounced` to webhooks.
async fn note_bounce(db: &impl ConnectionTrait, workspace_id: i64, contact_id: i64) -> Result<()> {
    use rapport_schema::{campaign_message, sequence_message, transactional_message};
    use sea_orm::QueryOrder;
    let campaign: Option<chrono::DateTime<chrono::Utc>> = campaign_message::Entity::find()
        .select_only()
        .column(campaign_message::Column::SentAt)
        .filter(campaign_message::Column::WorkspaceId.eq(workspace_id))
        .filter(campaign_message::Column::ContactId.eq(contact_id))
        .filter(campaign_message::Column::SentAt.is_not_null())
        .order_by_desc(campaign_message::Column::SentAt)
        .into_tuple::<Option<chrono::DateTime<chrono::Utc>>>()
        .one(db)
        .await?
        .flatten();
    let sequence = sequence_message::Entity::find()
        .filter(sequence_message::Column::WorkspaceId.eq(workspace_id))
        .filter(sequence_message::Column::ContactId.eq(contact_id))
        .filter(sequence_message::Column::SentAt.is_not_null())
        .order_by_desc(sequence_message::Column::SentAt)
        .one(db)
        .await?;
    let transactional = transactional_message::Entity::find()
        .filter(transactional_message::Column::WorkspaceId.eq(workspace_id))
        .filter(transactional_message::Column::ContactId.eq(contact_id))
        .filter(transactional_message::Column::SentAt.is_not_null())
        .order_by_desc(transactional_message::Column::SentAt)
        .one(db)
        .await?;
    let seq_at = sequence.as_ref().and_then(|m| m.sent_at);
    let tx_at = transactional.as_ref().and_then(|m| m.sent_at);
    let bounced = crate::values::WebhookEventType::MessageBounced;
    let (ws, contact) = (workspace_id, contact_id);
    if let Some(m) = sequence.filter(|_| seq_at >= campaign && seq_at >= tx_at) {
        return tracking::tell(db, ws, contact, bounced, "SequenceMessage", &m, None).await;
    }
    if let Some(m) = transactional.filter(|_| tx_at >= campaign) {
        return tracking::tell(db, ws, contact, bounced, "TransactionalMessage", &m, None).await;
    }
    crate::engagement::campaigns::note_bounce(db, workspace_id, contact_id).await
}

/// Reads the per-recipient fields of a delivery status notification (RFC 3464): one
/// report per `Final-Recipient` whose `Action` is `failed` (hard for 5.x.x) or `delayed`
/// (soft; so is a failure with a 4.x.x status).
pub fn parse_dsn(text: &str) -> Result<Vec<Report>> {
    let mut reports = Vec::new();
    // Unfold continuation lines first.
    let unfolded = text
        .replace("\r\n", "\n")
        .replace("\n ", " ")
        .replace("\n\t", " ");
    for block in unfolded.split("\n\n") {
        let field = |name: &str| {
            block.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let Some(recipient) = field("Final-Recipient").or_else(|| field("Original-Recipient"))
        else {
            continue;
        };
        let address = recipient
            .split_once(';')
            .map(|(_, a)| a.trim())
            .unwrap_or(&recipient)
            .trim_matches(|c| c == '<' || c == '>');
        let action = field("Action").unwrap_or_default().to_ascii_lowercase();
        let status = field("Status");
        let kind = match (action.as_str(), status.as_deref()) {
            ("failed", Some(s)) if s.starts_with('4') => Kind::Soft,
            ("failed", _) => Kind::Hard,
            ("delayed", _) => Kind::Soft,
            // delivered, relayed, expanded: not a failure.
            _ => continue,
        };
        reports.push(Report {
            email: EmailAddress::parse("Final-Recipient", address)?,
            kind,
            status,
            diagnostic: field("Diagnostic-Code"),
        });
    }
    if reports.is_empty() {
        return Err(EngineError::invalid(
            "dsn",
            "no failed or delayed recipient found (expected Final-Recipient and Action fields)",
        ));
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DSN: &str = "Reporting-MTA: dns; mx.example.net\r\n\r\nFinal-Recipient: rfc822; ada@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 user\r\n unknown\r\n\r\nFinal-Recipient: rfc822;<grace@example.com>\r\nAction: delayed\r\nStatus: 4.2.2\r\n\r\nFinal-Recipient: rfc822; linus@example.com\r\nAction: delivered\r\nStatus: 2.0.0\r\n";

    #[test]
    fn reads_each_failed_recipient() {
        let reports = parse_dsn(DSN).unwrap();
        assert_eq!(reports.len(), 2);
        assert_eq!(reports[0].email.as_str(), "ada@example.com");
        assert_eq!(reports[0].kind, Kind::Hard);
        assert_eq!(reports[0].status.as_deref(), Some("5.1.1"));
        assert_eq!(
            reports[0].diagnostic.as_deref(),
            Some("smtp; 550 5.1.1 user unknown")
        );
        assert_eq!(reports[1].email.as_str(), "grace@example.com");
        assert_eq!(reports[1].kind, Kind::Soft);
        assert!(parse_dsn("Subject: hello\n\nno fields here").is_err());
    }
}

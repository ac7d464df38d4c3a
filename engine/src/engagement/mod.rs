//! Reaching contacts: consent and suppression, bounces, the contact filter language and
//! the segments saved with it, templates, campaigns, drip sequences, transactional email,
//! and the open and click tracking they share.
//!
//! May use: the root vocabulary, [`crate::platform`] and [`crate::crm`]. Every email leaves
//! through one consent check ([`consent`]) and one transport ([`crate::platform::email`]).

pub mod audiences;
pub mod bounces;
pub mod campaigns;
pub mod capture;
pub mod consent;
pub mod outbound;
pub mod sequences;
pub mod suppression;
pub mod templates;
pub mod topics;
pub mod tracking;
pub mod transactional;

use sea_orm::DatabaseConnection;

use crate::error::Result;
use crate::platform::links::Claim;

/// Records an open or click from a verified tracking link on the campaign, sequence or
/// transactional message it names; returns where a click goes on to.
pub async fn track(db: &DatabaseConnection, claim: &Claim) -> Result<Option<String>> {
    match (claim.seq, claim.tx) {
        (Some(seq), _) => sequences::track(db, claim, seq).await,
        (None, Some(tx)) => transactional::track(db, claim, tx).await,
        (None, None) => campaigns::track(db, claim).await,
    }
}

/// Records that a contact unsubscribed through a link of the campaign, sequence or
/// transactional message the claim names: the campaign's statistic, and the
/// `message.unsubscribed` webhook event for any of the three.
pub async fn note_unsubscribe(db: &DatabaseConnection, claim: &Claim) -> Result<()> {
    use crate::values::WebhookEventType::MessageUnsubscribed;
    use rapport_schema::{sequence_message, transactional_message};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    match (claim.seq, claim.tx) {
        (Some(id), _) => {
            let m = sequence_message::Entity::find_by_id(id)
                .filter(sequence_message::Column::WorkspaceId.eq(claim.ws))
                .one(db)
                .await?;
            if let Some(m) = m {
                let (ws, contact) = (m.workspace_id, m.contact_id);
                tracking::tell(
                    db,
                    ws,
                    contact,
                    MessageUnsubscribed,
                    "SequenceMessage",
                    &m,
                    None,
                )
                .await?;
            }
            Ok(())
        }
        (None, Some(id)) => {
            let m = transactional_message::Entity::find_by_id(id)
                .filter(transactional_message::Column::WorkspaceId.eq(claim.ws))
                .one(db)
                .await?;
            if let Some(m) = m {
                let (ws, contact) = (m.workspace_id, m.contact_id);
                let typename = "TransactionalMessage";
                tracking::tell(db, ws, contact, MessageUnsubscribed, typename, &m, None).await?;
            }
            Ok(())
        }
        (None, None) => campaigns::note_unsubscribe(db, claim).await,
    }
}

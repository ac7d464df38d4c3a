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

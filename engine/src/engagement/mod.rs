//! Reaching contacts: consent and suppression, bounces, the contact filter language and
//! the segments saved with it, templates, campaigns, drip sequences, and the open and
//! click tracking they share.
//!
//! May use: the root vocabulary, [`crate::platform`] and [`crate::crm`]. Every email leaves
//! through one consent check ([`consent`]) and one transport ([`crate::platform::email`]).

pub mod audiences;
pub mod bounces;
pub mod campaigns;
pub mod consent;
pub mod outbound;
pub mod sequences;
pub mod suppression;
pub mod templates;
pub mod tracking;

use sea_orm::DatabaseConnection;

use crate::error::Result;
use crate::platform::links::Claim;

/// Records an open or click from a verified tracking link on the campaign or sequence
/// message it names; returns where a click goes on to.
pub async fn track(db: &DatabaseConnection, claim: &Claim) -> Result<Option<String>> {
    match claim.seq {
        Some(seq) => sequences::track(db, claim, seq).await,
        None => campaigns::track(db, claim).await,
    }
}

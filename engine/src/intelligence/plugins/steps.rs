//! Plugins called from sequences: a sequence's plugin step asks for the contact's score
//! now, through [`crate::engagement::outbound::PluginScores`], which this implements.

use futures_util::future::BoxFuture;
use rapport_schema::{plugin, plugin_score};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use super::Host;
use crate::engagement::outbound::PluginScores;
use crate::error::Result;

/// Runs a plugin for one contact when a sequence step asks.
pub struct StepScores {
    db: DatabaseConnection,
    host: Host,
}

impl StepScores {
    /// Plugin steps on `db`, run with `host`.
    pub fn new(db: DatabaseConnection, host: Host) -> Self {
        StepScores { db, host }
    }
}

impl PluginScores for StepScores {
    fn score_now<'a>(
        &'a self,
        workspace_id: i64,
        name: &'a str,
        contact_id: i64,
    ) -> BoxFuture<'a, Result<Option<f64>>> {
        Box::pin(async move {
            // A run like any other: the score is stored with its history, the call
            // recorded, the breaker counted; the step then reads what was stored.
            let summary = super::runs::run(
                &self.db,
                &self.host,
                workspace_id,
                &[contact_id],
                Some(name),
            )
            .await?;
            let failed = summary
                .failures
                .iter()
                .any(|f| f.plugin == name && (f.contact_id == contact_id || f.contact_id == 0));
            if summary.plugins == 0 || failed || summary.scored == 0 {
                tracing::info!(plugin = name, contact_id, "a plugin step got no score");
                return Ok(None);
            }
            let Some(p) = plugin::Entity::find()
                .filter(plugin::Column::WorkspaceId.eq(workspace_id))
                .filter(plugin::Column::Name.eq(name))
                .one(&self.db)
                .await?
            else {
                return Ok(None);
            };
            Ok(plugin_score::Entity::find()
                .filter(plugin_score::Column::PluginId.eq(p.id))
                .filter(plugin_score::Column::ContactId.eq(contact_id))
                .one(&self.db)
                .await?
                .map(|s| s.score))
        })
    }
}

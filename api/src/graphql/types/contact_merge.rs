//! Records of merged contacts.

use super::*;

/// A record that contacts were merged (the merged contact as it was is kept).
pub struct ContactMerge(pub s::contact_merge::Model);

#[Object]
impl ContactMerge {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn merged_id(&self) -> ID {
        to_id(self.0.merged_id)
    }
    /// The merged contact as it was before the merge.
    async fn merged_snapshot(&self) -> Json<serde_json::Value> {
        Json(self.0.merged_snapshot.clone())
    }
    /// How many rows of each kind moved.
    async fn moved(&self) -> Json<serde_json::Value> {
        Json(self.0.moved.clone())
    }
    async fn merged_at(&self) -> DateTime<Utc> {
        self.0.merged_at
    }
    async fn survivor(&self, ctx: &Context<'_>) -> Result<Option<Contact>> {
        Ok(load::<s::contact::Entity>(ctx, Some(self.0.survivor_id))
            .await?
            .map(Contact))
    }
}

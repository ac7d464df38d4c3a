//! Behavioural events.

use super::*;

/// Something a contact did (viewed a page, submitted a form, ...).
pub struct Event(pub s::event::Model);

#[Object]
impl Event {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    #[graphql(name = "type")]
    async fn event_type(&self) -> &str {
        &self.0.event_type
    }
    async fn properties(&self) -> Json<serde_json::Value> {
        Json(self.0.properties.clone())
    }
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
    async fn contact(&self, ctx: &Context<'_>) -> Result<Option<Contact>> {
        Ok(load::<s::contact::Entity>(ctx, Some(self.0.contact_id))
            .await?
            .map(Contact))
    }
}

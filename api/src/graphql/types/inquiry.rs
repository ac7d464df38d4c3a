//! Inquiries.

use super::*;

/// A question or request a customer raised.
pub struct Inquiry(pub s::inquiry::Model);

#[Object]
impl Inquiry {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn subject(&self) -> &str {
        &self.0.subject
    }
    async fn channel(&self) -> InquiryChannel {
        InquiryChannel::from_db(&self.0.channel)
    }
    async fn status(&self) -> InquiryStatus {
        InquiryStatus::from_db(&self.0.status)
    }
    async fn priority(&self) -> Priority {
        Priority::from_db(&self.0.priority)
    }
    async fn opened_at(&self) -> DateTime<Utc> {
        self.0.opened_at
    }
    async fn closed_at(&self) -> Option<DateTime<Utc>> {
        self.0.closed_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.0.deleted_at
    }
    async fn contact(&self, ctx: &Context<'_>) -> Result<Option<Contact>> {
        Ok(load::<s::contact::Entity>(ctx, self.0.contact_id)
            .await?
            .map(Contact))
    }
}

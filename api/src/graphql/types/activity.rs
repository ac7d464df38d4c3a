//! Activities.

use super::*;

/// An email, call, meeting, note, chat or social touch.
pub struct Activity(pub s::activity::Model);

#[Object]
impl Activity {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn kind(&self) -> ActivityKind {
        ActivityKind::from_db(&self.0.kind)
    }
    async fn direction(&self) -> Option<Direction> {
        self.0.direction.as_deref().map(Direction::from_db)
    }
    async fn subject(&self) -> Option<&str> {
        self.0.subject.as_deref()
    }
    async fn body(&self) -> Option<&str> {
        self.0.body.as_deref()
    }
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    async fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.0.deleted_at
    }
    async fn contact(&self, ctx: &Context<'_>) -> Result<Option<Contact>> {
        Ok(load::<s::contact::Entity>(ctx, self.0.contact_id)
            .await?
            .map(Contact))
    }
    async fn deal(&self, ctx: &Context<'_>) -> Result<Option<Deal>> {
        Ok(load::<s::deal::Entity>(ctx, self.0.deal_id)
            .await?
            .map(Deal))
    }
    async fn author(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        Ok(load::<s::user::Entity>(ctx, self.0.author_id)
            .await?
            .map(User))
    }
}

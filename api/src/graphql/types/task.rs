//! Tasks.

use super::*;

/// A follow-up for a team member.
pub struct Task(pub s::task::Model);

#[Object]
impl Task {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn due_at(&self) -> Option<DateTime<Utc>> {
        self.0.due_at
    }
    async fn status(&self) -> TaskStatus {
        TaskStatus::from_db(&self.0.status)
    }
    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.0.completed_at
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
    async fn assignee(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        Ok(load::<s::user::Entity>(ctx, self.0.assignee_id)
            .await?
            .map(User))
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
}

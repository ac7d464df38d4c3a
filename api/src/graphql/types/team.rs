//! Users and teams.

use super::*;

/// A team member.
pub struct User(pub s::user::Model);

#[Object]
impl User {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn email(&self) -> &str {
        &self.0.email
    }
    /// How the user signs email (templates' `owner.signature`).
    async fn signature(&self) -> Option<&str> {
        self.0.signature.as_deref()
    }
    async fn role(&self) -> UserRole {
        UserRole::from_db(&self.0.role)
    }
    /// Whether the person has set a password and can sign in to the console.
    async fn can_sign_in(&self) -> bool {
        self.0.password_hash.is_some()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn team(&self, ctx: &Context<'_>) -> Result<Option<Team>> {
        Ok(load::<s::team::Entity>(ctx, self.0.team_id)
            .await?
            .map(Team))
    }
}

/// A group of team members.
pub struct Team(pub s::team::Model);

#[Object]
impl Team {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    #[graphql(complexity = "page_cost(first, last) * child_complexity")]
    async fn members(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<UserFilter>,
        order_by: Option<Vec<UserOrder>>,
    ) -> Result<Conn<User>> {
        user_lists::of(
            ctx,
            self.0.id,
            s::user::Column::TeamId,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
    }
}

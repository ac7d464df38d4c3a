//! A contact: fields, relations and lists.

use super::*;

/// A person the business deals with.
pub struct Contact(pub s::contact::Model);

#[Object]
impl Contact {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn first_name(&self) -> &str {
        &self.0.first_name
    }
    async fn last_name(&self) -> &str {
        &self.0.last_name
    }
    /// First and last name together.
    async fn name(&self) -> String {
        format!("{} {}", self.0.first_name, self.0.last_name)
            .trim()
            .to_string()
    }
    /// Primary email address.
    async fn email(&self) -> Option<&str> {
        self.0.email.as_deref()
    }
    /// Further email addresses.
    async fn other_emails(&self) -> Vec<String> {
        json_strings(&self.0.other_emails)
    }
    async fn phone(&self) -> Option<&str> {
        self.0.phone.as_deref()
    }
    async fn lifecycle_stage(&self) -> LifecycleStage {
        LifecycleStage::from_db(&self.0.lifecycle_stage)
    }
    /// Channel or campaign the contact came from.
    async fn source(&self) -> Option<&str> {
        self.0.source.as_deref()
    }
    async fn tags(&self) -> Vec<String> {
        json_strings(&self.0.tags)
    }
    /// Custom attributes, a JSON object.
    async fn attributes(&self) -> Json<serde_json::Value> {
        Json(self.0.attributes.clone())
    }
    /// IANA time zone.
    async fn timezone(&self) -> Option<&str> {
        self.0.timezone.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// Set while the contact is in the trash.
    async fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.0.deleted_at
    }
    /// The contact this one was merged into, if it was.
    async fn merged_into_id(&self) -> Option<ID> {
        self.0.merged_into_id.map(to_id)
    }
    async fn company(&self, ctx: &Context<'_>) -> Result<Option<Company>> {
        Ok(load::<s::company::Entity>(ctx, self.0.company_id)
            .await?
            .map(Company))
    }
    /// The current consent per channel and purpose (the latest event of each).
    async fn consent(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<crate::graphql::consent::ConsentRecord>> {
        crate::graphql::consent::current(ctx, self.0.id).await
    }
    /// Whether this contact has an address an unsubscribe link would be sent to; the
    /// link itself (`unsubscribeUrl`) needs write scope.
    async fn has_unsubscribe_url(&self) -> bool {
        self.0.email.is_some()
    }
    /// The signed one-click unsubscribe link to put in an email to this contact (it does
    /// not expire; `POST` to it unsubscribes, `GET` shows a confirmation button). Write
    /// scope: the link withdraws the person's consent.
    async fn unsubscribe_url(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "ConsentPurpose::Marketing")] purpose: ConsentPurpose,
    ) -> Result<String> {
        crate::graphql::consent::unsubscribe_url(ctx, self.0.id, purpose).await
    }
    /// The contact's preference page, where they choose email topics or unsubscribe from
    /// all marketing (write scope: following it changes consent).
    async fn preferences_url(&self, ctx: &Context<'_>) -> Result<String> {
        crate::graphql::consent::preferences_url(ctx, self.0.id).await
    }
    /// The contact's choice on every email topic (subscribed until they opt out).
    async fn topic_preferences(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<crate::graphql::consent::TopicPreference>> {
        crate::graphql::consent::topic_preferences(ctx, self.0.id).await
    }
    /// Every consent event, oldest first.
    async fn consent_history(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<crate::graphql::consent::ConsentRecord>> {
        crate::graphql::consent::history(ctx, self.0.id).await
    }
    /// Whether an email for `purpose` may go to the contact now (consent, suppression
    /// list, address on file), as sending checks it.
    async fn email_permission(
        &self,
        ctx: &Context<'_>,
        purpose: ConsentPurpose,
    ) -> Result<crate::graphql::consent::EmailPermission> {
        crate::graphql::consent::permission(ctx, self.0.id, purpose).await
    }
    /// The contact's drip sequence enrollments, newest first.
    async fn sequence_enrollments(
        &self,
        ctx: &Context<'_>,
        status: Option<crate::graphql::enums::EnrollmentStatus>,
    ) -> Result<Vec<SequenceEnrollment>> {
        let who = principal(ctx)?;
        let filter = rapport_engine::engagement::sequences::EnrollmentFilter {
            sequence_id: None,
            contact_id: Some(self.0.id),
            status: status.map(Into::into),
        };
        list_enrollments(ctx, who.workspace_id, &filter, 100).await
    }
    /// Every current score: the built-in models' (lead score, churn) and each plugin's,
    /// with their reasons.
    async fn scores(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<crate::graphql::plugin_scores::ContactScore>> {
        crate::graphql::plugin_scores::contact_scores(ctx, self.0.id).await
    }
    /// Open actions recommended by enabled plugins, highest priority first.
    async fn next_best_actions(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<crate::graphql::plugin_actions::RecommendedAction>> {
        crate::graphql::plugin_actions::next_best_actions(ctx, self.0.id).await
    }
    /// Every score the plugin gave this contact, oldest first.
    async fn plugin_score_history(
        &self,
        ctx: &Context<'_>,
        plugin: String,
    ) -> Result<Vec<crate::graphql::plugin_scores::ScorePoint>> {
        crate::graphql::plugin_scores::score_history(ctx, self.0.id, &plugin).await
    }
    /// Likelihood (0–100) of converting within the lead model's window, with its grade
    /// and reasons; null for customers and until a lead-score model is active.
    async fn lead_score(&self, ctx: &Context<'_>) -> Result<Option<Score>> {
        intelligence::current(ctx, ModelKindValue::LeadScore, self.0.id).await
    }
    /// Expected purchases and spend over the next `weeks` and P(alive), from the active
    /// customer-value model; null without orders or a trained model.
    async fn clv(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 52.0)] weeks: f64,
    ) -> Result<Option<intelligence::Clv>> {
        intelligence::clv(ctx, self.0.id, weeks).await
    }
    /// 1 − P(alive) for customers who bought more than once.
    async fn churn_risk(&self, ctx: &Context<'_>) -> Result<Option<intelligence::ChurnRisk>> {
        intelligence::churn_risk(ctx, self.0.id).await
    }
    /// Recency, frequency and monetary quintile scores and the named segment.
    async fn rfm(&self, ctx: &Context<'_>) -> Result<Option<intelligence::Rfm>> {
        intelligence::rfm(ctx, self.0.id).await
    }
    /// The segments the contact falls in: the RFM segment (for customers) and the
    /// behavioural cluster (once segments are trained).
    async fn segments(&self, ctx: &Context<'_>) -> Result<Vec<String>> {
        let rfm = intelligence::rfm(ctx, self.0.id).await?.map(|r| r.segment);
        let cluster = intelligence::current(ctx, ModelKindValue::BehaviourSegments, self.0.id)
            .await?
            .and_then(|s| s.0.grade);
        Ok(rfm.into_iter().chain(cluster).collect())
    }
    /// Products to offer, from what the contact bought (none they own).
    async fn recommendations(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 5)] first: i32,
    ) -> Result<Vec<ProductRecommendation>> {
        Ok(intelligence::recommend(ctx, self.0.id, first)
            .await?
            .into_iter()
            .map(|recommendation| ProductRecommendation { recommendation })
            .collect())
    }
    async fn owner(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        Ok(load::<s::user::Entity>(ctx, self.0.owner_id)
            .await?
            .map(User))
    }
    #[graphql(complexity = "page_cost(first, last) * child_complexity")]
    async fn deals(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<DealFilter>,
        order_by: Option<Vec<DealOrder>>,
    ) -> Result<Conn<Deal>> {
        deal_lists::of(
            ctx,
            self.0.id,
            s::deal::Column::ContactId,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
    }
    /// Newest first unless ordered otherwise.
    #[graphql(complexity = "page_cost(first, last) * child_complexity")]
    async fn activities(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<ActivityFilter>,
        order_by: Option<Vec<ActivityOrder>>,
    ) -> Result<Conn<Activity>> {
        activity_lists::of(
            ctx,
            self.0.id,
            s::activity::Column::ContactId,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
    }
    #[graphql(complexity = "page_cost(first, last) * child_complexity")]
    async fn tasks(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<TaskFilter>,
        order_by: Option<Vec<TaskOrder>>,
    ) -> Result<Conn<Task>> {
        task_lists::of(
            ctx,
            self.0.id,
            s::task::Column::ContactId,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
    }
    #[graphql(complexity = "page_cost(first, last) * child_complexity")]
    async fn inquiries(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<InquiryFilter>,
        order_by: Option<Vec<InquiryOrder>>,
    ) -> Result<Conn<Inquiry>> {
        inquiry_lists::of(
            ctx,
            self.0.id,
            s::inquiry::Column::ContactId,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
    }
    #[graphql(complexity = "page_cost(first, last) * child_complexity")]
    async fn orders(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<OrderFilter>,
        order_by: Option<Vec<OrderOrder>>,
    ) -> Result<Conn<Order>> {
        order_lists::of(
            ctx,
            self.0.id,
            s::order::Column::ContactId,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
    }
    #[graphql(complexity = "page_cost(first, last) * child_complexity")]
    async fn events(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<EventFilter>,
        order_by: Option<Vec<EventOrder>>,
    ) -> Result<Conn<Event>> {
        event_lists::of(
            ctx,
            self.0.id,
            s::event::Column::ContactId,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
    }
    /// Its lifecycle stages over time, oldest first.
    async fn lifecycle_history(&self, ctx: &Context<'_>) -> Result<Vec<super::LifecycleChange>> {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<sea_orm::DatabaseConnection>();
        Ok(s::lifecycle_change::Entity::find()
            .filter(s::lifecycle_change::Column::WorkspaceId.eq(who.workspace_id))
            .filter(s::lifecycle_change::Column::ContactId.eq(self.0.id))
            .order_by_asc(s::lifecycle_change::Column::Id)
            .limit(500)
            .all(db)
            .await
            .map_err(|e| crate::error::to_graphql(e.into()))?
            .into_iter()
            .map(super::LifecycleChange)
            .collect())
    }
    /// Everything about the contact merged by time, newest first: activities, orders,
    /// inquiries, tasks, events, lifecycle changes, consent records and the email it was
    /// sent (campaigns, sequences, transactional).
    #[graphql(complexity = "page_cost(first, None) * child_complexity")]
    async fn timeline(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<TimelineConnection> {
        super::timeline::connection(
            ctx,
            rapport_engine::timeline::Subject::Contact(self.0.id),
            first,
            after,
        )
        .await
    }
    /// Earlier merges into this contact, newest first.
    async fn merges(&self, ctx: &Context<'_>) -> Result<Vec<ContactMerge>> {
        let ws = principal(ctx)?.workspace_id;
        let select = scoped::<s::contact_merge::Entity>(ws, Deleted::Exclude);
        let rows = all_children(
            ctx,
            self.0.id,
            s::contact_merge::Column::SurvivorId,
            select,
            vec![(s::contact_merge::Column::Id, SortDirection::Desc)],
        )
        .await?;
        Ok(rows.into_iter().map(ContactMerge).collect())
    }
}

//! GraphQL subscriptions: a board, a contact page or a campaign page follows changes as
//! they commit, in any process (see `engine::platform::live`). Each event is the object as
//! it stands when the subscriber reads it, so a client never applies a stale diff.

use async_graphql::{Context, ID, Result, Subscription};
use futures_util::{Stream, StreamExt, stream};
use rapport_engine::engagement::campaigns;
use rapport_engine::platform::auth::Principal;
use rapport_engine::platform::live::{Live, Notice, Topic};
use rapport_engine::platform::records::{self, Deleted};
use rapport_engine::values::Scope;
use rapport_schema as s;
use sea_orm::DatabaseConnection;

use crate::error::OrGraphql;
use crate::graphql::campaigns::Campaign;
use crate::graphql::context::principal;
use crate::graphql::ids::parse_id;
use crate::graphql::types::{Activity, Contact, Deal};

/// The live changes a client may follow (`graphql-transport-ws` at `/graphql`).
#[derive(Default)]
pub struct LiveSubscription;

/// The caller (read scope at least), the database and the process's notices.
fn caller<'a>(ctx: &Context<'a>) -> Result<(Principal, DatabaseConnection, &'a Live)> {
    let who = principal(ctx)?;
    who.require(Scope::Read).gql()?;
    let live = ctx.data::<Live>()?;
    Ok((
        who.clone(),
        ctx.data_unchecked::<DatabaseConnection>().clone(),
        live,
    ))
}

/// The ids of the objects of `topic` in `scope` of the caller's workspace that change
/// from now on. A subscriber that fell behind skips what it missed and goes on.
fn changes(live: &Live, workspace_id: i64, topic: Topic, scope_id: i64) -> impl Stream<Item = i64> {
    use tokio::sync::broadcast::error::RecvError;
    stream::unfold(live.subscribe(topic), move |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(Notice {
                    workspace_id: w,
                    topic: t,
                    scope_id: sc,
                    object_id,
                }) if w == workspace_id && t == topic && sc == scope_id => {
                    return Some((object_id, rx));
                }
                Ok(_) | Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return None,
            }
        }
    })
}

#[Subscription]
impl LiveSubscription {
    /// A deal of the pipeline was created, moved, edited, won or lost: the deal as it
    /// stands (`deletedAt` set once it was deleted).
    async fn deal_changed(
        &self,
        ctx: &Context<'_>,
        pipeline_id: ID,
    ) -> Result<impl Stream<Item = Deal>> {
        let (who, db, live) = caller(ctx)?;
        let ws = who.workspace_id;
        let pipeline = parse_id("pipelineId", &pipeline_id)?;
        records::get::<s::pipeline::Entity>(&db, ws, pipeline)
            .await
            .gql()?;
        Ok(
            changes(live, ws, Topic::Deal, pipeline).filter_map(move |id| {
                let db = db.clone();
                async move {
                    records::get_with::<s::deal::Entity>(&db, ws, id, Deleted::Include)
                        .await
                        .ok()
                        .map(Deal)
                }
            }),
        )
    }

    /// An activity about the contact was recorded.
    async fn activity_added(
        &self,
        ctx: &Context<'_>,
        contact_id: ID,
    ) -> Result<impl Stream<Item = Activity>> {
        let (who, db, live) = caller(ctx)?;
        let ws = who.workspace_id;
        let contact = parse_id("contactId", &contact_id)?;
        records::get::<s::contact::Entity>(&db, ws, contact)
            .await
            .gql()?;
        Ok(
            changes(live, ws, Topic::Activity, contact).filter_map(move |id| {
                let db = db.clone();
                async move {
                    records::get::<s::activity::Entity>(&db, ws, id)
                        .await
                        .ok()
                        .map(Activity)
                }
            }),
        )
    }

    /// One of the contact's scores (built-in or a plugin's) moved a whole point or changed
    /// grade: the contact, whose `leadScore`, `churn` and `scores` tell the new values.
    async fn score_changed(
        &self,
        ctx: &Context<'_>,
        contact_id: ID,
    ) -> Result<impl Stream<Item = Contact>> {
        let (who, db, live) = caller(ctx)?;
        let ws = who.workspace_id;
        let contact = parse_id("contactId", &contact_id)?;
        records::get::<s::contact::Entity>(&db, ws, contact)
            .await
            .gql()?;
        Ok(
            changes(live, ws, Topic::Score, contact).filter_map(move |id| {
                let db = db.clone();
                async move {
                    records::get::<s::contact::Entity>(&db, ws, id)
                        .await
                        .ok()
                        .map(Contact)
                }
            }),
        )
    }

    /// The campaign changed state or sent another batch: the campaign, whose `stats`
    /// count what was sent so far.
    async fn campaign_progress(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<impl Stream<Item = Campaign>> {
        let (who, db, live) = caller(ctx)?;
        let ws = who.workspace_id;
        let campaign = parse_id("id", &id)?;
        campaigns::get(&db, ws, campaign).await.gql()?;
        Ok(
            changes(live, ws, Topic::Campaign, campaign).filter_map(move |id| {
                let db = db.clone();
                async move { campaigns::get(&db, ws, id).await.ok().map(Campaign) }
            }),
        )
    }
}

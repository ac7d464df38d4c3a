//! Segments on the graph: saved contact filters with their live members and a preview.
// Resolvers take Relay's four paging arguments plus order: the GraphQL signature.
#![allow(clippy::too_many_arguments)]

use async_graphql::{Context, ID, InputObject, Json, MaybeUndefined, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use rapport_engine::engagement::audiences;
use rapport_engine::platform::records::{self, Deleted};
use rapport_engine::values::Patch;
use rapport_schema as s;
use sea_orm::DatabaseConnection;

use crate::error::{OrGraphql, invalid};
use crate::graphql::connection::{Conn, ConnArgs, page_cost};
use crate::graphql::filters::{ContactFilter, ContactOrder, to_json};
use crate::graphql::ids::{parse_id, to_id};
use crate::graphql::types::{Contact, contact_lists, principal};

/// A segment as a client writes it.
#[derive(InputObject)]
pub struct SegmentInput {
    pub name: Option<String>,
    pub description: MaybeUndefined<String>,
    /// Which contacts belong: the same filter `contacts(filter:)` takes.
    pub filter: Option<ContactFilter>,
}

impl SegmentInput {
    /// The engine's input; the filter in its JSON form, which the engine checks on save.
    fn into_engine(self) -> Result<audiences::SegmentInput> {
        let filter = self.filter.as_ref().map(to_json).transpose().gql()?;
        Ok(audiences::SegmentInput {
            name: self.name,
            description: match self.description {
                MaybeUndefined::Undefined => Patch::Keep,
                MaybeUndefined::Null => Patch::Clear,
                MaybeUndefined::Value(d) => Patch::Set(d),
            },
            filter,
        })
    }
}

/// A count and a few members.
#[derive(SimpleObject)]
pub struct SegmentPreview {
    /// Contacts in the segment now.
    pub count: u64,
    /// The first of them, by id.
    pub sample: Vec<Contact>,
}

/// A saved audience of contacts.
pub struct Segment(pub s::segment::Model);

#[Object]
impl Segment {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// The saved filter.
    async fn filter(&self) -> Json<serde_json::Value> {
        Json(self.0.filter.clone())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// The campaigns that send to it and the sequences it enrolls into (by trigger), so
    /// nobody changes an audience without seeing what it feeds.
    #[graphql(complexity = 50)]
    async fn used_by(&self, ctx: &Context<'_>) -> Result<Vec<SegmentUse>> {
        use rapport_engine::engagement::sequences::{self, definition::Trigger};
        use sea_orm::{ColumnTrait, QueryFilter, QueryOrder};
        let ws = self.0.workspace_id;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let mut out: Vec<SegmentUse> = records::scoped::<s::campaign::Entity>(ws, Deleted::Exclude)
            .filter(s::campaign::Column::SegmentId.eq(self.0.id))
            .order_by_desc(s::campaign::Column::Id)
            .all(db)
            .await
            .map_err(|e| crate::error::to_graphql(e.into()))?
            .into_iter()
            .map(|c| SegmentUse {
                kind: "campaign".into(),
                id: to_id(c.id),
                name: c.name,
                status: c.status,
            })
            .collect();
        for q in sequences::list(db, ws).await.gql()? {
            let enrolls =
                q.definition.triggers.iter().any(
                    |t| matches!(t, Trigger::Segment { segment_id } if *segment_id == self.0.id),
                );
            if enrolls {
                out.push(SegmentUse {
                    kind: "sequence".into(),
                    id: to_id(q.sequence.id),
                    name: q.sequence.name,
                    status: q.sequence.status,
                });
            }
        }
        Ok(out)
    }
    /// The members now: the filter is evaluated on every read.
    #[graphql(complexity = "page_cost(first, last) * child_complexity")]
    async fn contacts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        order_by: Option<Vec<ContactOrder>>,
    ) -> Result<Conn<Contact>> {
        contact_lists::all_where(
            ctx,
            ConnArgs::new(first, after, last, before),
            audiences::members(&self.0, crate::graphql::context::as_of(ctx)).gql()?,
            order_by,
        )
        .await
    }
    /// How many contacts are in it now, and a sample.
    #[graphql(complexity = "100 + sample.clamp(0, 100) as usize * child_complexity")]
    async fn preview(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 5)] sample: i32,
    ) -> Result<SegmentPreview> {
        if !(0..=100).contains(&sample) {
            return Err(invalid("sample", "must be between 0 and 100"));
        }
        let conn = contact_lists::all_where(
            ctx,
            ConnArgs::new(Some(sample), None, None, None),
            audiences::members(&self.0, crate::graphql::context::as_of(ctx)).gql()?,
            None,
        )
        .await?;
        let count = conn.additional_fields.count().await?;
        Ok(SegmentPreview {
            count,
            sample: conn.edges.into_iter().map(|e| e.node).collect(),
        })
    }
}

/// A campaign or sequence that uses a segment.
#[derive(SimpleObject)]
pub struct SegmentUse {
    /// `campaign` or `sequence`.
    pub kind: String,
    pub id: ID,
    pub name: String,
    /// Its status, lower-case (`draft`, `sending`, `active`, …).
    pub status: String,
}

/// Reading segments.
#[derive(Default)]
pub struct SegmentQuery;

#[Object]
impl SegmentQuery {
    async fn segment(&self, ctx: &Context<'_>, id: ID) -> Result<Segment> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(Segment(
            records::get::<s::segment::Entity>(db, who.workspace_id, parse_id("id", &id)?)
                .await
                .gql()?,
        ))
    }
    /// Every segment, by name.
    async fn segments(&self, ctx: &Context<'_>) -> Result<Vec<Segment>> {
        use sea_orm::QueryOrder;
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(
            records::scoped::<s::segment::Entity>(who.workspace_id, Deleted::Exclude)
                .order_by_asc(s::segment::Column::Name)
                .order_by_asc(s::segment::Column::Id)
                .all(db)
                .await
                .map_err(|e| crate::error::to_graphql(e.into()))?
                .into_iter()
                .map(Segment)
                .collect(),
        )
    }
}

/// Writing segments.
#[derive(Default)]
pub struct SegmentMutation;

#[Object]
impl SegmentMutation {
    async fn create_segment(&self, ctx: &Context<'_>, input: SegmentInput) -> Result<Segment> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(Segment(
            audiences::create(db, who, input.into_engine()?)
                .await
                .gql()?,
        ))
    }
    async fn update_segment(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: SegmentInput,
    ) -> Result<Segment> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(Segment(
            audiences::update(db, who, parse_id("id", &id)?, input.into_engine()?)
                .await
                .gql()?,
        ))
    }
    /// Moves a segment to the trash.
    async fn delete_segment(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let who = principal(ctx)?;
        who.require(rapport_engine::values::Scope::Write).gql()?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        records::soft_delete::<s::segment::Entity>(db, who.workspace_id, parse_id("id", &id)?)
            .await
            .gql()?;
        Ok(id)
    }
}

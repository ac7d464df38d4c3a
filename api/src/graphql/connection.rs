//! Relay connections over keyset pages, for top-level lists and nested ones.

use crate::error::{OrGraphql, invalid};
use crate::graphql::loaders::{ChildCounts, ChildSpec, Children, spec_id};
use async_graphql::connection::{Connection, CursorType, Edge, EmptyFields};
use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, Object, OutputType, Result};
use rapport_engine::platform::pagination::{
    self, Cursor, DEFAULT_PAGE_SIZE, Page, PageRequest, SortDirection, SortKeys,
};
use rapport_engine::platform::records::Record;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, ModelTrait, QueryFilter, Select};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

type CountFuture = Pin<Box<dyn Future<Output = Result<u64>> + Send>>;

/// The `totalCount` of a connection, computed only when a client asks for it.
pub struct Counted {
    count: Box<dyn Fn() -> CountFuture + Send + Sync>,
}

impl Counted {
    /// The count, for callers that need it outside a response.
    pub async fn count(&self) -> Result<u64> {
        (self.count)().await
    }
}

#[Object]
impl Counted {
    /// How many rows match, on all pages together.
    async fn total_count(&self) -> Result<u64> {
        (self.count)().await
    }
}

/// A Relay connection of `N` with `totalCount`.
pub type Conn<N> = Connection<EdgeCursor, N, Counted, EmptyFields>;

/// An edge's cursor, encoded only when the client selects it.
pub enum EdgeCursor {
    /// The row's sort-key values.
    Row(Cursor),
    /// Cursor text as received.
    Text(String),
}

impl CursorType for EdgeCursor {
    type Error = std::convert::Infallible;

    fn decode_cursor(s: &str) -> std::result::Result<Self, Self::Error> {
        Ok(Self::Text(s.to_string()))
    }

    fn encode_cursor(&self) -> String {
        match self {
            Self::Row(c) => c.encode(),
            Self::Text(s) => s.clone(),
        }
    }
}

/// What a list field costs in the query's complexity, per unit of what each row
/// selects: the rows it may return. A list under a list multiplies, and every alias is
/// a field of its own, so `limit_complexity` bounds the rows a request can make the
/// server build, not just the fields it names.
pub fn page_cost(first: Option<i32>, last: Option<i32>) -> usize {
    let asked = first.into_iter().chain(last).max();
    match asked {
        None => DEFAULT_PAGE_SIZE,
        // Out-of-range sizes are refused by the resolver; cost them as the most a page
        // can hold so they cannot slip past the limit first.
        Some(n) => (n.max(1) as usize).min(pagination::MAX_PAGE_SIZE),
    }
}

/// Relay's paging arguments, as received.
#[derive(Clone, Debug, Default, Hash)]
pub struct ConnArgs {
    /// Rows from the start.
    pub first: Option<i32>,
    /// Cursor to start after.
    pub after: Option<String>,
    /// Rows from the end.
    pub last: Option<i32>,
    /// Cursor to end before.
    pub before: Option<String>,
}

impl ConnArgs {
    /// The arguments as a resolver receives them.
    pub fn new(
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Self {
        Self {
            first,
            after,
            last,
            before,
        }
    }

    /// The page these arguments ask for; a negative size is refused.
    pub fn request(&self) -> Result<PageRequest> {
        let size = |field: &str, n: Option<i32>| -> Result<Option<usize>> {
            match n {
                Some(n) if n < 0 => Err(invalid(field, "must not be negative")),
                other => Ok(other.map(|n| n as usize)),
            }
        };
        Ok(PageRequest {
            first: size("first", self.first)?,
            after: self.after.clone(),
            last: size("last", self.last)?,
            before: self.before.clone(),
        })
    }

    fn pages_within_one_parent(&self) -> bool {
        self.after.is_some() || self.before.is_some() || self.last.is_some()
    }
}

fn into_connection<M, N: OutputType>(page: Page<M>, wrap: fn(M) -> N, counted: Counted) -> Conn<N> {
    let mut conn =
        Connection::with_additional_fields(page.has_previous_page, page.has_next_page, counted);
    conn.edges.extend(
        page.edges
            .into_iter()
            .map(|(cursor, row)| Edge::new(EdgeCursor::Row(cursor), wrap(row))),
    );
    conn
}

fn count_query<E>(db: &DatabaseConnection, select: Select<E>) -> Counted
where
    E: EntityTrait,
    E::Model: Sync,
{
    let db = db.clone();
    Counted {
        count: Box::new(move || {
            let (db, select) = (db.clone(), select.clone());
            Box::pin(async move { pagination::count(&db, select).await.gql() })
        }),
    }
}

/// A top-level list: one keyset page of `select` in `order` (the id breaks ties).
pub async fn list<E, N>(
    db: &DatabaseConnection,
    select: Select<E>,
    order: Vec<(E::Column, SortDirection)>,
    args: &ConnArgs,
    wrap: fn(E::Model) -> N,
) -> Result<Conn<N>>
where
    E: Record,
    E::Model: ModelTrait<Entity = E> + Sync,
    N: OutputType,
{
    let keys = SortKeys::new(&order, E::id_col());
    let page = pagination::fetch_page(db, select.clone(), &keys, &args.request()?)
        .await
        .gql()?;
    Ok(into_connection(page, wrap, count_query(db, select)))
}

/// A top-level list ordered by a computed key first (a typed field's value), then by
/// `order` in the same direction.
pub async fn list_led<E, N, T>(
    db: &DatabaseConnection,
    select: Select<E>,
    lead: &pagination::LeadKey,
    order: Vec<(E::Column, SortDirection)>,
    args: &ConnArgs,
    wrap: fn(E::Model) -> N,
) -> Result<Conn<N>>
where
    E: Record,
    E::Model: ModelTrait<Entity = E> + Sync,
    N: OutputType,
    T: sea_orm::TryGetable + Into<sea_orm::Value> + Send + Sync,
{
    // The other keys, and the id that breaks the last ties, run in the lead's direction.
    let order = if order.is_empty() {
        vec![(E::id_col(), lead.direction)]
    } else {
        order
            .into_iter()
            .map(|(c, _)| (c, lead.direction))
            .collect()
    };
    let keys = SortKeys::new(&order, E::id_col());
    let page =
        pagination::fetch_led_page::<E, T>(db, select.clone(), lead, &keys, &args.request()?)
            .await
            .gql()?;
    Ok(into_connection(page, wrap, count_query(db, select)))
}

/// A list nested under a parent row (a contact's deals, say).
///
/// The first page of each parent is batched across all parents of the response through
/// the request's loaders; paging further inside one parent's list (with `after`, `last`
/// or `before`) is a direct query for that parent. `select` builds the rows to list; of
/// the siblings that share a `description`, only the first builds it.
#[allow(clippy::too_many_arguments)]
pub async fn nested<E, N>(
    ctx: &Context<'_>,
    parent: i64,
    fk: E::Column,
    select: impl FnOnce() -> Result<Select<E>>,
    order: Vec<(E::Column, SortDirection)>,
    args: &ConnArgs,
    description: String,
    wrap: fn(E::Model) -> N,
) -> Result<Conn<N>>
where
    E: Record,
    E::Model: ModelTrait<Entity = E> + Clone + Send + Sync,
    N: OutputType,
{
    let keys = SortKeys::new(&order, E::id_col());
    let db = ctx.data_unchecked::<DatabaseConnection>();
    if args.pages_within_one_parent() {
        let own = select()?.filter(fk.eq(parent));
        let page = pagination::fetch_page(db, own.clone(), &keys, &args.request()?)
            .await
            .gql()?;
        return Ok(into_connection(page, wrap, count_query(db, own)));
    }
    let first = args.request()?.first.unwrap_or(DEFAULT_PAGE_SIZE);
    let id = spec_id((&description, fk.as_str_name(), first));
    let children = ctx.data_unchecked::<DataLoader<Children<E>>>();
    let counts = ctx
        .data_unchecked::<Arc<DataLoader<ChildCounts<E>>>>()
        .clone();
    if !children.loader().knows(id) {
        let select = select()?;
        counts.loader().register(id, fk, select.clone());
        children.loader().register(
            id,
            ChildSpec {
                fk,
                select,
                keys,
                first,
            },
        );
    }
    // The loader has handed its copy out by now, so the page is moved, not copied.
    let page = children
        .load_one((parent, id))
        .await?
        .map(|p| Arc::try_unwrap(p).unwrap_or_else(|p| (*p).clone()))
        .unwrap_or_else(Page::empty);
    let counted = Counted {
        count: Box::new(move || {
            let counts = counts.clone();
            Box::pin(async move { Ok(counts.load_one((parent, id)).await?.unwrap_or(0)) })
        }),
    };
    Ok(into_connection(page, wrap, counted))
}

/// Every child row of a parent (for short lists such as a pipeline's stages), batched.
pub async fn all_children<E>(
    ctx: &Context<'_>,
    parent: i64,
    fk: E::Column,
    select: Select<E>,
    order: Vec<(E::Column, SortDirection)>,
) -> Result<Vec<E::Model>>
where
    E: Record,
    E::Model: ModelTrait<Entity = E> + Clone + Send + Sync,
{
    let keys = SortKeys::new(&order, E::id_col());
    let first = pagination::MAX_PAGE_SIZE;
    let id = spec_id((fk.as_str_name(), first));
    let children = ctx.data_unchecked::<DataLoader<Children<E>>>();
    children.loader().register(
        id,
        ChildSpec {
            fk,
            select,
            keys,
            first,
        },
    );
    let page = children.load_one((parent, id)).await?;
    Ok(page
        .map(|p| p.edges.iter().map(|(_, m)| m.clone()).collect())
        .unwrap_or_default())
}

trait ColumnName {
    fn as_str_name(&self) -> &'static str;
}

impl<C: ColumnTrait> ColumnName for C {
    fn as_str_name(&self) -> &'static str {
        sea_orm::IdenStatic::as_str(self)
    }
}

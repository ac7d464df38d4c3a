//! Running a plan's reads: each root field's rows, then, level by level, one statement per
//! planned relation for all the rows of the level above (as the schema's batch loaders
//! do), through the same scoping, filters, orders and paging as the schema's resolvers.

use async_graphql::{ID, InputType, Variables};
use async_graphql_value::{ConstValue, Value};
use futures_util::future::BoxFuture;
use rapport_engine::crm::filters::Evaluation;
use rapport_engine::platform::pagination::{self, DEFAULT_PAGE_SIZE, Page, SortKeys};
use rapport_engine::platform::records::{self, Deleted, Record};
use rapport_schema as s;
use sea_orm::sea_query::{Expr, ExprTrait, IntoCondition};
use sea_orm::{
    Condition, DatabaseConnection, JoinType, ModelTrait, QueryFilter, QuerySelect, Select,
};
use std::collections::HashMap;
use std::sync::Arc;

use super::compile::{Args, Conn, Field, Object, Plan, Root};
use super::rows::{Kind, Many, One, Row};
use crate::graphql::connection::{ConnArgs, page_cost};
use crate::graphql::filters::{
    ActivityFilter, CompanyFilter, ContactFilter, DealFilter, contact_filter_cost,
};
use crate::graphql::ids::parse_id;
use crate::graphql::orders::{ActivityOrder, CompanyOrder, ContactOrder, DealOrder};
use crate::graphql::types::{activity_lists, company_lists, contact_lists, deal_lists};

/// A request this plan cannot answer as the schema would: the schema answers it.
#[derive(Debug)]
pub struct Unanswered;

type Result<T> = std::result::Result<T, Unanswered>;

/// Rows loaded with the rows that point at them, by relation and id.
type Joined = HashMap<One, HashMap<i64, Row>>;

/// What a relation of one level loaded, with the loads below it.
pub enum Loaded {
    /// A field that loads nothing (a column).
    Nothing,
    /// The rows pointed at, by id.
    One(HashMap<i64, Row>, LoadedObject),
    /// Each parent's first page, by the parent's id.
    Many(HashMap<i64, Page<Row>>, LoadedObject),
}

/// The loads of an object's fields, in the order of its plan's fields.
pub struct LoadedObject(pub Vec<Loaded>);

/// What a root field loaded.
pub enum LoadedRoot {
    Typename,
    /// The row and the loads below it (shared by roots that select the same).
    One(Box<Row>, Arc<LoadedObject>),
    Page(Page<Row>, LoadedObject),
}

/// One request's reads: its workspace, its moment and its variables.
pub struct Reads<'a> {
    pub db: &'a DatabaseConnection,
    pub workspace_id: i64,
    pub at: Evaluation,
    pub plan: &'a Plan,
    pub variables: &'a Variables,
}

impl Reads<'_> {
    /// The value of a variable: given, else its default (null when nullable).
    fn variable(&self, name: &async_graphql::Name) -> Result<ConstValue> {
        if let Some(v) = self.variables.get(name) {
            return Ok(v.clone());
        }
        self.plan
            .variables
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, default)| default.clone())
            .ok_or(Unanswered)
    }

    fn value(&self, v: &Value) -> Result<ConstValue> {
        v.clone().into_const_with(|name| self.variable(&name))
    }

    /// Argument `name` as the schema's resolver receives it.
    pub fn arg<T: InputType>(&self, args: &Args, name: &str) -> Result<T> {
        let given = args.get(name).map(|v| self.value(v)).transpose()?;
        let parsed = T::parse(given.clone()).map_err(|_| Unanswered)?;
        // Parsing an input object passes over fields it does not know, which the schema's
        // validation refuses (a misspelt filter must not list everything).
        match given {
            Some(given) if !known_fields(&given, &parsed.to_value()) => Err(Unanswered),
            _ => Ok(parsed),
        }
    }

    fn paging(&self, args: &Args) -> Result<ConnArgs> {
        Ok(ConnArgs::new(
            self.arg(args, "first")?,
            self.arg(args, "after")?,
            self.arg(args, "last")?,
            self.arg(args, "before")?,
        ))
    }

    /// The request's complexity as the schema counts it (`limit_complexity` and the
    /// key's budget): every field 1 and what it selects, a list its page size times that.
    pub fn cost(&self) -> Result<usize> {
        let mut total = 0usize;
        for (_, root) in &self.plan.roots {
            total = total.saturating_add(match root {
                // The schema's count passes over `__typename`.
                Root::Typename => 0,
                Root::ById { object, .. } => 1 + self.object_cost(object)?,
                Root::List { kind, args, conn } => {
                    let paging = self.paging(args)?;
                    let filter = if *kind == Kind::Contact {
                        contact_filter_cost(&self.arg(args, "filter")?)
                    } else {
                        0
                    };
                    page_cost(paging.first, paging.last)
                        .saturating_mul(self.conn_cost(conn)?)
                        .saturating_add(filter)
                }
            });
        }
        Ok(total)
    }

    fn object_cost(&self, object: &Object) -> Result<usize> {
        let mut total = 0usize;
        for (_, field) in &object.fields {
            total = total.saturating_add(match field {
                Field::Typename => 0,
                Field::Column(_) => 1,
                Field::One(_, sub) => 1 + self.object_cost(sub)?,
                Field::Many(many, args, conn) => {
                    let filter = if *many == Many::CompanyContacts {
                        contact_filter_cost(&self.arg(args, "filter")?)
                    } else {
                        0
                    };
                    page_cost(self.arg(args, "first")?, None)
                        .saturating_mul(self.conn_cost(conn)?)
                        .saturating_add(filter)
                }
            });
        }
        Ok(total)
    }

    fn conn_cost(&self, conn: &Conn) -> Result<usize> {
        use super::compile::{ConnField, EdgeField, PageField};
        let node = 1 + self.object_cost(&conn.node)?;
        Ok(conn
            .fields
            .iter()
            .map(|(_, f)| match f {
                ConnField::Typename => 0,
                ConnField::Nodes => node,
                ConnField::PageInfo(info) => {
                    1 + info
                        .iter()
                        .filter(|(_, f)| !matches!(f, PageField::Typename))
                        .count()
                }
                ConnField::Edges(edge) => {
                    1 + edge
                        .iter()
                        .map(|(_, e)| match e {
                            EdgeField::Node => node,
                            EdgeField::Typename => 0,
                            EdgeField::Cursor => 1,
                        })
                        .sum::<usize>()
                }
            })
            .sum())
    }

    /// Reads every root field of the plan and what it selects.
    pub async fn roots(&self) -> Result<Vec<LoadedRoot>> {
        // Rows by id in one statement per kind, however many roots name one (a plugin's
        // batched input query names one per contact).
        let mut ids: Vec<Option<i64>> = Vec::with_capacity(self.plan.roots.len());
        let mut wanted: HashMap<Kind, Vec<i64>> = HashMap::new();
        for (_, root) in &self.plan.roots {
            ids.push(match root {
                Root::ById { kind, id, .. } => {
                    let id = self.id(id.as_ref())?;
                    wanted.entry(*kind).or_default().push(id);
                    Some(id)
                }
                _ => None,
            });
        }
        // The first to-one relation that roots of a kind select loads in their statement
        // (`contact(id:) { company { name } }` is one statement, not two).
        let mut joins: HashMap<Kind, One> = HashMap::new();
        for (_, root) in &self.plan.roots {
            if let Root::ById { kind, object, .. } = root
                && let Some(one) = object.fields.iter().find_map(|(_, f)| match f {
                    Field::One(one, _) => Some(*one),
                    _ => None,
                })
            {
                joins.entry(*kind).or_insert(one);
            }
        }
        let mut found: HashMap<(Kind, i64), Row> = HashMap::new();
        let mut joined = Joined::new();
        for (kind, ids) in wanted {
            let ids = distinct(ids.into_iter());
            // Missing and deleted rows answer NOT_FOUND, which the schema words.
            let rows = match joins.get(&kind) {
                Some(&one) => {
                    let (rows, pointed) = self.by_ids_joined(one, &ids).await?;
                    joined.insert(one, pointed);
                    rows
                }
                None => self.by_ids(kind, ids, Deleted::Exclude).await?,
            };
            found.extend(rows.into_iter().map(|(id, row)| ((kind, id), row)));
        }
        // Roots by id that select the same load what is below them together: a plugin's
        // batched input query repeats one selection per contact, and its relations are
        // then one statement each, not one per contact.
        let mut groups: Vec<(&Object, Vec<&Row>)> = Vec::new();
        for ((_, root), id) in self.plan.roots.iter().zip(&ids) {
            if let (Root::ById { kind, object, .. }, Some(id)) = (root, id) {
                let row = found.get(&(*kind, *id)).ok_or(Unanswered)?;
                match groups.iter_mut().find(|(o, _)| *o == object) {
                    Some((_, rows)) => rows.push(row),
                    None => groups.push((object, vec![row])),
                }
            }
        }
        let mut below: Vec<(&Object, Arc<LoadedObject>)> = Vec::with_capacity(groups.len());
        for (object, rows) in &groups {
            below.push((
                object,
                Arc::new(self.object(object, rows, Some(&joined)).await?),
            ));
        }
        let mut out = Vec::with_capacity(self.plan.roots.len());
        for ((_, root), id) in self.plan.roots.iter().zip(ids) {
            out.push(match (root, id) {
                (Root::ById { kind, object, .. }, Some(id)) => {
                    let row = found.get(&(*kind, id)).cloned().ok_or(Unanswered)?;
                    let loaded = below
                        .iter()
                        .find(|(o, _)| *o == object)
                        .map(|(_, l)| l.clone())
                        .ok_or(Unanswered)?;
                    LoadedRoot::One(Box::new(row), loaded)
                }
                (Root::List { kind, args, conn }, _) => {
                    let page = self.list(*kind, args).await?;
                    let rows: Vec<&Row> = page.edges.iter().map(|(_, r)| r).collect();
                    let loaded = self.object(&conn.node, &rows, None).await?;
                    LoadedRoot::Page(page, loaded)
                }
                _ => LoadedRoot::Typename,
            });
        }
        Ok(out)
    }

    fn id(&self, id: Option<&Value>) -> Result<i64> {
        let id = id.ok_or(Unanswered)?;
        let id = ID::parse(Some(self.value(id)?)).map_err(|_| Unanswered)?;
        parse_id("id", &id).map_err(|_| Unanswered)
    }

    /// The loads of `object`'s relations for `rows`, and of theirs below; sibling
    /// relations load side by side. What `joined` holds was loaded with `rows` already.
    fn object<'s>(
        &'s self,
        object: &'s Object,
        rows: &'s [&'s Row],
        joined: Option<&'s Joined>,
    ) -> BoxFuture<'s, Result<LoadedObject>> {
        Box::pin(async move {
            let loads = object
                .fields
                .iter()
                .map(|(_, field)| self.field(field, rows, joined));
            Ok(LoadedObject(
                futures_util::future::try_join_all(loads).await?,
            ))
        })
    }

    async fn field(&self, field: &Field, rows: &[&Row], joined: Option<&Joined>) -> Result<Loaded> {
        Ok(match field {
            Field::Typename | Field::Column(_) => Loaded::Nothing,
            Field::One(one, sub) => {
                let ids = distinct(rows.iter().filter_map(|r| r.points_at(*one)));
                let found = match joined.and_then(|j| j.get(one)) {
                    Some(pointed) => ids
                        .iter()
                        .filter_map(|id| Some((*id, pointed.get(id)?.clone())))
                        .collect(),
                    // References resolve to deleted rows too: history, not dangling.
                    None => self.by_ids(sub.kind, ids, Deleted::Include).await?,
                };
                let below: Vec<&Row> = found.values().collect();
                let loaded = self.object(sub, &below, None).await?;
                Loaded::One(found, loaded)
            }
            Field::Many(many, args, conn) => {
                let parents = distinct(rows.iter().map(|r| r.id()));
                let pages = self.children(*many, args, &parents).await?;
                let below: Vec<&Row> = pages
                    .values()
                    .flat_map(|p| p.edges.iter().map(|(_, r)| r))
                    .collect();
                let loaded = self.object(&conn.node, &below, None).await?;
                Loaded::Many(pages, loaded)
            }
        })
    }

    async fn by_ids(
        &self,
        kind: Kind,
        ids: Vec<i64>,
        deleted: Deleted,
    ) -> Result<HashMap<i64, Row>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        match kind {
            Kind::Contact => {
                self.rows::<s::contact::Entity>(&ids, deleted, Row::Contact)
                    .await
            }
            Kind::Company => {
                self.rows::<s::company::Entity>(&ids, deleted, Row::Company)
                    .await
            }
            Kind::Deal => self.rows::<s::deal::Entity>(&ids, deleted, Row::Deal).await,
            Kind::Activity => {
                self.rows::<s::activity::Entity>(&ids, deleted, Row::Activity)
                    .await
            }
            Kind::Stage => {
                self.rows::<s::stage::Entity>(&ids, deleted, Row::Stage)
                    .await
            }
        }
    }

    /// Live rows of `one`'s kind by id, each with the row it points at through `one` (by
    /// the id of the row pointed at), in one statement.
    async fn by_ids_joined(
        &self,
        one: One,
        ids: &[i64],
    ) -> Result<(HashMap<i64, Row>, HashMap<i64, Row>)> {
        macro_rules! joined {
            ($from:ident, $to:ident, $fk:ident, $wrap:expr, $wrap_to:expr) => {
                self.joined::<s::$from::Entity, s::$to::Entity>(
                    ids,
                    s::$from::Column::$fk,
                    $wrap,
                    $wrap_to,
                )
                .await
            };
        }
        match one {
            One::ContactCompany => {
                joined!(contact, company, CompanyId, Row::Contact, Row::Company)
            }
            One::DealContact => joined!(deal, contact, ContactId, Row::Deal, Row::Contact),
            One::DealCompany => joined!(deal, company, CompanyId, Row::Deal, Row::Company),
            One::DealStage => joined!(deal, stage, StageId, Row::Deal, Row::Stage),
            One::ActivityContact => {
                joined!(activity, contact, ContactId, Row::Activity, Row::Contact)
            }
            One::ActivityDeal => joined!(activity, deal, DealId, Row::Activity, Row::Deal),
        }
    }

    async fn joined<E, F>(
        &self,
        ids: &[i64],
        points_at: E::Column,
        wrap: fn(E::Model) -> Row,
        wrap_to: fn(F::Model) -> Row,
    ) -> Result<(HashMap<i64, Row>, HashMap<i64, Row>)>
    where
        E: Record,
        F: Record,
        E::Model: ModelTrait<Entity = E> + Sync,
        F::Model: ModelTrait<Entity = F> + Sync,
    {
        let backend = self.db.get_database_backend();
        let workspace_id = self.workspace_id;
        // The row pointed at is the workspace's, as `by_ids` reads it: deleted ones too.
        let on = E::belongs_to(F::default())
            .from(points_at)
            .to(F::id_col())
            .on_condition(move |_, to| {
                ExprTrait::eq(Expr::col((to, F::workspace_col())), workspace_id).into_condition()
            });
        let found = records::scoped::<E>(workspace_id, Deleted::Exclude)
            .filter(pagination::among(backend, E::id_col(), ids))
            .join(JoinType::LeftJoin, on.into())
            .select_also(F::default())
            .all(self.db)
            .await
            .map_err(|_| Unanswered)?;
        let mut rows = HashMap::with_capacity(found.len());
        let mut pointed = HashMap::new();
        for (row, to) in found {
            let row = wrap(row);
            rows.insert(row.id(), row);
            if let Some(to) = to {
                let to = wrap_to(to);
                pointed.insert(to.id(), to);
            }
        }
        Ok((rows, pointed))
    }

    async fn rows<E>(
        &self,
        ids: &[i64],
        deleted: Deleted,
        wrap: fn(E::Model) -> Row,
    ) -> Result<HashMap<i64, Row>>
    where
        E: Record,
        E::Model: ModelTrait<Entity = E> + Sync,
    {
        let backend = self.db.get_database_backend();
        let found = records::scoped::<E>(self.workspace_id, deleted)
            .filter(pagination::among(backend, E::id_col(), ids))
            .all(self.db)
            .await
            .map_err(|_| Unanswered)?;
        Ok(found
            .into_iter()
            .map(|m| {
                let row = wrap(m);
                (row.id(), row)
            })
            .collect())
    }

    async fn list(&self, kind: Kind, args: &Args) -> Result<Page<Row>> {
        let request = self.paging(args)?.request().map_err(|_| Unanswered)?;
        let at = self.at;
        macro_rules! page {
            ($module:ident, $filter:ty, $order:ty, $lists:ident, $wrap:expr) => {{
                let filter: Option<$filter> = self.arg(args, "filter")?;
                let order: Option<Vec<$order>> = self.arg(args, "orderBy")?;
                let select =
                    records::scoped::<s::$module::Entity>(self.workspace_id, Deleted::Exclude)
                        .filter(condition(filter.as_ref().map(|f| f.condition(at)))?);
                let keys = SortKeys::new(&$lists::order_of(&order), s::$module::Column::Id);
                let page = pagination::fetch_page(self.db, select, &keys, &request)
                    .await
                    .map_err(|_| Unanswered)?;
                rows_of(page, $wrap)
            }};
        }
        Ok(match kind {
            Kind::Contact => page!(
                contact,
                ContactFilter,
                ContactOrder,
                contact_lists,
                Row::Contact
            ),
            Kind::Company => page!(
                company,
                CompanyFilter,
                CompanyOrder,
                company_lists,
                Row::Company
            ),
            Kind::Deal => page!(deal, DealFilter, DealOrder, deal_lists, Row::Deal),
            Kind::Activity | Kind::Stage => return Err(Unanswered),
        })
    }

    async fn children(
        &self,
        many: Many,
        args: &Args,
        parents: &[i64],
    ) -> Result<HashMap<i64, Page<Row>>> {
        let first = ConnArgs::new(self.arg(args, "first")?, None, None, None)
            .request()
            .map_err(|_| Unanswered)?
            .first
            .unwrap_or(DEFAULT_PAGE_SIZE);
        let at = self.at;
        macro_rules! pages {
            ($module:ident, $fk:ident, $filter:ty, $order:ty, $lists:ident, $wrap:expr) => {{
                let filter: Option<$filter> = self.arg(args, "filter")?;
                let order: Option<Vec<$order>> = self.arg(args, "orderBy")?;
                let select: Select<s::$module::Entity> =
                    records::scoped::<s::$module::Entity>(self.workspace_id, Deleted::Exclude)
                        .filter(condition(filter.as_ref().map(|f| f.condition(at)))?);
                let keys = SortKeys::new(&$lists::order_of(&order), s::$module::Column::Id);
                let pages = pagination::first_per_parent(
                    self.db,
                    select,
                    s::$module::Column::$fk,
                    parents,
                    &keys,
                    first,
                )
                .await
                .map_err(|_| Unanswered)?;
                pages
                    .into_iter()
                    .map(|(p, page)| (p, rows_of(page, $wrap)))
                    .collect()
            }};
        }
        Ok(match many {
            Many::ContactDeals => pages!(
                deal,
                ContactId,
                DealFilter,
                DealOrder,
                deal_lists,
                Row::Deal
            ),
            Many::ContactActivities => pages!(
                activity,
                ContactId,
                ActivityFilter,
                ActivityOrder,
                activity_lists,
                Row::Activity
            ),
            Many::CompanyContacts => pages!(
                contact,
                CompanyId,
                ContactFilter,
                ContactOrder,
                contact_lists,
                Row::Contact
            ),
            Many::CompanyDeals => pages!(
                deal,
                CompanyId,
                DealFilter,
                DealOrder,
                deal_lists,
                Row::Deal
            ),
        })
    }
}

fn condition(
    c: Option<std::result::Result<Condition, rapport_engine::EngineError>>,
) -> Result<Condition> {
    match c {
        None => Ok(Condition::all()),
        Some(Ok(c)) => Ok(c),
        // A filter the engine refuses: the schema says why.
        Some(Err(_)) => Err(Unanswered),
    }
}

/// Whether every field of the input objects in `given` is one its type has: `parsed` is
/// the value parsed from it written back, which names every field of its type.
fn known_fields(given: &ConstValue, parsed: &ConstValue) -> bool {
    match (given, parsed) {
        (ConstValue::Object(given), ConstValue::Object(parsed)) => given
            .iter()
            .all(|(k, v)| parsed.get(k).is_some_and(|p| known_fields(v, p))),
        (ConstValue::List(given), ConstValue::List(parsed)) => {
            given.len() == parsed.len() && given.iter().zip(parsed).all(|(g, p)| known_fields(g, p))
        }
        // One value where a list is expected is a list of one.
        (given @ ConstValue::Object(_), ConstValue::List(parsed)) => {
            parsed.len() == 1 && known_fields(given, &parsed[0])
        }
        _ => true,
    }
}

fn rows_of<M>(page: Page<M>, wrap: fn(M) -> Row) -> Page<Row> {
    Page {
        edges: page.edges.into_iter().map(|(c, m)| (c, wrap(m))).collect(),
        has_next_page: page.has_next_page,
        has_previous_page: page.has_previous_page,
    }
}

fn distinct(ids: impl Iterator<Item = i64>) -> Vec<i64> {
    let mut ids: Vec<i64> = ids.collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

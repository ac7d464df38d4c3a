//! Keyset (cursor) pagination in the Relay style.
//!
//! A cursor holds the sort-key values of its row (plus the id, the final tiebreaker), not
//! an offset, so a page fetched after rows were inserted before it neither skips nor
//! repeats rows. Cursors are opaque base64 text to clients.

use crate::error::{EngineError, Result};
use base64::Engine as _;
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::extension::postgres::PgFunc;
use sea_orm::sea_query::{
    Alias, ArrayType, Asterisk, Expr, ExprTrait, Order, PostgresQueryBuilder, Query,
    WindowStatement,
};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, IdenStatic, ModelTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select, Statement, Value,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// Rows per page when the client does not say.
pub const DEFAULT_PAGE_SIZE: usize = 20;
/// The largest page a client may ask for.
pub const MAX_PAGE_SIZE: usize = 500;

/// Sort direction of one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SortDirection {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

impl SortDirection {
    fn reversed(self) -> Self {
        match self {
            Self::Asc => Self::Desc,
            Self::Desc => Self::Asc,
        }
    }

    fn order(self) -> Order {
        match self {
            Self::Asc => Order::Asc,
            Self::Desc => Order::Desc,
        }
    }
}

/// What the client asked for: Relay's `first/after/last/before`.
#[derive(Clone, Debug, Default)]
pub struct PageRequest {
    /// Rows from the start (or after `after`).
    pub first: Option<usize>,
    /// Cursor the page starts after.
    pub after: Option<String>,
    /// Rows from the end (or before `before`).
    pub last: Option<usize>,
    /// Cursor the page ends before.
    pub before: Option<String>,
}

/// One page of rows with their cursors.
#[derive(Clone, Debug)]
pub struct Page<M, C = Cursor> {
    /// The rows, in the requested order, each with its cursor.
    pub edges: Vec<(C, M)>,
    /// Whether rows follow this page.
    pub has_next_page: bool,
    /// Whether rows precede this page.
    pub has_previous_page: bool,
}

/// Where a row sits in a list: its sort-key values, turned into the opaque cursor text
/// only when a client asks for it (most responses never show most of their cursors).
#[derive(Clone, Debug)]
pub struct Cursor {
    signature: Arc<str>,
    values: Vec<Key>,
}

impl Cursor {
    /// The cursor as clients see it.
    pub fn encode(&self) -> String {
        let body = serde_json::to_vec(&CursorBody {
            k: &self.signature,
            v: &self.values,
        })
        .expect("cursor serialises");
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(body)
    }
}

impl<M, C> Page<M, C> {
    /// A page with no rows.
    pub fn empty() -> Self {
        Self {
            edges: Vec::new(),
            has_next_page: false,
            has_previous_page: false,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
enum Key {
    I(i64),
    S(String),
    T(DateTime<Utc>),
    D(NaiveDate),
    F(f64),
    B(bool),
}

impl Key {
    fn from_value(v: Value) -> Result<Self> {
        Ok(match v {
            Value::BigInt(Some(i)) => Self::I(i),
            Value::Int(Some(i)) => Self::I(i.into()),
            Value::String(Some(s)) => Self::S(s),
            Value::ChronoDateTimeUtc(Some(t)) => Self::T(t),
            Value::ChronoDate(Some(d)) => Self::D(d),
            Value::Double(Some(f)) => Self::F(f),
            Value::Bool(Some(b)) => Self::B(b),
            // Sortable columns are NOT NULL; reaching this is a programming error.
            other => {
                return Err(EngineError::invalid(
                    "orderBy",
                    format!("cannot sort by a column holding {other:?}"),
                ));
            }
        })
    }

    /// The order the databases give these values (text bytewise, as both are set up).
    fn compare(&self, other: &Self) -> std::cmp::Ordering {
        use std::cmp::Ordering::Equal;
        match (self, other) {
            (Self::I(a), Self::I(b)) => a.cmp(b),
            (Self::S(a), Self::S(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Self::T(a), Self::T(b)) => a.cmp(b),
            (Self::D(a), Self::D(b)) => a.cmp(b),
            (Self::F(a), Self::F(b)) => a.partial_cmp(b).unwrap_or(Equal),
            (Self::B(a), Self::B(b)) => a.cmp(b),
            // One column holds one type.
            _ => Equal,
        }
    }

    fn into_value(self) -> Value {
        match self {
            Self::I(i) => Value::BigInt(Some(i)),
            Self::S(s) => Value::String(Some(s)),
            Self::T(t) => Value::ChronoDateTimeUtc(Some(t)),
            Self::D(d) => Value::ChronoDate(Some(d)),
            Self::F(f) => Value::Double(Some(f)),
            Self::B(b) => Value::Bool(Some(b)),
        }
    }
}

#[derive(Serialize)]
struct CursorBody<'a> {
    /// Names of the sort keys the cursor was made for.
    k: &'a str,
    v: &'a [Key],
}

#[derive(Deserialize)]
struct DecodedCursor {
    k: String,
    v: Vec<Key>,
}

/// The sort keys of a list: the client's order followed by the id as tiebreaker.
pub struct SortKeys<E: EntityTrait> {
    keys: Vec<(E::Column, SortDirection)>,
    /// The keys' names and directions, which a cursor carries so that a cursor of one
    /// order is refused by another.
    signature: Arc<str>,
}

impl<E: EntityTrait> SortKeys<E> {
    /// `order` as given, with `id` appended unless it is already a key. The id runs in
    /// the direction of the last key, so `occurredAt DESC` is `occurred_at DESC, id DESC`:
    /// one index on `(…, occurred_at, id)` serves both directions, read forwards or
    /// backwards, and a cursor compares as one row value.
    pub fn new(order: &[(E::Column, SortDirection)], id: E::Column) -> Self {
        let mut keys = order.to_vec();
        if !keys.iter().any(|(c, _)| c.as_str() == id.as_str()) {
            let direction = keys.last().map_or(SortDirection::Asc, |(_, d)| *d);
            keys.push((id, direction));
        }
        let signature = signature(&keys).into();
        Self { keys, signature }
    }

    /// How the rows at cursors `a` and `b` compare in this order.
    fn compare(&self, a: &Cursor, b: &Cursor) -> std::cmp::Ordering {
        for ((x, y), (_, direction)) in a.values.iter().zip(&b.values).zip(&self.keys) {
            let o = x.compare(y);
            if o.is_ne() {
                return if *direction == SortDirection::Asc {
                    o
                } else {
                    o.reverse()
                };
            }
        }
        std::cmp::Ordering::Equal
    }

    /// The cursor of `row`.
    pub fn cursor(&self, row: &E::Model) -> Result<Cursor>
    where
        E::Model: ModelTrait<Entity = E>,
    {
        let values = self
            .keys
            .iter()
            .map(|(c, _)| Key::from_value(row.get(*c)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Cursor {
            signature: self.signature.clone(),
            values,
        })
    }

    fn decode(&self, field: &str, cursor: &str) -> Result<Vec<Value>> {
        let bad = || {
            EngineError::invalid(
                field,
                "not a cursor of this list (was it made with another orderBy?)",
            )
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| bad())?;
        let body: DecodedCursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if *body.k != *self.signature || body.v.len() != self.keys.len() {
            return Err(bad());
        }
        Ok(body.v.into_iter().map(Key::into_value).collect())
    }

    /// Rows strictly after (`after = true`) or before the position `values` in this order.
    fn beyond(&self, values: Vec<Value>, after: bool) -> Condition {
        let same_direction = self.keys.iter().all(|(_, d)| *d == self.keys[0].1);
        if same_direction {
            // A row-value comparison lets the database walk one index range.
            let cols = Expr::tuple(self.keys.iter().map(|(c, _)| Expr::col(c.as_column_ref())));
            let vals = Expr::tuple(values.into_iter().map(Expr::val));
            let greater = (self.keys[0].1 == SortDirection::Asc) == after;
            return Condition::all().add(if greater {
                cols.gt(vals)
            } else {
                cols.lt(vals)
            });
        }
        let mut any = Condition::any();
        for i in 0..self.keys.len() {
            let mut all = Condition::all();
            for ((col, _), value) in self.keys.iter().zip(&values).take(i) {
                all = all.add(col.eq(value.clone()));
            }
            let (col, dir) = self.keys[i];
            let greater = (dir == SortDirection::Asc) == after;
            all = all.add(if greater {
                col.gt(values[i].clone())
            } else {
                col.lt(values[i].clone())
            });
            any = any.add(all);
        }
        any
    }

    fn apply_order(&self, mut select: Select<E>, reverse: bool) -> Select<E> {
        for (c, d) in &self.keys {
            let d = if reverse { d.reversed() } else { *d };
            select = select.order_by(*c, d.order());
        }
        select
    }
}

fn signature<C: IdenStatic>(keys: &[(C, SortDirection)]) -> String {
    keys.iter()
        .map(|(c, d)| {
            let direction = if *d == SortDirection::Asc { "+" } else { "-" };
            format!("{}{direction}", c.as_str())
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn page_size(field: &str, n: Option<usize>) -> Result<usize> {
    match n {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(n) if n > MAX_PAGE_SIZE => Err(EngineError::invalid(
            field,
            format!("at most {MAX_PAGE_SIZE} rows per page (asked for {n})"),
        )),
        Some(n) => Ok(n),
    }
}

/// Fetches one page of `select` in the order of `keys`.
pub async fn fetch_page<E>(
    db: &impl ConnectionTrait,
    select: Select<E>,
    keys: &SortKeys<E>,
    req: &PageRequest,
) -> Result<Page<E::Model>>
where
    E: EntityTrait,
    E::Model: ModelTrait<Entity = E> + Sync,
{
    if req.first.is_some() && req.last.is_some() {
        return Err(EngineError::invalid(
            "first",
            "give first or last, not both",
        ));
    }
    let backward = req.last.is_some();
    let n = if backward {
        page_size("last", req.last)?
    } else {
        page_size("first", req.first)?
    };
    let mut select = select;
    if let Some(after) = &req.after {
        select = select.filter(keys.beyond(keys.decode("after", after)?, true));
    }
    if let Some(before) = &req.before {
        select = select.filter(keys.beyond(keys.decode("before", before)?, false));
    }
    let mut rows = keys
        .apply_order(select, backward)
        .limit((n + 1) as u64)
        .all(db)
        .await?;
    let more = rows.len() > n;
    rows.truncate(n);
    if backward {
        rows.reverse();
    }
    let edges = rows
        .into_iter()
        .map(|r| Ok((keys.cursor(&r)?, r)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Page {
        edges,
        has_next_page: if backward { req.before.is_some() } else { more },
        has_previous_page: if backward { more } else { req.after.is_some() },
    })
}

/// `col IN (ids)`, written `col = ANY($1)` with one array parameter on PostgreSQL: the
/// statement text is then the same however many ids there are, so the prepared statement
/// (and its plan) is reused instead of planned again for every batch size.
pub fn among<C: ColumnTrait>(backend: DbBackend, col: C, ids: &[i64]) -> Condition {
    match backend {
        DbBackend::Postgres => Condition::all()
            .add(Expr::col(col.as_column_ref()).eq(PgFunc::any(Expr::val(bigint_array(ids))))),
        _ => Condition::all().add(col.is_in(ids.iter().copied())),
    }
}

/// `ids` as one PostgreSQL `bigint[]` parameter.
fn bigint_array(ids: &[i64]) -> Value {
    Value::Array(
        ArrayType::BigInt,
        Some(Box::new(
            ids.iter().map(|i| Value::BigInt(Some(*i))).collect(),
        )),
    )
}

/// Counts the rows of `select`.
pub async fn count<E>(db: &impl ConnectionTrait, select: Select<E>) -> Result<u64>
where
    E: EntityTrait,
    E::Model: Sync,
{
    Ok(select.count(db).await?)
}

/// The first `first` rows of `select` for each parent in `parents`, grouped by the
/// foreign key `fk`, in one statement however many parents there are.
///
/// Each parent's rows are cut at `first + 1` (the extra row tells whether a next page
/// exists): on PostgreSQL by a `LATERAL` subquery per parent, which reads just those rows
/// off an index on `(fk, sort keys)`; on SQLite, which has no `LATERAL`, by numbering each
/// parent's rows with `ROW_NUMBER() OVER (PARTITION BY fk ...)`. (A `UNION ALL` of one
/// branch per parent was tried on SQLite: faster alone, but under load the server
/// answered fewer than half as many requests.)
pub async fn first_per_parent<E>(
    db: &impl ConnectionTrait,
    select: Select<E>,
    fk: E::Column,
    parents: &[i64],
    keys: &SortKeys<E>,
    first: usize,
) -> Result<HashMap<i64, Page<E::Model>>>
where
    E: EntityTrait,
    E::Model: ModelTrait<Entity = E> + Sync,
{
    let first = page_size("first", Some(first))?;
    if parents.is_empty() {
        return Ok(HashMap::new());
    }
    let stmt = match db.get_database_backend() {
        DbBackend::Postgres => per_parent_lateral(select, fk, parents, keys, first),
        backend => per_parent_numbered(backend, select, fk, parents, keys, first),
    };
    let rows = E::find().from_raw_sql(stmt).all(db).await?;

    let mut grouped: HashMap<i64, Vec<(Cursor, E::Model)>> = HashMap::new();
    for row in rows {
        let Value::BigInt(Some(parent)) = row.get(fk) else {
            continue;
        };
        grouped
            .entry(parent)
            .or_default()
            .push((keys.cursor(&row)?, row));
    }
    Ok(grouped
        .into_iter()
        .map(|(parent, mut edges)| {
            // The statement picks the right rows of each parent, but SQL promises no
            // order for the rows of a join: it is restored here.
            edges.sort_by(|(a, _), (b, _)| keys.compare(a, b));
            let has_next_page = edges.len() > first;
            edges.truncate(first);
            let page = Page {
                edges,
                has_next_page,
                has_previous_page: false,
            };
            (parent, page)
        })
        .collect())
}

/// `SELECT ranked.* FROM unnest($parents) AS parent(id) CROSS JOIN LATERAL (select for
/// that parent, in order, LIMIT first + 1) AS ranked`.
fn per_parent_lateral<E: EntityTrait>(
    select: Select<E>,
    fk: E::Column,
    parents: &[i64],
    keys: &SortKeys<E>,
    first: usize,
) -> Statement {
    let inner = keys
        .apply_order(select, false)
        .filter(Expr::col(fk.as_column_ref()).equals((Alias::new("parent"), Alias::new("id"))))
        .limit((first + 1) as u64)
        .into_query();
    let (inner_sql, mut values) = inner.build(PostgresQueryBuilder);
    values.0.push(bigint_array(parents));
    let sql = format!(
        "SELECT \"ranked\".* FROM unnest(${}) AS \"parent\"(\"id\") \
         CROSS JOIN LATERAL ({inner_sql}) AS \"ranked\"",
        values.0.len()
    );
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// The window-function form of [`first_per_parent`], for databases without `LATERAL`.
fn per_parent_numbered<E: EntityTrait>(
    backend: DbBackend,
    select: Select<E>,
    fk: E::Column,
    parents: &[i64],
    keys: &SortKeys<E>,
    first: usize,
) -> Statement {
    let mut window = WindowStatement::partition_by(fk.as_column_ref());
    for (c, d) in &keys.keys {
        window.order_by(c.as_column_ref(), d.order());
    }
    let mut inner = select
        .filter(fk.is_in(parents.iter().copied()))
        .into_query();
    inner.expr_window_as(Expr::cust("ROW_NUMBER()"), window, Alias::new("rn"));
    let mut outer = Query::select();
    outer
        .column(Asterisk)
        .from_subquery(inner, Alias::new("ranked"))
        .and_where(Expr::col(Alias::new("rn")).lte((first + 1) as i64));
    backend.build(&outer)
}

/// Row counts of `select` per value of the foreign key `fk`, for `parents`.
pub async fn count_per_parent<E>(
    db: &impl ConnectionTrait,
    select: Select<E>,
    fk: E::Column,
    parents: &[i64],
) -> Result<HashMap<i64, u64>>
where
    E: EntityTrait,
{
    let rows: Vec<(Option<i64>, i64)> = select
        .filter(among(db.get_database_backend(), fk, parents))
        .select_only()
        .column(fk)
        .column_as(Expr::cust("COUNT(*)"), "n")
        .group_by(fk)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(p, n)| p.map(|p| (p, n as u64)))
        .collect())
}

/// A leading sort key computed per row instead of read from a column (a typed custom
/// field's value, say). The expression is never NULL: the caller coalesces a missing value
/// to a sentinel that sorts last, so the key compares as one row value with the rest.
#[derive(Clone, Debug)]
pub struct LeadKey {
    /// Its name in cursors (`attributes.seats`): a cursor of one order fails in another.
    pub name: String,
    /// The SQL expression over the listed table's row.
    pub expr: sea_orm::sea_query::SimpleExpr,
    /// Its direction; every other key must run the same way.
    pub direction: SortDirection,
}

/// A row with the value of its [`LeadKey`], read under [`LEAD_ALIAS`].
struct Led<M, T> {
    model: M,
    lead: T,
}

const LEAD_ALIAS: &str = "rapport_sort_lead";

impl<M: sea_orm::FromQueryResult, T: sea_orm::TryGetable> sea_orm::FromQueryResult for Led<M, T> {
    fn from_query_result(
        res: &sea_orm::QueryResult,
        pre: &str,
    ) -> std::result::Result<Self, sea_orm::DbErr> {
        Ok(Self {
            model: M::from_query_result(res, pre)?,
            lead: res.try_get("", LEAD_ALIAS)?,
        })
    }
}

/// Fetches one page of `select` ordered by `lead`, then by `keys` (which must all run in
/// `lead`'s direction). `T` is the type of the lead's values (`f64` or `String`).
pub async fn fetch_led_page<E, T>(
    db: &impl ConnectionTrait,
    select: Select<E>,
    lead: &LeadKey,
    keys: &SortKeys<E>,
    req: &PageRequest,
) -> Result<Page<E::Model>>
where
    E: EntityTrait,
    E::Model: ModelTrait<Entity = E> + Sync,
    T: sea_orm::TryGetable + Into<Value> + Send + Sync,
{
    if keys.keys.iter().any(|(_, d)| *d != lead.direction) {
        return Err(EngineError::invalid(
            "orderBy",
            "sorting by an attribute, every other sort field runs in its direction",
        ));
    }
    if req.first.is_some() && req.last.is_some() {
        return Err(EngineError::invalid(
            "first",
            "give first or last, not both",
        ));
    }
    let direction = if lead.direction == SortDirection::Asc {
        "+"
    } else {
        "-"
    };
    let signature: Arc<str> = format!("{}{direction},{}", lead.name, keys.signature).into();
    let exprs: Vec<sea_orm::sea_query::SimpleExpr> = std::iter::once(lead.expr.clone())
        .chain(keys.keys.iter().map(|(c, _)| Expr::col(c.as_column_ref())))
        .collect();
    let decode = |field: &str, cursor: &str| -> Result<Vec<Value>> {
        let bad = || {
            EngineError::invalid(
                field,
                "not a cursor of this list (was it made with another orderBy?)",
            )
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| bad())?;
        let body: DecodedCursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if *body.k != *signature || body.v.len() != exprs.len() {
            return Err(bad());
        }
        Ok(body.v.into_iter().map(Key::into_value).collect())
    };
    let beyond = |values: Vec<Value>, after: bool| {
        let cols = Expr::tuple(exprs.iter().cloned());
        let vals = Expr::tuple(values.into_iter().map(Expr::val));
        if (lead.direction == SortDirection::Asc) == after {
            cols.gt(vals)
        } else {
            cols.lt(vals)
        }
    };
    let backward = req.last.is_some();
    let n = if backward {
        page_size("last", req.last)?
    } else {
        page_size("first", req.first)?
    };
    let mut select = select.expr_as(lead.expr.clone(), LEAD_ALIAS);
    if let Some(after) = &req.after {
        select = select.filter(beyond(decode("after", after)?, true));
    }
    if let Some(before) = &req.before {
        select = select.filter(beyond(decode("before", before)?, false));
    }
    let order = if backward {
        lead.direction.reversed()
    } else {
        lead.direction
    }
    .order();
    for e in &exprs {
        select = select.order_by(e.clone(), order.clone());
    }
    let mut rows = select
        .limit((n + 1) as u64)
        .into_model::<Led<E::Model, T>>()
        .all(db)
        .await?;
    let more = rows.len() > n;
    rows.truncate(n);
    if backward {
        rows.reverse();
    }
    let edges = rows
        .into_iter()
        .map(|r| {
            let mut values = vec![Key::from_value(r.lead.into())?];
            for (c, _) in &keys.keys {
                values.push(Key::from_value(r.model.get(*c))?);
            }
            Ok((
                Cursor {
                    signature: signature.clone(),
                    values,
                },
                r.model,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Page {
        edges,
        has_next_page: if backward { req.before.is_some() } else { more },
        has_previous_page: if backward { more } else { req.after.is_some() },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rapport_schema::activity;
    use std::cmp::Ordering;

    fn cursor(at: i64, id: i64) -> Cursor {
        Cursor {
            signature: "".into(),
            values: vec![
                Key::T(DateTime::from_timestamp(at, 0).expect("in range")),
                Key::I(id),
            ],
        }
    }

    #[test]
    fn the_id_follows_the_last_keys_direction() {
        let newest = SortKeys::<activity::Entity>::new(
            &[(activity::Column::OccurredAt, SortDirection::Desc)],
            activity::Column::Id,
        );
        assert_eq!(&*newest.signature, "occurred_at-,id-");
        let by_id = SortKeys::<activity::Entity>::new(&[], activity::Column::Id);
        assert_eq!(&*by_id.signature, "id+");
    }

    proptest! {
        /// Sorting by `compare` gives the order the SQL `ORDER BY occurred_at DESC, id DESC`
        /// gives: a total order, newest first, equal times by id descending.
        #[test]
        fn compare_orders_like_the_sql(rows in proptest::collection::vec((0i64..5, 0i64..1000), 0..40)) {
            let keys = SortKeys::<activity::Entity>::new(
                &[(activity::Column::OccurredAt, SortDirection::Desc)],
                activity::Column::Id,
            );
            let mut got: Vec<(i64, i64)> = rows.clone();
            got.sort_by(|a, b| keys.compare(&cursor(a.0, a.1), &cursor(b.0, b.1)));
            let mut want = rows;
            want.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
            prop_assert_eq!(got, want);
            prop_assert_eq!(keys.compare(&cursor(1, 2), &cursor(1, 2)), Ordering::Equal);
        }
    }
}

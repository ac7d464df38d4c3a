//! Typed filters and sort orders, turned into SQL conditions.
//!
//! Every list takes `filter: XFilter` whose fields carry operators (`eq ne in notIn
//! contains startsWith gt gte lt lte isNull`) and compose with `and`, `or` and `not`, and
//! `orderBy: [XOrder!]` over several fields. Semantics, the same on SQLite and PostgreSQL:
//! `ne` and `notIn` also match rows where the field is null; `contains` and `startsWith`
//! ignore ASCII case; text compares bytewise.

use crate::graphql::ids::parse_id;
use async_graphql::{Enum, ID, InputObject, InputType};
use chrono::{DateTime, NaiveDate, Utc};
use rapport_engine::EngineError;
use rapport_engine::input_limits::Bounds;
use rapport_engine::platform::pagination::SortDirection;
use rapport_schema as s;
use sea_orm::sea_query::{BinOper, Expr, ExprTrait, Func, LikeExpr, Query};
use sea_orm::{ColumnTrait, Condition, Value};

type Result<T> = std::result::Result<T, EngineError>;

/// Measures a filter tree against [`Bounds::FILTER`] — depth, width, size, the length of
/// every text — before anything recurses over it. The one check every filter passes,
/// whether it comes with a query or is saved as a segment (and again when a saved one
/// is read back).
pub fn check_bounds<F: InputType>(filter: &F) -> Result<()> {
    check_json(
        &filter
            .to_value()
            .into_json()
            .map_err(|_| EngineError::invalid("filter", "is not a valid filter"))?,
    )
}

/// [`check_bounds`] for a filter still in its JSON form (a saved segment).
pub fn check_json(filter: &serde_json::Value) -> Result<()> {
    Bounds::FILTER.check("filter", filter)
}

/// A filter on one column.
pub trait ColumnFilter {
    /// The condition on `target` (a column, or an attribute inside one); `field` names
    /// the filter field in errors.
    fn condition(&self, field: &str, target: Expr) -> Result<Condition>;
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn ilike(target: Expr, pattern: String) -> Expr {
    Expr::expr(Func::lower(target)).like(LikeExpr::new(pattern).escape('\\'))
}

/// The comparison operators, shared by every ordered scalar.
#[allow(clippy::too_many_arguments)] // one argument per GraphQL operator
fn compare<T: Clone + Into<Value>>(
    target: Expr,
    eq: &Option<T>,
    ne: &Option<T>,
    list: &Option<Vec<T>>,
    not_list: &Option<Vec<T>>,
    gt: &Option<T>,
    gte: &Option<T>,
    lt: &Option<T>,
    lte: &Option<T>,
    is_null: &Option<bool>,
) -> Condition {
    let mut c = Condition::all();
    if let Some(x) = eq {
        c = c.add(target.clone().eq(x.clone()));
    }
    if let Some(x) = ne {
        c = c.add(
            Condition::any()
                .add(target.clone().ne(x.clone()))
                .add(target.clone().is_null()),
        );
    }
    if let Some(xs) = list {
        c = c.add(target.clone().is_in(xs.iter().cloned()));
    }
    if let Some(xs) = not_list {
        c = c.add(
            Condition::any()
                .add(target.clone().is_not_in(xs.iter().cloned()))
                .add(target.clone().is_null()),
        );
    }
    if let Some(x) = gt {
        c = c.add(target.clone().gt(x.clone()));
    }
    if let Some(x) = gte {
        c = c.add(target.clone().gte(x.clone()));
    }
    if let Some(x) = lt {
        c = c.add(target.clone().lt(x.clone()));
    }
    if let Some(x) = lte {
        c = c.add(target.clone().lte(x.clone()));
    }
    match is_null {
        Some(true) => c = c.add(target.clone().is_null()),
        Some(false) => c = c.add(target.clone().is_not_null()),
        None => {}
    }
    c
}

macro_rules! ordered_filter {
    ($(#[$doc:meta])* $name:ident, $t:ty) => {
        $(#[$doc])*
        #[derive(InputObject, Clone, Debug, Default)]
        pub struct $name {
            pub eq: Option<$t>,
            pub ne: Option<$t>,
            #[graphql(name = "in")]
            pub in_list: Option<Vec<$t>>,
            pub not_in: Option<Vec<$t>>,
            pub gt: Option<$t>,
            pub gte: Option<$t>,
            pub lt: Option<$t>,
            pub lte: Option<$t>,
            pub is_null: Option<bool>,
        }

        impl ColumnFilter for $name {
            fn condition(&self, _field: &str, target: Expr) -> Result<Condition> {
                Ok(compare(target.clone(), &self.eq, &self.ne, &self.in_list, &self.not_in, &self.gt, &self.gte, &self.lt, &self.lte, &self.is_null))
            }
        }
    };
}

ordered_filter!(
    /// Conditions on a whole number.
    IntFilter, i64
);
ordered_filter!(
    /// Conditions on a point in time.
    DateTimeFilter, DateTime<Utc>
);
ordered_filter!(
    /// Conditions on a calendar date.
    DateFilter, NaiveDate
);

/// Conditions on text.
#[derive(InputObject, Clone, Debug, Default)]
pub struct StringFilter {
    pub eq: Option<String>,
    pub ne: Option<String>,
    #[graphql(name = "in")]
    pub in_list: Option<Vec<String>>,
    pub not_in: Option<Vec<String>>,
    /// Substring, ignoring ASCII case.
    pub contains: Option<String>,
    /// Prefix, ignoring ASCII case.
    pub starts_with: Option<String>,
    pub gt: Option<String>,
    pub gte: Option<String>,
    pub lt: Option<String>,
    pub lte: Option<String>,
    pub is_null: Option<bool>,
}

impl ColumnFilter for StringFilter {
    fn condition(&self, _field: &str, target: Expr) -> Result<Condition> {
        let mut c = compare(
            target.clone(),
            &self.eq,
            &self.ne,
            &self.in_list,
            &self.not_in,
            &self.gt,
            &self.gte,
            &self.lt,
            &self.lte,
            &self.is_null,
        );
        if let Some(x) = &self.contains {
            c = c.add(ilike(
                target.clone(),
                format!("%{}%", escape_like(&x.to_lowercase())),
            ));
        }
        if let Some(x) = &self.starts_with {
            c = c.add(ilike(
                target.clone(),
                format!("{}%", escape_like(&x.to_lowercase())),
            ));
        }
        Ok(c)
    }
}

/// Conditions on an id (ids grow with creation, so ranges work too).
#[derive(InputObject, Clone, Debug, Default)]
pub struct IdFilter {
    pub eq: Option<ID>,
    pub ne: Option<ID>,
    #[graphql(name = "in")]
    pub in_list: Option<Vec<ID>>,
    pub not_in: Option<Vec<ID>>,
    pub gt: Option<ID>,
    pub gte: Option<ID>,
    pub lt: Option<ID>,
    pub lte: Option<ID>,
    pub is_null: Option<bool>,
}

fn one_id(field: &str, id: &Option<ID>) -> Result<Option<i64>> {
    id.as_ref()
        .map(|i| {
            parse_id(field, i).map_err(|_| {
                EngineError::invalid(field, format!("'{}' is not a valid id", i.as_str()))
            })
        })
        .transpose()
}

fn ids(field: &str, list: &Option<Vec<ID>>) -> Result<Option<Vec<i64>>> {
    list.as_ref()
        .map(|l| {
            l.iter()
                .map(|i| one_id(field, &Some(i.clone())).map(Option::unwrap_or_default))
                .collect()
        })
        .transpose()
}

impl ColumnFilter for IdFilter {
    fn condition(&self, field: &str, target: Expr) -> Result<Condition> {
        Ok(compare(
            target,
            &one_id(field, &self.eq)?,
            &one_id(field, &self.ne)?,
            &ids(field, &self.in_list)?,
            &ids(field, &self.not_in)?,
            &one_id(field, &self.gt)?,
            &one_id(field, &self.gte)?,
            &one_id(field, &self.lt)?,
            &one_id(field, &self.lte)?,
            &self.is_null,
        ))
    }
}

/// Conditions on a yes/no field.
#[derive(InputObject, Clone, Debug, Default)]
pub struct BoolFilter {
    pub eq: Option<bool>,
}

impl ColumnFilter for BoolFilter {
    fn condition(&self, _field: &str, target: Expr) -> Result<Condition> {
        Ok(match self.eq {
            Some(b) => Condition::all().add(target.eq(b)),
            None => Condition::all(),
        })
    }
}

macro_rules! enum_filter {
    ($(#[$doc:meta])* $name:ident, $enum:ident) => {
        $(#[$doc])*
        #[derive(InputObject, Clone, Debug, Default)]
        pub struct $name {
            pub eq: Option<$enum>,
            pub ne: Option<$enum>,
            #[graphql(name = "in")]
            pub in_list: Option<Vec<$enum>>,
            pub not_in: Option<Vec<$enum>>,
            pub is_null: Option<bool>,
        }

        impl ColumnFilter for $name {
            fn condition(&self, _field: &str, target: Expr) -> Result<Condition> {
                let text = |e: &$enum| { let d: rapport_engine::values::$enum = (*e).into(); d.as_str().to_string() };
                let none = None::<String>;
                Ok(compare(
                    target,
                    &self.eq.as_ref().map(text),
                    &self.ne.as_ref().map(text),
                    &self.in_list.as_ref().map(|l| l.iter().map(text).collect()),
                    &self.not_in.as_ref().map(|l| l.iter().map(text).collect()),
                    &none, &none, &none, &none,
                    &self.is_null,
                ))
            }
        }
    };
}

use crate::graphql::enums::*;
enum_filter!(
    /// Conditions on a lifecycle stage.
    LifecycleStageFilter, LifecycleStage
);
enum_filter!(
    /// Conditions on a deal status.
    DealStatusFilter, DealStatus
);
enum_filter!(
    /// Conditions on an activity kind.
    ActivityKindFilter, ActivityKind
);
enum_filter!(
    /// Conditions on a direction.
    DirectionFilter, Direction
);
enum_filter!(
    /// Conditions on a task status.
    TaskStatusFilter, TaskStatus
);
enum_filter!(
    /// Conditions on an inquiry status.
    InquiryStatusFilter, InquiryStatus
);
enum_filter!(
    /// Conditions on an inquiry channel.
    InquiryChannelFilter, InquiryChannel
);
enum_filter!(
    /// Conditions on a priority.
    PriorityFilter, Priority
);
enum_filter!(
    /// Conditions on an order status.
    OrderStatusFilter, OrderStatus
);
enum_filter!(
    /// Conditions on a user role.
    UserRoleFilter, UserRole
);

/// Conditions on a contact's tags.
#[derive(InputObject, Clone, Debug, Default)]
pub struct TagsFilter {
    /// Has this tag.
    pub has: Option<String>,
    /// Has at least one of these tags.
    pub has_any: Option<Vec<String>>,
    /// Has every one of these tags.
    pub has_all: Option<Vec<String>>,
    /// Has none of these tags.
    pub has_none: Option<Vec<String>>,
}

impl TagsFilter {
    fn condition(&self) -> Condition {
        use s::contact_tag::Column as T;
        let with_tags = |tags: Vec<String>| {
            Query::select()
                .column(T::ContactId)
                .from(s::contact_tag::Entity)
                .and_where(T::Tag.is_in(tags))
                .to_owned()
        };
        let id = s::contact::Column::Id;
        let mut c = Condition::all();
        if let Some(t) = &self.has {
            c = c.add(id.in_subquery(with_tags(vec![t.clone()])));
        }
        if let Some(ts) = &self.has_any {
            c = c.add(id.in_subquery(with_tags(ts.clone())));
        }
        for t in self.has_all.iter().flatten() {
            c = c.add(id.in_subquery(with_tags(vec![t.clone()])));
        }
        if let Some(ts) = &self.has_none {
            c = c.add(id.not_in_subquery(with_tags(ts.clone())));
        }
        c
    }
}

macro_rules! entity_filter {
    (
        $(#[$doc:meta])* $name:ident, $module:ident {
            $($field:ident : $ty:ty => $col:ident),* $(,)?
        }
        $(, custom { $($cfield:ident : $cty:ty),* $(,)? } => $cfn:ident)?
    ) => {
        $(#[$doc])*
        #[derive(InputObject, Clone, Debug, Default)]
        pub struct $name {
            $(pub $field: Option<$ty>,)*
            $($(pub $cfield: Option<$cty>,)*)?
            /// Every one of these filters matches.
            pub and: Option<Vec<$name>>,
            /// At least one of these filters matches.
            pub or: Option<Vec<$name>>,
            /// This filter does not match.
            pub not: Option<Box<$name>>,
        }

        impl $name {
            /// The SQL condition of the whole filter tree, over the rows of
            /// `workspace_id`. The tree is measured first ([`check_bounds`]), so the
            /// recursion below is as deep as the bounds allow and no deeper.
            pub fn condition(&self, workspace_id: i64) -> Result<Condition> {
                check_bounds(self)?;
                self.condition_within(workspace_id)
            }

            fn condition_within(&self, ws: i64) -> Result<Condition> {
                let mut all = Condition::all();
                $(
                    if let Some(f) = &self.$field {
                        let target = Expr::col(s::$module::Column::$col.as_column_ref());
                        all = all.add(f.condition(stringify!($field), target)?);
                    }
                )*
                $( all = all.add($cfn(self, ws)?); )?
                for f in self.and.iter().flatten() {
                    all = all.add(f.condition_within(ws)?);
                }
                if let Some(list) = &self.or {
                    let mut any = Condition::any();
                    for f in list {
                        any = any.add(f.condition_within(ws)?);
                    }
                    all = all.add(any);
                }
                if let Some(f) = &self.not {
                    all = all.add(f.condition_within(ws)?.not());
                }
                Ok(all)
            }
        }
    };
}

entity_filter!(
    /// Which contacts to list.
    ContactFilter, contact {
        id: IdFilter => Id,
        first_name: StringFilter => FirstName,
        last_name: StringFilter => LastName,
        email: StringFilter => Email,
        phone: StringFilter => PhoneNormalized,
        company_id: IdFilter => CompanyId,
        owner_id: IdFilter => OwnerId,
        lifecycle_stage: LifecycleStageFilter => LifecycleStage,
        source: StringFilter => Source,
        timezone: StringFilter => Timezone,
        created_at: DateTimeFilter => CreatedAt,
        updated_at: DateTimeFilter => UpdatedAt,
    },
    custom { tags: TagsFilter, company: CompanyFilter, attributes: Vec<AttributeFilter> } => contact_extras
);

/// A condition on one custom attribute, whose value is compared as text (numbers and
/// booleans as they are written in JSON: `5`, `true`).
#[derive(InputObject, Clone, Debug)]
pub struct AttributeFilter {
    /// The attribute's name.
    pub key: String,
    /// The condition on its value; a missing attribute is null.
    pub value: StringFilter,
}

impl AttributeFilter {
    fn condition(&self) -> Result<Condition> {
        if self.key.is_empty() || self.key.chars().count() > 64 {
            return Err(EngineError::invalid(
                "attributes.key",
                "must have 1 to 64 characters",
            ));
        }
        // `->>` reads a JSON member as SQL on both databases (SQLite 3.38+, PostgreSQL
        // jsonb); the cast makes SQLite's numbers text like PostgreSQL's.
        let member = Expr::col(s::contact::Column::Attributes.as_column_ref())
            .binary(BinOper::Custom("->>"), Expr::val(self.key.clone()));
        let target = member.cast_as("TEXT");
        self.value.condition("attributes.value", target)
    }
}

fn contact_extras(f: &ContactFilter, ws: i64) -> Result<Condition> {
    let mut c = Condition::all();
    for a in f.attributes.iter().flatten() {
        c = c.add(a.condition()?);
    }
    if let Some(t) = &f.tags {
        c = c.add(t.condition());
    }
    if let Some(company) = &f.company {
        // The companies of this workspace only: company ids are not secret, and a
        // contact's company id must not let a filter read another workspace's companies.
        let ids = Query::select()
            .column(s::company::Column::Id)
            .from(s::company::Entity)
            .and_where(s::company::Column::WorkspaceId.eq(ws))
            .cond_where(company.condition_within(ws)?)
            .to_owned();
        c = c.add(s::contact::Column::CompanyId.in_subquery(ids));
    }
    Ok(c)
}

entity_filter!(
    /// Which companies to list.
    CompanyFilter, company {
        id: IdFilter => Id,
        name: StringFilter => Name,
        domain: StringFilter => Domain,
        industry: StringFilter => Industry,
        size: IntFilter => Size,
        country: StringFilter => Country,
        owner_id: IdFilter => OwnerId,
        created_at: DateTimeFilter => CreatedAt,
        updated_at: DateTimeFilter => UpdatedAt,
    }
);

entity_filter!(
    /// Which deals to list.
    DealFilter, deal {
        id: IdFilter => Id,
        name: StringFilter => Name,
        contact_id: IdFilter => ContactId,
        company_id: IdFilter => CompanyId,
        pipeline_id: IdFilter => PipelineId,
        stage_id: IdFilter => StageId,
        amount_minor: IntFilter => AmountMinor,
        currency: StringFilter => Currency,
        expected_close_date: DateFilter => ExpectedCloseDate,
        owner_id: IdFilter => OwnerId,
        status: DealStatusFilter => Status,
        lost_reason: StringFilter => LostReason,
        competitor: StringFilter => Competitor,
        closed_at: DateTimeFilter => ClosedAt,
        created_at: DateTimeFilter => CreatedAt,
        updated_at: DateTimeFilter => UpdatedAt,
    }
);

entity_filter!(
    /// Which activities to list.
    ActivityFilter, activity {
        id: IdFilter => Id,
        kind: ActivityKindFilter => Kind,
        direction: DirectionFilter => Direction,
        subject: StringFilter => Subject,
        occurred_at: DateTimeFilter => OccurredAt,
        contact_id: IdFilter => ContactId,
        deal_id: IdFilter => DealId,
        author_id: IdFilter => AuthorId,
        created_at: DateTimeFilter => CreatedAt,
    }
);

entity_filter!(
    /// Which tasks to list.
    TaskFilter, task {
        id: IdFilter => Id,
        title: StringFilter => Title,
        due_at: DateTimeFilter => DueAt,
        status: TaskStatusFilter => Status,
        assignee_id: IdFilter => AssigneeId,
        contact_id: IdFilter => ContactId,
        deal_id: IdFilter => DealId,
        completed_at: DateTimeFilter => CompletedAt,
        created_at: DateTimeFilter => CreatedAt,
    }
);

entity_filter!(
    /// Which inquiries to list.
    InquiryFilter, inquiry {
        id: IdFilter => Id,
        subject: StringFilter => Subject,
        channel: InquiryChannelFilter => Channel,
        status: InquiryStatusFilter => Status,
        priority: PriorityFilter => Priority,
        contact_id: IdFilter => ContactId,
        opened_at: DateTimeFilter => OpenedAt,
        closed_at: DateTimeFilter => ClosedAt,
        created_at: DateTimeFilter => CreatedAt,
    }
);

entity_filter!(
    /// Which products to list.
    ProductFilter, product {
        id: IdFilter => Id,
        sku: StringFilter => Sku,
        name: StringFilter => Name,
        category: StringFilter => Category,
        price_minor: IntFilter => PriceMinor,
        currency: StringFilter => Currency,
        created_at: DateTimeFilter => CreatedAt,
    }
);

entity_filter!(
    /// Which orders to list.
    OrderFilter, order {
        id: IdFilter => Id,
        contact_id: IdFilter => ContactId,
        placed_at: DateTimeFilter => PlacedAt,
        status: OrderStatusFilter => Status,
        currency: StringFilter => Currency,
        total_minor: IntFilter => TotalMinor,
        created_at: DateTimeFilter => CreatedAt,
    }
);

entity_filter!(
    /// Which events to list.
    EventFilter, event {
        id: IdFilter => Id,
        contact_id: IdFilter => ContactId,
        event_type: StringFilter => EventType,
        occurred_at: DateTimeFilter => OccurredAt,
    }
);

entity_filter!(
    /// Which users to list.
    UserFilter, user {
        id: IdFilter => Id,
        name: StringFilter => Name,
        email: StringFilter => Email,
        role: UserRoleFilter => Role,
        team_id: IdFilter => TeamId,
        created_at: DateTimeFilter => CreatedAt,
    }
);

entity_filter!(
    /// Which teams to list.
    TeamFilter, team {
        id: IdFilter => Id,
        name: StringFilter => Name,
        created_at: DateTimeFilter => CreatedAt,
    }
);

entity_filter!(
    /// Which pipelines to list.
    PipelineFilter, pipeline {
        id: IdFilter => Id,
        name: StringFilter => Name,
        created_at: DateTimeFilter => CreatedAt,
    }
);

/// Sort direction.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum OrderDirection {
    /// Smallest first.
    #[default]
    Asc,
    /// Largest first.
    Desc,
}

impl From<OrderDirection> for SortDirection {
    fn from(d: OrderDirection) -> Self {
        match d {
            OrderDirection::Asc => SortDirection::Asc,
            OrderDirection::Desc => SortDirection::Desc,
        }
    }
}

macro_rules! entity_order {
    ($(#[$doc:meta])* $order:ident, $field_enum:ident, $module:ident { $($variant:ident => $col:ident),+ $(,)? }) => {
        /// A field to sort by.
        #[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
        pub enum $field_enum {
            $(
                #[allow(missing_docs)]
                $variant
            ),+
        }

        $(#[$doc])*
        #[derive(InputObject, Clone, Debug)]
        pub struct $order {
            pub field: $field_enum,
            #[graphql(default)]
            pub direction: OrderDirection,
        }

        impl $order {
            /// The sort keys of an `orderBy` list (empty when none was given).
            pub fn keys(list: &Option<Vec<$order>>) -> Vec<(s::$module::Column, SortDirection)> {
                list.iter()
                    .flatten()
                    .map(|o| {
                        let col = match o.field { $($field_enum::$variant => s::$module::Column::$col),+ };
                        (col, o.direction.into())
                    })
                    .collect()
            }
        }
    };
}

entity_order!(
    /// Sort contacts by.
    ContactOrder, ContactOrderField, contact { Id => Id, FirstName => FirstName, LastName => LastName, LifecycleStage => LifecycleStage, CreatedAt => CreatedAt, UpdatedAt => UpdatedAt }
);
entity_order!(
    /// Sort companies by.
    CompanyOrder, CompanyOrderField, company { Id => Id, Name => Name, CreatedAt => CreatedAt, UpdatedAt => UpdatedAt }
);
entity_order!(
    /// Sort deals by.
    DealOrder, DealOrderField, deal { Id => Id, Name => Name, AmountMinor => AmountMinor, Status => Status, CreatedAt => CreatedAt, UpdatedAt => UpdatedAt }
);
entity_order!(
    /// Sort activities by.
    ActivityOrder, ActivityOrderField, activity { Id => Id, OccurredAt => OccurredAt, Kind => Kind, CreatedAt => CreatedAt }
);
entity_order!(
    /// Sort tasks by.
    TaskOrder, TaskOrderField, task { Id => Id, Title => Title, Status => Status, CreatedAt => CreatedAt }
);
entity_order!(
    /// Sort inquiries by.
    InquiryOrder, InquiryOrderField, inquiry { Id => Id, OpenedAt => OpenedAt, Status => Status, Priority => Priority, CreatedAt => CreatedAt }
);
entity_order!(
    /// Sort products by.
    ProductOrder, ProductOrderField, product { Id => Id, Sku => Sku, Name => Name, PriceMinor => PriceMinor, CreatedAt => CreatedAt }
);
entity_order!(
    /// Sort orders by.
    OrderOrder, OrderOrderField, order { Id => Id, PlacedAt => PlacedAt, TotalMinor => TotalMinor, Status => Status, CreatedAt => CreatedAt }
);
entity_order!(
    /// Sort events by.
    EventOrder, EventOrderField, event { Id => Id, OccurredAt => OccurredAt, EventType => EventType }
);
entity_order!(
    /// Sort users by.
    UserOrder, UserOrderField, user { Id => Id, Name => Name, Email => Email, CreatedAt => CreatedAt }
);
entity_order!(
    /// Sort teams by.
    TeamOrder, TeamOrderField, team { Id => Id, Name => Name, CreatedAt => CreatedAt }
);
entity_order!(
    /// Sort pipelines by.
    PipelineOrder, PipelineOrderField, pipeline { Id => Id, Name => Name, CreatedAt => CreatedAt }
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    /// JSON shaped like contact filters, with hostile corners: deep logic, odd types,
    /// long and strange text, unknown fields.
    fn filter_json() -> impl Strategy<Value = Value> {
        let text = prop_oneof![
            ".{0,12}".prop_map(Value::String),
            Just(Value::String("%_\\'\u{0}".into())),
            any::<i64>().prop_map(|n| json!(n)),
            Just(Value::Null),
        ];
        let column = (
            prop::sample::select(vec![
                "email",
                "firstName",
                "id",
                "companyId",
                "createdAt",
                "lifecycleStage",
            ]),
            prop::sample::select(vec![
                "eq",
                "ne",
                "in",
                "notIn",
                "contains",
                "startsWith",
                "gt",
                "isNull",
            ]),
            text.clone(),
        )
            .prop_map(|(field, op, v)| {
                let v = if op == "in" || op == "notIn" {
                    json!([v])
                } else {
                    v
                };
                json!({ field: { op: v } })
            });
        let extras = prop_oneof![
            text.clone().prop_map(|t| json!({"tags": {"has": t}})),
            text.clone()
                .prop_map(|t| json!({"attributes": [{"key": "plan", "value": {"eq": t}}]})),
            text.prop_map(|t| json!({"company": {"name": {"contains": t}}})),
        ];
        prop_oneof![column, extras].prop_recursive(24, 256, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(|v| json!({"and": v})),
                prop::collection::vec(inner.clone(), 0..4).prop_map(|v| json!({"or": v})),
                inner.prop_map(|v| json!({"not": v})),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        // Whatever a client sends as a filter, it becomes SQL or a VALIDATION error —
        // never a panic — and anything deeper than the bounds is refused.
        #[test]
        fn any_filter_becomes_sql_or_a_validation_error(v in filter_json()) {
            let within = Bounds::FILTER.check("filter", &v).is_ok();
            let Ok(value) = async_graphql::Value::from_json(v) else { return Ok(()) };
            let Ok(filter) = ContactFilter::parse(Some(value)) else { return Ok(()) };
            match filter.condition(1) {
                Ok(_) => prop_assert!(within),
                Err(EngineError::Validation { .. }) => {}
                Err(e) => prop_assert!(false, "not a validation error: {e:?}"),
            }
        }
    }
}

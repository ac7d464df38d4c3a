//! One filter per kind of record: its columns, and for contacts their tags, custom
//! attributes and company.

use rapport_schema as s;
use sea_orm::sea_query::{BinOper, Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, Condition};
use serde::Deserialize;

use super::scalars::*;
use super::{Filter, MAX_DEPTH, too_deep};
use crate::error::Result;
use crate::values;

macro_rules! record_filter {
    (
        $(#[$doc:meta])* $name:ident, $module:ident {
            $($field:ident : $ty:ty => $col:ident),* $(,)?
        }
        $(, extra { $($(#[$xdoc:meta])* $xfield:ident : $xty:ty),* $(,)? } => $xfn:ident)?
    ) => {
        $(#[$doc])*
        #[derive(Deserialize, Clone, Debug, Default)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $name {
            $(
                #[allow(missing_docs)]
                pub $field: Option<$ty>,
            )*
            $($(
                $(#[$xdoc])*
                pub $xfield: Option<$xty>,
            )*)?
            /// Every one of these filters matches.
            pub and: Option<Vec<$name>>,
            /// At least one of these filters matches.
            pub or: Option<Vec<$name>>,
            /// This filter does not match.
            pub not: Option<Box<$name>>,
        }

        impl Filter for $name {
            fn condition(&self, workspace_id: i64) -> Result<Condition> {
                self.condition_at(workspace_id, 0)
            }
        }

        impl $name {
            /// The condition of this node, `depth` levels down the tree.
            fn condition_at(&self, ws: i64, depth: usize) -> Result<Condition> {
                if depth > MAX_DEPTH {
                    return Err(too_deep());
                }
                let mut all = Condition::all();
                $(
                    if let Some(f) = &self.$field {
                        all = all.add(f.condition(Expr::col(s::$module::Column::$col.as_column_ref())));
                    }
                )*
                $( all = all.add($xfn(self, ws, depth)?); )?
                for f in self.and.iter().flatten() {
                    all = all.add(f.condition_at(ws, depth + 1)?);
                }
                if let Some(list) = &self.or {
                    let mut any = Condition::any();
                    for f in list {
                        any = any.add(f.condition_at(ws, depth + 1)?);
                    }
                    all = all.add(any);
                }
                if let Some(f) = &self.not {
                    all = all.add(f.condition_at(ws, depth + 1)?.not());
                }
                Ok(all)
            }
        }
    };
}

record_filter!(
    /// Which contacts: a list, a segment, a campaign's audience.
    ContactFilter, contact {
        id: IdFilter => Id,
        first_name: StringFilter => FirstName,
        last_name: StringFilter => LastName,
        email: StringFilter => Email,
        phone: StringFilter => PhoneNormalized,
        company_id: IdFilter => CompanyId,
        owner_id: IdFilter => OwnerId,
        lifecycle_stage: EnumFilter<values::LifecycleStage> => LifecycleStage,
        source: StringFilter => Source,
        timezone: StringFilter => Timezone,
        created_at: DateTimeFilter => CreatedAt,
        updated_at: DateTimeFilter => UpdatedAt,
    },
    extra {
        /// Conditions on its tags.
        tags: TagsFilter,
        /// Conditions on its company.
        company: CompanyFilter,
        /// Conditions on custom attributes, all of which must hold.
        attributes: Vec<AttributeFilter>,
    } => contact_extras
);

/// A condition on one custom attribute, whose value is compared as text (numbers and
/// booleans as they are written in JSON: `5`, `true`).
#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttributeFilter {
    /// The attribute's name.
    pub key: AttributeKey,
    /// The condition on its value; a missing attribute is null.
    pub value: StringFilter,
}

impl AttributeFilter {
    fn condition(&self) -> Condition {
        // `->>` reads a JSON member as SQL on both databases (SQLite 3.38+, PostgreSQL
        // jsonb); the cast makes SQLite's numbers text like PostgreSQL's.
        let member = Expr::col(s::contact::Column::Attributes.as_column_ref())
            .binary(BinOper::Custom("->>"), Expr::val(self.key.as_str()));
        self.value.condition(member.cast_as("TEXT"))
    }
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

fn contact_extras(f: &ContactFilter, ws: i64, depth: usize) -> Result<Condition> {
    let mut c = Condition::all();
    for a in f.attributes.iter().flatten() {
        c = c.add(a.condition());
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
            .cond_where(company.condition_at(ws, depth + 1)?)
            .to_owned();
        c = c.add(s::contact::Column::CompanyId.in_subquery(ids));
    }
    Ok(c)
}

record_filter!(
    /// Which companies.
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

record_filter!(
    /// Which deals.
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
        status: EnumFilter<values::DealStatus> => Status,
        lost_reason: StringFilter => LostReason,
        competitor: StringFilter => Competitor,
        closed_at: DateTimeFilter => ClosedAt,
        created_at: DateTimeFilter => CreatedAt,
        updated_at: DateTimeFilter => UpdatedAt,
    }
);

record_filter!(
    /// Which activities.
    ActivityFilter, activity {
        id: IdFilter => Id,
        kind: EnumFilter<values::ActivityKind> => Kind,
        direction: EnumFilter<values::Direction> => Direction,
        subject: StringFilter => Subject,
        occurred_at: DateTimeFilter => OccurredAt,
        contact_id: IdFilter => ContactId,
        deal_id: IdFilter => DealId,
        author_id: IdFilter => AuthorId,
        created_at: DateTimeFilter => CreatedAt,
    }
);

record_filter!(
    /// Which tasks.
    TaskFilter, task {
        id: IdFilter => Id,
        title: StringFilter => Title,
        due_at: DateTimeFilter => DueAt,
        status: EnumFilter<values::TaskStatus> => Status,
        assignee_id: IdFilter => AssigneeId,
        contact_id: IdFilter => ContactId,
        deal_id: IdFilter => DealId,
        completed_at: DateTimeFilter => CompletedAt,
        created_at: DateTimeFilter => CreatedAt,
    }
);

record_filter!(
    /// Which inquiries.
    InquiryFilter, inquiry {
        id: IdFilter => Id,
        subject: StringFilter => Subject,
        channel: EnumFilter<values::InquiryChannel> => Channel,
        status: EnumFilter<values::InquiryStatus> => Status,
        priority: EnumFilter<values::Priority> => Priority,
        contact_id: IdFilter => ContactId,
        opened_at: DateTimeFilter => OpenedAt,
        closed_at: DateTimeFilter => ClosedAt,
        created_at: DateTimeFilter => CreatedAt,
    }
);

record_filter!(
    /// Which products.
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

record_filter!(
    /// Which orders.
    OrderFilter, order {
        id: IdFilter => Id,
        contact_id: IdFilter => ContactId,
        placed_at: DateTimeFilter => PlacedAt,
        status: EnumFilter<values::OrderStatus> => Status,
        currency: StringFilter => Currency,
        total_minor: IntFilter => TotalMinor,
        created_at: DateTimeFilter => CreatedAt,
    }
);

record_filter!(
    /// Which events.
    EventFilter, event {
        id: IdFilter => Id,
        contact_id: IdFilter => ContactId,
        event_type: StringFilter => EventType,
        occurred_at: DateTimeFilter => OccurredAt,
    }
);

record_filter!(
    /// Which team members.
    UserFilter, user {
        id: IdFilter => Id,
        name: StringFilter => Name,
        email: StringFilter => Email,
        role: EnumFilter<values::UserRole> => Role,
        team_id: IdFilter => TeamId,
        created_at: DateTimeFilter => CreatedAt,
    }
);

record_filter!(
    /// Which teams.
    TeamFilter, team {
        id: IdFilter => Id,
        name: StringFilter => Name,
        created_at: DateTimeFilter => CreatedAt,
    }
);

record_filter!(
    /// Which pipelines.
    PipelineFilter, pipeline {
        id: IdFilter => Id,
        name: StringFilter => Name,
        created_at: DateTimeFilter => CreatedAt,
    }
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EngineError;
    use crate::input_limits::Bounds;
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
                "nope",
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
            text.clone()
                .prop_map(|t| json!({"attributes": [{"key": t, "value": {"isNull": true}}]})),
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
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
        // Whatever a client sends as a filter, it becomes SQL or a VALIDATION error —
        // never a panic — and anything beyond the bounds is refused before it is read.
        #[test]
        fn any_filter_becomes_sql_or_a_validation_error(v in filter_json()) {
            let within = Bounds::FILTER.check("filter", &v).is_ok();
            match ContactFilter::parse("filter", &v).and_then(|f| f.condition(1)) {
                Ok(_) => prop_assert!(within),
                Err(EngineError::Validation { .. }) => {}
                Err(e) => prop_assert!(false, "not a validation error: {e:?}"),
            }
        }
    }

    fn invalid_field(v: Value) -> String {
        match ContactFilter::parse("filter", &v) {
            Err(EngineError::Validation { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_path_of_the_bad_value() {
        assert_eq!(invalid_field(json!({"nope": 1})), "filter.nope");
        assert_eq!(
            invalid_field(json!({"and": [{"id": {"eq": "x"}}]})),
            "filter.and[0].id.eq"
        );
        assert_eq!(
            invalid_field(json!({"lifecycleStage": {"in": ["LEAD", "BOSS"]}})),
            "filter.lifecycleStage.in[1]"
        );
        assert_eq!(
            invalid_field(json!({"attributes": [{"key": "", "value": {}}]})),
            "filter.attributes[0].key"
        );
    }

    #[test]
    fn graphql_names_and_stored_spellings_both_read() {
        let f = InquiryFilter::parse("filter", &json!({"channel": {"eq": "WEB_FORM"}}))
            .expect("the GraphQL name");
        assert_eq!(
            f.channel.and_then(|c| c.eq).map(|v| v.0),
            Some(values::InquiryChannel::WebForm)
        );
        let f = InquiryFilter::parse("filter", &json!({"channel": {"eq": "web_form"}}))
            .expect("the stored spelling");
        assert!(f.channel.is_some());
    }

    #[test]
    fn ids_read_as_numbers_or_decimal_text_and_must_be_positive() {
        let f = DealFilter::parse("filter", &json!({"id": {"in": ["7", 8]}})).expect("ids");
        assert_eq!(
            f.id.and_then(|i| i.in_list),
            Some(vec![RecordId(7), RecordId(8)])
        );
        assert!(DealFilter::parse("filter", &json!({"id": {"eq": 0}})).is_err());
        assert!(DealFilter::parse("filter", &json!({"id": {"eq": "-3"}})).is_err());
    }

    #[test]
    fn a_tree_built_in_code_deeper_than_the_bounds_is_refused_while_compiling() {
        let mut f = ContactFilter::default();
        for _ in 0..(MAX_DEPTH + 2) {
            f = ContactFilter {
                not: Some(Box::new(f)),
                ..ContactFilter::default()
            };
        }
        assert!(matches!(
            f.condition(1),
            Err(EngineError::Validation { .. })
        ));
    }
}

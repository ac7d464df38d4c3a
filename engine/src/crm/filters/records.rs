//! One filter per kind of record other than contacts: its columns.

use rapport_schema as s;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition};
use serde::Deserialize;

use super::scalars::*;
use super::{Evaluation, Filter, MAX_DEPTH, too_deep};
use crate::error::Result;
use crate::values;

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
        external_id: StringFilter => ExternalId,
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
    use super::super::ContactFilter;
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
            text.clone()
                .prop_map(|t| json!({"company": {"name": {"contains": t}}})),
            text.clone()
                .prop_map(|t| json!({"orders": {"withinDays": t, "count": {"eq": 0}}})),
            text.clone()
                .prop_map(|t| json!({"events": [{"type": t, "count": {"lt": 2}}]})),
            text.clone().prop_map(|t| json!({
                "leadScore": {"grade": {"eq": t}},
                "engagement": {"opened": {"campaignId": t}}
            })),
            text.prop_map(|t| json!({"consent": [{"purpose": t, "status": {"eq": "GRANTED"}}]})),
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
            match ContactFilter::parse("filter", &v).and_then(|f| f.condition(Evaluation::new(1, chrono::Utc::now()))) {
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
    fn a_filter_may_read_other_records_a_bounded_number_of_times() {
        let events = |n: usize| json!({"events": (0..n).map(|i| json!({"type": format!("e{i}")})).collect::<Vec<_>>()});
        let at = Evaluation::new(1, chrono::Utc::now());
        let within =
            ContactFilter::parse("filter", &events(super::super::MAX_SUBQUERIES)).expect("parse");
        assert!(within.condition(at).is_ok());
        // Spread over `or` branches, they still add up.
        let spread = json!({"or": [events(30), events(30)]});
        let over = ContactFilter::parse("filter", &spread).expect("parse");
        match over.condition(at) {
            Err(EngineError::Validation { message, .. }) => {
                assert!(message.contains("at most"), "{message}")
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
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
            f.condition(Evaluation::new(1, chrono::Utc::now())),
            Err(EngineError::Validation { .. })
        ));
    }
}

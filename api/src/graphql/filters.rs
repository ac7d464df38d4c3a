//! Typed filters: the GraphQL shape of the engine's filter language
//! ([`rapport_engine::crm::filters`]), which reads, checks and compiles them. The sort
//! orders that go with them are in [`crate::graphql::orders`] (re-exported here).
//!
//! Every list takes `filter: XFilter` whose fields carry operators (`eq ne in notIn
//! contains startsWith gt gte lt lte isNull`) and compose with `and`, `or` and `not`, and
//! `orderBy: [XOrder!]` over several fields. Semantics, the same on SQLite and PostgreSQL:
//! `ne` and `notIn` also match rows where the field is null; `contains` and `startsWith`
//! ignore ASCII case; text compares bytewise.

use async_graphql::{ID, InputObject, InputType};
use chrono::{DateTime, NaiveDate, Utc};
use rapport_engine::EngineError;
use rapport_engine::crm::filters::{self as engine, Filter};
use sea_orm::Condition;

pub use crate::graphql::orders::*;

type Result<T> = std::result::Result<T, EngineError>;

/// The engine's filter a GraphQL filter input stands for. The input's JSON form is the
/// filter language's (the field names are the same), so this is also how a segment's
/// filter is saved.
pub fn to_engine<F: InputType, E: Filter>(filter: &F) -> Result<E> {
    E::parse("filter", &to_json(filter)?)
}

/// The JSON form of a filter input, as a segment saves it: the fields a client set, no
/// more (GraphQL writes every unset field as null, which would count against the filter's
/// size bounds and fill saved segments).
pub fn to_json<F: InputType>(filter: &F) -> Result<serde_json::Value> {
    let mut json = filter
        .to_value()
        .into_json()
        .map_err(|_| EngineError::invalid("filter", "is not a valid filter"))?;
    drop_nulls(&mut json);
    Ok(json)
}

/// What a contact filter adds to a request's cost: [`FILTER_READ_COST`] for each time it
/// reads another table (tags, company, scores, events, orders, …), so a request cannot
/// hide many expensive filters behind cheap pages. A filter that does not parse costs
/// nothing here; its resolver refuses it.
pub fn contact_filter_cost(filter: &Option<ContactFilter>) -> usize {
    filter
        .as_ref()
        .and_then(|f| to_engine::<_, engine::ContactFilter>(f).ok())
        .map_or(0, |f| f.cost() * FILTER_READ_COST)
}

/// The cost of one read of another table by a contact filter: a page of 100 rows, so a
/// filter at the engine's limit of 40 reads costs 4,000 of a request's 100,000, and 25
/// such filters fill a request.
pub const FILTER_READ_COST: usize = 100;

/// Removes null members of objects, throughout (with a stack of its own: the value came
/// from a document whose nesting is bounded, but this need not rely on it).
fn drop_nulls(json: &mut serde_json::Value) {
    let mut stack = vec![json];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::Object(members) => {
                members.retain(|_, m| !m.is_null());
                stack.extend(members.values_mut());
            }
            serde_json::Value::Array(items) => stack.extend(items.iter_mut()),
            _ => {}
        }
    }
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

    };
}

ordered_filter!(
    /// Conditions on a whole number.
    IntFilter, i64
);
ordered_filter!(
    /// Conditions on a number with a fractional part (a score).
    FloatFilter, f64
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

/// Conditions on a yes/no field.
#[derive(InputObject, Clone, Debug, Default)]
pub struct BoolFilter {
    pub eq: Option<bool>,
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
enum_filter!(
    /// Conditions on where a sequence enrollment stands.
    EnrollmentStatusFilter, EnrollmentStatus
);
enum_filter!(
    /// Conditions on where a contact's consent stands.
    ConsentStatusFilter, ConsentStatus
);
enum_filter!(
    /// Conditions on a churn-risk band.
    RiskLevelFilter, RiskLevel
);
enum_filter!(
    /// Conditions on an RFM segment.
    RfmSegmentFilter, RfmSegment
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

macro_rules! entity_filter {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(InputObject, Clone, Debug, Default)]
        pub struct $name {
            $($(#[$fdoc])* pub $field: Option<$ty>,)*
            /// Every one of these filters matches.
            pub and: Option<Vec<$name>>,
            /// At least one of these filters matches.
            pub or: Option<Vec<$name>>,
            /// This filter does not match.
            pub not: Option<Box<$name>>,
        }

        impl $name {
            /// The SQL condition of the whole filter tree, over the rows of
            /// `at.workspace_id` as of `at.now`: measured, read and compiled by the
            /// engine's filter language.
            pub fn condition(&self, at: engine::Evaluation) -> Result<Condition> {
                to_engine::<_, engine::$name>(self)?.condition(at)
            }
        }
    };
}

// Fields are boxed: async-graphql's parser keeps a node's fields on the stack while it
// reads the nodes below (see the engine's `ContactFilter`).
entity_filter!(
    /// Which contacts to list.
    ContactFilter {
        id: Box<IdFilter>,
        first_name: Box<StringFilter>,
        last_name: Box<StringFilter>,
        email: Box<StringFilter>,
        phone: Box<StringFilter>,
        company_id: Box<IdFilter>,
        owner_id: Box<IdFilter>,
        lifecycle_stage: Box<LifecycleStageFilter>,
        source: Box<StringFilter>,
        timezone: Box<StringFilter>,
        created_at: Box<DateTimeFilter>,
        updated_at: Box<DateTimeFilter>,
        /// Conditions on its tags.
        tags: Box<TagsFilter>,
        /// Conditions on its company.
        company: Box<CompanyFilter>,
        /// Conditions on custom attributes, all of which must hold.
        attributes: Vec<AttributeFilter>,
        /// Its lead score (the built-in model's, 0–100) and grade; an unscored contact
        /// matches none.
        lead_score: Box<ScoreFilter>,
        /// Its behaviour cluster's name (once behaviour segments are trained).
        cluster: Box<StringFilter>,
        /// Scores that plugins gave it, all of which must hold.
        plugin_scores: Vec<PluginScoreFilter>,
        /// Its churn risk (customers only, as of the last rescoring); a contact
        /// without one matches none.
        churn_risk: Box<ChurnRiskFilter>,
        /// Its RFM scores and segment (customers only, as of the last rescoring).
        rfm: Box<RfmFilter>,
        /// Its expected value over the next 52 weeks (customers only, as of the last
        /// rescoring).
        clv: Box<ClvFilter>,
        /// Opens and clicks of the email campaigns and sequences sent it.
        engagement: Box<EngagementFilter>,
        /// Events it did, all of which must hold.
        events: Vec<EventCondition>,
        /// Its orders (cancelled and refunded ones left out).
        orders: Box<OrdersCondition>,
        /// It has a live deal that matches.
        deals: Box<DealFilter>,
        /// It is (or was) enrolled in a sequence.
        sequence: Box<SequenceCondition>,
        /// Where its consent to email stands (its latest record per purpose), all of
        /// which must hold.
        consent: Vec<ConsentCondition>,
        /// It may be emailed for this purpose now, as the send-time check decides: an
        /// address, not suppressed, and marketing consent granted (for MARKETING) or
        /// transactional email not refused (for TRANSACTIONAL).
        email_permission: ConsentPurpose,
    }
);

/// Conditions on a score a built-in model stored: its value and its grade.
#[derive(InputObject, Clone, Debug, Default)]
pub struct ScoreFilter {
    /// The score, 0–100.
    pub score: Option<FloatFilter>,
    /// The grade (`A`–`D` for lead scores).
    pub grade: Option<StringFilter>,
}

/// A condition on the current score one plugin gave the contact.
#[derive(InputObject, Clone, Debug)]
pub struct PluginScoreFilter {
    /// The plugin's name.
    pub plugin: String,
    /// The score, 0–100.
    pub score: FloatFilter,
}

/// Conditions on a customer's churn risk.
#[derive(InputObject, Clone, Debug, Default)]
pub struct ChurnRiskFilter {
    /// The risk, 0–1.
    pub risk: Option<FloatFilter>,
    /// Its band: low below 0.3, high from 0.7.
    pub level: Option<RiskLevelFilter>,
}

/// Conditions on a customer's RFM scores (1 worst to 5 best) and segment.
#[derive(InputObject, Clone, Debug, Default)]
pub struct RfmFilter {
    /// The named segment.
    pub segment: Option<RfmSegmentFilter>,
    /// How recently they bought, 1–5.
    pub recency: Option<IntFilter>,
    /// How often, 1–5.
    pub frequency: Option<IntFilter>,
    /// How much, 1–5.
    pub monetary: Option<IntFilter>,
}

/// Conditions on a customer's value over the next 52 weeks.
#[derive(InputObject, Clone, Debug, Default)]
pub struct ClvFilter {
    /// Expected spend, in major units.
    pub expected_value: Option<FloatFilter>,
    /// Expected purchases.
    pub expected_purchases: Option<FloatFilter>,
    /// P(still buying), 0–1.
    pub probability_alive: Option<FloatFilter>,
}

/// Opens and clicks of the email sent to the contact.
#[derive(InputObject, Clone, Debug, Default)]
pub struct EngagementFilter {
    /// Opened such an email.
    pub opened: Option<MessageActivityFilter>,
    /// Clicked a link in such an email.
    pub clicked: Option<MessageActivityFilter>,
}

/// Which email, and how recently: a campaign, a sequence, either when both are named,
/// any campaign or sequence when neither is.
#[derive(InputObject, Clone, Debug, Default)]
pub struct MessageActivityFilter {
    pub campaign_id: Option<ID>,
    pub sequence_id: Option<ID>,
    /// Within the last so many days (1–3650).
    pub within_days: Option<i32>,
}

/// Events of one type the contact did.
#[derive(InputObject, Clone, Debug)]
pub struct EventCondition {
    /// The event type.
    #[graphql(name = "type")]
    pub event_type: String,
    /// Within the last so many days (1–3650).
    pub within_days: Option<i32>,
    /// How many (at least one when not given); `{eq: 0}` means none.
    pub count: Option<IntFilter>,
}

/// The contact's orders, cancelled and refunded ones left out.
#[derive(InputObject, Clone, Debug, Default)]
pub struct OrdersCondition {
    /// How many (at least one when neither this nor `totalMinor` is given); `{eq: 0}`
    /// means none.
    pub count: Option<IntFilter>,
    /// Their total, in minor units.
    pub total_minor: Option<IntFilter>,
    /// Placed within the last so many days (1–3650).
    pub within_days: Option<i32>,
    /// Only orders with this product in them.
    pub product_id: Option<ID>,
}

/// The contact's enrollments in sequences.
#[derive(InputObject, Clone, Debug, Default)]
pub struct SequenceCondition {
    /// In this sequence (any when not given).
    pub id: Option<ID>,
    /// With an enrollment in this state (any when not given).
    pub status: Option<EnrollmentStatusFilter>,
}

/// Where the contact's consent to email for one purpose stands; a contact with no record
/// for the purpose matches none (use `not` for "not granted").
#[derive(InputObject, Clone, Debug)]
pub struct ConsentCondition {
    pub purpose: ConsentPurpose,
    pub status: ConsentStatusFilter,
}

/// A condition on one custom attribute: exactly one of `value` (the JSON value as text;
/// numbers and booleans as JSON writes them: `5`, `true`), or, for a declared typed
/// field, `number`, `date`, `boolean` or `options`. A typed comparison matches only
/// contacts holding a value; `isNull: true` those holding none.
#[derive(InputObject, Clone, Debug, Default)]
pub struct AttributeFilter {
    /// The attribute's name.
    pub key: String,
    /// The value as text; a missing attribute is null.
    pub value: Option<StringFilter>,
    /// A number field, compared as a number.
    pub number: Option<FloatFilter>,
    /// A date field.
    pub date: Option<DateFilter>,
    /// A yes/no field.
    pub boolean: Option<bool>,
    /// An enum or multi-select field's options.
    pub options: Option<OptionsFilter>,
}

/// Conditions on the options an enum or multi-select field holds.
#[derive(InputObject, Clone, Debug, Default)]
pub struct OptionsFilter {
    /// Holds at least one of these.
    pub has_any: Option<Vec<String>>,
    /// Holds every one of these.
    pub has_all: Option<Vec<String>>,
    /// Holds none of these.
    pub has_none: Option<Vec<String>>,
}

entity_filter!(
    /// Which companies to list.
    CompanyFilter {
        id: IdFilter,
        name: StringFilter,
        domain: StringFilter,
        industry: StringFilter,
        size: IntFilter,
        country: StringFilter,
        owner_id: IdFilter,
        created_at: DateTimeFilter,
        updated_at: DateTimeFilter,
    }
);

entity_filter!(
    /// Which deals to list.
    DealFilter {
        id: IdFilter,
        name: StringFilter,
        contact_id: IdFilter,
        company_id: IdFilter,
        pipeline_id: IdFilter,
        stage_id: IdFilter,
        amount_minor: IntFilter,
        currency: StringFilter,
        expected_close_date: DateFilter,
        owner_id: IdFilter,
        status: DealStatusFilter,
        lost_reason: StringFilter,
        competitor: StringFilter,
        external_id: StringFilter,
        closed_at: DateTimeFilter,
        created_at: DateTimeFilter,
        updated_at: DateTimeFilter,
    }
);

entity_filter!(
    /// Which activities to list.
    ActivityFilter {
        id: IdFilter,
        kind: ActivityKindFilter,
        direction: DirectionFilter,
        subject: StringFilter,
        occurred_at: DateTimeFilter,
        contact_id: IdFilter,
        deal_id: IdFilter,
        author_id: IdFilter,
        created_at: DateTimeFilter,
    }
);

entity_filter!(
    /// Which tasks to list.
    TaskFilter {
        id: IdFilter,
        title: StringFilter,
        due_at: DateTimeFilter,
        status: TaskStatusFilter,
        assignee_id: IdFilter,
        contact_id: IdFilter,
        deal_id: IdFilter,
        completed_at: DateTimeFilter,
        created_at: DateTimeFilter,
    }
);

entity_filter!(
    /// Which inquiries to list.
    InquiryFilter {
        id: IdFilter,
        subject: StringFilter,
        channel: InquiryChannelFilter,
        status: InquiryStatusFilter,
        priority: PriorityFilter,
        contact_id: IdFilter,
        opened_at: DateTimeFilter,
        closed_at: DateTimeFilter,
        created_at: DateTimeFilter,
    }
);

entity_filter!(
    /// Which products to list.
    ProductFilter {
        id: IdFilter,
        sku: StringFilter,
        name: StringFilter,
        category: StringFilter,
        price_minor: IntFilter,
        currency: StringFilter,
        created_at: DateTimeFilter,
    }
);

entity_filter!(
    /// Which orders to list.
    OrderFilter {
        id: IdFilter,
        contact_id: IdFilter,
        placed_at: DateTimeFilter,
        status: OrderStatusFilter,
        currency: StringFilter,
        total_minor: IntFilter,
        created_at: DateTimeFilter,
    }
);

entity_filter!(
    /// Which events to list.
    EventFilter {
        id: IdFilter,
        contact_id: IdFilter,
        event_type: StringFilter,
        occurred_at: DateTimeFilter,
    }
);

entity_filter!(
    /// Which users to list.
    UserFilter {
        id: IdFilter,
        name: StringFilter,
        email: StringFilter,
        role: UserRoleFilter,
        team_id: IdFilter,
        created_at: DateTimeFilter,
    }
);

entity_filter!(
    /// Which teams to list.
    TeamFilter {
        id: IdFilter,
        name: StringFilter,
        created_at: DateTimeFilter,
    }
);

entity_filter!(
    /// Which pipelines to list.
    PipelineFilter {
        id: IdFilter,
        name: StringFilter,
        created_at: DateTimeFilter,
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> engine::Evaluation {
        engine::Evaluation::new(1, chrono::Utc::now())
    }

    /// Every field a GraphQL filter input has, the engine's filter reads under the same
    /// name: an input with every field present (null when not set) and every nested
    /// filter present must parse, or a field added on one side only is caught here.
    #[test]
    fn every_graphql_filter_field_is_one_the_engine_reads() {
        let contact = ContactFilter {
            id: Some(IdFilter::default().into()),
            email: Some(StringFilter::default().into()),
            lifecycle_stage: Some(LifecycleStageFilter::default().into()),
            created_at: Some(DateTimeFilter::default().into()),
            tags: Some(TagsFilter::default().into()),
            company: Some(
                CompanyFilter {
                    size: Some(IntFilter::default()),
                    ..CompanyFilter::default()
                }
                .into(),
            ),
            attributes: Some(vec![
                AttributeFilter {
                    key: "plan".into(),
                    value: Some(StringFilter::default()),
                    ..AttributeFilter::default()
                },
                AttributeFilter {
                    key: "seats".into(),
                    number: Some(FloatFilter::default()),
                    ..AttributeFilter::default()
                },
                AttributeFilter {
                    key: "renewal".into(),
                    date: Some(DateFilter::default()),
                    ..AttributeFilter::default()
                },
                AttributeFilter {
                    key: "active".into(),
                    boolean: Some(true),
                    ..AttributeFilter::default()
                },
                AttributeFilter {
                    key: "modules".into(),
                    options: Some(OptionsFilter {
                        has_any: Some(vec!["crm".into()]),
                        has_all: Some(vec![]),
                        has_none: Some(vec![]),
                    }),
                    ..AttributeFilter::default()
                },
            ]),
            lead_score: Some(
                ScoreFilter {
                    score: Some(FloatFilter::default()),
                    grade: Some(StringFilter::default()),
                }
                .into(),
            ),
            cluster: Some(StringFilter::default().into()),
            plugin_scores: Some(vec![PluginScoreFilter {
                plugin: "fit".into(),
                score: FloatFilter::default(),
            }]),
            churn_risk: Some(
                ChurnRiskFilter {
                    risk: Some(FloatFilter::default()),
                    level: Some(RiskLevelFilter::default()),
                }
                .into(),
            ),
            rfm: Some(
                RfmFilter {
                    segment: Some(RfmSegmentFilter::default()),
                    recency: Some(IntFilter::default()),
                    frequency: Some(IntFilter::default()),
                    monetary: Some(IntFilter::default()),
                }
                .into(),
            ),
            clv: Some(
                ClvFilter {
                    expected_value: Some(FloatFilter::default()),
                    expected_purchases: Some(FloatFilter::default()),
                    probability_alive: Some(FloatFilter::default()),
                }
                .into(),
            ),
            engagement: Some(
                EngagementFilter {
                    opened: Some(MessageActivityFilter::default()),
                    clicked: Some(MessageActivityFilter {
                        campaign_id: Some(ID::from("1")),
                        sequence_id: Some(ID::from("2")),
                        within_days: Some(7),
                    }),
                }
                .into(),
            ),
            events: Some(vec![EventCondition {
                event_type: "visit".into(),
                within_days: Some(30),
                count: Some(IntFilter::default()),
            }]),
            orders: Some(
                OrdersCondition {
                    count: Some(IntFilter::default()),
                    total_minor: Some(IntFilter::default()),
                    within_days: Some(30),
                    product_id: Some(ID::from("3")),
                }
                .into(),
            ),
            deals: Some(DealFilter::default().into()),
            sequence: Some(
                SequenceCondition {
                    id: Some(ID::from("4")),
                    status: Some(EnrollmentStatusFilter::default()),
                }
                .into(),
            ),
            consent: Some(vec![ConsentCondition {
                purpose: ConsentPurpose::Marketing,
                status: ConsentStatusFilter::default(),
            }]),
            not: Some(Box::default()),
            and: Some(vec![ContactFilter::default()]),
            or: Some(vec![ContactFilter::default()]),
            ..ContactFilter::default()
        };
        contact.condition(at()).expect("contact filter");
        DealFilter {
            expected_close_date: Some(DateFilter::default()),
            status: Some(DealStatusFilter::default()),
            ..DealFilter::default()
        }
        .condition(at())
        .expect("deal filter");
        ActivityFilter {
            kind: Some(ActivityKindFilter::default()),
            direction: Some(DirectionFilter::default()),
            ..ActivityFilter::default()
        }
        .condition(at())
        .expect("activity filter");
        TaskFilter {
            status: Some(TaskStatusFilter::default()),
            ..TaskFilter::default()
        }
        .condition(at())
        .expect("task filter");
        InquiryFilter {
            channel: Some(InquiryChannelFilter::default()),
            status: Some(InquiryStatusFilter::default()),
            priority: Some(PriorityFilter::default()),
            ..InquiryFilter::default()
        }
        .condition(at())
        .expect("inquiry filter");
        OrderFilter {
            status: Some(OrderStatusFilter::default()),
            ..OrderFilter::default()
        }
        .condition(at())
        .expect("order filter");
        UserFilter {
            role: Some(UserRoleFilter::default()),
            ..UserFilter::default()
        }
        .condition(at())
        .expect("user filter");
        ProductFilter::default()
            .condition(at())
            .expect("product filter");
        EventFilter::default()
            .condition(at())
            .expect("event filter");
        TeamFilter::default().condition(at()).expect("team filter");
        PipelineFilter::default()
            .condition(at())
            .expect("pipeline filter");
    }

    /// Every value of every enum the GraphQL filters take reads in the engine.
    #[test]
    fn unset_fields_are_not_saved_and_do_not_count_against_the_bounds() {
        let wide = ContactFilter {
            or: Some(
                (0..400)
                    .map(|i| ContactFilter {
                        email: Some(
                            StringFilter {
                                eq: Some(format!("p{i}@example.com")),
                                ..StringFilter::default()
                            }
                            .into(),
                        ),
                        ..ContactFilter::default()
                    })
                    .collect(),
            ),
            ..ContactFilter::default()
        };
        let json = to_json(&wide).expect("json");
        assert_eq!(
            json["or"][0],
            serde_json::json!({"email": {"eq": "p0@example.com"}})
        );
        wide.condition(at())
            .expect("400 alternatives are within the bounds");
    }

    #[test]
    fn every_graphql_enum_value_reads_in_the_engine() {
        fn all<E: async_graphql::EnumType>() -> Vec<E> {
            E::items().iter().map(|i| i.value).collect()
        }
        ContactFilter {
            lifecycle_stage: Some(
                LifecycleStageFilter {
                    in_list: Some(all()),
                    ..Default::default()
                }
                .into(),
            ),
            ..ContactFilter::default()
        }
        .condition(at())
        .expect("lifecycle stages");
        InquiryFilter {
            channel: Some(InquiryChannelFilter {
                in_list: Some(all()),
                ..Default::default()
            }),
            ..InquiryFilter::default()
        }
        .condition(at())
        .expect("inquiry channels");
    }
}

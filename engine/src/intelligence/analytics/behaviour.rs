//! What contacts did and when, loaded once in a compact form so features can be computed
//! "as of" any moment: as of today for scoring, as of the start of a label window for
//! training, without leaking what happened after that moment into the features.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use rapport_schema as s;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, IntoSimpleExpr, QueryFilter, QuerySelect,
};

use crate::error::Result;
use crate::values::{ActivityKind, DealStatus, Direction, FieldKind, OrderStatus};

/// Typed custom fields the models read, at most: the first by key.
pub const MAX_FIELD_FEATURES: u64 = 10;

/// A contact's value of a typed custom field, as a model reads it.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue {
    /// A number (booleans as 1 or 0).
    Number(f64),
    /// An enum option.
    Option(String),
}

/// A typed custom field a model may read: numbers and booleans as numbers, enums as
/// categories. (Text, dates and multi-selects are left out: free text has no levels to
/// learn, and the others need an encoding of their own.)
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FieldFeature {
    /// The field's key.
    pub key: String,
    /// Numbers rather than categories.
    pub numeric: bool,
}

/// Seconds since the epoch; four times smaller than a `DateTime` and plenty precise for
/// day-scale features.
pub type Instant = i64;

/// Days between two instants.
pub fn days(from: Instant, to: Instant) -> f64 {
    (to - from) as f64 / 86_400.0
}

// Column tuples as selected, before they become the types below.
type ContactRow = (
    i64,
    Option<i64>,
    Option<String>,
    String,
    Option<String>,
    serde_json::Value,
    DateTime<Utc>,
);
type CompanyRow = (i64, Option<String>, Option<i32>, Option<String>);
type DealRow = (Option<i64>, String, DateTime<Utc>, Option<DateTime<Utc>>);

/// What kind of touch a row was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Touch {
    /// A meeting.
    Meeting,
    /// A call.
    Call,
    /// An email or chat the contact sent (a reply).
    Inbound,
    /// Any other activity.
    Other,
    /// A page view event.
    PageView,
    /// A form submission event.
    Form,
    /// Any other event.
    Event,
}

/// How a contact answered marketing email (a campaign's or a sequence's message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MailSignal {
    /// They opened a message.
    Open,
    /// They clicked a link in one.
    Click,
    /// They unsubscribed through one.
    Unsubscribe,
    /// A message to them bounced.
    Bounce,
}

/// The names of [`Behaviour::mail_features`], in order: columns of the lead score and
/// churn models, and the features their reasons name.
pub const MAIL_FEATURES: [&str; 4] = ["email_opens", "email_clicks", "unsubscribed", "bounced"];

/// One contact.
#[derive(Clone, Debug, PartialEq)]
pub struct Person {
    /// Contact id.
    pub id: i64,
    /// Their company.
    pub company_id: Option<i64>,
    /// How they came in.
    pub source: Option<String>,
    /// Lifecycle stage, as stored.
    pub lifecycle: String,
    /// Whether a phone number is known.
    pub has_phone: bool,
    /// Number of tags.
    pub tags: usize,
    /// When they were created.
    pub created_at: Instant,
}

/// A company's firmographics.
#[derive(Clone, Debug, PartialEq)]
pub struct Firm {
    /// Industry.
    pub industry: Option<String>,
    /// Head count.
    pub size: Option<i32>,
    /// Country code.
    pub country: Option<String>,
}

/// Everything the contact models read, for one workspace.
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    /// Live contacts (not deleted, not merged away).
    pub people: Vec<Person>,
    /// Companies by id.
    pub firms: HashMap<i64, Firm>,
    /// Touches per contact, in no particular order.
    pub touches: HashMap<i64, Vec<(Touch, Instant)>>,
    /// Email signals per contact (campaigns and sequences), in no particular order.
    pub mail: HashMap<i64, Vec<(MailSignal, Instant)>>,
    /// Creation times of each contact's deals.
    pub deals_opened: HashMap<i64, Vec<Instant>>,
    /// The first time each contact converted: a won deal closed or an order placed.
    pub converted_at: HashMap<i64, Instant>,
    /// Paid orders per contact: (placed at, total in minor units).
    pub orders: HashMap<i64, Vec<(Instant, i64)>>,
    /// The workspace's typed fields a model may read, with each contact's value. A field
    /// keeps no history: its value now stands for every moment, so a field the team
    /// fills in only after a sale would leak the label (choose fields known up front).
    pub fields: BTreeMap<FieldFeature, HashMap<i64, FieldValue>>,
}

impl Behaviour {
    /// Loads the workspace's contacts, companies, activities, events, deals and orders.
    pub async fn load(db: &DatabaseConnection, workspace_id: i64) -> Result<Self> {
        Self::load_for(db, workspace_id, None).await
    }

    /// Loads only what concerns the given contacts (all of them when `None`).
    pub async fn load_for(
        db: &DatabaseConnection,
        workspace_id: i64,
        contacts: Option<&[i64]>,
    ) -> Result<Self> {
        use sea_orm::sea_query::ExprTrait;
        let only = |column: sea_orm::sea_query::SimpleExpr| match contacts {
            Some(ids) => sea_orm::Condition::all().add(column.is_in(ids.iter().copied())),
            None => sea_orm::Condition::all(),
        };
        let mut b = Behaviour::default();
        let people: Vec<ContactRow> = s::contact::Entity::find()
            .select_only()
            .columns([
                s::contact::Column::Id,
                s::contact::Column::CompanyId,
                s::contact::Column::Source,
                s::contact::Column::LifecycleStage,
                s::contact::Column::Phone,
                s::contact::Column::Tags,
                s::contact::Column::CreatedAt,
            ])
            .filter(s::contact::Column::WorkspaceId.eq(workspace_id))
            .filter(only(s::contact::Column::Id.into_simple_expr()))
            .filter(s::contact::Column::DeletedAt.is_null())
            .filter(s::contact::Column::MergedIntoId.is_null())
            .into_tuple()
            .all(db)
            .await?;
        b.people = people
            .into_iter()
            .map(
                |(id, company_id, source, lifecycle, phone, tags, created)| Person {
                    id,
                    company_id,
                    source,
                    lifecycle,
                    has_phone: phone.is_some(),
                    tags: tags.as_array().map_or(0, Vec::len),
                    created_at: created.timestamp(),
                },
            )
            .collect();
        let firms: Vec<CompanyRow> = s::company::Entity::find()
            .select_only()
            .columns([
                s::company::Column::Id,
                s::company::Column::Industry,
                s::company::Column::Size,
                s::company::Column::Country,
            ])
            .filter(s::company::Column::WorkspaceId.eq(workspace_id))
            .into_tuple()
            .all(db)
            .await?;
        b.firms = firms
            .into_iter()
            .map(|(id, industry, size, country)| {
                (
                    id,
                    Firm {
                        industry,
                        size,
                        country,
                    },
                )
            })
            .collect();
        // Activities and events are the big tables: streamed, kept as (kind, second).
        let mut activities = s::activity::Entity::find()
            .select_only()
            .columns([
                s::activity::Column::ContactId,
                s::activity::Column::Kind,
                s::activity::Column::Direction,
                s::activity::Column::OccurredAt,
            ])
            .filter(s::activity::Column::WorkspaceId.eq(workspace_id))
            .filter(only(s::activity::Column::ContactId.into_simple_expr()))
            .filter(s::activity::Column::DeletedAt.is_null())
            .filter(s::activity::Column::ContactId.is_not_null())
            .into_tuple::<(i64, String, Option<String>, DateTime<Utc>)>()
            .stream(db)
            .await?;
        while let Some((contact, kind, direction, at)) = activities.try_next().await? {
            let touch = match (ActivityKind::from_db(&kind), direction.as_deref()) {
                (ActivityKind::Meeting, _) => Touch::Meeting,
                (ActivityKind::Call, _) => Touch::Call,
                (ActivityKind::Email | ActivityKind::Chat, Some(d))
                    if Direction::from_db(d) == Direction::Inbound =>
                {
                    Touch::Inbound
                }
                _ => Touch::Other,
            };
            b.touches
                .entry(contact)
                .or_default()
                .push((touch, at.timestamp()));
        }
        drop(activities);
        let mut events = s::event::Entity::find()
            .select_only()
            .columns([
                s::event::Column::ContactId,
                s::event::Column::EventType,
                s::event::Column::OccurredAt,
            ])
            .filter(s::event::Column::WorkspaceId.eq(workspace_id))
            .filter(only(s::event::Column::ContactId.into_simple_expr()))
            .into_tuple::<(i64, String, DateTime<Utc>)>()
            .stream(db)
            .await?;
        while let Some((contact, kind, at)) = events.try_next().await? {
            let touch = match kind.as_str() {
                "page_view" => Touch::PageView,
                "form_submitted" => Touch::Form,
                _ => Touch::Event,
            };
            b.touches
                .entry(contact)
                .or_default()
                .push((touch, at.timestamp()));
        }
        drop(events);
        b.load_mail(db, workspace_id, contacts).await?;
        let deals: Vec<DealRow> = s::deal::Entity::find()
            .select_only()
            .columns([
                s::deal::Column::ContactId,
                s::deal::Column::Status,
                s::deal::Column::CreatedAt,
                s::deal::Column::ClosedAt,
            ])
            .filter(s::deal::Column::WorkspaceId.eq(workspace_id))
            .filter(only(s::deal::Column::ContactId.into_simple_expr()))
            .filter(s::deal::Column::DeletedAt.is_null())
            .into_tuple()
            .all(db)
            .await?;
        for (contact, status, created, closed) in deals {
            let Some(contact) = contact else { continue };
            b.deals_opened
                .entry(contact)
                .or_default()
                .push(created.timestamp());
            if let (DealStatus::Won, Some(closed)) = (DealStatus::from_db(&status), closed) {
                b.convert(contact, closed.timestamp());
            }
        }
        let orders: Vec<(i64, String, DateTime<Utc>, i64)> = s::order::Entity::find()
            .select_only()
            .columns([
                s::order::Column::ContactId,
                s::order::Column::Status,
                s::order::Column::PlacedAt,
                s::order::Column::TotalMinor,
            ])
            .filter(s::order::Column::WorkspaceId.eq(workspace_id))
            .filter(only(s::order::Column::ContactId.into_simple_expr()))
            .filter(s::order::Column::DeletedAt.is_null())
            .into_tuple()
            .all(db)
            .await?;
        for (contact, status, placed, total) in orders {
            if matches!(
                OrderStatus::from_db(&status),
                OrderStatus::Cancelled | OrderStatus::Refunded
            ) {
                continue;
            }
            b.convert(contact, placed.timestamp());
            b.orders
                .entry(contact)
                .or_default()
                .push((placed.timestamp(), total));
        }
        b.fields = load_fields(db, workspace_id, contacts, None).await?;
        Ok(b)
    }

    /// Reads the email signals: each campaign message's first open, first click,
    /// unsubscribe and bounce, and each sequence message's first open and click and its
    /// bounce (at its send).
    async fn load_mail(
        &mut self,
        db: &DatabaseConnection,
        workspace_id: i64,
        contacts: Option<&[i64]>,
    ) -> Result<()> {
        use s::campaign_message as cm;
        use s::sequence_message as sm;
        type Stamp = Option<DateTime<Utc>>;
        let mut q = cm::Entity::find()
            .select_only()
            .columns([
                cm::Column::ContactId,
                cm::Column::OpenedAt,
                cm::Column::ClickedAt,
                cm::Column::UnsubscribedAt,
                cm::Column::BouncedAt,
            ])
            .filter(cm::Column::WorkspaceId.eq(workspace_id))
            .filter(
                sea_orm::Condition::any()
                    .add(cm::Column::OpenedAt.is_not_null())
                    .add(cm::Column::UnsubscribedAt.is_not_null())
                    .add(cm::Column::BouncedAt.is_not_null()),
            );
        if let Some(ids) = contacts {
            q = q.filter(cm::Column::ContactId.is_in(ids.iter().copied()));
        }
        let mut rows = q
            .into_tuple::<(i64, Stamp, Stamp, Stamp, Stamp)>()
            .stream(db)
            .await?;
        while let Some((contact, opened, clicked, unsubscribed, bounced)) = rows.try_next().await? {
            self.mail_signals(
                contact,
                [
                    (MailSignal::Open, opened),
                    (MailSignal::Click, clicked),
                    (MailSignal::Unsubscribe, unsubscribed),
                    (MailSignal::Bounce, bounced),
                ],
            );
        }
        drop(rows);
        let mut q = sm::Entity::find()
            .select_only()
            .columns([
                sm::Column::ContactId,
                sm::Column::OpenedAt,
                sm::Column::ClickedAt,
                sm::Column::State,
                sm::Column::SentAt,
            ])
            .filter(sm::Column::WorkspaceId.eq(workspace_id))
            .filter(
                sea_orm::Condition::any()
                    .add(sm::Column::OpenedAt.is_not_null())
                    .add(sm::Column::State.eq("bounced")),
            );
        if let Some(ids) = contacts {
            q = q.filter(sm::Column::ContactId.is_in(ids.iter().copied()));
        }
        let mut rows = q
            .into_tuple::<(i64, Stamp, Stamp, String, Stamp)>()
            .stream(db)
            .await?;
        while let Some((contact, opened, clicked, state, sent)) = rows.try_next().await? {
            let bounced = (state == "bounced").then_some(sent).flatten();
            self.mail_signals(
                contact,
                [
                    (MailSignal::Open, opened),
                    (MailSignal::Click, clicked),
                    (MailSignal::Unsubscribe, None),
                    (MailSignal::Bounce, bounced),
                ],
            );
        }
        Ok(())
    }

    fn mail_signals(&mut self, contact: i64, signals: [(MailSignal, Option<DateTime<Utc>>); 4]) {
        for (signal, at) in signals {
            if let Some(at) = at {
                self.mail
                    .entry(contact)
                    .or_default()
                    .push((signal, at.timestamp()));
            }
        }
    }

    /// A contact's email features as of `as_of` (nothing after it counts), in
    /// [`MAIL_FEATURES`] order: opens and clicks, each weighed by `decay` of its age like
    /// other engagement, and whether they had unsubscribed or bounced (1 or 0).
    pub fn mail_features(
        &self,
        contact: i64,
        as_of: Instant,
        decay: impl Fn(Instant) -> f64,
    ) -> [f64; 4] {
        let mut out = [0.0; 4];
        for &(signal, at) in self.mail.get(&contact).into_iter().flatten() {
            if at >= as_of {
                continue;
            }
            match signal {
                MailSignal::Open => out[0] += decay(at),
                MailSignal::Click => out[1] += decay(at),
                MailSignal::Unsubscribe => out[2] = 1.0,
                MailSignal::Bounce => out[3] = 1.0,
            }
        }
        out
    }

    fn convert(&mut self, contact: i64, at: Instant) {
        let first = self.converted_at.entry(contact).or_insert(at);
        *first = (*first).min(at);
    }
}

/// The workspace's number, boolean and enum fields with the given contacts' values
/// (everyone's when `None`): those keyed `only`, or else the first [`MAX_FIELD_FEATURES`]
/// by key (what training reads; scoring asks for what its version was trained on).
pub async fn load_fields(
    db: &DatabaseConnection,
    workspace_id: i64,
    contacts: Option<&[i64]>,
    only: Option<&[String]>,
) -> Result<BTreeMap<FieldFeature, HashMap<i64, FieldValue>>> {
    use sea_orm::QueryOrder;
    let mut declared = s::custom_field::Entity::find()
        .filter(s::custom_field::Column::WorkspaceId.eq(workspace_id));
    if let Some(keys) = only {
        declared = declared.filter(s::custom_field::Column::Key.is_in(keys.iter().cloned()));
    }
    let declared = declared
        .filter(s::custom_field::Column::Kind.is_in([
            FieldKind::Number.as_str(),
            FieldKind::Boolean.as_str(),
            FieldKind::Enum.as_str(),
        ]))
        .order_by_asc(s::custom_field::Column::Key)
        .limit(MAX_FIELD_FEATURES)
        .all(db)
        .await?;
    let mut out = BTreeMap::new();
    for field in declared {
        let numeric = FieldKind::from_db(&field.kind) != FieldKind::Enum;
        let mut select = s::contact_field_value::Entity::find()
            .filter(s::contact_field_value::Column::FieldId.eq(field.id));
        if let Some(ids) = contacts {
            select =
                select.filter(s::contact_field_value::Column::ContactId.is_in(ids.iter().copied()));
        }
        let mut rows = select.stream(db).await?;
        let mut values = HashMap::new();
        while let Some(v) = rows.try_next().await? {
            let value = if numeric {
                v.number_value.map(FieldValue::Number)
            } else {
                v.text_value.map(FieldValue::Option)
            };
            if let Some(value) = value {
                values.insert(v.contact_id, value);
            }
        }
        out.insert(
            FieldFeature {
                key: field.key,
                numeric,
            },
            values,
        );
    }
    Ok(out)
}

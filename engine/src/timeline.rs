//! A contact's timeline, the 360° view: what every room records about the contact —
//! activities, orders, inquiries, tasks, events, lifecycle changes, consent records, and
//! the campaign, sequence and transactional email it was sent (with opens and clicks) —
//! merged by time, newest first. It sits at the top of the crate because it names every
//! room; it reads their tables through the schema, never their code.

use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::platform::pagination::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page};
use crate::platform::records::{self, Deleted};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use rapport_schema::{
    activity, campaign_message, consent_event, contact, event, inquiry, lifecycle_change, order,
    sequence_message, task, transactional_message,
};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Select,
};

/// One entry of a timeline.
#[derive(Clone, Debug)]
pub enum TimelineItem {
    /// An email, call, meeting, note, chat or social touch.
    Activity(activity::Model),
    /// A purchase.
    Order(order::Model),
    /// A question or request.
    Inquiry(inquiry::Model),
    /// A follow-up.
    Task(task::Model),
    /// Something the contact did (a page view, a form).
    Event(event::Model),
    /// The lifecycle stage changing.
    LifecycleChange(lifecycle_change::Model),
    /// A consent record (granted, withdrawn, ...).
    Consent(consent_event::Model),
    /// A campaign email sent to the contact.
    CampaignEmail(campaign_message::Model),
    /// A sequence email sent to the contact.
    SequenceEmail(sequence_message::Model),
    /// A transactional email sent to the contact.
    TransactionalEmail(transactional_message::Model),
}

impl TimelineItem {
    /// When it happened: occurred, placed, opened, created (tasks), changed, recorded,
    /// sent (email).
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::Activity(a) => a.occurred_at,
            Self::Order(o) => o.placed_at,
            Self::Inquiry(i) => i.opened_at,
            Self::Task(t) => t.created_at,
            Self::Event(e) => e.occurred_at,
            Self::LifecycleChange(c) => c.changed_at,
            Self::Consent(c) => c.recorded_at,
            // Only sent email is listed.
            Self::CampaignEmail(m) => m.sent_at.unwrap_or(m.queued_at),
            Self::SequenceEmail(m) => m.sent_at.unwrap_or_default(),
            Self::TransactionalEmail(m) => m.sent_at.unwrap_or(m.created_at),
        }
    }

    // Ties on time are broken by kind, then id, so the order is total.
    fn rank(&self) -> u8 {
        match self {
            Self::Activity(_) => 0,
            Self::Order(_) => 1,
            Self::Inquiry(_) => 2,
            Self::Task(_) => 3,
            Self::Event(_) => 4,
            Self::LifecycleChange(_) => 5,
            Self::Consent(_) => 6,
            Self::CampaignEmail(_) => 7,
            Self::SequenceEmail(_) => 8,
            Self::TransactionalEmail(_) => 9,
        }
    }

    fn id(&self) -> i64 {
        match self {
            Self::Activity(a) => a.id,
            Self::Order(o) => o.id,
            Self::Inquiry(i) => i.id,
            Self::Task(t) => t.id,
            Self::Event(e) => e.id,
            Self::LifecycleChange(c) => c.id,
            Self::Consent(c) => c.id,
            Self::CampaignEmail(m) => m.id,
            Self::SequenceEmail(m) => m.id,
            Self::TransactionalEmail(m) => m.id,
        }
    }

    fn key(&self) -> (DateTime<Utc>, u8, i64) {
        (self.at(), self.rank(), self.id())
    }

    fn cursor(&self) -> String {
        let body = serde_json::to_vec(&self.key()).expect("cursor serialises");
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(body)
    }
}

fn decode(cursor: &str) -> Result<(DateTime<Utc>, u8, i64)> {
    let bad = || EngineError::invalid("after", "not a timeline cursor");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

/// Rows of one table that come after the cursor in newest-first order.
fn older_than<C: ColumnTrait>(
    time: C,
    id: C,
    rank: u8,
    cursor: &Option<(DateTime<Utc>, u8, i64)>,
) -> Condition {
    let Some((t, r, cid)) = cursor else {
        return Condition::all();
    };
    match rank.cmp(r) {
        std::cmp::Ordering::Less => Condition::all().add(time.lte(*t)),
        std::cmp::Ordering::Greater => Condition::all().add(time.lt(*t)),
        std::cmp::Ordering::Equal => Condition::any()
            .add(time.lt(*t))
            .add(Condition::all().add(time.eq(*t)).add(id.lt(*cid))),
    }
}

/// The newest `n` rows of `select` past the cursor, by (`time`, `id`) descending.
async fn newest<E: EntityTrait>(
    db: &impl ConnectionTrait,
    select: Select<E>,
    (time, id): (E::Column, E::Column),
    rank: u8,
    cursor: &Option<(DateTime<Utc>, u8, i64)>,
    n: usize,
) -> Result<Vec<E::Model>> {
    Ok(select
        .filter(older_than(time, id, rank, cursor))
        .order_by_desc(time)
        .order_by_desc(id)
        .limit(n as u64)
        .all(db)
        .await?)
}

/// Whose timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    /// One contact's.
    Contact(i64),
    /// A company's: everything about its live contacts, and the activities of its deals.
    Company(i64),
}

/// Rows of a table whose contact column `col` is the subject's (a contact, or any live
/// contact of the company).
fn about<C: ColumnTrait>(col: C, subject: Subject, ws: i64) -> Condition {
    match subject {
        Subject::Contact(id) => Condition::all().add(col.eq(id)),
        Subject::Company(id) => {
            Condition::all().add(col.in_subquery(crate::crm::companies::people_of(ws, id)))
        }
    }
}

/// The first `first` entries of the subject's timeline after `after`, newest first.
pub async fn page(
    db: &impl ConnectionTrait,
    who: &Principal,
    subject: Subject,
    first: Option<usize>,
    after: Option<&str>,
) -> Result<Page<TimelineItem, String>> {
    let ws = who.workspace_id;
    match subject {
        Subject::Contact(id) => {
            records::get::<contact::Entity>(db, ws, id).await?;
        }
        Subject::Company(id) => {
            records::get::<rapport_schema::company::Entity>(db, ws, id).await?;
        }
    }
    let n = first.unwrap_or(DEFAULT_PAGE_SIZE);
    if n > MAX_PAGE_SIZE {
        return Err(EngineError::invalid(
            "first",
            format!("at most {MAX_PAGE_SIZE} entries per page"),
        ));
    }
    let cursor = after.map(decode).transpose()?;
    let take = n + 1;
    let c = subject;
    let mut items: Vec<TimelineItem> = Vec::new();
    macro_rules! add {
        ($variant:ident, $select:expr, $time:expr, $id:expr, $rank:expr) => {
            items.extend(
                newest(db, $select, ($time, $id), $rank, &cursor, take)
                    .await?
                    .into_iter()
                    .map(TimelineItem::$variant),
            )
        };
    }
    {
        use activity::Column as A;
        add!(
            Activity,
            records::scoped::<activity::Entity>(ws, Deleted::Exclude).filter(match c {
                Subject::Contact(_) => about(A::ContactId, c, ws),
                Subject::Company(id) => Condition::any()
                    .add(about(A::ContactId, c, ws))
                    .add(A::DealId.in_subquery(crate::crm::companies::deals_of(ws, id))),
            }),
            A::OccurredAt,
            A::Id,
            0
        );
    }
    {
        use order::Column as O;
        add!(
            Order,
            records::scoped::<order::Entity>(ws, Deleted::Exclude).filter(about(
                O::ContactId,
                c,
                ws
            )),
            O::PlacedAt,
            O::Id,
            1
        );
    }
    {
        use inquiry::Column as I;
        add!(
            Inquiry,
            records::scoped::<inquiry::Entity>(ws, Deleted::Exclude).filter(about(
                I::ContactId,
                c,
                ws
            )),
            I::OpenedAt,
            I::Id,
            2
        );
    }
    {
        use task::Column as T;
        add!(
            Task,
            records::scoped::<task::Entity>(ws, Deleted::Exclude).filter(about(
                T::ContactId,
                c,
                ws
            )),
            T::CreatedAt,
            T::Id,
            3
        );
    }
    {
        use event::Column as E;
        add!(
            Event,
            event::Entity::find()
                .filter(E::WorkspaceId.eq(ws))
                .filter(about(E::ContactId, c, ws)),
            E::OccurredAt,
            E::Id,
            4
        );
    }
    {
        use lifecycle_change::Column as L;
        add!(
            LifecycleChange,
            lifecycle_change::Entity::find()
                .filter(L::WorkspaceId.eq(ws))
                .filter(about(L::ContactId, c, ws)),
            L::ChangedAt,
            L::Id,
            5
        );
    }
    {
        use consent_event::Column as K;
        add!(
            Consent,
            consent_event::Entity::find()
                .filter(K::WorkspaceId.eq(ws))
                .filter(about(K::ContactId, c, ws)),
            K::RecordedAt,
            K::Id,
            6
        );
    }
    {
        use campaign_message::Column as M;
        add!(
            CampaignEmail,
            campaign_message::Entity::find()
                .filter(M::WorkspaceId.eq(ws))
                .filter(about(M::ContactId, c, ws))
                .filter(M::SentAt.is_not_null()),
            M::SentAt,
            M::Id,
            7
        );
    }
    {
        use sequence_message::Column as M;
        add!(
            SequenceEmail,
            sequence_message::Entity::find()
                .filter(M::WorkspaceId.eq(ws))
                .filter(about(M::ContactId, c, ws))
                .filter(M::SentAt.is_not_null()),
            M::SentAt,
            M::Id,
            8
        );
    }
    {
        use transactional_message::Column as M;
        add!(
            TransactionalEmail,
            transactional_message::Entity::find()
                .filter(M::WorkspaceId.eq(ws))
                .filter(about(M::ContactId, c, ws))
                .filter(M::SentAt.is_not_null()),
            M::SentAt,
            M::Id,
            9
        );
    }
    items.sort_by_key(|i| std::cmp::Reverse(i.key()));
    let has_next_page = items.len() > n;
    items.truncate(n);
    Ok(Page {
        edges: items.into_iter().map(|i| (i.cursor(), i)).collect(),
        has_next_page,
        has_previous_page: after.is_some(),
    })
}

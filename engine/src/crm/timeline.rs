//! A contact's timeline: activities, orders, inquiries and tasks merged by time, newest
//! first (the 360° view).

use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::platform::pagination::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page};
use crate::platform::records::{self, Deleted, Record};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use rapport_schema::{activity, contact, inquiry, order, task};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, QueryFilter, QueryOrder, QuerySelect};

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
}

impl TimelineItem {
    /// When it happened: occurred, placed, opened, or (tasks) created.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::Activity(a) => a.occurred_at,
            Self::Order(o) => o.placed_at,
            Self::Inquiry(i) => i.opened_at,
            Self::Task(t) => t.created_at,
        }
    }

    // Ties on time are broken by kind, then id, so the order is total.
    fn rank(&self) -> u8 {
        match self {
            Self::Activity(_) => 0,
            Self::Order(_) => 1,
            Self::Inquiry(_) => 2,
            Self::Task(_) => 3,
        }
    }

    fn id(&self) -> i64 {
        match self {
            Self::Activity(a) => a.id,
            Self::Order(o) => o.id,
            Self::Inquiry(i) => i.id,
            Self::Task(t) => t.id,
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

#[allow(clippy::too_many_arguments)] // one call per table; a struct would only rename them
async fn newest<E, C>(
    db: &impl ConnectionTrait,
    ws: i64,
    contact: C,
    time: C,
    id: C,
    rank: u8,
    cursor: &Option<(DateTime<Utc>, u8, i64)>,
    contact_id: i64,
    n: usize,
) -> Result<Vec<E::Model>>
where
    E: Record<Column = C>,
    C: ColumnTrait,
    E::Model: Sync,
{
    Ok(records::scoped::<E>(ws, Deleted::Exclude)
        .filter(contact.eq(contact_id))
        .filter(older_than(time, id, rank, cursor))
        .order_by_desc(time)
        .order_by_desc(id)
        .limit(n as u64)
        .all(db)
        .await?)
}

/// The first `first` entries of the contact's timeline after `after`, newest first.
pub async fn page(
    db: &impl ConnectionTrait,
    who: &Principal,
    contact_id: i64,
    first: Option<usize>,
    after: Option<&str>,
) -> Result<Page<TimelineItem, String>> {
    let ws = who.workspace_id;
    records::get::<contact::Entity>(db, ws, contact_id).await?;
    let n = first.unwrap_or(DEFAULT_PAGE_SIZE);
    if n > MAX_PAGE_SIZE {
        return Err(EngineError::invalid(
            "first",
            format!("at most {MAX_PAGE_SIZE} entries per page"),
        ));
    }
    let cursor = after.map(decode).transpose()?;
    let take = n + 1;
    let mut items: Vec<TimelineItem> = Vec::new();
    items.extend(
        newest::<activity::Entity, _>(
            db,
            ws,
            activity::Column::ContactId,
            activity::Column::OccurredAt,
            activity::Column::Id,
            0,
            &cursor,
            contact_id,
            take,
        )
        .await?
        .into_iter()
        .map(TimelineItem::Activity),
    );
    items.extend(
        newest::<order::Entity, _>(
            db,
            ws,
            order::Column::ContactId,
            order::Column::PlacedAt,
            order::Column::Id,
            1,
            &cursor,
            contact_id,
            take,
        )
        .await?
        .into_iter()
        .map(TimelineItem::Order),
    );
    items.extend(
        newest::<inquiry::Entity, _>(
            db,
            ws,
            inquiry::Column::ContactId,
            inquiry::Column::OpenedAt,
            inquiry::Column::Id,
            2,
            &cursor,
            contact_id,
            take,
        )
        .await?
        .into_iter()
        .map(TimelineItem::Inquiry),
    );
    items.extend(
        newest::<task::Entity, _>(
            db,
            ws,
            task::Column::ContactId,
            task::Column::CreatedAt,
            task::Column::Id,
            3,
            &cursor,
            contact_id,
            take,
        )
        .await?
        .into_iter()
        .map(TimelineItem::Task),
    );
    items.sort_by_key(|i| std::cmp::Reverse(i.key()));
    let has_next_page = items.len() > n;
    items.truncate(n);
    Ok(Page {
        edges: items.into_iter().map(|i| (i.cursor(), i)).collect(),
        has_next_page,
        has_previous_page: after.is_some(),
    })
}

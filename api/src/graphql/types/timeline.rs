//! A contact's or a company's timeline, as a page of mixed items.

use super::*;
use async_graphql::Enum;

/// One entry of a contact's timeline.
#[derive(Union)]
pub enum TimelineItem {
    Activity(Activity),
    Order(Order),
    Inquiry(Inquiry),
    Task(Task),
    Event(Event),
    LifecycleChange(LifecycleChange),
    Consent(crate::graphql::consent::ConsentRecord),
    Email(EmailSent),
}

impl From<rapport_engine::timeline::TimelineItem> for TimelineItem {
    fn from(i: rapport_engine::timeline::TimelineItem) -> Self {
        use rapport_engine::timeline::TimelineItem as T;
        match i {
            T::Activity(a) => Self::Activity(Activity(a)),
            T::Order(o) => Self::Order(Order(o)),
            T::Inquiry(q) => Self::Inquiry(Inquiry(q)),
            T::Task(t) => Self::Task(Task(t)),
            T::Event(e) => Self::Event(Event(e)),
            T::LifecycleChange(c) => Self::LifecycleChange(LifecycleChange(c)),
            T::Consent(c) => Self::Consent(crate::graphql::consent::ConsentRecord(c)),
            T::CampaignEmail(m) => Self::Email(EmailSent {
                id: m.id,
                kind: EmailKind::Campaign,
                source_id: m.campaign_id,
                state: m.state,
                sent_at: m.sent_at,
                opened_at: m.opened_at,
                clicked_at: m.clicked_at,
                opens: m.opens,
                clicks: m.clicks,
            }),
            T::SequenceEmail(m) => Self::Email(EmailSent {
                id: m.id,
                kind: EmailKind::Sequence,
                source_id: m.sequence_id,
                state: m.state,
                sent_at: m.sent_at,
                opened_at: m.opened_at,
                clicked_at: m.clicked_at,
                opens: m.opens,
                clicks: m.clicks,
            }),
            T::TransactionalEmail(m) => Self::Email(EmailSent {
                id: m.id,
                kind: EmailKind::Transactional,
                source_id: m.template_id,
                state: m.state,
                sent_at: m.sent_at,
                opened_at: m.opened_at,
                clicked_at: m.clicked_at,
                opens: m.opens,
                clicks: m.clicks,
            }),
        }
    }
}

/// A change of a contact's lifecycle stage.
pub struct LifecycleChange(pub s::lifecycle_change::Model);

#[Object]
impl LifecycleChange {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    /// The stage before (none when the contact was created).
    async fn from_stage(&self) -> Option<LifecycleStage> {
        self.0.from_stage.as_deref().map(LifecycleStage::from_db)
    }
    async fn to_stage(&self) -> LifecycleStage {
        LifecycleStage::from_db(&self.0.to_stage)
    }
    async fn changed_at(&self) -> DateTime<Utc> {
        self.0.changed_at
    }
}

/// What sent an email.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum EmailKind {
    Campaign,
    Sequence,
    Transactional,
}

/// An email Rapport sent the contact, with what became of it.
pub struct EmailSent {
    id: i64,
    kind: EmailKind,
    source_id: i64,
    state: String,
    sent_at: Option<DateTime<Utc>>,
    opened_at: Option<DateTime<Utc>>,
    clicked_at: Option<DateTime<Utc>>,
    opens: i32,
    clicks: i32,
}

#[Object]
impl EmailSent {
    /// The message's id in its kind (a campaign, sequence or transactional message).
    async fn id(&self) -> ID {
        to_id(self.id)
    }
    async fn kind(&self) -> EmailKind {
        self.kind
    }
    /// The campaign, sequence or (transactional) template it came from.
    async fn source_id(&self) -> ID {
        to_id(self.source_id)
    }
    async fn state(&self) -> MessageState {
        MessageState::from_db(&self.state)
    }
    async fn sent_at(&self) -> Option<DateTime<Utc>> {
        self.sent_at
    }
    async fn opened_at(&self) -> Option<DateTime<Utc>> {
        self.opened_at
    }
    async fn clicked_at(&self) -> Option<DateTime<Utc>> {
        self.clicked_at
    }
    async fn opens(&self) -> i32 {
        self.opens
    }
    async fn clicks(&self) -> i32 {
        self.clicks
    }
}

/// Paging state of a list.
#[derive(SimpleObject)]
#[graphql(name = "TimelinePageInfo")]
pub struct PageInfoOut {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

/// A timeline entry with its cursor and time.
#[derive(SimpleObject)]
pub struct TimelineEdge {
    pub cursor: String,
    pub occurred_at: DateTime<Utc>,
    pub node: TimelineItem,
}

/// A page of a contact's timeline.
#[derive(SimpleObject)]
pub struct TimelineConnection {
    pub page_info: PageInfoOut,
    pub edges: Vec<TimelineEdge>,
}

/// A page of `subject`'s timeline, newest first.
pub async fn connection(
    ctx: &Context<'_>,
    subject: rapport_engine::timeline::Subject,
    first: Option<i32>,
    after: Option<String>,
) -> Result<TimelineConnection> {
    let who = principal(ctx)?;
    let first = match first {
        Some(n) if n < 0 => return Err(crate::error::invalid("first", "must not be negative")),
        other => other.map(|n| n as usize),
    };
    let page = rapport_engine::timeline::page(
        ctx.data_unchecked::<sea_orm::DatabaseConnection>(),
        who,
        subject,
        first,
        after.as_deref(),
    )
    .await
    .gql()?;
    Ok(TimelineConnection {
        page_info: PageInfoOut {
            has_next_page: page.has_next_page,
            has_previous_page: page.has_previous_page,
            start_cursor: page.edges.first().map(|(c, _)| c.clone()),
            end_cursor: page.edges.last().map(|(c, _)| c.clone()),
        },
        edges: page
            .edges
            .into_iter()
            .map(|(cursor, item)| TimelineEdge {
                cursor,
                occurred_at: item.at(),
                node: TimelineItem::from(item),
            })
            .collect(),
    })
}

//! A contact's timeline, as a page of mixed items.

use super::*;

/// One entry of a contact's timeline.
#[derive(Union)]
pub enum TimelineItem {
    Activity(Activity),
    Order(Order),
    Inquiry(Inquiry),
    Task(Task),
}

impl From<rapport_engine::crm::timeline::TimelineItem> for TimelineItem {
    fn from(i: rapport_engine::crm::timeline::TimelineItem) -> Self {
        use rapport_engine::crm::timeline::TimelineItem as T;
        match i {
            T::Activity(a) => Self::Activity(Activity(a)),
            T::Order(o) => Self::Order(Order(o)),
            T::Inquiry(q) => Self::Inquiry(Inquiry(q)),
            T::Task(t) => Self::Task(Task(t)),
        }
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

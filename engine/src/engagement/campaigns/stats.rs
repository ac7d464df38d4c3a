//! What a campaign did: per-variant counts and rates, and its messages.

use super::*;

/// Counts of one variant (or of the held-back rest, `variant_id = None`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VariantStats {
    /// The variant.
    pub variant_id: Option<i64>,
    /// Messages assigned.
    pub recipients: u64,
    /// Still waiting (queued, held or being sent).
    pub pending: u64,
    /// Accepted by the mail server.
    pub sent: u64,
    /// Not sent: consent, suppression, a deleted contact.
    pub skipped: u64,
    /// Refused by the mail server.
    pub failed: u64,
    /// Handed to the mail server, but whether it took them is not known (the connection
    /// broke mid-way, or the worker died before recording the answer); never sent again.
    pub unknown: u64,
    /// Bounced after sending.
    pub bounced: u64,
    /// Recipients who opened (or clicked) at least once.
    pub unique_opens: u64,
    /// Recipients who clicked at least once.
    pub unique_clicks: u64,
    /// Recipients who unsubscribed from it.
    pub unsubscribes: u64,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

impl VariantStats {
    /// Messages that reached the server: sent, and later bounced.
    pub fn delivered_or_bounced(&self) -> u64 {
        self.sent + self.bounced
    }
    /// Unique opens per sent message.
    pub fn open_rate(&self) -> f64 {
        ratio(self.unique_opens, self.delivered_or_bounced())
    }
    /// Unique clicks per sent message.
    pub fn click_rate(&self) -> f64 {
        ratio(self.unique_clicks, self.delivered_or_bounced())
    }
    /// Bounces per sent message.
    pub fn bounce_rate(&self) -> f64 {
        ratio(self.bounced, self.delivered_or_bounced())
    }
    /// Unsubscribes per sent message.
    pub fn unsubscribe_rate(&self) -> f64 {
        ratio(self.unsubscribes, self.delivered_or_bounced())
    }
    fn add(&mut self, o: &VariantStats) {
        self.recipients += o.recipients;
        self.pending += o.pending;
        self.sent += o.sent;
        self.skipped += o.skipped;
        self.failed += o.failed;
        self.unknown += o.unknown;
        self.bounced += o.bounced;
        self.unique_opens += o.unique_opens;
        self.unique_clicks += o.unique_clicks;
        self.unsubscribes += o.unsubscribes;
    }
}

/// Per-variant counts of a campaign (held-back messages under `None`), in one grouped
/// query.
pub async fn stats(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    id: i64,
) -> Result<Vec<VariantStats>> {
    type Row = (Option<i64>, String, i64, i64, i64, i64);
    let rows: Vec<Row> = campaign_message::Entity::find()
        .select_only()
        .column(campaign_message::Column::VariantId)
        .column(campaign_message::Column::State)
        .column_as(Expr::col(campaign_message::Column::Id).count(), "n")
        .column_as(
            Expr::col(campaign_message::Column::OpenedAt).count(),
            "opened",
        )
        .column_as(
            Expr::col(campaign_message::Column::ClickedAt).count(),
            "clicked",
        )
        .column_as(
            Expr::col(campaign_message::Column::UnsubscribedAt).count(),
            "unsubscribed",
        )
        .filter(campaign_message::Column::WorkspaceId.eq(workspace_id))
        .filter(campaign_message::Column::CampaignId.eq(id))
        .group_by(campaign_message::Column::VariantId)
        .group_by(campaign_message::Column::State)
        .into_tuple()
        .all(db)
        .await?;
    let mut by: HashMap<Option<i64>, VariantStats> = HashMap::new();
    for (variant, state, n, opened, clicked, unsubscribed) in rows {
        let s = by.entry(variant).or_insert_with(|| VariantStats {
            variant_id: variant,
            ..Default::default()
        });
        let n = n as u64;
        s.recipients += n;
        match MessageState::from_db(&state) {
            MessageState::Queued | MessageState::Held | MessageState::Sending => s.pending += n,
            MessageState::Sent => s.sent += n,
            MessageState::Skipped => s.skipped += n,
            MessageState::Failed => s.failed += n,
            MessageState::Unknown => s.unknown += n,
            MessageState::Bounced => s.bounced += n,
            MessageState::Cancelled => {}
        }
        s.unique_opens += opened as u64;
        s.unique_clicks += clicked as u64;
        s.unsubscribes += unsubscribed as u64;
    }
    let mut out: Vec<VariantStats> = by.into_values().collect();
    out.sort_by_key(|s| (s.variant_id.is_none(), s.variant_id));
    Ok(out)
}

/// The sum of per-variant counts.
pub fn total(stats: &[VariantStats]) -> VariantStats {
    let mut t = VariantStats::default();
    for s in stats {
        t.add(s);
    }
    t
}

/// Messages of a campaign, optionally in one state, by id after `after`.
pub async fn messages(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    id: i64,
    state: Option<MessageState>,
    after: Option<i64>,
    limit: u64,
) -> Result<Vec<campaign_message::Model>> {
    let mut q = campaign_message::Entity::find()
        .filter(campaign_message::Column::WorkspaceId.eq(workspace_id))
        .filter(campaign_message::Column::CampaignId.eq(id));
    if let Some(state) = state {
        q = q.filter(campaign_message::Column::State.eq(state.as_str()));
    }
    if let Some(after) = after {
        q = q.filter(campaign_message::Column::Id.gt(after));
    }
    Ok(q.order_by_asc(campaign_message::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

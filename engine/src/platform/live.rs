//! Live notices: the changes GraphQL subscriptions follow (a deal moved, an activity
//! added, a score changed, a campaign's progress), told to every process that serves
//! subscribers, not only the one that made the change.
//!
//! A room publishes a [`Notice`] in the transaction of its change. On PostgreSQL that is a
//! `NOTIFY`, which the database delivers when — and only if — the transaction commits, to
//! every process listening. On SQLite, which has no such channel, it is a row in
//! `live_notices`; SQLite writes one transaction at a time, so row ids follow commit order
//! and a process that reads past the last id it saw misses nothing that committed. Either
//! way a notice carries ids only: a subscriber reads the object as it stands.

use std::sync::Arc;
use std::time::Duration;

use rapport_schema::live_notice;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use tokio::sync::broadcast;

use crate::clock;
use crate::error::{EngineError, Result};
use crate::platform::health::{self, Backoff, Health};

/// What changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topic {
    /// A deal; the scope is its pipeline.
    Deal,
    /// An activity added; the scope is its contact.
    Activity,
    /// A contact's score; the scope is the contact.
    Score,
    /// A campaign's state or counts; the scope is the campaign.
    Campaign,
}

impl Topic {
    fn as_str(self) -> &'static str {
        match self {
            Topic::Deal => "deal",
            Topic::Activity => "activity",
            Topic::Score => "score",
            Topic::Campaign => "campaign",
        }
    }

    fn parse(text: &str) -> Option<Topic> {
        Some(match text {
            "deal" => Topic::Deal,
            "activity" => Topic::Activity,
            "score" => Topic::Score,
            "campaign" => Topic::Campaign,
            _ => return None,
        })
    }
}

/// One change, by ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Whose.
    pub workspace_id: i64,
    /// Of what kind.
    pub topic: Topic,
    /// What subscribers filter on: the pipeline, contact or campaign.
    pub scope_id: i64,
    /// The object that changed.
    pub object_id: i64,
}

impl Notice {
    fn encode(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.workspace_id,
            self.topic.as_str(),
            self.scope_id,
            self.object_id
        )
    }

    fn decode(text: &str) -> Option<Notice> {
        let mut parts = text.split(':');
        let notice = Notice {
            workspace_id: parts.next()?.parse().ok()?,
            topic: Topic::parse(parts.next()?)?,
            scope_id: parts.next()?.parse().ok()?,
            object_id: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(notice)
    }
}

/// The PostgreSQL channel notices travel on.
const CHANNEL: &str = "rapport_live";

/// Publishes `notice` in the caller's transaction: subscribers hear of it once it commits.
pub async fn publish(db: &impl ConnectionTrait, notice: Notice) -> Result<()> {
    match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            db.execute_raw(sea_orm::Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [CHANNEL.into(), notice.encode().into()],
            ))
            .await?;
        }
        _ => {
            live_notice::ActiveModel {
                workspace_id: Set(notice.workspace_id),
                topic: Set(notice.topic.as_str().to_string()),
                scope_id: Set(notice.scope_id),
                object_id: Set(notice.object_id),
                created_at: Set(clock::now()),
                ..Default::default()
            }
            .insert(db)
            .await?;
        }
    }
    Ok(())
}

/// Publishes many notices in the caller's transaction, in one statement.
pub async fn publish_many(db: &impl ConnectionTrait, notices: &[Notice]) -> Result<()> {
    if notices.is_empty() {
        return Ok(());
    }
    match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            // Encoded notices hold digits, letters and colons only: a comma separates them.
            let payloads: Vec<String> = notices.iter().map(Notice::encode).collect();
            db.execute_raw(sea_orm::Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                "SELECT pg_notify($1, p) FROM unnest(string_to_array($2, ',')) AS p",
                [CHANNEL.into(), payloads.join(",").into()],
            ))
            .await?;
        }
        _ => {
            let now = clock::now();
            let rows = notices.iter().map(|n| live_notice::ActiveModel {
                workspace_id: Set(n.workspace_id),
                topic: Set(n.topic.as_str().to_string()),
                scope_id: Set(n.scope_id),
                object_id: Set(n.object_id),
                created_at: Set(now),
                ..Default::default()
            });
            live_notice::Entity::insert_many(rows)
                .exec_without_returning(db)
                .await?;
        }
    }
    Ok(())
}

/// The notices this process hears, for its subscribers (cheap to clone). Each topic has
/// a channel of its own, so a burst of one (a workspace's first scoring) cannot push
/// another's notices out of a slow subscriber's backlog.
#[derive(Clone, Debug)]
pub struct Live {
    senders: Senders<broadcast::Sender<Notice>>,
}

/// One of `T` per topic.
#[derive(Clone, Debug)]
struct Senders<T> {
    deal: T,
    activity: T,
    score: T,
    campaign: T,
}

impl<T> Senders<T> {
    fn of(&self, topic: Topic) -> &T {
        match topic {
            Topic::Deal => &self.deal,
            Topic::Activity => &self.activity,
            Topic::Score => &self.score,
            Topic::Campaign => &self.campaign,
        }
    }

    fn map<U>(&self, f: impl Fn(&T) -> U) -> Senders<U> {
        Senders {
            deal: f(&self.deal),
            activity: f(&self.activity),
            score: f(&self.score),
            campaign: f(&self.campaign),
        }
    }
}

type Weak = Senders<broadcast::WeakSender<Notice>>;

impl Weak {
    /// Hands `notice` to its topic's subscribers; false once no `Live` is left.
    fn send(&self, notice: Notice) -> bool {
        let Some(sender) = self.of(notice.topic).upgrade() else {
            return false;
        };
        let _ = sender.send(notice);
        true
    }

    fn alive(&self) -> bool {
        self.deal.upgrade().is_some()
    }
}

/// Notices a slow subscriber may fall behind by before it skips some (it then reads the
/// objects as they stand at the next one).
const BACKLOG: usize = 4096;

/// How often SQLite's notices are read.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// How long SQLite's notices are kept for processes that read late.
const KEEP: chrono::Duration = chrono::Duration::minutes(5);

impl Live {
    /// Starts listening on `db` in the background, reporting to `health`; stops when the
    /// last clone of the returned `Live` is dropped.
    pub fn start(db: DatabaseConnection, health: Arc<Health>) -> Live {
        let channel = || broadcast::channel(BACKLOG).0;
        let live = Live {
            senders: Senders {
                deal: channel(),
                activity: channel(),
                score: channel(),
                campaign: channel(),
            },
        };
        tokio::spawn(supervise(db, live.senders.map(|s| s.downgrade()), health));
        live
    }

    /// A receiver of the notices of `topic` heard from now on.
    pub fn subscribe(&self, topic: Topic) -> broadcast::Receiver<Notice> {
        self.senders.of(topic).subscribe()
    }
}

const NAME: &str = "live notices";

/// Runs the listener, restarting it after a back-off when it fails, until nobody holds
/// the senders.
async fn supervise(db: DatabaseConnection, senders: Weak, health: Arc<Health>) {
    let mut backoff = Backoff::default();
    // SQLite's place in `live_notices`, kept across restarts so rows committed during a
    // back-off are still read.
    let mut last = None;
    loop {
        let started = std::time::Instant::now();
        let outcome = match db.get_database_backend() {
            sea_orm::DbBackend::Postgres => listen(&db, &senders, &health).await,
            _ => poll(&db, &senders, &health, &mut last).await,
        };
        match outcome {
            Ok(()) => {
                health.stopped(NAME);
                return;
            }
            Err(e) => {
                let wait = backoff.after(started.elapsed());
                tracing::warn!(error = ?e, "live notices stopped; starting again");
                health.failed(NAME, health::describe(&e), wait);
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// PostgreSQL: `LISTEN` on a connection of its own, outside the pool the requests share;
/// `Ok` once nobody holds the `Live`.
async fn listen(db: &DatabaseConnection, senders: &Weak, health: &Health) -> Result<()> {
    use sea_orm::sqlx::postgres::{PgListener, PgPoolOptions};
    let failed = |e: sea_orm::sqlx::Error| EngineError::internal_from("listening for notices", e);
    let options = db.get_postgres_connection_pool().connect_options();
    let own = PgPoolOptions::new()
        .max_connections(1)
        .connect_with((*options).clone())
        .await
        .map_err(failed)?;
    let mut listener = PgListener::connect_with(&own).await.map_err(failed)?;
    listener.listen(CHANNEL).await.map_err(failed)?;
    health.running(NAME);
    loop {
        // Not cut short by a timer: a read cancelled halfway would lose its place in the
        // connection's stream. A process without subscribers stops at the next notice.
        match listener.try_recv().await {
            Ok(Some(n)) => {
                if let Some(notice) = Notice::decode(n.payload())
                    && !senders.send(notice)
                {
                    return Ok(());
                }
            }
            // The connection dropped and is made again; notices sent meanwhile are lost.
            Ok(None) => tracing::warn!("live notices: the connection was lost"),
            Err(e) => return Err(failed(e)),
        }
    }
}

/// SQLite: reads the notices past the last id seen, and drops old ones.
async fn poll(
    db: &DatabaseConnection,
    senders: &Weak,
    health: &Health,
    last: &mut Option<i64>,
) -> Result<()> {
    if last.is_none() {
        *last = Some(
            live_notice::Entity::find()
                .select_only()
                .column_as(live_notice::Column::Id.max(), "max")
                .into_tuple::<Option<i64>>()
                .one(db)
                .await?
                .flatten()
                .unwrap_or(0),
        );
    }
    health.running(NAME);
    let mut interval = tokio::time::interval(POLL_EVERY);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pruned = std::time::Instant::now();
    loop {
        interval.tick().await;
        if !senders.alive() {
            return Ok(());
        }
        loop {
            let rows = live_notice::Entity::find()
                .filter(live_notice::Column::Id.gt(last.unwrap_or(0)))
                .order_by_asc(live_notice::Column::Id)
                .limit(1000)
                .all(db)
                .await?;
            let full = rows.len() == 1000;
            for row in rows {
                *last = Some(row.id);
                if let Some(topic) = Topic::parse(&row.topic) {
                    senders.send(Notice {
                        workspace_id: row.workspace_id,
                        topic,
                        scope_id: row.scope_id,
                        object_id: row.object_id,
                    });
                }
            }
            // A burst is read to its end before the next tick.
            if !full {
                break;
            }
        }
        if pruned.elapsed() >= Duration::from_secs(60) {
            pruned = std::time::Instant::now();
            live_notice::Entity::delete_many()
                .filter(live_notice::Column::CreatedAt.lt(clock::now() - KEEP))
                .exec(db)
                .await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_read_back_and_refuse_anything_else() {
        let n = Notice {
            workspace_id: 3,
            topic: Topic::Campaign,
            scope_id: 9,
            object_id: 9,
        };
        assert_eq!(Notice::decode(&n.encode()), Some(n));
        for bad in ["", "3:deal:1", "3:deal:1:2:3", "x:deal:1:2", "3:nope:1:2"] {
            assert_eq!(Notice::decode(bad), None, "{bad}");
        }
    }
}

//! Run records: what a plugin call was given and what it did — its input, answer or
//! fault, log, fuel and time — kept for every call that failed and for a sample of the
//! rest (answers and refusals) ([`Capture`]), so that a plugin misbehaving in production can be read and
//! replayed ([`replay`]) instead of debugged by guessing its input.
//!
//! The captured input is the contact's data as the input query returned it: personal
//! data, erased and merged with its contact (see [`crate::contact_data::STORES`]), capped
//! in size, and pruned after a retention.

use rapport_plugins::{Attempt, Input, Limits, Loaded, LogLine};
use rapport_schema::{plugin, plugin_run, plugin_version};
use sea_orm::sea_query::{Expr, Func};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::Serialize;

use crate::clock;
use crate::error::{EngineError, Result};
use crate::platform::health::{self, Health};

/// Which calls are recorded, how much of their input, and for how long.
#[derive(Clone, Debug, PartialEq)]
pub struct Capture {
    /// The share (0–1) of answered or refused calls recorded; failed calls always are.
    pub sample: f64,
    /// Inputs larger than this many bytes are recorded by hash and size only.
    pub input_bytes: usize,
    /// How long records are kept.
    pub retention: chrono::Duration,
}

impl Capture {
    /// Share of answered calls recorded, by default: enough to see what a plugin does on
    /// live data, a small cost to scoring (see `scripts/bench-plugins`).
    pub const DEFAULT_SAMPLE: f64 = 0.01;
    /// Largest input recorded in full, by default.
    pub const DEFAULT_INPUT_BYTES: usize = 64 * 1024;
    /// Days records are kept, by default.
    pub const DEFAULT_RETENTION_DAYS: u32 = 14;

    /// Whether a call is recorded: always when it failed, else by sampling.
    fn wants(&self, answered: bool) -> bool {
        !answered || (self.sample > 0.0 && rand::random::<f64>() < self.sample)
    }
}

impl Default for Capture {
    fn default() -> Self {
        Capture {
            sample: Self::DEFAULT_SAMPLE,
            input_bytes: Self::DEFAULT_INPUT_BYTES,
            retention: chrono::Duration::days(Self::DEFAULT_RETENTION_DAYS as i64),
        }
    }
}

/// A plugin export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Export {
    /// `score`.
    Score,
    /// `next-best-actions`.
    NextBestActions,
}

impl Export {
    /// The export's WIT name, as records store it.
    pub fn as_str(self) -> &'static str {
        match self {
            Export::Score => "score",
            Export::NextBestActions => "next-best-actions",
        }
    }

    /// Parses a stored export name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "score" => Ok(Export::Score),
            "next-best-actions" => Ok(Export::NextBestActions),
            other => Err(EngineError::internal(format!(
                "a plugin run names an unknown export {other:?}"
            ))),
        }
    }
}

/// A call to record, built where the call ran and stored with its batch's results.
#[derive(Clone, Debug)]
pub(crate) struct Captured {
    pub(crate) contact_id: i64,
    export: Export,
    input_sha256: String,
    input_bytes: usize,
    input: Option<String>,
    config: String,
    as_of: String,
    observed: Observed,
}

/// What one call did, recorded or replayed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Observed {
    /// The answer (`{score, reasons}` or the list of actions), when there was one.
    pub output: Option<serde_json::Value>,
    /// The fault or refusal, as the plugin's author sees it.
    pub error: Option<String>,
    /// Whether it failed (a fault, not a refusal of the input).
    pub failed: bool,
    /// Lines logged.
    pub log: Vec<LogLine>,
    /// Lines dropped at the log limit.
    pub log_dropped: usize,
    /// Fuel used.
    pub fuel_used: u64,
    /// Wall time in microseconds.
    pub micros: u64,
}

impl Observed {
    fn of<T: Serialize>(attempt: &Attempt<T>) -> Self {
        let (output, error, failed) = match &attempt.result {
            Ok(value) => (serde_json::to_value(value).ok(), None, false),
            Err(e) => (
                None,
                Some(e.to_string()),
                !matches!(e, rapport_plugins::Error::Refused { .. }),
            ),
        };
        Observed {
            output,
            error,
            failed,
            log: attempt.log.clone(),
            log_dropped: attempt.log_dropped,
            fuel_used: attempt.fuel_used,
            micros: attempt.elapsed.as_micros().min(i64::MAX as u128) as u64,
        }
    }
}

/// The record of `attempt` on `input`, when [`Capture`] wants it.
pub(crate) fn capture<T: Serialize>(
    capture: &Capture,
    export: Export,
    input: &Input,
    attempt: &Attempt<T>,
) -> Option<Captured> {
    // A refusal ("bad-input") is an answer about the input, common in normal running:
    // sampled like answers, so only faults are always kept.
    let answered = match &attempt.result {
        Ok(_) => true,
        Err(e) => matches!(e, rapport_plugins::Error::Refused { .. }),
    };
    if !capture.wants(answered) {
        return None;
    }
    Some(Captured {
        contact_id: input.contact_id.parse().unwrap_or_default(),
        export,
        input_sha256: rapport_plugins::sha256_hex(input.data.as_bytes()),
        input_bytes: input.data.len(),
        input: (input.data.len() <= capture.input_bytes).then(|| input.data.clone()),
        config: input.config.clone(),
        as_of: input.as_of.clone(),
        observed: Observed::of(attempt),
    })
}

/// Rows one insert holds: well under PostgreSQL's 65,535 bind parameters.
const INSERT_CHUNK: usize = 500;

/// Drops the captured input of every run in the workspace that mentions one of
/// `addresses` (in any case): a person's data can sit in another contact's input (a colleague at the
/// same company, a deal's other contacts), and erasing them must take it too. The
/// record stays — its hash, size, answer and log — without the input. Matching is by
/// `LIKE`, whose `_` matches any character: it may take an input too many, never one too
/// few. Returns the runs scrubbed.
pub async fn forget_mentions(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    addresses: &[String],
) -> Result<u64> {
    use sea_orm::sea_query::ExprTrait as _;
    let mut scrubbed = 0;
    for address in addresses.iter().filter(|a| a.len() >= 3) {
        scrubbed += plugin_run::Entity::update_many()
            .col_expr(
                plugin_run::Column::Input,
                Expr::value(Option::<String>::None),
            )
            .filter(plugin_run::Column::WorkspaceId.eq(workspace_id))
            .filter(
                Expr::expr(Func::lower(Expr::col(plugin_run::Column::Input)))
                    .like(format!("%{}%", address.to_lowercase())),
            )
            .exec(db)
            .await?
            .rows_affected;
    }
    Ok(scrubbed)
}

/// Stores the records of one batch of `p`'s version `version_id` about records of
/// `subject`, beside its results.
pub(crate) async fn store(
    db: &impl ConnectionTrait,
    p: &plugin::Model,
    version_id: i64,
    subject: super::Subject,
    captured: Vec<Captured>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let clean = super::runs::clean;
    let rows: Vec<plugin_run::ActiveModel> = captured
        .into_iter()
        .map(|c| plugin_run::ActiveModel {
            workspace_id: Set(p.workspace_id),
            plugin_id: Set(p.id),
            version_id: Set(version_id),
            // Only a contact's id goes in `contact_id`, which erasure and merge key on.
            contact_id: Set(if subject == super::Subject::Contact {
                c.contact_id
            } else {
                0
            }),
            subject: Set(subject.as_str().to_string()),
            record_id: Set((subject != super::Subject::Contact).then_some(c.contact_id)),
            export: Set(c.export.as_str().to_string()),
            input_sha256: Set(c.input_sha256),
            input_bytes: Set(c.input_bytes as i64),
            input: Set(c.input.map(|i| clean(&i))),
            config: Set(clean(&c.config)),
            as_of: Set(c.as_of),
            output: Set(c.observed.output.map(super::runs::clean_json)),
            log: Set(super::runs::clean_json(
                serde_json::to_value(&c.observed.log).expect("log lines serialise"),
            )),
            log_dropped: Set(c.observed.log_dropped.min(i32::MAX as usize) as i32),
            fuel_used: Set(c.observed.fuel_used.min(i64::MAX as u64) as i64),
            micros: Set(c.observed.micros as i64),
            error: Set(c.observed.error.map(|e| clean(&e))),
            failed: Set(c.observed.failed),
            at: Set(now),
            ..Default::default()
        })
        .collect();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(INSERT_CHUNK).collect();
        plugin_run::Entity::insert_many(chunk)
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// Which runs to list.
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    /// Only calls about this contact.
    pub contact_id: Option<i64>,
    /// Only calls about this deal or company (of a plugin of deals or companies).
    pub record_id: Option<i64>,
    /// Only failed calls (`true`) or only answered and refused ones (`false`).
    pub failed: Option<bool>,
}

/// The most runs one page holds.
pub const MAX_PAGE: u64 = 100;

/// `p`'s runs, newest first: `first` of those older than `before` (a run id).
pub async fn list(
    db: &impl ConnectionTrait,
    p: &plugin::Model,
    filter: &RunFilter,
    before: Option<i64>,
    first: u64,
) -> Result<Vec<plugin_run::Model>> {
    use plugin_run::Column as C;
    let mut q = plugin_run::Entity::find()
        .filter(C::WorkspaceId.eq(p.workspace_id))
        .filter(C::PluginId.eq(p.id));
    if let Some(c) = filter.contact_id {
        q = q.filter(C::ContactId.eq(c));
    }
    if let Some(r) = filter.record_id {
        // A contact's call keeps its id as `contact_id`, a deal's or company's as
        // `record_id`: `recordId` finds either, as `PluginRunRecord.recordId` shows it.
        q = q.filter(
            sea_orm::Condition::any().add(C::RecordId.eq(r)).add(
                sea_orm::Condition::all()
                    .add(C::Subject.eq("contact"))
                    .add(C::ContactId.eq(r)),
            ),
        );
    }
    if let Some(f) = filter.failed {
        q = q.filter(C::Failed.eq(f));
    }
    if let Some(b) = before {
        q = q.filter(C::Id.lt(b));
    }
    Ok(q.order_by_desc(C::Id)
        .limit(first.clamp(1, MAX_PAGE))
        .all(db)
        .await?)
}

/// One run of the workspace.
pub async fn get(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    id: i64,
) -> Result<plugin_run::Model> {
    plugin_run::Entity::find_by_id(id)
        .filter(plugin_run::Column::WorkspaceId.eq(workspace_id))
        .one(db)
        .await?
        .ok_or_else(|| EngineError::not_found("PluginRun", id))
}

/// The version `run` called, and that version's component as stored.
pub async fn recorded_component(
    db: &impl ConnectionTrait,
    run: &plugin_run::Model,
) -> Result<(plugin_version::Model, Vec<u8>)> {
    let v = plugin_version::Entity::find_by_id(run.version_id)
        .one(db)
        .await?
        .ok_or_else(|| EngineError::not_found("PluginVersion", run.version_id))?;
    let wasm = super::registry::component_bytes(db, &v).await?;
    Ok((v, wasm))
}

/// A run played again: what was recorded, what the component did now, and where the two
/// differ.
#[derive(Clone, Debug, Serialize)]
pub struct Replay {
    /// The run.
    pub run_id: i64,
    /// The export called.
    pub export: &'static str,
    /// What the recorded call did.
    pub recorded: Observed,
    /// What the component did on the same input.
    pub replayed: Observed,
    /// What differs: `output`, `error`, `log` (fuel and time are shown, not compared: a
    /// different build of the same logic spends differently).
    pub differences: Vec<&'static str>,
}

impl Replay {
    /// Whether the replay did what the recorded call did.
    pub fn reproduced(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Calls `component` on `run`'s captured input under `limits`, as the recorded call was
/// made, and compares. Runs the plugin here: call it off the async runtime's workers.
pub fn replay(run: &plugin_run::Model, component: &Loaded, limits: &Limits) -> Result<Replay> {
    let data = run.input.clone().ok_or_else(|| {
        EngineError::invalid(
            "run",
            format!(
                "its input ({} bytes) was over the capture cap and was not kept; raise \
                 --plugin-run-input-bytes to replay such calls",
                run.input_bytes
            ),
        )
    })?;
    let input = Input {
        contact_id: run.record_id.unwrap_or(run.contact_id).to_string(),
        data,
        config: run.config.clone(),
        as_of: run.as_of.clone(),
    };
    let export = Export::parse(&run.export)?;
    let replayed = match export {
        Export::Score => Observed::of(&component.attempt_score(&input, limits)),
        Export::NextBestActions => {
            Observed::of(&component.attempt_next_best_actions(&input, limits))
        }
    };
    // Stored text lost its NUL characters (PostgreSQL cannot hold them): the replay is
    // compared as it would have been stored.
    let mut replayed = replayed;
    replayed.output = replayed.output.map(super::runs::clean_json);
    replayed.error = replayed.error.map(|e| super::runs::clean(&e));
    for line in &mut replayed.log {
        line.message = super::runs::clean(&line.message);
    }
    let recorded = Observed {
        output: run.output.clone(),
        error: run.error.clone(),
        failed: run.failed,
        log: serde_json::from_value(run.log.clone()).unwrap_or_default(),
        log_dropped: run.log_dropped.max(0) as usize,
        fuel_used: run.fuel_used.max(0) as u64,
        micros: run.micros.max(0) as u64,
    };
    let mut differences = Vec::new();
    if recorded.output != replayed.output {
        differences.push("output");
    }
    if recorded.error != replayed.error {
        differences.push("error");
    }
    if recorded.log != replayed.log || recorded.log_dropped != replayed.log_dropped {
        differences.push("log");
    }
    Ok(Replay {
        run_id: run.id,
        export: export.as_str(),
        recorded,
        replayed,
        differences,
    })
}

/// Deletes the records older than `retention`; how many went.
pub async fn prune(db: &impl ConnectionTrait, retention: chrono::Duration) -> Result<u64> {
    // In chunks: a day of a busy workspace's runs in one statement would hold its locks
    // and WAL for as long as it takes, while the batches go on recording.
    const CHUNK: u64 = 5000;
    let cutoff = clock::now() - retention;
    let mut pruned = 0;
    loop {
        let ids: Vec<i64> = plugin_run::Entity::find()
            .select_only()
            .column(plugin_run::Column::Id)
            .filter(plugin_run::Column::At.lt(cutoff))
            .limit(CHUNK)
            .into_tuple()
            .all(db)
            .await?;
        let found = ids.len() as u64;
        if found > 0 {
            pruned += plugin_run::Entity::delete_many()
                .filter(plugin_run::Column::Id.is_in(ids))
                .exec(db)
                .await?
                .rows_affected;
        }
        if found < CHUNK {
            return Ok(pruned);
        }
    }
}

/// Prunes records every hour until `shutdown` resolves; a failed pass is logged and
/// reported to `health`, and the next one runs as usual.
pub async fn run_pruner(
    db: sea_orm::DatabaseConnection,
    retention: chrono::Duration,
    health: std::sync::Arc<Health>,
    shutdown: impl Future<Output = ()>,
) {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(3600);
    health::periodic("plugin run pruner", EVERY, health, shutdown, || {
        prune(&db, retention)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_calls_are_always_recorded_and_answered_ones_by_sampling() {
        let never = Capture {
            sample: 0.0,
            ..Capture::default()
        };
        assert!(never.wants(false));
        assert!(!never.wants(true));
        let always = Capture {
            sample: 1.0,
            ..Capture::default()
        };
        assert!(always.wants(true));
        let some = Capture::default();
        let kept = (0..100_000).filter(|_| some.wants(true)).count();
        // 1% of 100,000 is 1,000; the binomial's σ is about 31.
        assert!((800..1200).contains(&kept), "{kept}");
    }

    #[test]
    fn an_input_over_the_cap_is_kept_by_hash_and_size_only() {
        let input = Input {
            contact_id: "7".into(),
            data: "x".repeat(100),
            config: "{}".into(),
            as_of: "2026-01-01T00:00:00Z".into(),
        };
        let failed: Attempt<f64> = Attempt {
            result: Err(rapport_plugins::Error::Trap("boom".into())),
            fuel_used: 5,
            elapsed: std::time::Duration::from_micros(12),
            log: vec![],
            log_dropped: 0,
        };
        let small = Capture {
            input_bytes: 10,
            ..Capture::default()
        };
        let c = capture(&small, Export::Score, &input, &failed).expect("failures are recorded");
        assert_eq!((c.contact_id, c.input_bytes, c.input), (7, 100, None));
        assert_eq!(
            c.input_sha256,
            rapport_plugins::sha256_hex(input.data.as_bytes())
        );
        assert!(c.observed.failed);
        assert_eq!(c.observed.error.as_deref(), Some("trapped: boom"));
        let kept = capture(&Capture::default(), Export::Score, &input, &failed).unwrap();
        assert_eq!(kept.input.as_deref(), Some(input.data.as_str()));
    }

    #[test]
    fn a_refusal_is_recorded_but_is_not_a_failure() {
        let refused: Attempt<f64> = Attempt {
            result: Err(rapport_plugins::Error::Refused {
                code: "bad-input".into(),
                message: "no email".into(),
            }),
            fuel_used: 1,
            elapsed: std::time::Duration::ZERO,
            log: vec![],
            log_dropped: 0,
        };
        let o = Observed::of(&refused);
        assert!(!o.failed);
        assert!(o.error.unwrap().contains("no email"));
    }
}

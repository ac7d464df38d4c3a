//! Recorded plugin calls on the graph (`Plugin.runs`): what a call was given, what it
//! answered or why it failed, its log, fuel and time. The inputs are contacts' data, so
//! only admin keys read them.

use async_graphql::{Context, Enum, ID, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use rapport_engine::intelligence::plugins::call_records::{self, RunFilter};
use rapport_engine::values::Scope;
use rapport_schema as s;
use sea_orm::DatabaseConnection;

use crate::error::{OrGraphql, invalid};
use crate::graphql::context::principal;
use crate::graphql::ids::{parse_id, to_id};

/// `Plugin.runs`: the plugin's recorded calls, newest first.
pub(crate) async fn list(
    ctx: &Context<'_>,
    plugin: &s::plugin::Model,
    contact_id: Option<ID>,
    record_id: Option<ID>,
    failed: Option<bool>,
    before: Option<ID>,
    first: i32,
) -> Result<Vec<PluginRunRecord>> {
    principal(ctx)?.require(Scope::Admin).gql()?;
    if !(1..=call_records::MAX_PAGE as i32).contains(&first) {
        return Err(invalid(
            "first",
            format!("must be between 1 and {}", call_records::MAX_PAGE),
        ));
    }
    let filter = RunFilter {
        contact_id: contact_id
            .as_ref()
            .map(|c| parse_id("contactId", c))
            .transpose()?,
        record_id: record_id
            .as_ref()
            .map(|c| parse_id("recordId", c))
            .transpose()?,
        failed,
    };
    let before = before.as_ref().map(|b| parse_id("before", b)).transpose()?;
    let db = ctx.data_unchecked::<DatabaseConnection>();
    Ok(
        call_records::list(db, plugin, &filter, before, first as u64)
            .await
            .gql()?
            .into_iter()
            .map(PluginRunRecord)
            .collect(),
    )
}

/// A plugin export.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum PluginExport {
    Score,
    NextBestActions,
}

/// A line a plugin logged.
#[derive(SimpleObject)]
pub struct PluginLogLine {
    /// `debug`, `info`, `warn`, `error`; `stdout` and `stderr` for what it printed.
    pub level: String,
    pub message: String,
}

/// One recorded plugin call: every call that failed, and a sample of the answered and
/// refused ones. `rapport plugin replay ID` plays it again against a component file.
pub struct PluginRunRecord(pub s::plugin_run::Model);

#[Object]
impl PluginRunRecord {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    /// The version called.
    async fn version_id(&self) -> ID {
        to_id(self.0.version_id)
    }
    /// The contact the call was about (null for a call of a plugin of deals or
    /// companies: see `recordId`).
    async fn contact_id(&self) -> Option<ID> {
        (self.0.subject == "contact").then(|| to_id(self.0.contact_id))
    }
    /// What the call was about.
    async fn subject(&self) -> super::plugins::PluginSubject {
        rapport_engine::values::PluginSubject::parse(&self.0.subject)
            .unwrap_or_default()
            .into()
    }
    /// The contact, deal or company the call was about.
    async fn record_id(&self) -> ID {
        to_id(self.0.record_id.unwrap_or(self.0.contact_id))
    }
    async fn export(&self) -> PluginExport {
        match self.0.export.as_str() {
            "next-best-actions" => PluginExport::NextBestActions,
            _ => PluginExport::Score,
        }
    }
    /// The input query's `data` as the plugin got it (JSON text); null when it was over
    /// the capture cap (`inputBytes` and `inputSha256` still say what it was).
    async fn input(&self) -> Option<&str> {
        self.0.input.as_deref()
    }
    async fn input_bytes(&self) -> f64 {
        self.0.input_bytes as f64
    }
    /// SHA-256 (hex) of the input: runs with equal inputs have equal hashes.
    async fn input_sha256(&self) -> &str {
        &self.0.input_sha256
    }
    /// The configuration the plugin got.
    async fn config(&self) -> Json<serde_json::Value> {
        Json(serde_json::from_str(&self.0.config).unwrap_or(serde_json::Value::Null))
    }
    /// The moment the input described: the plugin's clock.
    async fn as_of(&self) -> &str {
        &self.0.as_of
    }
    /// The answer: `{score, reasons}` or the list of actions; null when it failed.
    async fn output(&self) -> Option<Json<serde_json::Value>> {
        self.0.output.clone().map(Json)
    }
    /// Why it did not answer: the fault (`failed`) or the plugin's refusal of the input.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    /// Whether the call failed (trapped, ran out of a limit, answered garbage); a plugin
    /// refusing an input is not a failure.
    async fn failed(&self) -> bool {
        self.0.failed
    }
    /// What it logged, within its log limit.
    async fn log(&self) -> Vec<PluginLogLine> {
        let lines: Vec<rapport_plugins::LogLine> =
            serde_json::from_value(self.0.log.clone()).unwrap_or_default();
        lines
            .into_iter()
            .map(|l| PluginLogLine {
                level: l.level,
                message: l.message,
            })
            .collect()
    }
    /// Lines dropped at the log limit.
    async fn log_dropped(&self) -> i32 {
        self.0.log_dropped
    }
    async fn fuel_used(&self) -> f64 {
        self.0.fuel_used as f64
    }
    /// Wall time of the call, instantiation included.
    async fn microseconds(&self) -> f64 {
        self.0.micros as f64
    }
    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
}

//! Example plugin: a lead score from recent engagement. Meetings, calls and replies count,
//! recent ones most (a configurable half-life); the score saturates towards 100.
//!
//! Input query: `query.graphql` beside this crate. Configuration (all optional):
//! `{"meeting": 12, "call": 6, "inboundEmail": 8, "outboundEmail": 1, "chat": 4,
//!   "other": 0.5, "halfLifeDays": 21, "scale": 30}`.

pub mod rule;

use rapport_plugin_sdk::*;

struct EngagementScore;

impl Guest for EngagementScore {
    fn describe() -> Description {
        describe("engagement-score", env!("CARGO_PKG_VERSION"), Capabilities::SCORE)
    }

    fn score(input: Input) -> Result<ScoreResult, PluginError> {
        let data: serde_json::Value = input.data()?;
        let config: rule::Config = input.config()?;
        let (score, reasons) = rule::score(&data, &config, &input.as_of).map_err(bad_input)?;
        Ok(reasons
            .into_iter()
            .fold(ScoreResult::new(score), |r, (feature, contribution, note)| {
                r.reason(&feature, contribution, &note)
            }))
    }

    fn next_best_actions(_: Input) -> Result<Vec<Action>, PluginError> {
        Err(unsupported())
    }
}

plugin!(EngagementScore);

//! Example plugin of deals: the risk (0–100) that an open deal slips, from how long it
//! has been quiet, how far past its expected close date it is, and its stage's win
//! probability. Closed deals are refused (`bad-input`): there is nothing left to risk.
//!
//! Input query: `query.graphql` beside this crate (it declares `$dealId`, which makes
//! this a plugin of deals). Configuration (all optional):
//! `{"quietDays": 14, "overdueDays": 30}` — the silence and the lateness that each count
//! fully.

// The input's types, generated from `query.graphql` by `rapport plugin types` (a test
// checks they still match it).
mod input;

use rapport_plugin_sdk::*;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Config {
    quiet_days: f64,
    overdue_days: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            quiet_days: 14.0,
            overdue_days: 30.0,
        }
    }
}

struct DealRisk;

impl Guest for DealRisk {
    fn describe() -> Description {
        describe("deal-risk", env!("CARGO_PKG_VERSION"), Capabilities::SCORE)
    }

    fn score(input: Input) -> Result<ScoreResult, PluginError> {
        let data: input::Data = input.data()?;
        let config: Config = input.config()?;
        let deal = data.deal.ok_or_else(|| bad_input("no deal"))?;
        if deal.status != "OPEN" {
            return Err(bad_input(format!("the deal is {}", deal.status)));
        }
        let now = epoch_days(&input.as_of).ok_or_else(|| bad_input("as-of is not a timestamp"))?;
        let last_touch = deal
            .activities
            .nodes
            .first()
            .map(|a| a.occurred_at.as_str())
            .unwrap_or(&deal.created_at);
        let quiet = (now - epoch_days(last_touch).unwrap_or(now)).max(0.0);
        let overdue = deal
            .expected_close_date
            .as_deref()
            .and_then(epoch_days)
            .map_or(0.0, |close| (now - close).max(0.0));
        let chance = deal.stage.map_or(50.0, |s| s.win_probability as f64);

        // Each signal adds up to its weight, saturating at the configured days.
        let silence = 45.0 * (quiet / config.quiet_days.max(1.0)).min(1.0);
        let lateness = 35.0 * (overdue / config.overdue_days.max(1.0)).min(1.0);
        let odds = 20.0 * (1.0 - chance / 100.0).clamp(0.0, 1.0);
        Ok(ScoreResult::new(silence + lateness + odds)
            .reason("silence", silence, &format!("no touch for {quiet:.0} days"))
            .reason(
                "overdue",
                lateness,
                &format!("{overdue:.0} days past the expected close"),
            )
            .reason("stage", odds, &format!("the stage wins {chance:.0}% of the time"))
            .sorted())
    }

    fn next_best_actions(_: Input) -> Result<Vec<Action>, PluginError> {
        Err(unsupported())
    }
}

plugin!(DealRisk);

//! Example plugin: next-best-action rules for a sales team.
//!
//! - an open deal with no touch for `quietDays` (14) → call the contact about it;
//! - a lead scoring at least `hotScore` (70) with no open deal → a task to qualify them;
//! - a customer untouched for `winBackDays` (90) → the win-back email `winBackTemplate`
//!   names (a saved template; accepting sends it, with consent), or an offer without one;
//! - a lead who may get marketing email, with no open task → enroll in `nurtureSequence`
//!   (when configured).
//!
//! Input query: `query.graphql` beside this crate.

use rapport_plugin_sdk::*;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Config {
    quiet_days: f64,
    hot_score: f64,
    win_back_days: f64,
    nurture_sequence: Option<String>,
    win_back_template: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            quiet_days: 14.0,
            hot_score: 70.0,
            win_back_days: 90.0,
            nurture_sequence: None,
            win_back_template: None,
        }
    }
}

struct NextBestAction;

impl Guest for NextBestAction {
    fn describe() -> Description {
        describe("next-best-action", env!("CARGO_PKG_VERSION"), Capabilities::NEXT_BEST_ACTIONS)
    }

    fn score(_: Input) -> Result<ScoreResult, PluginError> {
        Err(unsupported())
    }

    fn next_best_actions(input: Input) -> Result<Vec<Action>, PluginError> {
        let data: Value = input.data()?;
        let config: Config = input.config()?;
        let now = days(&input.as_of).ok_or_else(|| bad_input("as-of is not a timestamp"))?;
        let c = data
            .get("contact")
            .filter(|c| !c.is_null())
            .ok_or_else(|| bad_input("the input has no contact"))?;
        let name = c["name"].as_str().unwrap_or("the contact");
        let stage = c["lifecycleStage"].as_str().unwrap_or("");
        let last_touch = c
            .pointer("/activities/edges/0/node/occurredAt")
            .and_then(Value::as_str)
            .and_then(days);
        let quiet_for = last_touch.map(|t| (now - t).max(0.0));
        let deals = c.pointer("/deals/edges").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut actions = Vec::new();

        for deal in &deals {
            let deal = &deal["node"];
            let quiet = quiet_for.unwrap_or(f64::INFINITY);
            if quiet >= config.quiet_days {
                let deal_name = deal["name"].as_str().unwrap_or("the deal");
                let since = if quiet.is_finite() {
                    format!("{} days", quiet.floor())
                } else {
                    "ever".to_string()
                };
                actions.push(
                    Action::new(
                        ActionKind::Call,
                        if quiet >= 2.0 * config.quiet_days { 90 } else { 80 },
                        &format!("{deal_name} is open but nobody has spoken to {name} for {since}"),
                    )
                    .param("title", format!("Call {name} about {deal_name}"))
                    .param("due-in-days", 1)
                    .param("deal", deal["id"].as_str().unwrap_or_default()),
                );
            }
        }

        let lead_score = c.pointer("/leadScore/score").and_then(Value::as_f64);
        if deals.is_empty() && lead_score.is_some_and(|s| s >= config.hot_score) {
            actions.push(
                Action::new(
                    ActionKind::CreateTask,
                    70,
                    &format!("lead score {:.0} with no open deal", lead_score.unwrap_or_default()),
                )
                .param("title", format!("Qualify {name}"))
                .param("due-in-days", 2),
            );
        }

        if stage == "CUSTOMER" && quiet_for.is_none_or(|q| q >= config.win_back_days) {
            actions.push(match &config.win_back_template {
                Some(template) => {
                    Action::new(ActionKind::SendEmail, 50, "a customer who has gone quiet")
                        .param("template", template)
                }
                None => Action::new(ActionKind::Offer, 50, "a customer who has gone quiet")
                    .param("offer", "win-back"),
            });
        }

        let open_tasks = c.pointer("/tasks/totalCount").and_then(Value::as_u64).unwrap_or(0);
        let may_email = c.pointer("/emailPermission/allowed").and_then(Value::as_bool) == Some(true);
        if let Some(sequence) = &config.nurture_sequence
            && stage == "LEAD"
            && open_tasks == 0
            && may_email
            && deals.is_empty()
        {
            actions.push(
                Action::new(ActionKind::EnrollSequence, 40, "a lead nobody is working on")
                    .param("sequence", sequence),
            );
        }
        Ok(actions)
    }
}

/// Days since 1970 of an RFC 3339 UTC timestamp (`…Z`); offsets are not expected from Rapport.
fn days(s: &str) -> Option<f64> {
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm) = (n(11..13)?, n(14..16)?);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) as f64 + (hh * 60 + mm) as f64 / 1440.0)
}

plugin!(NextBestAction);

//! A sequence as marketers write it, import and export it: a graph of steps with its
//! triggers, exits and sending limits, as JSON. [`Definition::parse`] is the only way to
//! get one, and it refuses graphs that could not run: unknown or unreachable steps, a
//! cycle no wait slows down, a branch without an else, a bad duration or window — each
//! error naming the step.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc, Weekday};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{EngineError, Result};
use crate::values::{EmailAddress, LifecycleStage, Tag};

/// Steps an enrollment may take in one go before it must stop; validation forbids cycles
/// without a wait, so this only bounds long straight runs.
pub const MAX_STEPS_PER_RUN: usize = 64;

/// A whole sequence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Definition {
    /// Shown to marketers; unique in the workspace.
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The sender of its email.
    pub from_email: String,
    /// The sender's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_name: Option<String>,
    /// The email topic (its key) its email is about: contacts who opted out of it are
    /// skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// What enrolls contacts besides `enroll(contactIds)`.
    #[serde(default)]
    pub triggers: Vec<Trigger>,
    /// Whether a contact who finished (or left) may be enrolled again.
    #[serde(default)]
    pub allow_reentry: bool,
    /// Enrollments a contact may have in this sequence, ever; more exit at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_enrollments: Option<u32>,
    /// Leave the sequence when the contact replies (an inbound email).
    #[serde(default = "yes")]
    pub exit_on_reply: bool,
    /// Reached goal: the contact leaves, checked before every step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<Condition>,
    /// At most this much marketing email (campaigns and sequences together) per contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_cap: Option<FrequencyCap>,
    /// No email in these hours of the contact's day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
    /// The first step.
    pub start: String,
    /// Every step.
    pub steps: Vec<Step>,
}

fn yes() -> bool {
    true
}

/// What enrolls a contact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum Trigger {
    /// Becoming a member of a saved segment.
    #[serde(rename_all = "camelCase")]
    Segment {
        /// The segment's id.
        segment_id: i64,
    },
    /// An event of this type (`form_submitted`, ...).
    #[serde(rename_all = "camelCase")]
    Event {
        /// The event type.
        event_type: String,
    },
    /// One of the contact's deals entering this stage.
    #[serde(rename_all = "camelCase")]
    DealStage {
        /// The stage's id.
        stage_id: i64,
    },
    /// The contact's lifecycle stage becoming this one.
    #[serde(rename_all = "camelCase")]
    Lifecycle {
        /// The new stage (`customer`, ...).
        to: String,
    },
    /// A score entering a band — at least `atLeast`, below `below` (either may be left
    /// out) — or getting a grade, all of which are given must hold. Once per entry: a
    /// contact that stays in the band is not enrolled again; one that leaves and comes
    /// back is, as far as re-entry allows.
    #[serde(rename_all = "camelCase")]
    Score {
        /// A built-in model's score: `lead_score`, `churn` or `behaviour_segments`
        /// (whose grade is the cluster's name).
        #[serde(default)]
        model: Option<String>,
        /// Or the score of the plugin of this name.
        #[serde(default)]
        plugin: Option<String>,
        /// The band's lower end (0–100), included.
        #[serde(default)]
        at_least: Option<f64>,
        /// The band's upper end (0–100), excluded.
        #[serde(default)]
        below: Option<f64>,
        /// The grade (`A`–`D` for lead scores and churn; a cluster's name).
        #[serde(default)]
        grade: Option<String>,
    },
    /// The contact's churn level becoming this one (`high`, ...), as the rescoring finds it.
    #[serde(rename_all = "camelCase")]
    ChurnLevel {
        /// The new level.
        to: String,
    },
    /// The contact's RFM segment becoming this one (`at_risk`, ...), as the rescoring
    /// finds it.
    #[serde(rename_all = "camelCase")]
    RfmSegment {
        /// The new segment.
        to: String,
    },
    /// A date in the contact's custom attributes coming close (`renewal_date`).
    #[serde(rename_all = "camelCase")]
    DateAttribute {
        /// The attribute holding an ISO date (`2027-03-01`).
        attribute: String,
        /// How many days before the date the contact enrolls (0: on the day).
        #[serde(default)]
        days_before: u32,
    },
}

impl Trigger {
    /// How an enrollment names the trigger that made it.
    pub fn label(&self) -> String {
        match self {
            Trigger::Segment { segment_id } => format!("segment:{segment_id}"),
            Trigger::Event { event_type } => format!("event:{event_type}"),
            Trigger::DealStage { stage_id } => format!("deal_stage:{stage_id}"),
            Trigger::Lifecycle { to } => format!("lifecycle:{to}"),
            Trigger::Score {
                model,
                plugin,
                at_least,
                below,
                grade,
            } => {
                let mut label = match (model, plugin) {
                    (Some(m), _) => format!("score:{m}"),
                    (None, Some(p)) => format!("score:plugin:{p}"),
                    (None, None) => "score:".into(),
                };
                if let Some(a) = at_least {
                    label.push_str(&format!(">={a}"));
                }
                if let Some(b) = below {
                    label.push_str(&format!("<{b}"));
                }
                if let Some(g) = grade {
                    label.push_str(&format!("={g}"));
                }
                label
            }
            Trigger::ChurnLevel { to } => format!("churn_level:{to}"),
            Trigger::RfmSegment { to } => format!("rfm_segment:{to}"),
            Trigger::DateAttribute {
                attribute,
                days_before,
            } => format!("date:{attribute}-{days_before}d"),
        }
    }
}

/// The models whose scores of contacts a score trigger may follow.
pub const SCORE_TRIGGER_MODELS: [crate::values::ModelKind; 3] = [
    crate::values::ModelKind::LeadScore,
    crate::values::ModelKind::Churn,
    crate::values::ModelKind::BehaviourSegments,
];

fn check_score_trigger(
    model: Option<&str>,
    plugin: Option<&str>,
    at_least: Option<f64>,
    below: Option<f64>,
    grade: Option<&str>,
    out: &mut Vec<String>,
) {
    use crate::values::ModelKind;
    let kind = match (model, plugin) {
        (Some(m), None) => match ModelKind::parse("model", m) {
            Ok(k) if SCORE_TRIGGER_MODELS.contains(&k) => Some(k),
            _ => {
                out.push(format!(
                    "score trigger: model '{}' is not one of lead_score, churn, behaviour_segments",
                    excerpt(m)
                ));
                return;
            }
        },
        (None, Some(p)) if !p.trim().is_empty() && p.chars().count() <= 100 => None,
        (None, Some(_)) => {
            out.push("score trigger: plugin names are 1 to 100 characters".into());
            return;
        }
        _ => {
            out.push("a score trigger names either a model or a plugin".into());
            return;
        }
    };
    if at_least.is_none() && below.is_none() && grade.is_none() {
        out.push("a score trigger needs atLeast, below or grade".into());
    }
    for (name, v) in [("atLeast", at_least), ("below", below)] {
        if let Some(v) = v
            && !(0.0..=100.0).contains(&v)
        {
            out.push(format!("score trigger: {name} must be between 0 and 100"));
        }
    }
    if let (Some(a), Some(b)) = (at_least, below)
        && a >= b
    {
        out.push("score trigger: atLeast must be below below".into());
    }
    if let Some(g) = grade {
        match kind {
            None => out.push("score trigger: plugin scores have no grade".into()),
            Some(ModelKind::BehaviourSegments) => {
                if g.trim().is_empty() || g.chars().count() > 100 {
                    out.push("score trigger: cluster names are 1 to 100 characters".into());
                }
            }
            Some(_) => {
                if !["A", "B", "C", "D"].contains(&g) {
                    out.push(format!(
                        "score trigger: grade '{}' is not one of A, B, C, D",
                        excerpt(g)
                    ));
                }
            }
        }
    }
}

/// The first few characters of a value quoted in an error.
fn excerpt(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Marketing email per contact in a rolling window.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FrequencyCap {
    /// Emails allowed in the window.
    pub max: u32,
    /// The window's length in days.
    pub days: u32,
}

/// Hours of the contact's local day when no email goes out (may wrap midnight).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuietHours {
    /// `21:00`.
    pub start: String,
    /// `08:00`.
    pub end: String,
}

/// One step of the graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Unique in the sequence; what stats, history and branches refer to.
    pub id: String,
    /// What it does.
    #[serde(flatten)]
    pub action: Action,
}

/// What a step does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Action {
    /// Wait a duration (`3d`, `12h`, `1d12h`) or until the contact's send window opens.
    Wait {
        /// How long.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration: Option<String>,
        /// Until a window of the contact's local week.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<Window>,
        /// The step after.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    },
    /// Send a saved email template, through the consent-aware path campaigns use.
    #[serde(rename_all = "camelCase")]
    SendEmail {
        /// The template's name.
        template: String,
        /// The step after.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    },
    /// Go one way or the other.
    Branch {
        /// The condition.
        #[serde(rename = "if")]
        condition: Condition,
        /// Where to go when it holds.
        then: String,
        /// Where to go otherwise (required).
        #[serde(rename = "else", default, skip_serializing_if = "Option::is_none")]
        otherwise: Option<String>,
    },
    /// Run a plugin for the contact now and go one way or the other on its score (to
    /// `else` when the plugin is missing, disabled, fails or declines).
    Plugin {
        /// The plugin's name.
        plugin: String,
        /// The score (0–100) at or above which the contact goes to `then`.
        gte: f64,
        /// Where to go when the score reaches `gte`.
        then: String,
        /// Where to go otherwise (required).
        #[serde(rename = "else", default, skip_serializing_if = "Option::is_none")]
        otherwise: Option<String>,
    },
    /// Change the contact.
    #[serde(rename_all = "camelCase")]
    UpdateContact {
        /// Tags to add.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        add_tags: Vec<String>,
        /// Tags to remove.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        remove_tags: Vec<String>,
        /// Attributes to set (`null` removes one).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        attributes: BTreeMap<String, Value>,
        /// A new lifecycle stage.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lifecycle_stage: Option<String>,
        /// A new owner (a user id).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner_id: Option<i64>,
        /// The step after.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    },
    /// A task for the contact's owner.
    #[serde(rename_all = "camelCase")]
    CreateTask {
        /// Its title (`{{ first_name }}` and friends allowed).
        title: String,
        /// Due this many days after the step runs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        due_in_days: Option<u32>,
        /// The step after.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    },
    /// Enroll the contact in another sequence (by name).
    Enroll {
        /// The other sequence.
        sequence: String,
        /// The step after.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    },
    /// Leave the sequence, done.
    Exit {
        /// Recorded as the reason.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

impl Action {
    /// The kind, as stats name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Wait { .. } => "wait",
            Action::SendEmail { .. } => "sendEmail",
            Action::Branch { .. } => "branch",
            Action::Plugin { .. } => "plugin",
            Action::UpdateContact { .. } => "updateContact",
            Action::CreateTask { .. } => "createTask",
            Action::Enroll { .. } => "enroll",
            Action::Exit { .. } => "exit",
        }
    }

    /// Steps this one can lead to.
    pub fn successors(&self) -> Vec<&str> {
        match self {
            Action::Branch {
                then, otherwise, ..
            }
            | Action::Plugin {
                then, otherwise, ..
            } => std::iter::once(then.as_str())
                .chain(otherwise.as_deref())
                .collect(),
            Action::Wait { next, .. }
            | Action::SendEmail { next, .. }
            | Action::UpdateContact { next, .. }
            | Action::CreateTask { next, .. }
            | Action::Enroll { next, .. } => next.as_deref().into_iter().collect(),
            Action::Exit { .. } => Vec::new(),
        }
    }
}

/// A condition on the contact, for branches and goals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Condition {
    /// The email of that step (in this enrollment) was opened.
    Opened(String),
    /// A link in the email of that step (in this enrollment) was clicked.
    Clicked(String),
    /// The contact replied (an inbound email) since enrolling.
    Replied(bool),
    /// The contact's lifecycle stage is this one.
    Lifecycle(String),
    /// The contact has this tag.
    Tag(String),
    /// A custom attribute compares so.
    Attribute(AttributeTest),
    /// A score (a built-in model kind such as `lead_score`, or `plugin:NAME`) is at least
    /// this.
    Score(ScoreTest),
    /// An event of this type was seen in the last days.
    Event(EventTest),
    /// All hold.
    All(Vec<Condition>),
    /// One holds.
    Any(Vec<Condition>),
    /// It does not hold.
    Not(Box<Condition>),
}

/// `{"name": "plan", "equals": "pro"}`; `exists`, `gte`, `lte` also work.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttributeTest {
    /// The attribute.
    pub name: String,
    /// Equal to this JSON value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<Value>,
    /// Present (or absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
    /// A number at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gte: Option<f64>,
    /// A number at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lte: Option<f64>,
}

/// `{"model": "lead_score", "gte": 70}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScoreTest {
    /// `lead_score`, `churn`, ... or `plugin:NAME`.
    pub model: String,
    /// The threshold (0–100).
    pub gte: f64,
}

/// `{"type": "page_view", "withinDays": 7}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventTest {
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// How far back.
    pub within_days: u32,
}

/// A send window of the contact's local week: `{"start": "09:00", "end": "17:00",
/// "days": ["mon", "tue"]}` (every day when `days` is empty).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Window {
    /// Opens at.
    pub start: String,
    /// Closes at (after `start`).
    pub end: String,
    /// Days it is open.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<String>,
}

/// Parses `3d`, `12h`, `30m`, `45s`, `2w` and sums like `1d12h`; at least one second.
pub fn parse_duration(raw: &str) -> std::result::Result<Duration, String> {
    let text = raw.trim();
    if text.is_empty() {
        return Err("a duration is empty".into());
    }
    let mut total = Duration::zero();
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: i64 = digits
            .parse()
            .map_err(|_| format!("'{raw}' is not a duration such as 3d, 12h or 1d12h"))?;
        digits.clear();
        let part = match c {
            'w' => Duration::try_weeks(n),
            'd' => Duration::try_days(n),
            'h' => Duration::try_hours(n),
            'm' => Duration::try_minutes(n),
            's' => Duration::try_seconds(n),
            _ => None,
        }
        .ok_or_else(|| format!("'{raw}' is not a duration such as 3d, 12h or 1d12h"))?;
        total += part;
    }
    if !digits.is_empty() {
        return Err(format!(
            "'{raw}' has a number without a unit (w, d, h, m or s)"
        ));
    }
    if total < Duration::seconds(1) || total > Duration::days(3660) {
        return Err(format!("'{raw}' must be between 1s and 10 years"));
    }
    Ok(total)
}

/// Parses `HH:MM`.
pub fn parse_time(raw: &str) -> std::result::Result<NaiveTime, String> {
    NaiveTime::parse_from_str(raw.trim(), "%H:%M")
        .map_err(|_| format!("'{raw}' is not a time of day such as 09:30"))
}

fn parse_weekday(raw: &str) -> std::result::Result<Weekday, String> {
    raw.trim()
        .parse::<Weekday>()
        .map_err(|_| format!("'{raw}' is not a day of the week (mon … sun)"))
}

/// A contact's time zone; UTC when unknown or unreadable.
pub fn zone(name: Option<&str>) -> chrono_tz::Tz {
    name.and_then(|n| n.parse().ok()).unwrap_or(chrono_tz::UTC)
}

/// The local time of day at `at` in `tz`.
fn local(at: DateTime<Utc>, tz: chrono_tz::Tz) -> chrono::DateTime<chrono_tz::Tz> {
    at.with_timezone(&tz)
}

/// The first instant at or after `from` whose local time in `tz` lies in
/// `[start, end)` on an allowed day (`start` > `end` wraps midnight).
pub fn next_open(
    from: DateTime<Utc>,
    tz: chrono_tz::Tz,
    start: NaiveTime,
    end: NaiveTime,
    days: &[Weekday],
) -> DateTime<Utc> {
    let open_at = |t: DateTime<Utc>| {
        let l = local(t, tz);
        let time = l.time();
        let inside = if start <= end {
            time >= start && time < end
        } else {
            time >= start || time < end
        };
        // A window that wraps midnight belongs to the day it opened on.
        let day = if start > end && time < end {
            l.weekday().pred()
        } else {
            l.weekday()
        };
        inside && (days.is_empty() || days.contains(&day))
    };
    if open_at(from) {
        return from;
    }
    // Candidates: each local day's opening time over the next eight days.
    let today = local(from, tz).date_naive();
    (0..9)
        .filter_map(|d| {
            let date = today + Duration::days(d);
            tz.from_local_datetime(&date.and_time(start))
                .earliest()
                .map(|t| t.with_timezone(&Utc))
        })
        .filter(|t| *t >= from && open_at(*t))
        .min()
        .unwrap_or(from + Duration::days(1))
}

/// When a wait step that began at `entered` is over, for a contact in `tz`.
pub fn wake_time(
    duration: Option<&str>,
    until: Option<&Window>,
    entered: DateTime<Utc>,
    tz: chrono_tz::Tz,
) -> DateTime<Utc> {
    if let Some(d) = duration.and_then(|d| parse_duration(d).ok()) {
        return entered + d;
    }
    if let Some(w) = until
        && let (Ok(start), Ok(end)) = (parse_time(&w.start), parse_time(&w.end))
    {
        let days: Vec<Weekday> = w
            .days
            .iter()
            .filter_map(|d| parse_weekday(d).ok())
            .collect();
        return next_open(entered, tz, start, end, &days);
    }
    entered
}

/// When quiet hours that hold at `at` end; `None` when they do not hold.
pub fn quiet_until(
    quiet: &QuietHours,
    at: DateTime<Utc>,
    tz: chrono_tz::Tz,
) -> Option<DateTime<Utc>> {
    let (start, end) = (parse_time(&quiet.start).ok()?, parse_time(&quiet.end).ok()?);
    // The allowed time is the complement: [end, start).
    let open = next_open(at, tz, end, start, &[]);
    (open > at).then_some(open)
}

impl Definition {
    /// Reads and checks a definition; every problem found is in the error, each naming
    /// its step.
    pub fn parse(json: &Value) -> Result<Definition> {
        // Conditions nest (`all`, `any`, `not`) and are read and evaluated recursively:
        // the tree is measured first, without recursion.
        crate::input_limits::Bounds::SEQUENCE.check("definition", json)?;
        let definition: Definition = serde_json::from_value(json.clone()).map_err(|e| {
            EngineError::invalid("definition", crate::values::excerpt_long(&e.to_string()))
        })?;
        let problems = definition.problems();
        if problems.is_empty() {
            Ok(definition)
        } else {
            Err(EngineError::invalid("definition", problems.join("; ")))
        }
    }

    /// The definition as JSON, the import and export format.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("a definition serialises")
    }

    /// A step by id.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// Templates its email steps use.
    pub fn templates(&self) -> Vec<(&str, &str)> {
        self.steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::SendEmail { template, .. } => Some((s.id.as_str(), template.as_str())),
                _ => None,
            })
            .collect()
    }

    /// The titles of its create-task steps (templates too).
    pub fn task_titles(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().filter_map(|s| match &s.action {
            Action::CreateTask { title, .. } => Some(title.as_str()),
            _ => None,
        })
    }

    /// Plugins its plugin steps run.
    pub fn plugins(&self) -> Vec<(&str, &str)> {
        self.steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::Plugin { plugin, .. } => Some((s.id.as_str(), plugin.as_str())),
                _ => None,
            })
            .collect()
    }

    /// Sequences its enroll steps name.
    pub fn enrolls_in(&self) -> Vec<(&str, &str)> {
        self.steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::Enroll { sequence, .. } => Some((s.id.as_str(), sequence.as_str())),
                _ => None,
            })
            .collect()
    }

    /// Everything wrong with it that needs no database.
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            out.push("name must be 1 to 200 characters".into());
        }
        if let Err(e) = EmailAddress::parse("fromEmail", &self.from_email) {
            out.push(e.to_string());
        }
        if let Some(cap) = &self.frequency_cap
            && (cap.max == 0 || cap.days == 0)
        {
            out.push("frequencyCap needs max and days of at least 1".into());
        }
        if let Some(q) = &self.quiet_hours {
            for t in [&q.start, &q.end] {
                if let Err(e) = parse_time(t) {
                    out.push(format!("quietHours: {e}"));
                }
            }
        }
        if self.max_enrollments == Some(0) {
            out.push("maxEnrollments must be at least 1".into());
        }
        for t in &self.triggers {
            match t {
                Trigger::Event { event_type } if event_type.trim().is_empty() => {
                    out.push("an event trigger needs an eventType".into())
                }
                Trigger::Lifecycle { to } => {
                    if let Err(e) = LifecycleStage::parse("to", to) {
                        out.push(format!("lifecycle trigger: {e}"));
                    }
                }
                Trigger::DateAttribute { attribute, .. } if attribute.trim().is_empty() => {
                    out.push("a date trigger needs an attribute".into())
                }
                Trigger::Score {
                    model,
                    plugin,
                    at_least,
                    below,
                    grade,
                } => check_score_trigger(
                    model.as_deref(),
                    plugin.as_deref(),
                    *at_least,
                    *below,
                    grade.as_deref(),
                    &mut out,
                ),
                Trigger::ChurnLevel { to } => {
                    if let Err(e) = crate::values::RiskLevel::parse("to", to) {
                        out.push(format!("churn level trigger: {e}"));
                    }
                }
                Trigger::RfmSegment { to } => {
                    if let Err(e) = crate::values::RfmSegment::parse("to", to) {
                        out.push(format!("RFM segment trigger: {e}"));
                    }
                }
                _ => {}
            }
        }
        if let Some(goal) = &self.goal {
            self.check_condition("goal", goal, &mut out);
        }
        let mut seen = HashSet::new();
        for s in &self.steps {
            let id = s.id.trim();
            if id.is_empty() || id.len() > 64 {
                out.push(format!("step '{}': ids are 1 to 64 characters", s.id));
            }
            if !seen.insert(s.id.as_str()) {
                out.push(format!("step '{}' is defined twice", s.id));
            }
        }
        if self.steps.is_empty() {
            out.push("a sequence needs at least one step".into());
            return out;
        }
        if self.step(&self.start).is_none() {
            out.push(format!("start: there is no step '{}'", self.start));
        }
        for s in &self.steps {
            self.check_step(s, &mut out);
        }
        if out.is_empty() {
            out.extend(self.graph_problems());
        }
        out
    }

    fn check_step(&self, s: &Step, out: &mut Vec<String>) {
        let id = &s.id;
        for next in s.action.successors() {
            if self.step(next).is_none() {
                out.push(format!(
                    "step '{id}' leads to '{next}', which does not exist"
                ));
            }
        }
        match &s.action {
            Action::Wait {
                duration, until, ..
            } => match (duration, until) {
                (Some(d), None) => {
                    if let Err(e) = parse_duration(d) {
                        out.push(format!("step '{id}': {e}"));
                    }
                }
                (None, Some(w)) => {
                    for t in [&w.start, &w.end] {
                        if let Err(e) = parse_time(t) {
                            out.push(format!("step '{id}': {e}"));
                        }
                    }
                    if w.start == w.end {
                        out.push(format!("step '{id}': the window opens and closes at once"));
                    }
                    for d in &w.days {
                        if let Err(e) = parse_weekday(d) {
                            out.push(format!("step '{id}': {e}"));
                        }
                    }
                }
                _ => out.push(format!(
                    "step '{id}': a wait needs either a duration or an until window"
                )),
            },
            Action::SendEmail { template, .. } if template.trim().is_empty() => {
                out.push(format!("step '{id}': an email step needs a template"))
            }
            Action::Branch {
                condition,
                otherwise,
                ..
            } => {
                if otherwise.is_none() {
                    out.push(format!("step '{id}': a branch needs an else"));
                }
                self.check_condition(&format!("step '{id}'"), condition, out);
            }
            Action::Plugin {
                plugin,
                gte,
                otherwise,
                ..
            } => {
                if otherwise.is_none() {
                    out.push(format!("step '{id}': a plugin step needs an else"));
                }
                if plugin.trim().is_empty() {
                    out.push(format!("step '{id}': a plugin step needs a plugin"));
                }
                if !(0.0..=100.0).contains(gte) {
                    out.push(format!("step '{id}': gte must be a score from 0 to 100"));
                }
            }
            Action::UpdateContact {
                add_tags,
                remove_tags,
                lifecycle_stage,
                ..
            } => {
                for t in add_tags.iter().chain(remove_tags) {
                    if let Err(e) = Tag::parse("tag", t) {
                        out.push(format!("step '{id}': {e}"));
                    }
                }
                if let Some(stage) = lifecycle_stage
                    && let Err(e) = LifecycleStage::parse("lifecycleStage", stage)
                {
                    out.push(format!("step '{id}': {e}"));
                }
            }
            Action::CreateTask { title, .. } if title.trim().is_empty() => {
                out.push(format!("step '{id}': a task needs a title"))
            }
            Action::Enroll { sequence, .. } if *sequence == self.name => {
                out.push(format!("step '{id}': a sequence cannot enroll into itself"))
            }
            _ => {}
        }
    }

    fn check_condition(&self, at: &str, c: &Condition, out: &mut Vec<String>) {
        match c {
            Condition::Opened(step) | Condition::Clicked(step) => match self.step(step) {
                Some(Step {
                    action: Action::SendEmail { .. },
                    ..
                }) => {}
                _ => out.push(format!("{at}: '{step}' is not an email step")),
            },
            Condition::Lifecycle(stage) => {
                if let Err(e) = LifecycleStage::parse("lifecycle", stage) {
                    out.push(format!("{at}: {e}"));
                }
            }
            Condition::Tag(t) => {
                if let Err(e) = Tag::parse("tag", t) {
                    out.push(format!("{at}: {e}"));
                }
            }
            Condition::Score(s) if !(0.0..=100.0).contains(&s.gte) => {
                out.push(format!("{at}: a score threshold is between 0 and 100"))
            }
            Condition::Event(e) if e.within_days == 0 => {
                out.push(format!("{at}: withinDays must be at least 1"))
            }
            Condition::All(cs) | Condition::Any(cs) => {
                for c in cs {
                    self.check_condition(at, c, out);
                }
            }
            Condition::Not(c) => self.check_condition(at, c, out),
            _ => {}
        }
    }

    /// Unreachable steps and cycles that no wait interrupts.
    fn graph_problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let index: HashMap<&str, &Step> = self.steps.iter().map(|s| (s.id.as_str(), s)).collect();
        let mut reached = HashSet::new();
        let mut stack = vec![self.start.as_str()];
        while let Some(id) = stack.pop() {
            if reached.insert(id) {
                stack.extend(index[id].action.successors());
            }
        }
        for s in &self.steps {
            if !reached.contains(s.id.as_str()) {
                out.push(format!("step '{}' is unreachable from the start", s.id));
            }
        }
        // A cycle among steps that are not waits would run forever in one go.
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            Open,
            Done,
        }
        fn visit<'a>(
            id: &'a str,
            index: &HashMap<&'a str, &'a Step>,
            marks: &mut HashMap<&'a str, Mark>,
            path: &mut Vec<&'a str>,
            out: &mut Vec<String>,
        ) {
            let step = index[id];
            if matches!(step.action, Action::Wait { .. }) {
                return;
            }
            match marks.get(id) {
                Some(Mark::Done) => return,
                Some(Mark::Open) => {
                    let from = path.iter().position(|p| *p == id).unwrap_or(0);
                    let mut cycle: Vec<&str> = path[from..].to_vec();
                    cycle.push(id);
                    out.push(format!(
                        "steps {} form a cycle with no wait",
                        cycle
                            .iter()
                            .map(|s| format!("'{s}'"))
                            .collect::<Vec<_>>()
                            .join(" → ")
                    ));
                    return;
                }
                None => {}
            }
            marks.insert(id, Mark::Open);
            path.push(id);
            for next in step.action.successors() {
                visit(next, index, marks, path, out);
            }
            path.pop();
            marks.insert(id, Mark::Done);
        }
        let mut marks = HashMap::new();
        for s in &self.steps {
            visit(&s.id, &index, &mut marks, &mut Vec::new(), &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn nurture() -> Value {
        json!({
            "name": "Nurture",
            "fromEmail": "hello@example.com",
            "start": "welcome",
            "steps": [
                {"id": "welcome", "kind": "sendEmail", "template": "welcome", "next": "wait"},
                {"id": "wait", "kind": "wait", "duration": "3d", "next": "opened?"},
                {"id": "opened?", "kind": "branch", "if": {"opened": "welcome"}, "then": "tips", "else": "nudge"},
                {"id": "tips", "kind": "sendEmail", "template": "tips"},
                {"id": "nudge", "kind": "sendEmail", "template": "nudge"}
            ]
        })
    }

    #[test]
    fn a_good_definition_round_trips() {
        let d = Definition::parse(&nurture()).unwrap();
        assert_eq!(d.steps.len(), 5);
        assert_eq!(Definition::parse(&d.to_json()).unwrap(), d);
        assert_eq!(
            d.templates(),
            vec![("welcome", "welcome"), ("tips", "tips"), ("nudge", "nudge")]
        );
    }

    fn problems_of(mut v: Value, change: impl FnOnce(&mut Value)) -> String {
        change(&mut v);
        Definition::parse(&v).unwrap_err().to_string()
    }

    #[test]
    fn bad_graphs_are_named_by_step() {
        let e = problems_of(nurture(), |v| {
            v["steps"][2].as_object_mut().unwrap().remove("else");
        });
        assert!(e.contains("step 'opened?': a branch needs an else"), "{e}");
        let e = problems_of(nurture(), |v| {
            v["steps"]
                .as_array_mut()
                .unwrap()
                .push(json!({"id": "orphan", "kind": "exit"}));
        });
        assert!(e.contains("step 'orphan' is unreachable"), "{e}");
        let e = problems_of(nurture(), |v| {
            v["steps"][3]["next"] = json!("nudge");
            v["steps"][4]["next"] = json!("tips");
        });
        assert!(
            e.contains("cycle with no wait") && e.contains("'tips' → 'nudge' → 'tips'"),
            "{e}"
        );
        let e = problems_of(nurture(), |v| v["steps"][1]["duration"] = json!("3 days"));
        assert!(e.contains("step 'wait'"), "{e}");
        let e = problems_of(nurture(), |v| v["steps"][0]["next"] = json!("nowhere"));
        assert!(e.contains("step 'welcome' leads to 'nowhere'"), "{e}");
        let e = problems_of(nurture(), |v| {
            v["steps"][2]["if"] = json!({"opened": "wait"});
        });
        assert!(e.contains("'wait' is not an email step"), "{e}");
    }

    #[test]
    fn the_readme_example_is_a_valid_sequence() {
        let readme = include_str!("../../../../README.md");
        let section = &readme[readme.find("## Drip sequences").expect("the section")..];
        let start = section.find("```json").expect("a JSON example") + "```json".len();
        let end = start + section[start..].find("```").expect("its end");
        let example: Value = serde_json::from_str(&section[start..end]).expect("JSON");
        let d = Definition::parse(&example).unwrap();
        assert_eq!(d.steps.len(), 8);
        assert_eq!(d.triggers.len(), 1);
    }

    #[test]
    fn a_cycle_through_a_wait_is_fine() {
        let mut v = nurture();
        v["steps"][3]["next"] = json!("wait");
        Definition::parse(&v).unwrap();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3d").unwrap(), Duration::days(3));
        assert_eq!(parse_duration("1d12h").unwrap(), Duration::hours(36));
        assert_eq!(parse_duration("90s").unwrap(), Duration::seconds(90));
        for bad in ["", "3", "d", "3x", "0s", "-1d", "3 d"] {
            assert!(parse_duration(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn windows_follow_the_contacts_zone() {
        let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
        let nine = parse_time("09:00").unwrap();
        let five = parse_time("17:00").unwrap();
        // 2026-12-01 is a Tuesday; 06:00 UTC is 07:00 in Berlin.
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 6, 0, 0).unwrap();
        assert_eq!(
            next_open(at, berlin, nine, five, &[]),
            Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap()
        );
        // Inside the window it is now.
        let noon = Utc.with_ymd_and_hms(2026, 12, 1, 11, 0, 0).unwrap();
        assert_eq!(next_open(noon, berlin, nine, five, &[]), noon);
        // Weekdays only: Saturday evening waits for Monday morning.
        let sat = Utc.with_ymd_and_hms(2026, 12, 5, 18, 0, 0).unwrap();
        let weekdays: Vec<Weekday> = ["mon", "tue", "wed", "thu", "fri"]
            .iter()
            .map(|d| parse_weekday(d).unwrap())
            .collect();
        assert_eq!(
            next_open(sat, berlin, nine, five, &weekdays),
            Utc.with_ymd_and_hms(2026, 12, 7, 8, 0, 0).unwrap()
        );
    }

    #[test]
    fn quiet_hours_wrap_midnight() {
        let quiet = QuietHours {
            start: "21:00".into(),
            end: "08:00".into(),
        };
        let ny: chrono_tz::Tz = "America/New_York".parse().unwrap();
        // 03:00 UTC is 22:00 in New York (EST): quiet until 08:00 local = 13:00 UTC.
        let at = Utc.with_ymd_and_hms(2026, 12, 2, 3, 0, 0).unwrap();
        assert_eq!(
            quiet_until(&quiet, at, ny),
            Some(Utc.with_ymd_and_hms(2026, 12, 2, 13, 0, 0).unwrap())
        );
        let day = Utc.with_ymd_and_hms(2026, 12, 2, 15, 0, 0).unwrap();
        assert_eq!(quiet_until(&quiet, day, ny), None);
    }

    proptest! {
        #[test]
        fn duration_parse_never_panics(s in "\\PC*") {
            let _ = parse_duration(&s);
        }

        #[test]
        fn durations_add_up(d in 0i64..500, h in 0i64..48, m in 1i64..60) {
            let text = format!("{d}d{h}h{m}m");
            prop_assert_eq!(
                parse_duration(&text).unwrap(),
                Duration::days(d) + Duration::hours(h) + Duration::minutes(m)
            );
        }

        #[test]
        fn the_next_open_moment_is_open_and_not_before(
            secs in 0i64..(366 * 86_400),
            start in 0u32..24,
            len in 1u32..23,
        ) {
            let from = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::seconds(secs);
            let tz: chrono_tz::Tz = "America/Los_Angeles".parse().unwrap();
            let s = NaiveTime::from_hms_opt(start, 0, 0).unwrap();
            let e = NaiveTime::from_hms_opt((start + len) % 24, 0, 0).unwrap();
            let open = next_open(from, tz, s, e, &[]);
            prop_assert!(open >= from);
            // A day whose window falls in the spring-forward gap (02:00–03:00 on
            // the second Sunday of March) has no open moment, so the next one
            // can be two days away.
            prop_assert!(open - from <= Duration::days(2));
            let t = open.with_timezone(&tz).time();
            let inside = if s <= e { t >= s && t < e } else { t >= s || t < e };
            prop_assert!(inside, "{} local {} not in {}–{}", open, t, s, e);
        }
    }
}

//! The scoring rule itself, free of any plugin types, so the same source can run natively
//! (Rapport's benchmark compares the two) and inside the component.

// `super`: the crate imports it from the SDK; the host benchmark that includes this file
// natively, from the SDK's source.
use super::epoch_days;
use serde::Deserialize;
use serde_json::Value;

/// Points per activity kind and the half-life of their effect.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Config {
    pub meeting: f64,
    pub call: f64,
    pub inbound_email: f64,
    pub outbound_email: f64,
    pub chat: f64,
    pub other: f64,
    pub half_life_days: f64,
    /// Engagement at which the score reaches about 63.
    pub scale: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            meeting: 12.0,
            call: 6.0,
            inbound_email: 8.0,
            outbound_email: 1.0,
            chat: 4.0,
            other: 0.5,
            half_life_days: 21.0,
            scale: 30.0,
        }
    }
}

/// One reason: feature, contribution in points, note.
pub type Reason = (String, f64, String);

/// A score in 0–100 and its reasons, strongest first.
pub fn score(data: &Value, config: &Config, as_of: &str) -> Result<(f64, Vec<Reason>), String> {
    let now = epoch_days(as_of).ok_or_else(|| format!("as-of is not a timestamp: {as_of}"))?;
    let contact = data
        .get("contact")
        .filter(|c| !c.is_null())
        .ok_or("the input has no contact")?;
    let mut by_kind: Vec<(&'static str, f64, u32)> = Vec::new();
    let edges = contact
        .pointer("/activities/edges")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for edge in edges {
        let node = &edge["node"];
        let (feature, points) = match (node["kind"].as_str(), node["direction"].as_str()) {
            (Some("MEETING"), _) => ("meetings", config.meeting),
            (Some("CALL"), _) => ("calls", config.call),
            (Some("EMAIL"), Some("INBOUND")) => ("replies", config.inbound_email),
            (Some("EMAIL"), _) => ("emails sent", config.outbound_email),
            (Some("CHAT"), _) => ("chats", config.chat),
            _ => ("other touches", config.other),
        };
        let Some(at) = node["occurredAt"].as_str().and_then(epoch_days) else {
            continue;
        };
        let age = (now - at).max(0.0);
        let weight = points * 0.5f64.powf(age / config.half_life_days.max(0.1));
        match by_kind.iter_mut().find(|(f, _, _)| *f == feature) {
            Some(entry) => {
                entry.1 += weight;
                entry.2 += 1;
            }
            None => by_kind.push((feature, weight, 1)),
        }
    }
    let engagement: f64 = by_kind.iter().map(|(_, w, _)| w).sum();
    let score = 100.0 * (1.0 - (-engagement / config.scale.max(0.1)).exp());
    // Each kind's share of the score, in points, so the reasons add up to the score.
    let mut reasons: Vec<Reason> = by_kind
        .into_iter()
        .map(|(feature, weight, count)| {
            let share = if engagement > 0.0 {
                score * weight / engagement
            } else {
                0.0
            };
            (
                feature.to_string(),
                share,
                format!("{count} {feature}, recent ones count most"),
            )
        })
        .collect();
    if contact["email"].is_null() && contact["phone"].is_null() {
        reasons.push((
            "reachability".into(),
            0.0,
            "no email address or phone number".into(),
        ));
    }
    reasons.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    Ok((score, reasons))
}

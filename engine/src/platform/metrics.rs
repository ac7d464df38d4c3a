//! What this process has done, counted for an operator's Prometheus: emails, jobs,
//! webhook deliveries, plugin calls. Counters are process-wide statics — every room adds
//! to them without a handle passed around — and only ever go up; the API renders them in
//! Prometheus' text format at `/metrics`.
//!
//! Label values come from Rapport's own closed sets (job kinds, outcomes), never from a
//! client, so no caller can make the set grow.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// One counter name with its values by label values.
pub struct Family {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    values: Mutex<BTreeMap<Vec<&'static str>, f64>>,
}

impl Family {
    /// A family named `name` (ending in `_total`) with these label names.
    pub const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Family {
        Family {
            name,
            help,
            labels,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    /// Adds `by` to the counter with these label values (one per label name).
    pub fn add(&self, label_values: &[&'static str], by: f64) {
        debug_assert_eq!(label_values.len(), self.labels.len(), "{}", self.name);
        let mut values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        *values.entry(label_values.to_vec()).or_insert(0.0) += by;
    }

    /// Adds one.
    pub fn inc(&self, label_values: &[&'static str]) {
        self.add(label_values, 1.0);
    }

    /// The current value for these label values (tests).
    pub fn get(&self, label_values: &[&'static str]) -> f64 {
        let values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        values.get(label_values).copied().unwrap_or(0.0)
    }

    /// Appends the family in Prometheus' text format.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} counter", self.name);
        let values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        for (label_values, value) in values.iter() {
            let _ = writeln!(
                out,
                "{}{} {}",
                self.name,
                labels(self.labels, label_values),
                value
            );
        }
    }
}

/// `{a="x",b="y"}` (empty for no labels), values escaped as the format asks.
pub fn labels(names: &[&str], values: &[&str]) -> String {
    if names.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{n}=\"{v}\"")
        })
        .collect();
    format!("{{{}}}", pairs.join(","))
}

/// Emails handed to the transport, by outcome (`sent`, `rejected`, `deferred`, `unknown`).
pub static EMAILS: Family = Family::new(
    "rapport_emails_total",
    "Emails handed to the mail transport, by outcome.",
    &["outcome"],
);

/// Jobs worked by this process, by kind and outcome (`ok`, `error`).
pub static JOBS: Family = Family::new(
    "rapport_jobs_worked_total",
    "Jobs this process worked, by kind and outcome.",
    &["kind", "outcome"],
);

/// Webhook delivery attempts, by outcome (`delivered`, `failed`, `gone`).
pub static WEBHOOK_ATTEMPTS: Family = Family::new(
    "rapport_webhook_attempts_total",
    "Webhook delivery attempts, by outcome.",
    &["outcome"],
);

/// Plugin calls, by outcome (`ok`, `error`).
pub static PLUGIN_CALLS: Family = Family::new(
    "rapport_plugin_calls_total",
    "Plugin calls, by outcome.",
    &["outcome"],
);

/// Fuel plugins burned.
pub static PLUGIN_FUEL: Family = Family::new(
    "rapport_plugin_fuel_total",
    "Fuel (WebAssembly instructions, roughly) plugins burned.",
    &[],
);

/// Every family above, rendered.
pub fn render(out: &mut String) {
    for family in [
        &EMAILS,
        &JOBS,
        &WEBHOOK_ATTEMPTS,
        &PLUGIN_CALLS,
        &PLUGIN_FUEL,
    ] {
        family.render(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_render_in_the_text_format() {
        static F: Family = Family::new("t_total", "A test.", &["kind"]);
        F.inc(&["a"]);
        F.add(&["b\"x"], 2.0);
        let mut out = String::new();
        F.render(&mut out);
        assert_eq!(
            out,
            "# HELP t_total A test.\n# TYPE t_total counter\nt_total{kind=\"a\"} 1\nt_total{kind=\"b\\\"x\"} 2\n"
        );
    }
}

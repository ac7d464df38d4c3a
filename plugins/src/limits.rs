//! The limits a plugin call runs under.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Per-call limits. The defaults follow Shopify Functions (11 million instructions,
/// 128 kB input, 20 kB output, 1 kB of logs) with 64 MiB of memory and 100 ms of wall time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    /// Fuel: roughly, WebAssembly instructions executed.
    pub fuel: u64,
    /// Linear memory of the instance, in bytes.
    pub memory_bytes: u64,
    /// Wall-clock time of one call (instantiation included), in milliseconds.
    pub time_ms: u64,
    /// Input data plus configuration, in bytes.
    pub input_bytes: u64,
    /// The returned result, in bytes of text.
    pub output_bytes: u64,
    /// Log lines kept per call, in bytes; the rest are dropped and counted.
    pub log_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 11_000_000,
            memory_bytes: 64 << 20,
            time_ms: 100,
            input_bytes: 128 << 10,
            output_bytes: 20 << 10,
            log_bytes: 1 << 10,
        }
    }
}

/// The most a workspace may grant one plugin.
pub const CEILING: Limits = Limits {
    fuel: 20_000_000_000,
    memory_bytes: 1 << 30,
    time_ms: 30_000,
    input_bytes: 16 << 20,
    output_bytes: 1 << 20,
    log_bytes: 64 << 10,
};

impl Limits {
    /// Parses limits from JSON (missing fields keep their defaults) and checks each is
    /// positive and at most [`CEILING`]. The error names the field.
    pub fn parse(json: &serde_json::Value) -> Result<Limits, (String, String)> {
        let limits: Limits = serde_json::from_value(json.clone())
            .map_err(|e| ("limits".to_string(), e.to_string()))?;
        let checks = [
            ("fuel", limits.fuel, CEILING.fuel),
            ("memoryBytes", limits.memory_bytes, CEILING.memory_bytes),
            ("timeMs", limits.time_ms, CEILING.time_ms),
            ("inputBytes", limits.input_bytes, CEILING.input_bytes),
            ("outputBytes", limits.output_bytes, CEILING.output_bytes),
            ("logBytes", limits.log_bytes, CEILING.log_bytes),
        ];
        for (field, value, max) in checks {
            if value == 0 || value > max {
                return Err((
                    format!("limits.{field}"),
                    format!("must be between 1 and {max}, got {value}"),
                ));
            }
        }
        Ok(limits)
    }

    /// The wall-time limit.
    pub fn time(&self) -> Duration {
        Duration::from_millis(self.time_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_fields_keep_defaults() {
        let l = Limits::parse(&json!({"fuel": 5})).unwrap();
        assert_eq!(l.fuel, 5);
        assert_eq!(l.memory_bytes, Limits::default().memory_bytes);
    }

    #[test]
    fn zero_unknown_and_excessive_limits_are_refused_by_name() {
        assert_eq!(
            Limits::parse(&json!({"timeMs": 0})).unwrap_err().0,
            "limits.timeMs"
        );
        assert_eq!(
            Limits::parse(&json!({"memoryBytes": 4u64 << 30}))
                .unwrap_err()
                .0,
            "limits.memoryBytes"
        );
        assert!(
            Limits::parse(&json!({"fuell": 1}))
                .unwrap_err()
                .1
                .contains("fuell")
        );
    }
}

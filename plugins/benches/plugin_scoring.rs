//! Plugin scoring speed: the engagement-score example as a WebAssembly component against
//! the same rule compiled natively, over 100,000 synthetic contacts on one core, plus
//! the cost of a fresh instance (a `describe()` call).
//!
//! Run with `scripts/bench-plugins` (builds the component first).

use std::time::Instant;

use rapport_plugins::{Input, Limits, Runtime};

#[path = "../examples/engagement-score/src/rule.rs"]
mod rule;
// The SDK's clock-free time, which the rule uses.
#[path = "../sdk/src/time.rs"]
mod time;
use time::epoch_days;

const CONTACTS: usize = 100_000;

/// Deterministic inputs: 0–19 activities per contact over the last 120 days.
fn inputs() -> Vec<Input> {
    let kinds = [
        ("MEETING", "OUTBOUND"),
        ("CALL", "OUTBOUND"),
        ("EMAIL", "INBOUND"),
        ("EMAIL", "OUTBOUND"),
        ("CHAT", "INBOUND"),
        ("NOTE", "OUTBOUND"),
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..CONTACTS)
        .map(|i| {
            let n = (next() % 20) as usize;
            let edges: Vec<serde_json::Value> = (0..n)
                .map(|_| {
                    let (kind, direction) = kinds[(next() % kinds.len() as u64) as usize];
                    let day = 1 + next() % 28;
                    let month = 8 + next() % 4;
                    serde_json::json!({"node": {"kind": kind, "direction": direction,
                        "occurredAt": format!("2026-{month:02}-{day:02}T10:00:00Z")}})
                })
                .collect();
            let data = serde_json::json!({"contact": {"lifecycleStage": "LEAD", "email": "x@example.com",
                "phone": null, "tags": [], "activities": {"edges": edges}}});
            Input {
                contact_id: i.to_string(),
                data: data.to_string(),
                config: "{}".into(),
                as_of: "2026-11-30T12:00:00Z".into(),
            }
        })
        .collect()
}

fn component() -> Vec<u8> {
    let dir = std::env::var("RAPPORT_TEST_PLUGINS").unwrap_or_else(|_| {
        let target = std::env::var("CARGO_TARGET_DIR")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").to_string());
        format!("{target}/wasm32-wasip2/release")
    });
    let path = std::path::Path::new(&dir).join("engagement_score.wasm");
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/bench-plugins)", path.display()))
}

fn main() {
    let inputs = inputs();
    let bytes: usize = inputs.iter().map(|i| i.data.len()).sum();
    eprintln!(
        "{CONTACTS} inputs, {:.0} bytes each on average",
        bytes as f64 / CONTACTS as f64
    );

    // Native: the same rule, parsing the same JSON text.
    let config = rule::Config::default();
    let started = Instant::now();
    let mut native_sum = 0.0;
    for input in &inputs {
        let data: serde_json::Value = serde_json::from_str(&input.data).unwrap();
        native_sum += rule::score(&data, &config, &input.as_of).unwrap().0;
    }
    let native = started.elapsed();

    let runtime = Runtime::new(None).unwrap();
    let started = Instant::now();
    let plugin = runtime.load(&component()).unwrap();
    let compile = started.elapsed();
    let limits = Limits::default();

    // Instantiation: describe() does almost nothing but instantiate.
    let rounds = 20_000;
    let started = Instant::now();
    for _ in 0..rounds {
        plugin.describe(&limits).unwrap();
    }
    let instantiate = started.elapsed() / rounds;

    let started = Instant::now();
    let mut plugin_sum = 0.0;
    let mut fuel = 0u64;
    for input in &inputs {
        let call = plugin.score(input, &limits).unwrap();
        plugin_sum += call.value.score;
        fuel += call.fuel_used;
    }
    let wasm = started.elapsed();
    assert!(
        (plugin_sum - native_sum).abs() < 1e-6 * native_sum.max(1.0),
        "same rule, same scores"
    );

    // Two threads, one instance per call each.
    let started = Instant::now();
    std::thread::scope(|s| {
        for half in inputs.chunks(CONTACTS / 2) {
            let plugin = plugin.clone();
            let limits = limits.clone();
            s.spawn(move || {
                for input in half {
                    plugin.score(input, &limits).unwrap();
                }
            });
        }
    });
    let parallel = started.elapsed();

    let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / CONTACTS as f64;
    let report = serde_json::json!({
        "contacts": CONTACTS,
        "native": {"seconds": native.as_secs_f64(), "per_second": CONTACTS as f64 / native.as_secs_f64(), "us_per_call": per(native)},
        "plugin_one_thread": {"seconds": wasm.as_secs_f64(), "per_second": CONTACTS as f64 / wasm.as_secs_f64(), "us_per_call": per(wasm), "mean_fuel": fuel / CONTACTS as u64},
        "plugin_two_threads": {"seconds": parallel.as_secs_f64(), "per_second": CONTACTS as f64 / parallel.as_secs_f64()},
        "overhead_us_per_call": per(wasm) - per(native),
        "instantiate_and_describe_us": instantiate.as_secs_f64() * 1e6,
        "compile_ms": compile.as_secs_f64() * 1e3,
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
}

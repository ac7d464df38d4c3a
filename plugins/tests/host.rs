//! The host against real components: the example plugins and a fixture that misbehaves on
//! purpose (built for wasm32-wasip2 by `scripts/test`), and hand-written WAT.

use std::path::PathBuf;
use std::time::Instant;

use rapport_plugins::{Error, Input, Limit, Limits, Runtime};

// The SDK's clock-free time, whose own tests run here (the SDK builds only for wasm).
#[path = "../sdk/src/time.rs"]
mod sdk_time;

/// The directory `scripts/test` builds the guest components into.
fn components() -> PathBuf {
    let dir = std::env::var("RAPPORT_TEST_PLUGINS").unwrap_or_else(|_| {
        let target = std::env::var("CARGO_TARGET_DIR")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").to_string());
        format!("{target}/wasm32-wasip2/release")
    });
    PathBuf::from(dir)
}

fn component(name: &str) -> Vec<u8> {
    let path = components().join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the guests first: cargo build --release --target wasm32-wasip2 \
             --manifest-path plugins/examples/Cargo.toml (scripts/test does)",
            path.display()
        )
    })
}

fn input(data: serde_json::Value, config: serde_json::Value) -> Input {
    Input {
        contact_id: "42".into(),
        data: data.to_string(),
        config: config.to_string(),
        as_of: "2026-11-30T12:00:00Z".into(),
    }
}

fn activities(kinds: &[(&str, &str, &str)]) -> serde_json::Value {
    let edges: Vec<_> = kinds
        .iter()
        .map(|(kind, direction, at)| {
            serde_json::json!({"node": {"kind": kind, "direction": direction, "occurredAt": at}})
        })
        .collect();
    serde_json::json!({"contact": {"lifecycleStage": "LEAD", "email": "a@b.co", "phone": null,
        "tags": [], "activities": {"edges": edges}}})
}

fn hostile(runtime: &Runtime, mode: &str, limits: &Limits) -> Result<f64, Error> {
    let plugin = runtime.load(&component("hostile")).unwrap();
    plugin
        .score(
            &input(
                serde_json::json!({}),
                serde_json::json!({"mode": mode, "always": true}),
            ),
            limits,
        )
        .map(|c| c.value.score)
}

#[test]
fn engagement_score_ranks_recent_meetings_above_old_emails() {
    let runtime = Runtime::new(None).unwrap();
    let plugin = runtime.load(&component("engagement_score")).unwrap();
    let d = plugin.describe(&Limits::default()).unwrap().value;
    assert_eq!(d.name, "engagement-score");
    assert!(d.implements.score && !d.implements.next_best_actions);

    let warm = activities(&[
        ("MEETING", "OUTBOUND", "2026-11-28T10:00:00Z"),
        ("EMAIL", "INBOUND", "2026-11-27T10:00:00Z"),
        ("CALL", "OUTBOUND", "2026-11-20T10:00:00Z"),
    ]);
    let cold = activities(&[("EMAIL", "OUTBOUND", "2026-05-01T10:00:00Z")]);
    let warm = plugin
        .score(&input(warm, serde_json::json!({})), &Limits::default())
        .unwrap();
    let cold = plugin
        .score(&input(cold, serde_json::json!({})), &Limits::default())
        .unwrap();
    assert!(warm.value.score > 40.0, "{:?}", warm.value);
    assert!(cold.value.score < 1.0, "{:?}", cold.value);
    assert_eq!(warm.value.reasons[0].feature, "meetings");
    let sum: f64 = warm.value.reasons.iter().map(|r| r.contribution).sum();
    assert!(
        (sum - warm.value.score).abs() < 1e-9,
        "reasons add up to the score"
    );
    assert!(warm.fuel_used > 0 && warm.fuel_used < Limits::default().fuel);

    // Deterministic: the same input, the same answer.
    let again = plugin
        .score(
            &input(
                activities(&[
                    ("MEETING", "OUTBOUND", "2026-11-28T10:00:00Z"),
                    ("EMAIL", "INBOUND", "2026-11-27T10:00:00Z"),
                    ("CALL", "OUTBOUND", "2026-11-20T10:00:00Z"),
                ]),
                serde_json::json!({}),
            ),
            &Limits::default(),
        )
        .unwrap();
    assert_eq!(again.value, warm.value);
    assert_eq!(again.fuel_used, warm.fuel_used);

    // Its configuration is honoured, and a bad one is the plugin's refusal.
    let doubled = plugin
        .score(
            &input(
                activities(&[("MEETING", "OUTBOUND", "2026-11-28T10:00:00Z")]),
                serde_json::json!({"meeting": 24}),
            ),
            &Limits::default(),
        )
        .unwrap();
    let single = plugin
        .score(
            &input(
                activities(&[("MEETING", "OUTBOUND", "2026-11-28T10:00:00Z")]),
                serde_json::json!({}),
            ),
            &Limits::default(),
        )
        .unwrap();
    assert!(doubled.value.score > single.value.score);
    let bad = plugin
        .score(
            &input(warm_data(), serde_json::json!({"meeting": "lots"})),
            &Limits::default(),
        )
        .unwrap_err();
    assert!(
        matches!(&bad, Error::Refused { code, .. } if code == "bad-input"),
        "{bad}"
    );
    let unsupported = plugin
        .next_best_actions(
            &input(warm_data(), serde_json::json!({})),
            &Limits::default(),
        )
        .unwrap_err();
    assert!(unsupported.is_unsupported(), "{unsupported}");
}

fn warm_data() -> serde_json::Value {
    activities(&[("MEETING", "OUTBOUND", "2026-11-28T10:00:00Z")])
}

#[test]
fn next_best_action_calls_about_a_quiet_deal() {
    let runtime = Runtime::new(None).unwrap();
    let plugin = runtime.load(&component("next_best_action")).unwrap();
    let data = serde_json::json!({"contact": {
        "name": "Ada Lovelace", "lifecycleStage": "OPPORTUNITY", "leadScore": {"score": 80.0},
        "emailPermission": {"allowed": true},
        "deals": {"edges": [{"node": {"id": "7", "name": "Engines", "amount": 1000.0, "currency": "EUR", "stage": {"name": "Proposal"}}}]},
        "tasks": {"totalCount": 0},
        "activities": {"edges": [{"node": {"kind": "EMAIL", "occurredAt": "2026-10-01T09:00:00Z"}}]}
    }});
    let actions = plugin
        .next_best_actions(&input(data, serde_json::json!({})), &Limits::default())
        .unwrap()
        .value;
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(actions[0].kind, rapport_plugins::ActionKind::Call);
    assert_eq!(actions[0].priority, 90, "quiet for twice the threshold");
    assert!(
        actions[0]
            .params
            .contains(&("deal".to_string(), "7".to_string()))
    );
    assert!(
        actions[0].rationale.contains("60 days"),
        "{}",
        actions[0].rationale
    );
}

#[test]
fn an_endless_loop_is_stopped_by_fuel_and_by_the_clock() {
    let runtime = Runtime::new(None).unwrap();
    let err = hostile(&runtime, "loop", &Limits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Limit {
                limit: Limit::Fuel,
                ..
            }
        ),
        "{err}"
    );

    let started = Instant::now();
    let generous = Limits {
        fuel: 20_000_000_000,
        time_ms: 50,
        ..Limits::default()
    };
    let err = hostile(&runtime, "loop", &generous).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Limit {
                limit: Limit::Time,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        started.elapsed().as_millis() < 2_000,
        "stopped near its deadline"
    );
}

#[test]
fn memory_growth_output_traps_and_bad_results_fail_cleanly() {
    let runtime = Runtime::new(None).unwrap();
    let limits = Limits {
        fuel: 2_000_000_000,
        time_ms: 5_000,
        ..Limits::default()
    };
    let err = hostile(&runtime, "grow", &limits).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Limit {
                limit: Limit::Memory,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("memory"));

    let err = hostile(&runtime, "trap", &limits).unwrap_err();
    assert!(
        matches!(&err, Error::Trap(m) if m.contains("traps on purpose")),
        "{err}"
    );

    let err = hostile(&runtime, "huge", &limits).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Limit {
                limit: Limit::Output,
                ..
            }
        ),
        "{err}"
    );

    let err = hostile(&runtime, "out-of-range", &limits).unwrap_err();
    assert!(
        matches!(&err, Error::Malformed(m) if m.contains("250")),
        "{err}"
    );

    // A log flood is cut at the log limit; the call itself succeeds.
    let plugin = runtime.load(&component("hostile")).unwrap();
    let call = plugin
        .score(
            &input(
                serde_json::json!({}),
                serde_json::json!({"mode": "flood", "always": true}),
            ),
            &limits,
        )
        .unwrap();
    assert_eq!(call.value.score, 7.0);
    let kept: usize = call.log.iter().map(|l| l.message.len()).sum();
    assert!(kept <= limits.log_bytes as usize && !call.log.is_empty());
    assert!(call.log_dropped > 99_000);

    // The input limit is checked before the plugin runs.
    let big = Limits {
        input_bytes: 10,
        ..Limits::default()
    };
    let err = hostile(&runtime, "ok", &big).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Limit {
                limit: Limit::Input,
                ..
            }
        ),
        "{err}"
    );

    // And after all of that the same runtime still scores.
    assert_eq!(hostile(&runtime, "ok", &Limits::default()).unwrap(), 42.0);
}

#[test]
fn a_blocking_sleep_ends_at_the_calls_deadline() {
    let runtime = Runtime::new(None).unwrap();
    // Compiled first, so the time below is the call's alone (compiling the fixture in a
    // debug build on a busy machine can take longer than the call's deadline).
    let plugin = runtime.load(&component("hostile")).unwrap();
    // The fixture sleeps 10 s in a WASI call; the call may take 100 ms.
    let started = std::time::Instant::now();
    let err = plugin
        .score(
            &input(
                serde_json::json!({}),
                serde_json::json!({"mode": "sleep", "always": true}),
            ),
            &Limits::default(),
        )
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(
            err,
            Error::Limit {
                limit: Limit::Time,
                ..
            }
        ),
        "{err}"
    );
    // Far below the 10 s the guest asked for, with room for a loaded machine.
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
    // Stdin is empty and answers at once.
    assert_eq!(hostile(&runtime, "stdin", &Limits::default()).unwrap(), 0.0);
}

#[test]
fn oversized_and_deeply_nested_components_are_refused_before_compiling() {
    let runtime = Runtime::new(None).unwrap();
    // About 100 kB of nested blocks: compiling it took seconds and a gigabyte.
    let depth = 12_000;
    let wat = format!(
        "(component (core module (func {} {})))",
        "(block ".repeat(depth),
        ")".repeat(depth)
    );
    let started = std::time::Instant::now();
    let err = runtime.load(wat.as_bytes()).err().unwrap();
    assert!(
        matches!(&err, Error::TooLarge(m) if m.contains("nested")),
        "{err}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    let err = runtime
        .load(&vec![0; rapport_plugins::MAX_COMPONENT_BYTES + 1])
        .err()
        .unwrap();
    assert!(matches!(err, Error::TooLarge(_)), "{err}");
}

#[test]
fn wrong_worlds_missing_imports_and_garbage_are_refused_on_load() {
    let runtime = Runtime::new(None).unwrap();
    let err = runtime.load(b"(component)").err().unwrap();
    assert!(matches!(err, Error::WrongWorld(_)), "{err}");

    let err = runtime
        .load(br#"(component (import "evil:net/socket" (instance (export "connect" (func)))))"#)
        .err()
        .unwrap();
    assert!(
        matches!(&err, Error::MissingImport(m) if m.contains("evil:net/socket")),
        "{err}"
    );

    let err = runtime.load(b"(module)").err().unwrap();
    assert!(matches!(err, Error::NotAComponent(_)), "{err}");
    let err = runtime.load(&[0, 97, 115, 109, 1, 0, 0, 0]).err().unwrap();
    assert!(matches!(err, Error::NotAComponent(_)), "{err}");
    let err = runtime.load(b"not wasm at all").err().unwrap();
    assert!(matches!(err, Error::NotAComponent(_)), "{err}");
}

#[test]
fn compiled_components_are_cached_on_disk() {
    let dir = std::env::temp_dir().join(format!("rapport-plugin-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let wasm = component("engagement_score");
    let first = Runtime::new(Some(dir.clone())).unwrap();
    first.load(&wasm).unwrap();
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(files.len(), 1);
    drop(first);

    // A new runtime (a restarted process) finds it and scores with it.
    let second = Runtime::new(Some(dir.clone())).unwrap();
    let plugin = second.load(&wasm).unwrap();
    let call = plugin
        .score(
            &input(warm_data(), serde_json::json!({})),
            &Limits::default(),
        )
        .unwrap();
    assert!(call.value.score > 0.0);
    drop(second);

    // An altered entry is never deserialized: it is compiled again (and rewritten).
    let path = files[0].as_ref().unwrap().path();
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let third = Runtime::new(Some(dir.clone())).unwrap();
    let plugin = third.load(&wasm).unwrap();
    let call = plugin
        .score(
            &input(warm_data(), serde_json::json!({})),
            &Limits::default(),
        )
        .unwrap();
    assert!(call.value.score > 0.0);
    assert_ne!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the entry was rewritten"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_python_plugin_scores_through_the_same_host() {
    let runtime = Runtime::new(None).unwrap();
    let plugin = runtime.load(&component("customer_health")).unwrap();
    let limits = Limits {
        fuel: 2_000_000_000,
        time_ms: 10_000,
        memory_bytes: 256 << 20,
        ..Limits::default()
    };
    let d = plugin.describe(&limits).unwrap().value;
    assert_eq!(d.name, "customer-health");
    let order = |at: &str, status: &str| serde_json::json!({"node": {"placedAt": at, "status": status, "total": 20.0}});
    let data = serde_json::json!({"contact": {"lifecycleStage": "CUSTOMER",
        "orders": {"totalCount": 3, "edges": [
            order("2026-11-20T10:00:00Z", "PAID"),
            order("2026-09-01T10:00:00Z", "FULFILLED"),
            order("2026-08-01T10:00:00Z", "REFUNDED")]},
        "inquiries": {"totalCount": 1}}});
    let call = plugin
        .score(&input(data, serde_json::json!({})), &limits)
        .unwrap();
    // 2 orders (16) + recency 40·(1 − 10/360) + recent (20) − one inquiry (15).
    let expected = 16.0 + 40.0 * (1.0 - 10.0 / 360.0) + 20.0 - 15.0;
    assert!(
        (call.value.score - expected).abs() < 1e-9,
        "{:?}",
        call.value
    );
    assert_eq!(call.value.reasons[0].feature, "recency");
    let err = plugin
        .next_best_actions(
            &input(serde_json::json!({}), serde_json::json!({})),
            &limits,
        )
        .unwrap_err();
    assert!(err.is_unsupported(), "{err}");
}

#[test]
fn a_plugin_reaches_no_files_environment_network_or_real_clock() {
    let runtime = Runtime::new(None).unwrap();
    let plugin = runtime.load(&component("hostile")).unwrap();
    let call = plugin
        .score(
            &input(
                serde_json::json!({}),
                serde_json::json!({"mode": "probe", "always": true}),
            ),
            &Limits::default(),
        )
        .unwrap();
    let reason = |f: &str| {
        call.value
            .reasons
            .iter()
            .find(|r| r.feature == f)
            .unwrap()
            .clone()
    };
    assert!(
        reason("file").note.starts_with("refused"),
        "{:?}",
        reason("file")
    );
    assert!(
        reason("dir").note.starts_with("refused"),
        "{:?}",
        reason("dir")
    );
    assert!(
        reason("net").note.starts_with("refused"),
        "{:?}",
        reason("net")
    );
    assert_eq!(reason("env").contribution, 0.0, "no environment variables");
    // 2026-11-30T12:00:00Z: the clock shows the input's as-of, not the real time.
    assert_eq!(reason("clock").contribution, 1_796_040_000.0);
}

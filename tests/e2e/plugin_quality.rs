//! Whether a plugin's score predicts anything, through the real server: a backtest of a
//! plugin that reads a known driver of conversion in the demo data (recent meetings) beats
//! one that scores by chance, beside the built-in lead score; a shadow version scores
//! apart and is never shown until promoted.

use rapport_engine::demo::{self, DemoSize};
use rapport_tests::{TestApp, both_backends, component, repo_file};
use serde_json::{Value, json};

both_backends!(
    backtests_tell_a_predictive_plugin_from_chance,
    a_shadow_version_is_never_shown_until_promoted
);

const REGISTER: &str =
    "mutation($name: String!, $wasm: Upload!, $q: String!, $config: JSON, $shadow: Boolean) {
  registerPlugin(name: $name, wasm: $wasm, inputQuery: $q, config: $config, shadow: $shadow) {
    name activeVersion { version } shadow { version } } }";

const BACKTEST: &str = "query($name: String!, $version: Int, $asOf: DateTime, $horizon: Int, $sample: Int) {
  plugin(name: $name) { backtest(version: $version, asOf: $asOf, horizonDays: $horizon, sample: $sample) {
    version asOf pointInTime horizonDays leads failed stoppedEarly failures { contactId message }
    plugin { scored converted auc lift calibration { from to leads meanScore conversionRate } }
    builtIn { modelVersion overlapsTraining quality { scored converted auc lift calibration { leads } } }
  } } }";

/// The hostile fixture scoring by a hash of the contact's id: a score that knows nothing.
const CHANCE: &str = "query($contactId: ID!) { contact(id: $contactId) { id } }";

async fn register(app: &TestApp, key: &str, name: &str, wasm: &str, vars: Value) -> Value {
    let mut all = json!({"name": name});
    for (k, v) in vars.as_object().cloned().unwrap_or_default() {
        all[k] = v;
    }
    let (_, body) = app
        .upload(key, REGISTER, all, "wasm", component(wasm))
        .await;
    assert!(body["errors"].is_null(), "register {name}: {body}");
    body["data"]["registerPlugin"].clone()
}

async fn seeded(app: &TestApp) -> String {
    demo::seed(&app.db, "Demo", &DemoSize::for_contacts(2000), &|_| {})
        .await
        .expect("seed")
        .key
        .key
}

async fn backtests_tell_a_predictive_plugin_from_chance(app: TestApp) {
    let key = seeded(&app).await;
    let trained = app
        .ok(
            &key,
            "mutation { trainModel(kind: LEAD_SCORE) { status version } }",
            json!({}),
        )
        .await;
    assert_eq!(trained["trainModel"]["status"], "ACTIVE", "{trained}");
    let engagement = repo_file("plugins/examples/engagement-score/query.graphql");
    register(
        &app,
        &key,
        "engagement",
        "engagement_score",
        json!({"q": engagement}),
    )
    .await;
    let chance_config = json!({"mode": "random", "always": true});
    register(
        &app,
        &key,
        "chance",
        "hostile",
        json!({"q": CHANCE, "config": chance_config}),
    )
    .await;

    // One moment for both: the built-in figures are computed as of it, and two defaults
    // (now less the horizon) taken seconds apart see windows whose edges moved, which
    // changed a few leads' features (AUC 0.97595 against 0.97612).
    let as_of = (chrono::Utc::now() - chrono::Duration::days(90)).to_rfc3339();
    let run = |name: &'static str| {
        let (app, key, as_of) = (&app, &key, as_of.clone());
        async move {
            let data = app
                .ok(
                    key,
                    BACKTEST,
                    json!({"name": name, "sample": 1500, "asOf": as_of}),
                )
                .await;
            data["plugin"]["backtest"].clone()
        }
    };
    let warm = run("engagement").await;
    let chance = run("chance").await;
    for b in [&warm, &chance] {
        assert_eq!(b["horizonDays"], 90, "{b}");
        assert_eq!(b["failed"], 0, "{b}");
        assert_eq!(b["stoppedEarly"], false, "{b}");
        let leads = b["leads"].as_i64().unwrap();
        assert!(leads > 300, "{b}");
        assert_eq!(b["plugin"]["scored"].as_i64().unwrap(), leads, "{b}");
        assert!(b["plugin"]["converted"].as_i64().unwrap() >= 30, "{b}");
        assert!(!b["plugin"]["calibration"].as_array().unwrap().is_empty());
        // The same leads, so the same built-in figures beside each.
        assert_eq!(b["builtIn"], warm["builtIn"]);
    }
    // The example's query filters activities by $asOf: it saw only what was known then.
    assert_eq!(warm["pointInTime"], true);
    assert_eq!(chance["pointInTime"], false);
    assert_eq!(warm["leads"], chance["leads"]);
    let auc = |b: &Value| b["plugin"]["auc"].as_f64().unwrap();
    eprintln!(
        "backtest AUC: engagement {}, chance {}, built-in {}",
        warm["plugin"]["auc"], chance["plugin"]["auc"], warm["builtIn"]["quality"]["auc"]
    );
    // Recent meetings drive the demo's conversions; a hash of the id drives nothing.
    assert!(auc(&warm) > 0.65, "engagement AUC {}: {warm}", auc(&warm));
    assert!(
        (auc(&chance) - 0.5).abs() < 0.08,
        "chance AUC {}",
        auc(&chance)
    );
    assert!(auc(&warm) > auc(&chance) + 0.1);
    let lift = |b: &Value| b["plugin"]["lift"].as_f64().unwrap();
    assert!(lift(&warm) > 1.5, "lift {}", lift(&warm));
    let built_in = &warm["builtIn"];
    assert_eq!(built_in["modelVersion"], 1);
    // The built-in version was trained on exactly this window: said so.
    assert_eq!(built_in["overlapsTraining"], true);
    assert!(
        built_in["quality"]["auc"].as_f64().unwrap() > 0.65,
        "{built_in}"
    );
    assert_eq!(built_in["quality"]["scored"], warm["leads"]);

    // An earlier moment with a shorter window scores other leads, and nothing is stored.
    let as_of = (chrono::Utc::now() - chrono::Duration::days(200)).to_rfc3339();
    let earlier = app
        .ok(
            &key,
            BACKTEST,
            json!({"name": "engagement", "asOf": as_of, "horizon": 60, "sample": 300}),
        )
        .await;
    let earlier = &earlier["plugin"]["backtest"];
    assert_eq!(earlier["horizonDays"], 60);
    assert!(earlier["leads"].as_i64().unwrap() <= 300);
    assert_eq!(earlier["builtIn"]["overlapsTraining"], false);
    let stored = app
        .ok(&key, "{ plugin(name: \"engagement\") { scoreDistribution { count } runs(first: 5) { id } } }", json!({}))
        .await;
    assert_eq!(
        stored["plugin"]["scoreDistribution"]["count"], 0,
        "{stored}"
    );
    assert_eq!(stored["plugin"]["runs"], json!([]), "{stored}");

    // Bad input is refused with the field named; a read key may not run plugins over
    // contacts' data.
    let soon = (chrono::Utc::now() - chrono::Duration::days(10)).to_rfc3339();
    for (vars, field) in [
        (json!({"name": "engagement", "asOf": soon}), "asOf"),
        (json!({"name": "engagement", "horizon": 0}), "horizonDays"),
        (json!({"name": "engagement", "sample": 5001}), "sample"),
        (json!({"name": "engagement", "version": 7}), ""),
    ] {
        let (code, message) = app.err(&key, BACKTEST, vars.clone()).await;
        let expected = if field.is_empty() {
            "NOT_FOUND"
        } else {
            "VALIDATION"
        };
        assert_eq!(code, expected, "{vars}: {message}");
        assert!(message.contains(field), "{vars}: {message}");
    }
    let reader = app.scoped_key(&key, "READ").await;
    let (code, _) = app
        .err(&reader, BACKTEST, json!({"name": "engagement"}))
        .await;
    assert_eq!(code, "FORBIDDEN");
}

async fn a_shadow_version_is_never_shown_until_promoted(app: TestApp) {
    let key = app.workspace("Shadows").await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let data = app
            .ok(
                &key,
                "mutation($e: String!) { createContact(input: {email: $e, firstName: \"S\"}) { id } }",
                json!({"e": format!("shadow{i}@example.com")}),
            )
            .await;
        ids.push(data["createContact"]["id"].as_str().unwrap().to_string());
    }
    // Live: a constant 42 with an action for everyone. Shadow: chance scores.
    let live = register(&app, &key, "lead-fit", "hostile", json!({"q": CHANCE})).await;
    assert_eq!(live["activeVersion"]["version"], 1);
    assert!(live["shadow"].is_null());
    let chance_config = json!({"mode": "random", "always": true});
    let shadowed = register(
        &app,
        &key,
        "lead-fit",
        "hostile",
        json!({"q": CHANCE, "config": chance_config, "shadow": true}),
    )
    .await;
    assert_eq!(shadowed["activeVersion"]["version"], 1, "{shadowed}");
    assert_eq!(shadowed["shadow"]["version"], 2, "{shadowed}");

    let run = "mutation($ids: [ID!]!) { runPlugins(contactIds: $ids) { scored actions failures { message } } }";
    let ran = app.ok(&key, run, json!({"ids": ids})).await;
    assert_eq!(ran["runPlugins"]["failures"], json!([]), "{ran}");
    // Only the live version's scores and actions count.
    assert_eq!(ran["runPlugins"]["scored"], 12, "{ran}");
    assert_eq!(ran["runPlugins"]["actions"], 12, "{ran}");
    let shown = "query($id: ID!) { contact(id: $id) { scores { source name version score } nextBestActions { source } } }";
    for id in &ids {
        let data = app.ok(&key, shown, json!({"id": id})).await;
        let scores: Vec<&Value> = data["contact"]["scores"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["source"] == "PLUGIN")
            .collect();
        assert_eq!(scores.len(), 1, "{data}");
        assert_eq!(scores[0]["version"], 1, "{data}");
        assert_eq!(scores[0]["score"], 42.0, "{data}");
    }
    let standing = "{ plugin(name: \"lead-fit\") { activeVersion { version } shadow { version scored meanScore activeMeanScore lastScoredAt } events { kind } } }";
    let data = app.ok(&key, standing, json!({})).await;
    let shadow = &data["plugin"]["shadow"];
    assert_eq!(shadow["scored"], 12, "{data}");
    assert_eq!(shadow["activeMeanScore"], 42.0, "{data}");
    assert_ne!(shadow["meanScore"], 42.0, "{data}");
    assert!(!shadow["lastScoredAt"].is_null());
    assert_eq!(data["plugin"]["events"][0]["kind"], "shadow_registered");
    // Nothing about the shadow reached the score history either.
    let history = app
        .ok(
            &key,
            "query($id: ID!) { contact(id: $id) { pluginScoreHistory(plugin: \"lead-fit\") { score } } }",
            json!({"id": ids[0]}),
        )
        .await;
    for point in history["contact"]["pluginScoreHistory"].as_array().unwrap() {
        assert_eq!(point["score"], 42.0, "{history}");
    }

    // A read or write key cannot promote; an admin can.
    let writer = app.scoped_key(&key, "WRITE").await;
    let promote = "mutation { promotePluginShadow(name: \"lead-fit\") { activeVersion { version } shadow { version } } }";
    let (code, _) = app.err(&writer, promote, json!({})).await;
    assert_eq!(code, "FORBIDDEN");
    let promoted = app.ok(&key, promote, json!({})).await;
    assert_eq!(
        promoted["promotePluginShadow"]["activeVersion"]["version"],
        2
    );
    assert!(promoted["promotePluginShadow"]["shadow"].is_null());
    let (code, message) = app.err(&key, promote, json!({})).await;
    assert_eq!(code, "VALIDATION", "{message}");

    app.ok(&key, run, json!({"ids": ids})).await;
    let data = app.ok(&key, shown, json!({"id": ids[0]})).await;
    let score = data["contact"]["scores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == "PLUGIN")
        .cloned()
        .unwrap();
    assert_eq!(score["version"], 2, "{data}");

    // A shadow that does not work is refused at the door like any version; one that
    // cannot score cannot be a shadow.
    let nba = repo_file("plugins/examples/next-best-action/query.graphql");
    let (_, body) = app
        .upload(
            &key,
            REGISTER,
            json!({"name": "lead-fit", "q": nba, "shadow": true}),
            "wasm",
            component("next_best_action"),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "VALIDATION",
        "{body}"
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("does not score"),
        "{body}"
    );
    // Discarding drops it.
    register(
        &app,
        &key,
        "lead-fit",
        "hostile",
        json!({"q": CHANCE, "shadow": true}),
    )
    .await;
    let discarded = app
        .ok(&key, "mutation { discardPluginShadow(name: \"lead-fit\") { activeVersion { version } shadow { version } } }", json!({}))
        .await;
    assert_eq!(
        discarded["discardPluginShadow"]["activeVersion"]["version"],
        2
    );
    assert!(discarded["discardPluginShadow"]["shadow"].is_null());
}

//! Event hooks through the real server and workers: tracking an event a plugin hooks calls
//! its next-best-actions with the event beside the input query's data, and the actions it
//! returns are stored and offered; an event nobody hooks calls nothing.

use rapport_tests::{SmtpServer, TestApp, both_backends, component, repo_file};
use serde_json::{Value, json};

both_backends!(
    a_tracked_event_calls_the_plugins_hooked_on_it,
    failing_hook_calls_open_the_circuit_breaker
);

const NAME: &str = "query($contactId: ID!) { contact(id: $contactId) { name } }";

const REGISTER: &str = "mutation($name: String!, $wasm: Upload!, $q: String!, $hooks: [String!]) {
  registerPlugin(name: $name, wasm: $wasm, inputQuery: $q, hooks: $hooks) {
    name activeVersion { version hooks } } }";

async fn a_tracked_event_calls_the_plugins_hooked_on_it(app: TestApp) {
    let smtp = SmtpServer::start();
    let key = app.workspace("Hooks").await;
    let data = app
        .ok(
            &key,
            "mutation { createContact(input: {email: \"hooked@example.com\", firstName: \"Hook\"}) { id } }",
            json!({}),
        )
        .await;
    let contact = data["createContact"]["id"].as_str().unwrap().to_string();

    // Event types are checked as trackEvent checks them; a plugin that cannot recommend
    // cannot hook.
    let nba = repo_file("plugins/examples/next-best-action/query.graphql");
    for (wasm, hooks, wanted) in [
        ("next_best_action", json!(["Not A Type"]), "snake_case"),
        (
            "engagement_score",
            json!(["demo_requested"]),
            "does not implement next-best-actions",
        ),
    ] {
        let (_, body) = app
            .upload(
                &key,
                REGISTER,
                json!({"name": "router", "q": nba, "hooks": hooks}),
                "wasm",
                component(wasm),
            )
            .await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "VALIDATION",
            "{body}"
        );
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.contains("hooks") && message.contains(wanted),
            "{message}"
        );
    }
    // The hostile fixture, well behaved: it always recommends one action.
    let (_, body) = app
        .upload(
            &key,
            REGISTER,
            json!({"name": "router", "q": NAME, "hooks": ["demo_requested", "demo_requested"]}),
            "wasm",
            component("hostile"),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(
        body["data"]["registerPlugin"]["activeVersion"]["hooks"],
        json!(["demo_requested"])
    );

    // Every call recorded, so the hook's input can be read back.
    let mut config = app.worker_config(&smtp.url);
    config.plugin_capture.sample = 1.0;
    let _workers = app.workers_with(config);
    let runs = "{ plugin(name: \"router\") { runs(first: 100) { export input output } } }";
    // A run's `input` is the data the plugin got, as JSON text.
    let hooked = |data: &Value| -> Vec<(Value, Value)> {
        data["plugin"]["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| {
                let input: Value = serde_json::from_str(r["input"].as_str()?).ok()?;
                input["event"].is_object().then(|| (r.clone(), input))
            })
            .collect()
    };
    // The registration's run over everyone comes first; the dispatcher's cursor starts
    // at the events tracked by then.
    app.until(&key, runs, json!({}), 30, |d| {
        !d["plugin"]["runs"].as_array().unwrap().is_empty()
    })
    .await;
    let track = "mutation($c: ID!, $t: String!, $p: JSON) { trackEvent(contactId: $c, type: $t, properties: $p) { id occurredAt } }";
    app.ok(
        &key,
        track,
        json!({"c": contact, "t": "page_view", "p": {}}),
    )
    .await;
    let tracked = app
        .ok(
            &key,
            track,
            json!({"c": contact, "t": "demo_requested", "p": {"plan": "team"}}),
        )
        .await;
    let event_id = tracked["trackEvent"]["id"].clone();
    let tracked_at = tracked["trackEvent"]["occurredAt"].clone();
    let data = app
        .until(&key, runs, json!({}), 30, |d| !hooked(d).is_empty())
        .await;
    let calls = hooked(&data);
    assert_eq!(calls.len(), 1, "only the hooked type calls: {calls:?}");
    let (call, input) = &calls[0];
    assert_eq!(call["export"], "NEXT_BEST_ACTIONS", "{call}");
    assert!(call["output"].is_array(), "{call}");
    let event = &input["event"];
    assert_eq!(event["type"], "demo_requested", "{event}");
    assert_eq!(event["id"], event_id, "{event}");
    assert_eq!(event["properties"], json!({"plan": "team"}), "{event}");
    // The input query's data is there beside it.
    assert_eq!(input["contact"]["name"], "Hook", "{input}");
    // What it recommended is offered on the contact.
    let offered = app
        .ok(
            &key,
            "query($c: ID!) { contact(id: $c) { nextBestActions { source kind computedAt } } }",
            json!({"c": contact}),
        )
        .await;
    let actions = offered["contact"]["nextBestActions"].as_array().unwrap();
    // The hook's answer replaced the one of the registration's run.
    let at = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert!(
        actions
            .iter()
            .any(|a| a["source"] == "router@1" && at(&a["computedAt"]) >= at(&tracked_at)),
        "{offered} after {tracked_at}"
    );
    assert_eq!(call["output"].as_array().unwrap().len(), 1, "{call}");
}

/// A plugin whose hook calls fail is disabled by its circuit breaker, as one whose runs
/// fail is: the hook's failures count.
async fn failing_hook_calls_open_the_circuit_breaker(app: TestApp) {
    let smtp = SmtpServer::start();
    let key = app.workspace("Breaker").await;
    let data = app
        .ok(
            &key,
            "mutation { createContact(input: {email: \"trips@example.com\", firstName: \"Trip\"}) { id } }",
            json!({}),
        )
        .await;
    let contact = data["createContact"]["id"].as_str().unwrap().to_string();
    // The fixture's next-best-actions spin until stopped (by fuel or the clock) on input
    // that mentions "misbehave": only the hook's input does (through the event's
    // properties), so its runs answer and its hook calls fail.
    let (_, body) = app
        .upload(
            &key,
            "mutation($wasm: Upload!, $q: String!) { registerPlugin(name: \"trapper\", wasm: $wasm, inputQuery: $q, hooks: [\"demo_requested\"], config: {mode: \"loop\"}, failureThreshold: 2) { name } }",
            json!({"q": NAME}),
            "wasm",
            component("hostile"),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let _workers = app.workers(&smtp.url);
    let state = "{ plugin(name: \"trapper\") { enabled disabledReason consecutiveFailures events { kind } } }";
    // The registration's run over everyone answers first (its action is offered), so it
    // cannot reset the count between the hook's failures.
    app.until(
        &key,
        "query($c: ID!) { contact(id: $c) { nextBestActions { source } } }",
        json!({"c": contact}),
        30,
        |d| d.to_string().contains("trapper@1"),
    )
    .await;
    let track = "mutation($c: ID!) { trackEvent(contactId: $c, type: \"demo_requested\", properties: {note: \"misbehave\"}) { id } }";
    app.ok(&key, track, json!({"c": contact})).await;
    app.until(&key, state, json!({}), 30, |d| {
        d["plugin"]["consecutiveFailures"] == 1
    })
    .await;
    // One call per plugin and contact per job: the second failure is a second job's.
    app.ok(&key, track, json!({"c": contact})).await;
    let data = app
        .until(&key, state, json!({}), 30, |d| {
            d["plugin"]["enabled"] == false
        })
        .await;
    let reason = data["plugin"]["disabledReason"].as_str().unwrap();
    assert!(
        reason.contains("2 failed calls in a row") && reason.contains("plugin trapper"),
        "{reason}"
    );
    assert!(
        data["plugin"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "auto_disabled"),
        "{data}"
    );
}

//! Event hooks through the real server and workers: tracking an event a plugin hooks calls
//! its next-best-actions with the event beside the input query's data, and the actions it
//! returns are stored and offered; an event nobody hooks calls nothing.

use rapport_tests::{SmtpServer, TestApp, both_backends, component, repo_file};
use serde_json::{Value, json};

both_backends!(a_tracked_event_calls_the_plugins_hooked_on_it);

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

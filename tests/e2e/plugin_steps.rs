//! A sequence's plugin step, through the real server and workers: the plugin runs for the
//! enrolled contact when the step is reached, and the contact goes one way or the other on
//! its score; without a score (the plugin disabled) it takes the `else`.

use std::collections::HashMap;

use rapport_tests::{SmtpServer, TestApp, both_backends, component, repo_file};
use serde_json::{Value, json};

both_backends!(a_plugin_step_branches_on_the_score);

async fn person(app: &TestApp, key: &str, email: &str, meetings: &[i64]) -> String {
    let data = app
        .ok(
            key,
            "mutation($e: String!) { createContact(input: {email: $e, firstName: \"P\"}) { id } }",
            json!({"e": email}),
        )
        .await;
    let id = data["createContact"]["id"].as_str().unwrap().to_string();
    for days in meetings {
        let at = (chrono::Utc::now() - chrono::Duration::days(*days)).to_rfc3339();
        app.ok(
            key,
            "mutation($c: ID!, $at: DateTime!) { createActivity(input: {contactId: $c, kind: MEETING, direction: OUTBOUND, occurredAt: $at, subject: \"meeting\"}) { id } }",
            json!({"c": id, "at": at}),
        )
        .await;
    }
    id
}

async fn tags_when_done(
    app: &TestApp,
    key: &str,
    sequence: &str,
    count: usize,
) -> HashMap<String, Value> {
    let query = "query($s: ID!) { sequence(id: $s) { enrollments(first: 100) { contactId status history { step outcome } } } }";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let data = app.ok(key, query, json!({"s": sequence})).await;
        let all = data["sequence"]["enrollments"].as_array().unwrap().clone();
        if all.len() >= count && all.iter().all(|e| e["status"] == "COMPLETED") {
            let mut out = HashMap::new();
            for e in all {
                let id = e["contactId"].as_str().unwrap().to_string();
                let tags = app
                    .ok(
                        key,
                        "query($c: ID!) { contact(id: $c) { tags } }",
                        json!({"c": id}),
                    )
                    .await;
                out.insert(id, tags["contact"]["tags"].clone());
            }
            return out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "enrollments never completed: {all:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn a_plugin_step_branches_on_the_score(app: TestApp) {
    let smtp = SmtpServer::start();
    let key = app.workspace("Plugin steps").await;
    let warm = person(&app, &key, "warm@example.com", &[1, 2, 3]).await;
    let cold = person(&app, &key, "cold@example.com", &[]).await;
    let definition = json!({
        "name": "Route by engagement",
        "fromEmail": "hello@shop.example",
        "start": "ask",
        "steps": [
            {"id": "ask", "kind": "plugin", "plugin": "engagement", "gte": 30, "then": "hot", "else": "cool"},
            {"id": "hot", "kind": "updateContact", "addTags": ["hot"]},
            {"id": "cool", "kind": "updateContact", "addTags": ["cool"]}
        ]
    });
    let create = "mutation($d: JSON!) { createSequence(definition: $d) { id } }";
    // A plugin the workspace does not have is refused when the sequence is saved, and so
    // is a step without an else or with a score out of range.
    let (code, message) = app.err(&key, create, json!({"d": definition})).await;
    assert_eq!(code, "VALIDATION");
    assert!(
        message.contains("step 'ask': there is no plugin 'engagement'"),
        "{message}"
    );
    let mut broken = definition.clone();
    broken["steps"][0]["gte"] = json!(150);
    broken["steps"][0].as_object_mut().unwrap().remove("else");
    let (code, message) = app.err(&key, create, json!({"d": broken})).await;
    assert_eq!(code, "VALIDATION");
    assert!(message.contains("a plugin step needs an else"), "{message}");
    assert!(
        message.contains("gte must be a score from 0 to 100"),
        "{message}"
    );

    let (_, body) = app
        .upload(
            &key,
            "mutation($name: String!, $wasm: Upload!, $q: String!) { registerPlugin(name: $name, wasm: $wasm, inputQuery: $q) { name } }",
            json!({"name": "engagement", "q": repo_file("plugins/examples/engagement-score/query.graphql")}),
            "wasm",
            component("engagement_score"),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let made = app.ok(&key, create, json!({"d": definition})).await;
    let sequence = made["createSequence"]["id"].as_str().unwrap().to_string();
    app.ok(
        &key,
        "mutation($id: ID!) { activateSequence(id: $id) { status } }",
        json!({"id": sequence}),
    )
    .await;
    let _workers = app.workers(&smtp.url);
    let enroll = "mutation($s: ID!, $c: [ID!]!) { enrollInSequence(sequenceId: $s, contactIds: $c) { enrollments { id } } }";
    app.ok(&key, enroll, json!({"s": sequence, "c": [warm, cold]}))
        .await;
    let tags = tags_when_done(&app, &key, &sequence, 2).await;
    assert_eq!(tags[&warm], json!(["hot"]), "{tags:?}");
    assert_eq!(tags[&cold], json!(["cool"]), "{tags:?}");
    // The step's run stored the score, as any run does.
    let scores = app
        .ok(
            &key,
            "query($c: ID!) { contact(id: $c) { scores { source name score } } }",
            json!({"c": warm}),
        )
        .await;
    let score = scores["contact"]["scores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "engagement")
        .unwrap_or_else(|| panic!("no engagement score: {scores}"))["score"]
        .as_f64()
        .unwrap();
    assert!(score >= 30.0, "{score}");

    // A disabled plugin gives no score: a warm contact now takes the else.
    app.ok(
        &key,
        "mutation { disablePlugin(name: \"engagement\") { enabled } }",
        json!({}),
    )
    .await;
    let later = person(&app, &key, "later@example.com", &[1, 2, 3]).await;
    app.ok(&key, enroll, json!({"s": sequence, "c": [later]}))
        .await;
    let tags = tags_when_done(&app, &key, &sequence, 3).await;
    assert_eq!(tags[&later], json!(["cool"]), "{tags:?}");
}

//! Rapport's built-in next best actions through the real server: every workspace has
//! them as the plugin `rapport`; an uploaded plugin adds to them and overrides a built-in
//! action of the same kind; disabling `rapport` turns them off.

use rapport_tests::{TestApp, both_backends, component, repo_file};
use serde_json::{Value, json};

both_backends!(built_in_rules_recommend_without_a_developer);

const NBA: &str = "query($c: ID!) { contact(id: $c) { nextBestActions { id kind source rationale params { key value } } } }";
const RUN: &str = "mutation($ids: [ID!]!) { runPlugins(contactIds: $ids) { plugins actions failures { plugin message } } }";

async fn built_in_rules_recommend_without_a_developer(app: TestApp) {
    let key = app.workspace("Rules").await;
    let made = app
        .ok(&key, "mutation { createContact(input: {email: \"quiet@example.com\", firstName: \"Quinn\", lifecycleStage: OPPORTUNITY}) { id } }", json!({}))
        .await;
    let quiet = made["createContact"]["id"].as_str().unwrap().to_string();
    let at = (chrono::Utc::now() - chrono::Duration::days(30)).to_rfc3339();
    app.ok(
        &key,
        "mutation($c: ID!, $at: DateTime!) { createActivity(input: {contactId: $c, kind: EMAIL, direction: OUTBOUND, occurredAt: $at, subject: \"hello\"}) { id } }",
        json!({"c": quiet, "at": at}),
    )
    .await;
    let pipeline = app
        .ok(&key, "mutation { createPipeline(input: {name: \"Sales\", stages: [{name: \"Open\"}, {name: \"Won\", isWon: true}]}) { id stages { id } } }", json!({}))
        .await;
    app.ok(
        &key,
        "mutation($c: ID!, $p: ID!, $s: ID!) { createDeal(input: {name: \"Renewal\", contactId: $c, pipelineId: $p, stageId: $s, amount: 900, currency: \"EUR\"}) { id } }",
        json!({"c": quiet, "p": pipeline["createPipeline"]["id"], "s": pipeline["createPipeline"]["stages"][0]["id"]}),
    )
    .await;

    // Nobody uploaded anything: the rules run as the plugin `rapport`.
    let ran = app.ok(&key, RUN, json!({"ids": [quiet]})).await;
    assert_eq!(ran["runPlugins"]["failures"], json!([]), "{ran}");
    assert_eq!(ran["runPlugins"]["plugins"], 1, "{ran}");
    let data = app.ok(&key, NBA, json!({"c": quiet})).await;
    let actions = data["contact"]["nextBestActions"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(actions.len(), 1, "{data}");
    assert_eq!(actions[0]["source"], "rapport@1");
    assert_eq!(actions[0]["kind"], "CALL");
    assert!(
        actions[0]["rationale"]
            .as_str()
            .unwrap()
            .contains("Renewal"),
        "{data}"
    );
    let listed = app
        .ok(
            &key,
            "{ plugins { name enabled activeVersion { declaredName implementsNextBestActions } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        listed["plugins"],
        json!([{"name": "rapport", "enabled": true, "activeVersion": {"declaredName": "rapport-rules", "implementsNextBestActions": true}}])
    );
    // Accepting carries it out like any plugin's: a task.
    let accepted = app
        .ok(
            &key,
            "mutation($id: ID!) { acceptAction(id: $id) { status taskId } }",
            json!({"id": actions[0]["id"]}),
        )
        .await;
    assert_eq!(accepted["acceptAction"]["status"], "ACCEPTED");
    assert!(!accepted["acceptAction"]["taskId"].is_null(), "{accepted}");

    // The name is the rules' own.
    let q = repo_file("plugins/examples/next-best-action/query.graphql");
    let register = "mutation($name: String!, $wasm: Upload!, $q: String!) { registerPlugin(name: $name, wasm: $wasm, inputQuery: $q) { name } }";
    let (_, body) = app
        .upload(
            &key,
            register,
            json!({"name": "rapport", "q": q}),
            "wasm",
            component("next_best_action"),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "VALIDATION",
        "{body}"
    );

    // An uploaded plugin that also asks for a call about the quiet deal overrides the
    // built-in call; the rules go on running beside it.
    let (_, body) = app
        .upload(
            &key,
            register,
            json!({"name": "nba", "q": q}),
            "wasm",
            component("next_best_action"),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let ran = app.ok(&key, RUN, json!({"ids": [quiet]})).await;
    assert_eq!(ran["runPlugins"]["plugins"], 2, "{ran}");
    let data = app.ok(&key, NBA, json!({"c": quiet})).await;
    let sources: Vec<(Value, Value)> = data["contact"]["nextBestActions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["source"].clone(), a["kind"].clone()))
        .collect();
    assert!(sources.contains(&(json!("nba@1"), json!("CALL"))), "{data}");
    assert!(
        !sources.contains(&(json!("rapport@1"), json!("CALL"))),
        "{data}"
    );

    // Turned off, the rules offer nothing.
    app.ok(
        &key,
        "mutation { disablePlugin(name: \"nba\") { enabled } }",
        json!({}),
    )
    .await;
    let data = app.ok(&key, NBA, json!({"c": quiet})).await;
    assert!(
        data["contact"]["nextBestActions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["source"] == "rapport@1"),
        "with nba off the built-in call shows again: {data}"
    );
    app.ok(
        &key,
        "mutation { disablePlugin(name: \"rapport\") { enabled } }",
        json!({}),
    )
    .await;
    let data = app.ok(&key, NBA, json!({"c": quiet})).await;
    assert_eq!(data["contact"]["nextBestActions"], json!([]), "{data}");
}

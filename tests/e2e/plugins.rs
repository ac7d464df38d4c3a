//! WebAssembly plugins end to end: register over GraphQL (multipart upload), run, read
//! `contact.scores` and `contact.nextBestActions`, answer actions; hostile components fail
//! cleanly while the server keeps serving; workspaces never see each other's plugins.

use rapport_tests::{
    SmtpServer, TestApp, both_backends, component, header, rapport_binary, repo_file,
};
use serde_json::{Value, json};

both_backends!(
    example_plugins_score_and_recommend_through_graphql,
    hostile_plugins_fail_cleanly_and_trip_the_breaker,
    plugins_stay_in_their_workspace,
    input_queries_are_batched,
    plugins_run_as_jobs_when_data_changes,
    failed_calls_are_recorded_and_replay_from_the_cli,
    an_accepted_send_email_action_mails_once_with_consent
);

const REGISTER: &str = "mutation($name: String!, $wasm: Upload!, $q: String!, $config: JSON, $limits: JSON, $threshold: Int) {
  registerPlugin(name: $name, wasm: $wasm, inputQuery: $q, config: $config, limits: $limits, failureThreshold: $threshold) {
    name enabled activeVersion { version declaredName implementsScore implementsNextBestActions inputCost sha256 }
  } }";

const RUN: &str =
    "mutation($ids: [ID!]!, $plugin: String) { runPlugins(contactIds: $ids, plugin: $plugin) {
  plugins contacts scored actions disabled failures { plugin contactId message } } }";

async fn register(
    app: &TestApp,
    key: &str,
    name: &str,
    wasm: &str,
    query: &str,
    extra: Value,
) -> Value {
    let mut vars = json!({"name": name, "q": query});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        vars[k] = v;
    }
    let (_, body) = app
        .upload(key, REGISTER, vars, "wasm", component(wasm))
        .await;
    body
}

async fn registered(
    app: &TestApp,
    key: &str,
    name: &str,
    wasm: &str,
    query: &str,
    extra: Value,
) -> Value {
    let body = register(app, key, name, wasm, query, extra).await;
    assert!(body["errors"].is_null(), "register {name}: {body}");
    body["data"]["registerPlugin"].clone()
}

async fn contact(app: &TestApp, key: &str, email: &str, stage: &str, tags: Value) -> String {
    let data = app
        .ok(
            key,
            "mutation($e: String!, $s: LifecycleStage!, $t: [String!]) { createContact(input: {email: $e, firstName: \"Test\", lastName: $e, lifecycleStage: $s, tags: $t}) { id } }",
            json!({"e": email, "s": stage, "t": tags}),
        )
        .await;
    data["createContact"]["id"].as_str().unwrap().to_string()
}

async fn activity(
    app: &TestApp,
    key: &str,
    contact: &str,
    kind: &str,
    direction: &str,
    days_ago: i64,
) {
    let at = (chrono::Utc::now() - chrono::Duration::days(days_ago)).to_rfc3339();
    app.ok(
        key,
        "mutation($c: ID!, $k: ActivityKind!, $d: Direction!, $at: DateTime!) { createActivity(input: {contactId: $c, kind: $k, direction: $d, occurredAt: $at, subject: \"touch\"}) { id } }",
        json!({"c": contact, "k": kind, "d": direction, "at": at}),
    )
    .await;
}

async fn scores(app: &TestApp, key: &str, contact: &str) -> Vec<Value> {
    let data = app
        .ok(
            key,
            "query($id: ID!) { contact(id: $id) { scores { source name version score reasons { feature contribution note } computedAt } } }",
            json!({"id": contact}),
        )
        .await;
    data["contact"]["scores"].as_array().unwrap().clone()
}

fn plugin_score(scores: &[Value], name: &str) -> f64 {
    scores
        .iter()
        .find(|s| s["source"] == "PLUGIN" && s["name"] == name)
        .unwrap_or_else(|| panic!("no {name} score in {scores:?}"))["score"]
        .as_f64()
        .unwrap()
}

async fn example_plugins_score_and_recommend_through_graphql(app: TestApp) {
    let key = app.workspace("Plugins").await;
    let warm = contact(&app, &key, "warm@example.com", "LEAD", json!([])).await;
    let cold = contact(&app, &key, "cold@example.com", "LEAD", json!([])).await;
    activity(&app, &key, &warm, "MEETING", "OUTBOUND", 2).await;
    activity(&app, &key, &warm, "EMAIL", "INBOUND", 3).await;
    activity(&app, &key, &warm, "CALL", "OUTBOUND", 10).await;
    activity(&app, &key, &cold, "EMAIL", "OUTBOUND", 200).await;

    let p = registered(
        &app,
        &key,
        "engagement",
        "engagement_score",
        &repo_file("plugins/examples/engagement-score/query.graphql"),
        json!({}),
    )
    .await;
    assert_eq!(p["enabled"], true);
    assert_eq!(p["activeVersion"]["version"], 1);
    assert_eq!(p["activeVersion"]["declaredName"], "engagement-score");
    assert_eq!(p["activeVersion"]["implementsScore"], true);
    assert_eq!(p["activeVersion"]["implementsNextBestActions"], false);
    assert!(p["activeVersion"]["inputCost"].as_i64().unwrap() > 1);

    let run = app.ok(&key, RUN, json!({"ids": [warm, cold]})).await;
    assert_eq!(run["runPlugins"]["scored"], 2, "{run}");
    assert_eq!(run["runPlugins"]["failures"], json!([]));
    let warm_scores = scores(&app, &key, &warm).await;
    let cold_scores = scores(&app, &key, &cold).await;
    let (w, c) = (
        plugin_score(&warm_scores, "engagement"),
        plugin_score(&cold_scores, "engagement"),
    );
    assert!(w > 40.0 && c < 1.0, "warm {w}, cold {c}");
    let warm_entry = warm_scores
        .iter()
        .find(|s| s["name"] == "engagement")
        .unwrap();
    assert_eq!(warm_entry["version"], 1);
    assert_eq!(
        warm_entry["reasons"][0]["feature"], "meetings",
        "{warm_entry}"
    );
    let total: f64 = warm_entry["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["contribution"].as_f64().unwrap())
        .sum();
    assert!((total - w).abs() < 1e-6, "the reasons add up to the score");

    // A new version with other weights; its scores replace the old ones, the history keeps both.
    let v2 = registered(
        &app,
        &key,
        "engagement",
        "engagement_score",
        &repo_file("plugins/examples/engagement-score/query.graphql"),
        json!({"config": {"meeting": 40, "inboundEmail": 20}}),
    )
    .await;
    assert_eq!(v2["activeVersion"]["version"], 2);
    app.ok(&key, RUN, json!({"ids": [warm]})).await;
    let w2 = plugin_score(&scores(&app, &key, &warm).await, "engagement");
    assert!(w2 > w, "heavier weights score higher: {w2} vs {w}");
    let history = app
        .ok(&key, "query($id: ID!) { contact(id: $id) { pluginScoreHistory(plugin: \"engagement\") { score version } } }", json!({"id": warm}))
        .await;
    let versions: Vec<i64> = history["contact"]["pluginScoreHistory"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2]);
    // Rolling back makes version 1 score again.
    app.ok(&key, "mutation { rollbackPlugin(name: \"engagement\", version: 1) { activeVersion { version } } }", json!({})).await;
    app.ok(&key, RUN, json!({"ids": [warm]})).await;
    let w1 = plugin_score(&scores(&app, &key, &warm).await, "engagement");
    assert!(
        (w1 - w).abs() < 0.5,
        "back to version 1's weights: {w1} vs {w}"
    );
    // The history is of changes: scoring again adds a row only when the score moved (the
    // engagement score decays with time, so it may move by a hair between two runs).
    const HISTORY: &str = "query($id: ID!) { contact(id: $id) { pluginScoreHistory(plugin: \"engagement\") { score } } }";
    let rows = |v: Value| v["contact"]["pluginScoreHistory"].as_array().unwrap().len();
    let before = rows(app.ok(&key, HISTORY, json!({"id": warm})).await);
    app.ok(&key, RUN, json!({"ids": [warm]})).await;
    let again = plugin_score(&scores(&app, &key, &warm).await, "engagement");
    let moved = usize::from((again - w1).abs() > 1e-9);
    assert_eq!(
        rows(app.ok(&key, HISTORY, json!({"id": warm})).await),
        before + moved,
        "{w1} then {again}"
    );

    // Next-best actions: an open deal nobody touched for a month → call about it.
    let pipeline = app
        .ok(&key, "mutation { createPipeline(input: {name: \"Sales\", stages: [{name: \"Open\"}, {name: \"Won\", isWon: true}]}) { id stages { id } } }", json!({}))
        .await;
    let stage = pipeline["createPipeline"]["stages"][0]["id"].clone();
    let quiet = contact(&app, &key, "quiet@example.com", "OPPORTUNITY", json!([])).await;
    activity(&app, &key, &quiet, "EMAIL", "OUTBOUND", 40).await;
    let big = app.ok(
        &key,
        "mutation($c: ID!, $p: ID!, $s: ID!) { createDeal(input: {name: \"Big one\", contactId: $c, pipelineId: $p, stageId: $s, amount: 5000, currency: \"EUR\"}) { id } }",
        json!({"c": quiet, "p": pipeline["createPipeline"]["id"], "s": stage}),
    )
    .await;
    registered(
        &app,
        &key,
        "nba",
        "next_best_action",
        &repo_file("plugins/examples/next-best-action/query.graphql"),
        json!({}),
    )
    .await;
    let run = app
        .ok(&key, RUN, json!({"ids": [quiet, cold], "plugin": "nba"}))
        .await;
    assert_eq!(run["runPlugins"]["plugins"], 1);
    assert_eq!(run["runPlugins"]["failures"], json!([]), "{run}");
    let nba = "query($id: ID!) { contact(id: $id) { nextBestActions { id kind priority rationale source status params { key value } } tasks { totalCount edges { node { title } } } } }";
    let data = app.ok(&key, nba, json!({"id": quiet})).await;
    let actions = data["contact"]["nextBestActions"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(actions[0]["kind"], "CALL");
    assert_eq!(actions[0]["priority"], 90);
    assert_eq!(actions[0]["source"], "nba@1");
    assert!(
        actions[0]["rationale"]
            .as_str()
            .unwrap()
            .contains("Big one")
    );

    // Accepting carries it out: a task for the contact, recorded with who answered.
    let accepted = app
        .ok(&key, "mutation($id: ID!) { acceptAction(id: $id, note: \"on it\") { status taskId respondedBy respondedAt note } }", json!({"id": actions[0]["id"]}))
        .await;
    assert_eq!(accepted["acceptAction"]["status"], "ACCEPTED");
    assert_eq!(accepted["acceptAction"]["note"], "on it");
    assert!(!accepted["acceptAction"]["respondedBy"].is_null());
    let after = app.ok(&key, nba, json!({"id": quiet})).await;
    assert_eq!(
        after["contact"]["nextBestActions"],
        json!([]),
        "answered actions are no longer open"
    );
    assert_eq!(after["contact"]["tasks"]["totalCount"], 1);
    assert!(
        after["contact"]["tasks"]["edges"][0]["node"]["title"]
            .as_str()
            .unwrap()
            .starts_with("Call ")
    );
    let (code, _) = app
        .err(
            &key,
            "mutation($id: ID!) { rejectAction(id: $id) { status } }",
            json!({"id": actions[0]["id"]}),
        )
        .await;
    assert_eq!(
        code, "CONFLICT",
        "an answered action cannot be answered again"
    );

    // A second run recommends again; this time it is rejected.
    app.ok(&key, RUN, json!({"ids": [quiet], "plugin": "nba"}))
        .await;
    let again = app.ok(&key, nba, json!({"id": quiet})).await;
    let id = again["contact"]["nextBestActions"][0]["id"].clone();
    app.ok(
        &key,
        "mutation($id: ID!) { rejectAction(id: $id, note: \"not now\") { status } }",
        json!({"id": id}),
    )
    .await;
    let acceptance = "{ actionAcceptance { plugin kind offered accepted rejected acceptanceRate convertedAfterAccepting conversionRateAfterAccepting convertedAfterRejecting conversionRateAfterRejecting } }";
    let stats = app.ok(&key, acceptance, json!({})).await;
    assert_eq!(
        stats["actionAcceptance"],
        json!([{"plugin": "nba", "kind": "CALL", "offered": 2, "accepted": 1, "rejected": 1, "acceptanceRate": 0.5,
            "convertedAfterAccepting": 0, "conversionRateAfterAccepting": null,
            "convertedAfterRejecting": 0, "conversionRateAfterRejecting": null}]),
        "answers still inside their 90 days give no rate yet"
    );
    // The deal is won after both answers: a conversion downstream of each.
    app.ok(
        &key,
        "mutation($id: ID!) { closeDeal(id: $id, outcome: WON) { status } }",
        json!({"id": big["createDeal"]["id"]}),
    )
    .await;
    let stats = app.ok(&key, acceptance, json!({})).await;
    let row = &stats["actionAcceptance"][0];
    assert_eq!(row["convertedAfterAccepting"], 1, "{stats}");
    assert_eq!(row["conversionRateAfterAccepting"], 1.0, "{stats}");
    assert_eq!(row["convertedAfterRejecting"], 1, "{stats}");

    // Merging: the merged contact's history and answered actions go to the survivor.
    let twin = contact(&app, &key, "twin@example.com", "LEAD", json!([])).await;
    activity(&app, &key, &twin, "MEETING", "OUTBOUND", 1).await;
    app.ok(&key, RUN, json!({"ids": [twin], "plugin": "engagement"}))
        .await;
    app.ok(
        &key,
        "mutation($s: ID!, $m: [ID!]!) { mergeContacts(survivorId: $s, mergedIds: $m) { id } }",
        json!({"s": warm, "m": [twin]}),
    )
    .await;
    let merged = app
        .ok(&key, "query($id: ID!) { contact(id: $id) { pluginScoreHistory(plugin: \"engagement\") { score } } }", json!({"id": warm}))
        .await;
    assert_eq!(
        merged["contact"]["pluginScoreHistory"]
            .as_array()
            .unwrap()
            .len(),
        history["contact"]["pluginScoreHistory"]
            .as_array()
            .unwrap()
            .len()
            + 2
            + moved,
        "the survivor's own rollback run, the twin's score and the run since if it moved: {merged}"
    );

    // Erasing a contact erases what plugins said about it.
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let quiet_id: i64 = quiet.parse().unwrap();
    let rows = |db: sea_orm::DatabaseConnection| async move {
        let s = rapport_schema::plugin_score::Entity::find()
            .filter(rapport_schema::plugin_score::Column::ContactId.eq(quiet_id))
            .count(&db)
            .await
            .unwrap();
        let h = rapport_schema::plugin_score_history::Entity::find()
            .filter(rapport_schema::plugin_score_history::Column::ContactId.eq(quiet_id))
            .count(&db)
            .await
            .unwrap();
        let a = rapport_schema::plugin_action::Entity::find()
            .filter(rapport_schema::plugin_action::Column::ContactId.eq(quiet_id))
            .count(&db)
            .await
            .unwrap();
        (s, h, a)
    };
    app.ok(&key, RUN, json!({"ids": [quiet]})).await;
    let (s, h, a) = rows(app.db.clone()).await;
    assert!(s > 0 && h > 0 && a > 0, "{s} {h} {a}");
    app.ok(
        &key,
        "mutation($id: ID!) { deleteContact(id: $id, hard: true) }",
        json!({"id": quiet}),
    )
    .await;
    assert_eq!(rows(app.db.clone()).await, (0, 0, 0));

    // The Python example (componentize-py) through the same path.
    let customer = contact(&app, &key, "buyer@example.com", "CUSTOMER", json!([])).await;
    let product = app
        .ok(
            &key,
            "mutation { createProduct(input: {sku: \"CD-1\", name: \"Album\", price: 20}) { id } }",
            json!({}),
        )
        .await;
    let placed = (chrono::Utc::now() - chrono::Duration::days(10)).to_rfc3339();
    app.ok(
        &key,
        "mutation($c: ID!, $p: ID!, $at: DateTime!) { createOrder(input: {contactId: $c, placedAt: $at, status: PAID, currency: \"EUR\", lines: [{productId: $p, quantity: 1, unitPrice: 20}]}) { id } }",
        json!({"c": customer, "p": product["createProduct"]["id"], "at": placed}),
    )
    .await;
    registered(
        &app,
        &key,
        "health",
        "customer_health",
        &repo_file("plugins/examples/customer-health-py/query.graphql"),
        json!({"limits": {"fuel": 5_000_000_000u64, "memoryBytes": 268_435_456, "timeMs": 20_000}}),
    )
    .await;
    let run = app
        .ok(&key, RUN, json!({"ids": [customer], "plugin": "health"}))
        .await;
    assert_eq!(run["runPlugins"]["failures"], json!([]), "{run}");
    // One order (8) + recency 40·(1 − 10/360) + a recent order (20).
    let health = plugin_score(&scores(&app, &key, &customer).await, "health");
    assert!(
        (health - (8.0 + 40.0 * (1.0 - 10.0 / 360.0) + 20.0)).abs() < 1e-6,
        "{health}"
    );
}

async fn hostile_plugins_fail_cleanly_and_trip_the_breaker(app: TestApp) {
    let key = app.workspace("Hostile").await;
    let calm = contact(&app, &key, "calm@example.com", "LEAD", json!([])).await;
    let mut victims = Vec::new();
    for i in 0..4 {
        victims.push(
            contact(
                &app,
                &key,
                &format!("v{i}@example.com"),
                "LEAD",
                json!(["misbehave"]),
            )
            .await,
        );
    }
    let query = "query($contactId: ID!) { contact(id: $contactId) { tags } }";
    // An app listens for plugins that stop (no worker runs here: the delivery stays owed).
    let hook = app
        .ok(
            &key,
            "mutation { createWebhookEndpoint(input: {url: \"http://127.0.0.1:9/hook\", events: [\"plugin.disabled\"]}) { endpoint { id } } }",
            json!({}),
        )
        .await["createWebhookEndpoint"]["endpoint"]["id"]
        .clone();

    // A plugin that loops forever on some contacts passes the sample (the first contact)
    // and then fails on those, until its circuit breaker opens.
    registered(
        &app,
        &key,
        "hostile",
        "hostile",
        query,
        json!({"config": {"mode": "loop"}, "threshold": 3}),
    )
    .await;
    let mut all = vec![calm.clone()];
    all.extend(victims.clone());
    let (run, reads) = tokio::join!(app.ok(&key, RUN, json!({"ids": all})), async {
        // The server keeps answering while the plugin burns its fuel.
        let mut answered = 0;
        for _ in 0..10 {
            let data = app.ok(&key, "{ contacts { totalCount } }", json!({})).await;
            assert_eq!(data["contacts"]["totalCount"], 5);
            answered += 1;
        }
        answered
    });
    assert_eq!(reads, 10);
    let run = &run["runPlugins"];
    assert_eq!(run["scored"], 1, "the calm contact is scored: {run}");
    assert_eq!(run["disabled"], json!(["hostile"]));
    let failures = run["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 3, "stopped at the threshold: {failures:?}");
    assert!(
        failures.iter().all(|f| f["message"]
            .as_str()
            .unwrap()
            .contains("plugin hostile exceeded its fuel limit")),
        "{failures:?}"
    );
    let state = app
        .ok(&key, "{ plugin(name: \"hostile\") { enabled disabledReason consecutiveFailures events { kind message } } }", json!({}))
        .await;
    let p = &state["plugin"];
    assert_eq!(p["enabled"], false);
    assert!(
        p["disabledReason"]
            .as_str()
            .unwrap()
            .contains("3 failed calls"),
        "{p}"
    );
    assert_eq!(p["events"][0]["kind"], "auto_disabled");
    let told = app
        .ok(
            &key,
            "query($id: ID!) { webhookEndpoint(id: $id) { deliveries { eventType payload } } }",
            json!({"id": hook}),
        )
        .await["webhookEndpoint"]["deliveries"]
        .clone();
    assert_eq!(told[0]["eventType"], "plugin.disabled", "{told}");
    let data = &told[0]["payload"]["data"];
    assert_eq!(data["disabledBy"], "circuit_breaker");
    assert_eq!(data["object"]["name"], "hostile");
    assert_eq!(data["object"]["disabledReason"], p["disabledReason"]);
    // Disabled plugins do not run.
    let idle = app
        .ok(&key, RUN, json!({"ids": [victims[0]], "plugin": "hostile"}))
        .await;
    assert_eq!(idle["runPlugins"]["plugins"], 0);

    // Each way of misbehaving, as a new version, fails with the limit or fault named.
    let cases = [
        (
            json!({"mode": "loop"}),
            json!({"fuel": 20_000_000_000u64, "timeMs": 50}),
            "exceeded its time limit",
        ),
        (
            json!({"mode": "grow"}),
            json!({"fuel": 5_000_000_000u64, "timeMs": 5000}),
            "exceeded its memory limit",
        ),
        (json!({"mode": "trap"}), json!({}), "trapped"),
        (
            json!({"mode": "huge"}),
            json!({"fuel": 5_000_000_000u64, "timeMs": 5000}),
            "exceeded its output size limit",
        ),
        (
            json!({"mode": "out-of-range"}),
            json!({}),
            "malformed result: score 250",
        ),
    ];
    for (config, limits, wanted) in cases {
        registered(
            &app,
            &key,
            "hostile",
            "hostile",
            query,
            json!({"config": config, "limits": limits, "threshold": 100}),
        )
        .await;
        app.ok(
            &key,
            "mutation { enablePlugin(name: \"hostile\") { enabled } }",
            json!({}),
        )
        .await;
        let run = app.ok(&key, RUN, json!({"ids": [victims[1]]})).await;
        let message = run["runPlugins"]["failures"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(message.contains(wanted), "{config}: {run}");
        let still = app.ok(&key, "{ contacts { totalCount } }", json!({})).await;
        assert_eq!(still["contacts"]["totalCount"], 5);
    }

    // Refused at registration, with the reason, and nothing stored.
    let refusals = [
        (
            "wrong-world",
            b"(component)".to_vec(),
            query,
            "does not implement the rapport:plugin@0.1.0 world",
        ),
        (
            "net",
            br#"(component (import "evil:net/socket" (instance (export "connect" (func)))))"#
                .to_vec(),
            query,
            "imports something Rapport does not provide",
        ),
        (
            "core",
            b"\0asm\x01\0\0\0".to_vec(),
            query,
            "core WebAssembly module",
        ),
        (
            "junk",
            b"hello".to_vec(),
            query,
            "not a valid WebAssembly component",
        ),
        (
            "badquery",
            component("hostile"),
            "query($contactId: ID!) { contact(id: $contactId) { nope } }",
            "nope",
        ),
        (
            "mutating",
            component("hostile"),
            "mutation($contactId: ID!) { deleteContact(id: $contactId) }",
            "must be a query",
        ),
    ];
    for (name, wasm, q, wanted) in refusals {
        let (_, body) = app
            .upload(&key, REGISTER, json!({"name": name, "q": q}), "wasm", wasm)
            .await;
        let e = &body["errors"][0];
        assert_eq!(e["extensions"]["code"], "VALIDATION", "{name}: {body}");
        assert!(
            e["message"].as_str().unwrap().contains(wanted),
            "{name}: {body}"
        );
    }
    let body = register(
        &app,
        &key,
        "always-loops",
        "hostile",
        query,
        json!({"config": {"mode": "loop", "always": true}}),
    )
    .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("exceeded its fuel limit"),
        "the sample run catches it: {body}"
    );
    // Nothing was stored of the refused one: the plugins are the fixture and the rules.
    let names = app.ok(&key, "{ plugins { name } }", json!({})).await;
    assert_eq!(
        names["plugins"],
        json!([{"name": "hostile"}, {"name": "rapport"}])
    );

    // Only admin keys register; bad limits name the field.
    let writer = app
        .ok(
            &key,
            "mutation { createApiKey(name: \"w\", scopes: [WRITE]) { key } }",
            json!({}),
        )
        .await;
    let writer = writer["createApiKey"]["key"].as_str().unwrap().to_string();
    let (_, body) = app
        .upload(
            &writer,
            REGISTER,
            json!({"name": "x", "q": query}),
            "wasm",
            component("hostile"),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    let body = register(
        &app,
        &key,
        "x",
        "hostile",
        query,
        json!({"limits": {"timeMs": 0}}),
    )
    .await;
    assert_eq!(
        body["errors"][0]["extensions"]["field"], "limits.timeMs",
        "{body}"
    );
}

async fn plugins_stay_in_their_workspace(app: TestApp) {
    let a = app.workspace("A").await;
    let b = app.workspace("B").await;
    let in_a = contact(&app, &a, "a@example.com", "LEAD", json!([])).await;
    let in_b = contact(&app, &b, "b@example.com", "LEAD", json!([])).await;
    let query = "query($contactId: ID!) { contact(id: $contactId) { tags } }";
    registered(&app, &a, "secret", "hostile", query, json!({})).await;
    app.ok(&a, RUN, json!({"ids": [in_a]})).await;
    assert_eq!(plugin_score(&scores(&app, &a, &in_a).await, "secret"), 42.0);
    let a_actions = app
        .ok(
            &a,
            "query($id: ID!) { contact(id: $id) { nextBestActions { id } } }",
            json!({"id": in_a}),
        )
        .await;
    let action = a_actions["contact"]["nextBestActions"][0]["id"].clone();
    assert!(!action.is_null());

    assert_eq!(
        app.ok(&b, "{ plugins { name } }", json!({})).await["plugins"],
        json!([])
    );
    let (code, _) = app
        .err(&b, "{ plugin(name: \"secret\") { name } }", json!({}))
        .await;
    assert_eq!(code, "NOT_FOUND");
    // Only B's own built-in rules run there.
    let run = app.ok(&b, RUN, json!({"ids": [in_b]})).await;
    assert_eq!(run["runPlugins"]["plugins"], 1);
    assert_eq!(
        app.ok(&b, "{ plugins { name } }", json!({})).await["plugins"],
        json!([{"name": "rapport"}])
    );
    assert!(scores(&app, &b, &in_b).await.is_empty());
    let (code, _) = app.err(&b, RUN, json!({"ids": [in_a]})).await;
    assert_eq!(code, "NOT_FOUND", "A's contact is not B's to score");
    let (code, _) = app
        .err(
            &b,
            "mutation($id: ID!) { acceptAction(id: $id) { status } }",
            json!({"id": action}),
        )
        .await;
    assert_eq!(code, "NOT_FOUND");
    let (code, _) = app
        .err(
            &b,
            "mutation { disablePlugin(name: \"secret\") { enabled } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "NOT_FOUND");
}

async fn input_queries_are_batched(app: TestApp) {
    let key = app.workspace("Batches").await;
    let mut ids = Vec::new();
    for i in 0..60 {
        let id = contact(&app, &key, &format!("c{i}@example.com"), "LEAD", json!([])).await;
        activity(&app, &key, &id, "CALL", "OUTBOUND", i % 30).await;
        ids.push(id);
    }
    registered(
        &app,
        &key,
        "engagement",
        "engagement_score",
        &repo_file("plugins/examples/engagement-score/query.graphql"),
        json!({}),
    )
    .await;
    let mut costs = Vec::new();
    for n in [6, 60] {
        let before = app.statements();
        let run = app.ok(&key, RUN, json!({"ids": &ids[..n]})).await;
        assert_eq!(run["runPlugins"]["scored"], n);
        // A sampled call's run record adds one insert per batch, or none, by chance.
        let made = app.statements_since(before);
        costs.push(made.iter().filter(|s| !s.contains("plugin_runs")).count());
    }
    assert_eq!(
        costs[0], costs[1],
        "statements do not grow with the number of contacts: {costs:?}"
    );
}

async fn plugins_run_as_jobs_when_data_changes(app: TestApp) {
    let key = app.workspace("Jobs").await;
    let ws: i64 =
        app.ok(&key, "{ viewer { workspaceId } }", json!({})).await["viewer"]["workspaceId"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    let lead = contact(&app, &key, "lead@example.com", "LEAD", json!([])).await;
    activity(&app, &key, &lead, "CALL", "OUTBOUND", 5).await;
    // No mail is sent here; the workers only need somewhere to point.
    let workers = app.workers("smtp://127.0.0.1:9");
    // Registering queues every contact for the new plugin.
    registered(
        &app,
        &key,
        "engagement",
        "engagement_score",
        &repo_file("plugins/examples/engagement-score/query.graphql"),
        json!({}),
    )
    .await;
    let q = "query($id: ID!) { contact(id: $id) { scores { name score } } }";
    let first = app
        .until(&key, q, json!({"id": lead}), 30, |d| {
            !d["contact"]["scores"].as_array().unwrap().is_empty()
        })
        .await;
    let before = first["contact"]["scores"][0]["score"].as_f64().unwrap();

    // A meeting is logged; the schedule's change scan queues the contact again.
    let since = chrono::Utc::now();
    activity(&app, &key, &lead, "MEETING", "OUTBOUND", 0).await;
    rapport_engine::intelligence::analytics::schedule::refresh_changed(&app.db, ws, since)
        .await
        .unwrap();
    app.until(&key, q, json!({"id": lead}), 30, |d| {
        d["contact"]["scores"][0]["score"].as_f64().unwrap() > before + 1.0
    })
    .await;
    workers.stop().await;
}

/// A plugin that fails in production leaves a run with its input and log; an admin reads
/// it over GraphQL (a read key may not: the input is a contact's data), `rapport plugin
/// replay` reproduces the failure from the CLI and shows the difference a fixed component
/// makes, and erasing the contact erases its runs.
async fn failed_calls_are_recorded_and_replay_from_the_cli(app: TestApp) {
    let key = app.workspace("Runs").await;
    let ws = app.ok(&key, "{ viewer { workspaceId } }", json!({})).await["viewer"]["workspaceId"]
        .as_str()
        .unwrap()
        .to_string();
    let calm = contact(&app, &key, "calm@example.com", "LEAD", json!([])).await;
    let victim = contact(
        &app,
        &key,
        "victim@example.com",
        "LEAD",
        json!(["misbehave"]),
    )
    .await;
    let query = "query($contactId: ID!) { contact(id: $contactId) { email tags } }";
    registered(
        &app,
        &key,
        "hostile",
        "hostile",
        query,
        json!({"config": {"mode": "trap"}, "threshold": 10}),
    )
    .await;
    let run = app
        .ok(&key, RUN, json!({"ids": [calm.clone(), victim.clone()]}))
        .await;
    assert_eq!(run["runPlugins"]["scored"], 1, "{run}");

    const RUNS: &str = "query($c: ID, $f: Boolean) { plugin(name: \"hostile\") { runs(contactId: $c, failed: $f) {
      id contactId export input inputBytes inputSha256 config asOf output error failed log { level message } fuelUsed microseconds } } }";
    let failed = app.ok(&key, RUNS, json!({"f": true})).await["plugin"]["runs"].clone();
    let failed = failed.as_array().unwrap();
    // The score call traps on the victim (its next-best-actions answer).
    assert_eq!(failed.len(), 1, "{failed:?}");
    let r = &failed[0];
    assert_eq!(r["export"], "SCORE");
    assert_eq!(r["contactId"], json!(victim));
    assert_eq!(r["failed"], true);
    assert!(r["output"].is_null());
    assert!(r["error"].as_str().unwrap().contains("trapped"), "{r}");
    let input: Value = serde_json::from_str(r["input"].as_str().unwrap()).unwrap();
    assert_eq!(input["contact"]["email"], "victim@example.com", "{r}");
    assert_eq!(r["config"], json!({"mode": "trap"}));
    assert!(
        r["log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["level"] == "stderr"
                && l["message"]
                    .as_str()
                    .unwrap()
                    .contains("this plugin traps on purpose")),
        "the panic message is in the log: {r}"
    );
    assert!(r["fuelUsed"].as_f64().unwrap() > 0.0, "{r}");
    let answered = app.ok(&key, RUNS, json!({"f": false})).await["plugin"]["runs"].clone();
    assert!(
        answered
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["failed"] == false && !a["output"].is_null()),
        "{answered}"
    );

    let reader = app.scoped_key(&key, "READ").await;
    let (code, _) = app.err(&reader, RUNS, json!({"f": true})).await;
    assert_eq!(code, "FORBIDDEN");
    let (code, _) = app
        .err(
            &key,
            "{ plugin(name: \"hostile\") { runs(first: 1000) { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "VALIDATION");

    let replay = |component: Option<&std::path::Path>| {
        let id = r["id"].as_str().unwrap().to_string();
        let mut args = vec![
            "plugin".to_string(),
            "replay".into(),
            id,
            "--workspace".into(),
            ws.clone(),
        ];
        if let Some(c) = component {
            args.extend(["--component".into(), c.display().to_string()]);
        }
        let out = std::process::Command::new(rapport_binary())
            .args(&args)
            .env("RAPPORT_DATABASE_URL", &app.database_url)
            .env("RAPPORT_PLUGIN_CACHE", rapport_tests::plugin_cache())
            .env("RAPPORT_LOG", "warn")
            .output()
            .expect("rapport plugin replay");
        let said = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{said}");
        let json: Value = serde_json::from_slice(&out.stdout).expect("replay prints JSON");
        (json, said)
    };
    // Against the version that made the call: the same failure, the same log.
    let (same, said) = replay(None);
    assert_eq!(same["reproduced"], true, "{same}");
    assert!(said.contains("did what the recorded call did"), "{said}");
    assert!(
        same["replayed"]["error"]
            .as_str()
            .unwrap()
            .contains("trapped"),
        "{same}"
    );
    assert_eq!(same["replayed"]["log"], same["recorded"]["log"]);
    // Against another component: an answer where the recording has a fault.
    let dir = std::env::temp_dir().join(format!("rapport-replay-{}", rapport_tests::unique_name()));
    std::fs::create_dir_all(&dir).unwrap();
    let other = dir.join("engagement_score.wasm");
    std::fs::write(&other, component("engagement_score")).unwrap();
    let (changed, said) = replay(Some(&other));
    assert_eq!(changed["reproduced"], false, "{changed}");
    assert!(
        changed["differences"]
            .as_array()
            .unwrap()
            .contains(&json!("error")),
        "{changed}"
    );
    assert!(said.contains("differs in"), "{said}");

    app.ok(
        &key,
        "mutation($id: ID!) { deleteContact(id: $id, hard: true) }",
        json!({"id": victim}),
    )
    .await;
    let left = app.ok(&key, RUNS, json!({"c": victim})).await["plugin"]["runs"].clone();
    assert_eq!(left, json!([]), "erasure takes the recorded inputs");
}

/// The next-best-action example recommends its win-back email to quiet customers;
/// accepting sends the saved template through the queue to a real SMTP server, once per
/// action however often it is accepted, and only to a customer who opted in to marketing.
async fn an_accepted_send_email_action_mails_once_with_consent(app: TestApp) {
    let smtp = SmtpServer::start();
    let key = app.workspace("Win back").await;
    app.ok(
        &key,
        "mutation($i: EmailTemplateInput!) { createEmailTemplate(input: $i) { id } }",
        json!({"i": {
            "name": "win-back",
            "subject": "We miss you, {{ contact.first_name }}",
            "html": "<p>Come back for 20% off.</p>",
            "text": "Come back for 20% off."
        }}),
    )
    .await;
    let keen = contact(&app, &key, "keen@winback.example", "CUSTOMER", json!([])).await;
    let shy = contact(&app, &key, "shy@winback.example", "CUSTOMER", json!([])).await;
    app.ok(
        &key,
        "mutation($c: ID!) { recordConsent(contactId: $c, input: {purpose: MARKETING, status: GRANTED, source: \"call\"}) { id } }",
        json!({"c": keen}),
    )
    .await;
    registered(
        &app,
        &key,
        "nba",
        "next_best_action",
        &repo_file("plugins/examples/next-best-action/query.graphql"),
        json!({"config": {"winBackTemplate": "win-back"}}),
    )
    .await;
    app.ok(
        &key,
        RUN,
        json!({"ids": [keen.clone(), shy.clone()], "plugin": "nba"}),
    )
    .await;
    let open = |id: String| {
        let app = &app;
        let key = key.clone();
        async move {
            let data = app
                .ok(&key, "query($id: ID!) { contact(id: $id) { nextBestActions { id kind params { key value } } } }", json!({"id": id}))
                .await;
            let actions = data["contact"]["nextBestActions"]
                .as_array()
                .unwrap()
                .clone();
            assert_eq!(actions.len(), 1, "{actions:?}");
            assert_eq!(actions[0]["kind"], "SEND_EMAIL");
            actions[0]["id"].clone()
        }
    };
    let (to_keen, to_shy) = (open(keen.clone()).await, open(shy.clone()).await);

    const ACCEPT: &str = "mutation($id: ID!) { acceptAction(id: $id, fromEmail: \"team@winback.example\") { status messageId } }";
    let accepted = app.ok(&key, ACCEPT, json!({"id": to_keen})).await["acceptAction"].clone();
    assert_eq!(accepted["status"], "ACCEPTED");
    let message = accepted["messageId"].clone();
    assert!(message.is_string(), "{accepted}");
    let (code, _) = app.err(&key, ACCEPT, json!({"id": to_keen})).await;
    assert_eq!(code, "CONFLICT", "an action is accepted once");
    // Three answers at once: one accepts, the others find it answered (one email, once).
    let at_once: Vec<Value> = futures_util::future::join_all(
        (0..3).map(|_| app.post(Some(&key), ACCEPT, json!({"id": to_shy.clone()}))),
    )
    .await
    .into_iter()
    .map(|(_, body)| body)
    .collect();
    let won: Vec<&Value> = at_once.iter().filter(|r| r["errors"].is_null()).collect();
    assert_eq!(won.len(), 1, "{at_once:?}");
    for lost in at_once.iter().filter(|r| !r["errors"].is_null()) {
        assert_eq!(
            lost["errors"][0]["extensions"]["code"], "CONFLICT",
            "{lost}"
        );
    }
    let shy_message = won[0]["data"]["acceptAction"]["messageId"].clone();
    // The action's email key is Rapport's own: a client cannot claim or probe it.
    let template = app
        .ok(&key, "{ emailTemplates { id name } }", json!({}))
        .await["emailTemplates"][0]["id"]
        .clone();
    let (code, message_text) = app
        .err(
            &key,
            "mutation($i: SendEmailInput!) { sendEmail(input: $i) { id } }",
            json!({"i": {"contactId": shy, "templateId": template, "fromEmail": "a@winback.example",
                "idempotencyKey": "rapport:plugin-action:1"}}),
        )
        .await;
    assert_eq!(code, "VALIDATION", "{message_text}");

    let _workers = app.workers(&smtp.url);
    const STATE: &str = "query($id: ID!) { transactionalEmail(id: $id) { state reason purpose } }";
    let settled = |id: Value| {
        let app = &app;
        let key = key.clone();
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            loop {
                let m = app.ok(&key, STATE, json!({"id": id})).await["transactionalEmail"].clone();
                if m["state"] != "QUEUED" && m["state"] != "SENDING" {
                    return m;
                }
                assert!(std::time::Instant::now() < deadline, "still {m}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    let sent = settled(message).await;
    assert_eq!(
        (sent["state"].clone(), sent["purpose"].clone()),
        (json!("SENT"), json!("MARKETING")),
        "{sent}"
    );
    let skipped = settled(shy_message).await;
    assert_eq!(
        skipped["state"], "SKIPPED",
        "no marketing opt-in: {skipped}"
    );

    let received = smtp.received();
    let to = |address: &str| {
        received
            .iter()
            .filter(|m| header(m, "To").as_deref() == Some(address))
            .count()
    };
    assert_eq!(to("keen@winback.example"), 1, "{received:?}");
    assert_eq!(to("shy@winback.example"), 0, "{received:?}");
    let mail = received
        .iter()
        .find(|m| header(m, "To").as_deref() == Some("keen@winback.example"))
        .unwrap();
    assert_eq!(
        header(mail, "Subject").as_deref(),
        Some("We miss you, Test")
    );
}

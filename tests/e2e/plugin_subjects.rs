//! Plugins of deals and companies through the real server: a query declaring `$dealId`
//! makes a plugin of deals, whose scores show on `Deal.scores` (never on contacts); the
//! scheduler's jobs score deals too; a company plugin's failure is recorded against the
//! company, never a contact; and what only makes sense for contacts (shadows, hooks,
//! backtests, sequence steps, a change of subject) is refused with the field named.

use rapport_tests::{TestApp, both_backends, component, repo_file};
use serde_json::{Value, json};

both_backends!(
    a_deal_plugin_scores_deals_and_only_deals,
    deal_scores_are_queued_as_jobs,
    a_company_plugin_records_its_failures_against_the_company
);

const REGISTER: &str = "mutation($name: String!, $wasm: Upload!, $q: String!, $config: JSON, $shadow: Boolean, $hooks: [String!]) {
  registerPlugin(name: $name, wasm: $wasm, inputQuery: $q, config: $config, shadow: $shadow, hooks: $hooks) {
    name activeVersion { version subject implementsScore implementsNextBestActions } } }";

const DEAL_SCORES_AT: &str =
    "query($id: ID!) { deal(id: $id) { scores { plugin score computedAt } } }";

const DEAL_SCORES: &str = "query($id: ID!) { deal(id: $id) { scores { plugin version score reasons { feature contribution note } } } }";

async fn register(app: &TestApp, key: &str, name: &str, wasm: &str, vars: Value) -> Value {
    let mut v = json!({"name": name});
    for (k, x) in vars.as_object().cloned().unwrap_or_default() {
        v[k] = x;
    }
    app.upload(key, REGISTER, v, "wasm", component(wasm))
        .await
        .1
}

/// A pipeline with an open stage (win probability 20) and a won one; returns the ids.
async fn pipeline(app: &TestApp, key: &str) -> (String, String) {
    let p = app
        .ok(key, "mutation { createPipeline(input: {name: \"Sales\", stages: [{name: \"Talking\", winProbability: 20}, {name: \"Won\", isWon: true}]}) { id stages { id } } }", json!({}))
        .await;
    (
        p["createPipeline"]["id"].as_str().unwrap().to_string(),
        p["createPipeline"]["stages"][0]["id"]
            .as_str()
            .unwrap()
            .to_string(),
    )
}

async fn deal(
    app: &TestApp,
    key: &str,
    name: &str,
    close: &str,
    (p, s): &(String, String),
) -> String {
    app.ok(
        key,
        "mutation($n: String!, $p: ID!, $s: ID!, $close: NaiveDate) { createDeal(input: {name: $n, pipelineId: $p, stageId: $s, amount: 5000, currency: \"EUR\", expectedCloseDate: $close}) { id } }",
        json!({"n": name, "p": p, "s": s, "close": close}),
    )
    .await["createDeal"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn day(offset: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(offset))
        .format("%Y-%m-%d")
        .to_string()
}

async fn a_deal_plugin_scores_deals_and_only_deals(app: TestApp) {
    let key = app.workspace("Deal risk").await;
    let stages = pipeline(&app, &key).await;
    let late = deal(&app, &key, "Late", &day(-40), &stages).await;
    let lively = deal(&app, &key, "Lively", &day(30), &stages).await;
    let made = app
        .ok(&key, "mutation { createContact(input: {email: \"buyer@example.com\", firstName: \"Bea\"}) { id } }", json!({}))
        .await;
    let buyer = made["createContact"]["id"].as_str().unwrap().to_string();
    // The lively deal was touched today; the late one never.
    app.ok(
        &key,
        "mutation($d: ID!, $c: ID!) { createActivity(input: {dealId: $d, contactId: $c, kind: MEETING, direction: OUTBOUND, subject: \"demo\"}) { id } }",
        json!({"d": lively, "c": buyer}),
    )
    .await;

    let query = repo_file("plugins/examples/deal-risk/query.graphql");
    let body = register(&app, &key, "deal-risk", "deal_risk", json!({"q": query})).await;
    assert!(body["errors"].is_null(), "{body}");
    let v = &body["data"]["registerPlugin"]["activeVersion"];
    assert_eq!(v["subject"], "DEAL", "{body}");
    assert_eq!(v["implementsScore"], true);

    let run = "mutation($d: [ID!]) { runPlugins(dealIds: $d) { plugins contacts scored failures { subject recordId message } } }";
    let ran = app.ok(&key, run, json!({"d": [late, lively]})).await;
    assert_eq!(ran["runPlugins"]["failures"], json!([]), "{ran}");
    // The built-in rules score contacts, not deals: only deal-risk ran.
    assert_eq!(ran["runPlugins"]["plugins"], 1, "{ran}");
    assert_eq!(ran["runPlugins"]["scored"], 2, "{ran}");

    let score_of = |d: &Value| -> f64 {
        let s = d["deal"]["scores"].as_array().unwrap();
        assert_eq!(s.len(), 1, "{d}");
        assert_eq!(s[0]["plugin"], "deal-risk");
        s[0]["score"].as_f64().unwrap()
    };
    let late_scores = app.ok(&key, DEAL_SCORES, json!({"id": late})).await;
    let lively_scores = app.ok(&key, DEAL_SCORES, json!({"id": lively})).await;
    let (late_risk, lively_risk) = (score_of(&late_scores), score_of(&lively_scores));
    // Both were created today; the late one is 40 days past its close date (35 points of
    // 35) and neither is quiet yet; both stages win 20% (16 points).
    assert_eq!(
        (late_risk.round(), lively_risk.round()),
        (51.0, 16.0),
        "{late_scores} {lively_scores}"
    );
    assert_eq!(
        late_scores["deal"]["scores"][0]["reasons"][0]["feature"], "overdue",
        "{late_scores}"
    );
    // Never on a contact: the buyer of the lively deal has no deal-risk score.
    let theirs = app
        .ok(
            &key,
            "query($id: ID!) { contact(id: $id) { scores { name } } }",
            json!({"id": buyer}),
        )
        .await;
    assert!(
        !theirs["contact"]["scores"]
            .to_string()
            .contains("deal-risk"),
        "{theirs}"
    );
    // Running it over contacts is refused, naming what it scores.
    let (code, message) = app
        .err(
            &key,
            "mutation($c: [ID!]) { runPlugins(contactIds: $c, plugin: \"deal-risk\") { plugins } }",
            json!({"c": [buyer]}),
        )
        .await;
    assert_eq!(code, "VALIDATION", "{message}");
    assert!(message.contains("scores deals: pass dealIds"), "{message}");
    // The same deal twice is scored once.
    let twice = app.ok(&key, run, json!({"d": [late, late]})).await;
    assert_eq!(twice["runPlugins"]["scored"], 1, "{twice}");

    // A missing deal is named.
    let (code, message) = app.err(&key, run, json!({"d": ["999999"]})).await;
    assert_eq!(
        (code.as_str(), message.contains("Deal")),
        ("NOT_FOUND", true),
        "{message}"
    );

    // What only makes sense for contacts is refused, each with its field.
    let refusals = [
        (json!({"q": query, "shadow": true}), "shadow"),
        (json!({"q": query, "hooks": ["demo_requested"]}), "hooks"),
        (
            json!({"q": "query($contactId: ID!) { contact(id: $contactId) { email } }"}),
            "cannot change what it scores",
        ),
        (
            json!({"q": "query($contactId: ID!, $dealId: ID!) { deal(id: $dealId) { name } }"}),
            "must declare one of $contactId, $dealId or $companyId",
        ),
        // A plugin "of deals" reading contact N for deal N.
        (
            json!({"q": "query($dealId: ID!) { contact(id: $dealId) { email } }"}),
            "use $dealId only as deal(id: $dealId)",
        ),
    ];
    for (vars, wanted) in refusals {
        let body = register(&app, &key, "deal-risk", "deal_risk", vars.clone()).await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "VALIDATION",
            "{vars}: {body}"
        );
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(wanted),
            "{vars}: {body}"
        );
    }
    let (code, message) = app
        .err(
            &key,
            "{ plugin(name: \"deal-risk\") { backtest { version } } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "VALIDATION", "{message}");
    assert!(message.contains("scores deals"), "{message}");
    let sequence = json!({
        "name": "Risky",
        "fromEmail": "hello@shop.example",
        "start": "ask",
        "steps": [
            {"id": "ask", "kind": "plugin", "plugin": "deal-risk", "gte": 50, "then": "done", "else": "done"},
            {"id": "done", "kind": "updateContact", "addTags": ["asked"]}
        ]
    });
    let (code, message) = app
        .err(
            &key,
            "mutation($d: JSON!) { createSequence(definition: $d) { id } }",
            json!({"d": sequence}),
        )
        .await;
    assert_eq!(code, "VALIDATION", "{message}");
    assert!(
        message.contains("scores deals, not the enrolled contact"),
        "{message}"
    );
}

async fn deal_scores_are_queued_as_jobs(app: TestApp) {
    let key = app.workspace("Deal jobs").await;
    let ws: i64 =
        app.ok(&key, "{ viewer { workspaceId } }", json!({})).await["viewer"]["workspaceId"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    let stages = pipeline(&app, &key).await;
    let late = deal(&app, &key, "Late", &day(-40), &stages).await;
    let workers = app.workers("smtp://127.0.0.1:9");
    // Registering queues every deal for the new plugin.
    let query = repo_file("plugins/examples/deal-risk/query.graphql");
    let body = register(&app, &key, "deal-risk", "deal_risk", json!({"q": query})).await;
    assert!(body["errors"].is_null(), "{body}");
    let first = app
        .until(&key, DEAL_SCORES, json!({"id": late}), 30, |d| {
            !d["deal"]["scores"].as_array().unwrap().is_empty()
        })
        .await;
    let before = first["deal"]["scores"][0]["score"].as_f64().unwrap();

    // The deal is moved out a long way; the schedule's change scan queues it again.
    let since = chrono::Utc::now();
    app.ok(
        &key,
        "mutation($id: ID!, $close: NaiveDate) { updateDeal(id: $id, input: {expectedCloseDate: $close}) { id } }",
        json!({"id": late, "close": day(60)}),
    )
    .await;
    rapport_engine::intelligence::analytics::schedule::refresh_changed(&app.db, ws, since)
        .await
        .unwrap();
    let moved = app
        .until(&key, DEAL_SCORES_AT, json!({"id": late}), 30, |d| {
            d["deal"]["scores"][0]["score"].as_f64().unwrap() < before - 10.0
        })
        .await;
    let scored_at = moved["deal"]["scores"][0]["computedAt"].clone();

    // An activity logged on the deal (what its risk reads most) queues it again too.
    let since = chrono::Utc::now();
    app.ok(
        &key,
        "mutation($d: ID!) { createActivity(input: {dealId: $d, kind: CALL, direction: OUTBOUND, subject: \"check-in\"}) { id } }",
        json!({"d": late}),
    )
    .await;
    rapport_engine::intelligence::analytics::schedule::refresh_changed(&app.db, ws, since)
        .await
        .unwrap();
    app.until(&key, DEAL_SCORES_AT, json!({"id": late}), 30, |d| {
        d["deal"]["scores"][0]["computedAt"] != scored_at
    })
    .await;
    workers.stop().await;
}

async fn a_company_plugin_records_its_failures_against_the_company(app: TestApp) {
    let key = app.workspace("Accounts").await;
    let company = |name: &'static str| {
        let app = &app;
        let key = key.clone();
        async move {
            app.ok(
                &key,
                "mutation($n: String!) { createCompany(input: {name: $n}) { id } }",
                json!({"n": name}),
            )
            .await["createCompany"]["id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let calm = company("Calm Ltd").await;
    let broken = company("misbehave GmbH").await;
    // A contact whose id may equal the company's: nothing of the company's reaches it.
    let made = app
        .ok(
            &key,
            "mutation { createContact(input: {email: \"a@example.com\"}) { id } }",
            json!({}),
        )
        .await;
    let person = made["createContact"]["id"].as_str().unwrap().to_string();

    // The fixture scores 42, and traps on input that mentions "misbehave".
    let body = register(
        &app,
        &key,
        "account-fit",
        "hostile",
        json!({"q": "query($companyId: ID!) { company(id: $companyId) { name } }", "config": {"mode": "trap"}}),
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");
    let v = &body["data"]["registerPlugin"]["activeVersion"];
    assert_eq!(v["subject"], "COMPANY", "{body}");
    // It exports next best actions, but a plugin of companies is asked only for scores.
    assert_eq!(v["implementsNextBestActions"], false, "{body}");

    let run = "mutation($c: [ID!]) { runPlugins(companyIds: $c) { scored failures { subject recordId message } } }";
    let ran = app.ok(&key, run, json!({"c": [calm, broken]})).await;
    assert_eq!(ran["runPlugins"]["scored"], 1, "{ran}");
    let failures = ran["runPlugins"]["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{ran}");
    assert_eq!(failures[0]["subject"], "COMPANY");
    assert_eq!(failures[0]["recordId"], broken.as_str());

    let scores = app
        .ok(
            &key,
            "query($id: ID!) { company(id: $id) { scores { plugin score } } }",
            json!({"id": calm}),
        )
        .await;
    assert_eq!(
        scores["company"]["scores"],
        json!([{"plugin": "account-fit", "score": 42.0}])
    );

    let runs = app
        .ok(
            &key,
            "query($r: ID!) { plugin(name: \"account-fit\") { runs(recordId: $r, failed: true) { subject recordId contactId input error } } }",
            json!({"r": broken}),
        )
        .await;
    let runs = runs["plugin"]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["subject"], "COMPANY");
    assert_eq!(runs[0]["recordId"], broken.as_str());
    assert!(runs[0]["contactId"].is_null(), "{runs:?}");
    assert!(
        runs[0]["input"]
            .as_str()
            .unwrap()
            .contains("misbehave GmbH")
    );
    // Deleted for good (admin key), the company takes its score and runs with it.
    let spread = "{ plugin(name: \"account-fit\") { scoreDistribution { count } runs(failed: true) { recordId } } }";
    let before = app.ok(&key, spread, json!({})).await;
    assert_eq!(
        before["plugin"]["scoreDistribution"]["count"], 1,
        "{before}"
    );
    app.ok(
        &key,
        "mutation($id: ID!) { deleteCompany(id: $id, hard: true) }",
        json!({"id": calm}),
    )
    .await;
    app.ok(
        &key,
        "mutation($id: ID!) { deleteCompany(id: $id, hard: true) }",
        json!({"id": broken}),
    )
    .await;
    let after = app.ok(&key, spread, json!({})).await;
    assert_eq!(after["plugin"]["scoreDistribution"]["count"], 0, "{after}");
    assert_eq!(after["plugin"]["runs"], json!([]), "{after}");
    // The person's export holds no run of the company plugin.
    let export = app
        .ok(
            &key,
            "query($id: ID!) { exportContactData(id: $id) }",
            json!({"id": person}),
        )
        .await;
    assert!(!export.to_string().contains("misbehave"), "{export}");
}

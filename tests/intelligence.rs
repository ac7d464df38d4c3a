//! The built-in models over GraphQL, on demo data whose outcomes follow known drivers.

use rapport_engine::demo::{self, DemoSize};
use rapport_tests::TestApp;
use rapport_tests::both_backends;
use serde_json::{Value, json};

both_backends!(
    lead_scores_rank_the_known_drivers,
    win_probability_learns_from_closed_deals,
    too_little_data_is_refused,
);

async fn seeded(app: &TestApp, contacts: u64) -> String {
    demo::seed(&app.db, "Demo", &DemoSize::for_contacts(contacts), &|_| {})
        .await
        .expect("seed")
        .key
        .key
}

const TRAIN: &str = "mutation($k: ModelKind!) { trainModel(kind: $k) { id kind version status message auc logLoss rows positives features metrics } }";

/// Every contact with its source and lead score, page by page.
async fn scored_contacts(app: &TestApp, key: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = app
            .ok(
                key,
                "query($after: String) { contacts(first: 500, after: $after) { pageInfo { hasNextPage endCursor } edges { node { id source lifecycleStage leadScore { score grade reasons { feature contribution } model { version kind } } } } } }",
                json!({"after": after}),
            )
            .await;
        let conn = &data["contacts"];
        out.extend(
            conn["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"].clone()),
        );
        if conn["pageInfo"]["hasNextPage"] != json!(true) {
            return out;
        }
        after = conn["pageInfo"]["endCursor"].clone();
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = values.collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

async fn lead_scores_rank_the_known_drivers(app: TestApp) {
    let key = seeded(&app, 3000).await;
    let data = app.ok(&key, TRAIN, json!({"k": "LEAD_SCORE"})).await;
    let model = &data["trainModel"];
    assert_eq!(model["status"], "ACTIVE", "{model}");
    assert_eq!(model["version"], 1);
    let auc = model["auc"].as_f64().unwrap();
    // The demo's conversions follow warmth (recent meetings), referral source and
    // company size; the held-out AUC shows the model found them.
    assert!(auc > 0.7, "AUC {auc}: {model}");
    assert!(model["positives"].as_i64().unwrap() >= 50);
    assert!(
        model["metrics"]["calibration"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    );

    let contacts = scored_contacts(&app, &key).await;
    let scored: Vec<&Value> = contacts
        .iter()
        .filter(|c| !c["leadScore"].is_null())
        .collect();
    assert!(scored.len() > 500, "{} scored", scored.len());
    for c in &contacts {
        let customer = matches!(c["lifecycleStage"].as_str(), Some("CUSTOMER" | "CHURNED"));
        assert!(
            !customer || c["leadScore"].is_null(),
            "customers are not leads: {c}"
        );
    }
    let score = |c: &&Value| c["leadScore"]["score"].as_f64().unwrap();
    let referral = mean(
        scored
            .iter()
            .filter(|c| c["source"] == "referral")
            .map(score),
    );
    let others = mean(
        scored
            .iter()
            .filter(|c| c["source"] != "referral")
            .map(score),
    );
    assert!(referral > others, "referral {referral} vs others {others}");
    // Grades are the training population's quartiles, so every grade is in use.
    for grade in ["A", "B", "C", "D"] {
        let share = scored
            .iter()
            .filter(|c| c["leadScore"]["grade"] == grade)
            .count() as f64
            / scored.len() as f64;
        assert!(share > 0.05, "grade {grade} holds {share}");
    }
    // The best leads are best because of engagement: it leads their reasons.
    let mut best: Vec<&&Value> = scored.iter().collect();
    best.sort_by(|a, b| score(b).total_cmp(&score(a)));
    let engagement = [
        "engagement",
        "meetings",
        "touches_90d",
        "days_since_last_touch",
        "calls",
        "replies",
    ];
    let led_by_engagement = best[..50]
        .iter()
        .filter(|c| {
            let top = &c["leadScore"]["reasons"][0];
            engagement.contains(&top["feature"].as_str().unwrap())
                && top["contribution"].as_f64().unwrap() > 0.0
        })
        .count();
    assert!(led_by_engagement > 25, "{led_by_engagement} of the top 50");
    assert_eq!(best[0]["leadScore"]["model"]["kind"], "LEAD_SCORE");

    // A retrained version replaces the active one only if it measures at least as well.
    let again = app.ok(&key, TRAIN, json!({"k": "LEAD_SCORE"})).await;
    let second = &again["trainModel"];
    assert_eq!(second["version"], 2);
    let better = second["auc"].as_f64().unwrap() >= auc;
    assert_eq!(
        second["status"],
        if better { "ACTIVE" } else { "CANDIDATE" },
        "{second}"
    );
    let models = app
        .ok(
            &key,
            "{ models(kind: LEAD_SCORE) { id version status activatedAt } }",
            json!({}),
        )
        .await;
    let versions = models["models"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(
        versions.iter().filter(|v| v["status"] == "ACTIVE").count(),
        1,
        "{versions:?}"
    );
    // An admin can switch to the other version, and scores follow it.
    let other = versions.iter().find(|v| v["status"] != "ACTIVE").unwrap();
    let switched = app
        .ok(
            &key,
            "mutation($id: ID!) { activateModel(id: $id) { version status } }",
            json!({"id": other["id"]}),
        )
        .await;
    assert_eq!(switched["activateModel"]["status"], "ACTIVE");
    let c = app
        .ok(
            &key,
            "query($id: ID!) { contact(id: $id) { leadScore { model { version } } } }",
            json!({"id": best[0]["id"]}),
        )
        .await;
    assert_eq!(
        c["contact"]["leadScore"]["model"]["version"],
        other["version"]
    );
}

async fn win_probability_learns_from_closed_deals(app: TestApp) {
    let key = seeded(&app, 2000).await;
    // Before a model: the stage default.
    let before = app
        .ok(&key, "{ deals(first: 1, filter: {status: {eq: OPEN}}) { edges { node { winProbability { probability source } } } } }", json!({}))
        .await;
    assert_eq!(
        before["deals"]["edges"][0]["node"]["winProbability"]["source"],
        "STAGE_DEFAULT"
    );
    let data = app.ok(&key, TRAIN, json!({"k": "WIN_PROBABILITY"})).await;
    let model = &data["trainModel"];
    assert_eq!(model["status"], "ACTIVE", "{model}");
    assert!(model["auc"].as_f64().unwrap() > 0.65, "{model}");
    let deals = app
        .ok(&key, "{ deals(first: 500) { edges { node { status amount winProbability { probability source score { reasons { feature } } } } } } }", json!({}))
        .await;
    let nodes: Vec<&Value> = deals["deals"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .collect();
    let open: Vec<&&Value> = nodes.iter().filter(|d| d["status"] == "OPEN").collect();
    assert!(!open.is_empty());
    for d in &open {
        assert_eq!(d["winProbability"]["source"], "MODEL", "{d}");
    }
    for d in nodes.iter().filter(|d| d["status"] == "WON") {
        assert_eq!(d["winProbability"]["probability"], 100.0);
    }
    // Small deals win more often in the demo; the model says so.
    let p = |d: &&&Value| d["winProbability"]["probability"].as_f64().unwrap();
    let small = mean(
        open.iter()
            .filter(|d| d["amount"].as_f64().unwrap() < 5_000.0)
            .map(p),
    );
    let large = mean(
        open.iter()
            .filter(|d| d["amount"].as_f64().unwrap() > 30_000.0)
            .map(p),
    );
    assert!(small > large + 10.0, "small {small} vs large {large}");
}

async fn too_little_data_is_refused(app: TestApp) {
    let key = seeded(&app, 60).await;
    let data = app.ok(&key, TRAIN, json!({"k": "LEAD_SCORE"})).await;
    let model = &data["trainModel"];
    assert_eq!(model["status"], "INSUFFICIENT_DATA", "{model}");
    assert!(
        model["message"]
            .as_str()
            .unwrap()
            .contains("too little data"),
        "{model}"
    );
    assert!(model["auc"].is_null());
    let contacts = scored_contacts(&app, &key).await;
    assert!(contacts.iter().all(|c| c["leadScore"].is_null()));
    let (code, message) = app
        .err(
            &key,
            "mutation($id: ID!) { activateModel(id: $id) { status } }",
            json!({"id": model["id"]}),
        )
        .await;
    assert_eq!(code, "CONFLICT", "{message}");
    let (code, _) = app
        .err(
            &key,
            "mutation { trainModel(kind: LEAD_SCORE, gradeThresholds: [10, 50, 90]) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "VALIDATION");
}

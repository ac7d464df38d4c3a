//! The built-in models over GraphQL, on demo data whose outcomes follow known drivers.

use rapport_engine::demo::{self, DemoSize};
use rapport_tests::TestApp;
use rapport_tests::both_backends;
use serde_json::{Value, json};

both_backends!(
    lead_scores_rank_the_known_drivers,
    win_probability_learns_from_closed_deals,
    too_little_data_is_refused,
    funnel_matches_the_raw_rows,
    lifecycle_funnel_follows_the_history,
    cohorts_match_the_raw_rows,
    customer_value_on_the_graph,
    recommendations_find_the_bundles,
    templates_speak_of_the_owner_the_offers_and_the_last_order,
    forecast_matches_the_raw_rows,
    behaviour_segments_by_silhouette,
    scores_follow_changed_data,
    a_lead_score_crossing_enrolls_once,
    churn_for_one_time_buyers,
    typed_fields_feed_the_lead_score,
    boosted_lead_scores_explain_themselves,
);

async fn seeded(app: &TestApp, contacts: u64) -> String {
    demo::seed(&app.db, "Demo", &DemoSize::for_contacts(contacts), &|_| {})
        .await
        .expect("seed")
        .key
        .key
}

const TRAIN: &str = "mutation($k: ModelKind!) { trainModel(kind: $k) { id kind version status message auc logLoss rows positives features metrics } }";

/// Every contact with the given fields, page by page.
async fn all_contacts(app: &TestApp, key: &str, fields: &str) -> Vec<Value> {
    let query = format!(
        "query($after: String) {{ contacts(first: 500, after: $after) {{ pageInfo {{ hasNextPage endCursor }} edges {{ node {{ {fields} }} }} }} }}"
    );
    let mut out = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = app.ok(key, &query, json!({"after": after})).await;
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

/// The ids of the contacts `filter` selects, sorted, page by page.
async fn filtered_ids(app: &TestApp, key: &str, filter: Value) -> Vec<String> {
    let query = "query($f: ContactFilter, $after: String) { contacts(first: 500, after: $after, filter: $f) { pageInfo { hasNextPage endCursor } edges { node { id } } } }";
    let mut ids = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = app
            .ok(key, query, json!({"f": filter, "after": after}))
            .await;
        let conn = &data["contacts"];
        ids.extend(
            conn["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"]["id"].as_str().unwrap().to_string()),
        );
        if conn["pageInfo"]["hasNextPage"] != json!(true) {
            ids.sort();
            return ids;
        }
        after = conn["pageInfo"]["endCursor"].clone();
    }
}

/// Every contact with its source and lead score.
async fn scored_contacts(app: &TestApp, key: &str) -> Vec<Value> {
    all_contacts(
        app,
        key,
        "id source lifecycleStage leadScore { score grade reasons { feature contribution } model { version kind } }",
    )
    .await
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
        .ok(&key, "{ deals(first: 500) { edges { node { status amount winProbability { probability source score { reasons { feature contribution } } } } } } }", json!({}))
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
    // Small deals win more often in the demo: the amount raises a small deal's score
    // and lowers a large one's. (Levels are dominated by the stage, so compare pushes.)
    let mut checked = 0;
    for d in &open {
        let amount = d["amount"].as_f64().unwrap();
        let reasons = d["winProbability"]["score"]["reasons"].as_array().unwrap();
        let Some(push) = reasons.iter().find(|r| r["feature"] == "amount_log") else {
            continue;
        };
        let push = push["contribution"].as_f64().unwrap();
        if amount < 20_000.0 {
            assert!(push > 0.0, "{d}");
            checked += 1;
        } else if amount > 300_000.0 {
            assert!(push < 0.0, "{d}");
            checked += 1;
        }
    }
    assert!(checked >= 10, "{checked} deals checked");
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
    // Another workspace neither sees nor activates this one's models; a read key cannot train.
    let other = app.workspace("Other").await;
    let (code, _) = app
        .err(
            &other,
            "mutation($id: ID!) { activateModel(id: $id) { status } }",
            json!({"id": model["id"]}),
        )
        .await;
    assert_eq!(code, "NOT_FOUND");
    let seen = app.ok(&other, "{ models { id } }", json!({})).await;
    assert_eq!(seen["models"], json!([]));
    let reader = app
        .ok(
            &key,
            "mutation { createApiKey(name: \"r\", scopes: [READ]) { key } }",
            json!({}),
        )
        .await;
    let reader = reader["createApiKey"]["key"].as_str().unwrap();
    let (code, _) = app.err(reader, TRAIN, json!({"k": "LEAD_SCORE"})).await;
    assert_eq!(code, "FORBIDDEN");
}

async fn funnel_matches_the_raw_rows(app: TestApp) {
    use sea_orm::{ConnectionTrait, Statement};
    let key = seeded(&app, 600).await;
    let pipelines = app
        .ok(&key, "{ pipelines { edges { node { id } } } }", json!({}))
        .await;
    let pipeline = pipelines["pipelines"]["edges"][0]["node"]["id"].clone();
    let data = app
        .ok(
            &key,
            "query($p: ID!) { salesFunnel(pipelineId: $p, groupBy: OWNER) { key owner { id } deals won lost winRate stages { stage { id position isWon isLost } entered reached current conversionToNext dropOff medianHoursInStage contacts(first: 500) { id } } } }",
            json!({"p": pipeline}),
        )
        .await;
    let groups = data["salesFunnel"].as_array().unwrap();
    assert_eq!(groups.len(), 5, "one group per owner");

    // The reference, straight from the tables.
    let backend = app.db.get_database_backend();
    let rows = |sql: &str| {
        let db = app.db.clone();
        let stmt = Statement::from_string(backend, sql.to_string());
        async move { db.query_all_raw(stmt).await.unwrap() }
    };
    let deals = rows(
        "SELECT id, owner_id, stage_id, status, contact_id FROM deals WHERE deleted_at IS NULL",
    )
    .await;
    let history = rows("SELECT deal_id, to_stage_id, moved_at FROM deal_stage_history ORDER BY deal_id, moved_at, id").await;
    let stages = rows("SELECT id, position, is_won, is_lost FROM stages ORDER BY position").await;
    let get = |r: &sea_orm::QueryResult, c: &str| r.try_get::<i64>("", c).unwrap();
    let open: Vec<i64> = stages
        .iter()
        .filter(|s| {
            !s.try_get::<bool>("", "is_won").unwrap() && !s.try_get::<bool>("", "is_lost").unwrap()
        })
        .map(|s| get(s, "id"))
        .collect();
    let mut moves: std::collections::HashMap<i64, Vec<(i64, String)>> = Default::default();
    for h in &history {
        let at: chrono::DateTime<chrono::Utc> = h.try_get("", "moved_at").unwrap();
        moves
            .entry(get(h, "deal_id"))
            .or_default()
            .push((get(h, "to_stage_id"), at.to_rfc3339()));
    }
    for group in groups {
        let owner: i64 = group["key"].as_str().unwrap().parse().unwrap();
        assert_eq!(group["owner"]["id"], owner.to_string());
        let mine: Vec<&sea_orm::QueryResult> = deals
            .iter()
            .filter(|d| get(d, "owner_id") == owner)
            .collect();
        let status = |d: &&sea_orm::QueryResult| d.try_get::<String>("", "status").unwrap();
        assert_eq!(group["deals"], mine.len());
        let won = mine.iter().filter(|d| status(d) == "won").count();
        let lost = mine.iter().filter(|d| status(d) == "lost").count();
        assert_eq!(group["won"], won);
        assert_eq!(group["lost"], lost);
        for st in group["stages"].as_array().unwrap() {
            let stage: i64 = st["stage"]["id"].as_str().unwrap().parse().unwrap();
            let entered = mine
                .iter()
                .filter(|d| moves[&get(d, "id")].iter().any(|(s, _)| *s == stage))
                .count();
            let current = mine.iter().filter(|d| get(d, "stage_id") == stage).count();
            assert_eq!(st["entered"], entered, "stage {stage}");
            assert_eq!(st["current"], current, "stage {stage}");
            if let Some(k) = open.iter().position(|&s| s == stage) {
                let reached: Vec<&&sea_orm::QueryResult> = mine
                    .iter()
                    .filter(|d| {
                        status(d) == "won"
                            || moves[&get(d, "id")].iter().any(|(s, _)| {
                                open.iter().position(|o| o == s).is_some_and(|p| p >= k)
                            })
                    })
                    .collect();
                assert_eq!(st["reached"], reached.len(), "stage {stage}");
                let next = if k + 1 < open.len() {
                    mine.iter()
                        .filter(|d| {
                            status(d) == "won"
                                || moves[&get(d, "id")].iter().any(|(s, _)| {
                                    open.iter().position(|o| o == s).is_some_and(|p| p > k)
                                })
                        })
                        .count()
                } else {
                    won
                };
                let expected = next as f64 / reached.len() as f64;
                let got = st["conversionToNext"].as_f64().unwrap();
                assert!(
                    (got - expected).abs() < 1e-9,
                    "stage {stage}: {got} vs {expected}"
                );
                assert!((st["dropOff"].as_f64().unwrap() - (1.0 - expected)).abs() < 1e-9);
                let mut contacts: Vec<String> = reached
                    .iter()
                    .filter_map(|d| d.try_get::<Option<i64>>("", "contact_id").unwrap())
                    .map(|c| c.to_string())
                    .collect();
                contacts.sort();
                contacts.dedup();
                let mut got: Vec<String> = st["contacts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["id"].as_str().unwrap().to_string())
                    .collect();
                got.sort();
                assert_eq!(got, contacts, "drill-down of stage {stage}");
                if k == 0 && reached.len() > 1 {
                    assert!(st["medianHoursInStage"].as_f64().unwrap() > 0.0);
                }
            } else {
                assert!(st["conversionToNext"].is_null());
            }
        }
    }
    // A period keeps only the deals created in it.
    let since = chrono::Utc::now() - chrono::Duration::days(100);
    let recent = app
        .ok(
            &key,
            "query($p: ID!, $from: DateTime!) { salesFunnel(pipelineId: $p, from: $from) { key deals } }",
            json!({"p": pipeline, "from": since.to_rfc3339()}),
        )
        .await;
    let expected = rows("SELECT created_at FROM deals WHERE deleted_at IS NULL")
        .await
        .iter()
        .filter(|d| {
            d.try_get::<chrono::DateTime<chrono::Utc>>("", "created_at")
                .unwrap()
                >= since
        })
        .count();
    assert_eq!(recent["salesFunnel"][0]["deals"], expected);
    assert!(expected > 0 && expected < deals.len());
    let (code, _) = app
        .err(
            &key,
            "{ salesFunnel(pipelineId: \"999999\") { deals } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "NOT_FOUND");
}

async fn cohorts_match_the_raw_rows(app: TestApp) {
    use sea_orm::{ConnectionTrait, Statement};
    let key = seeded(&app, 800).await;
    let data = app
        .ok(
            &key,
            "{ cohorts(months: 12) { month customers active retention } }",
            json!({}),
        )
        .await;
    let cohorts = data["cohorts"].as_array().unwrap();
    assert!(cohorts.len() >= 6, "{cohorts:?}");
    let orders = app
        .db
        .query_all_raw(Statement::from_string(
            app.db.get_database_backend(),
            "SELECT contact_id, placed_at FROM orders WHERE deleted_at IS NULL AND status = 'paid'",
        ))
        .await
        .unwrap();
    let mut months: std::collections::HashMap<i64, std::collections::BTreeSet<String>> =
        Default::default();
    for o in &orders {
        let at: chrono::DateTime<chrono::Utc> = o.try_get("", "placed_at").unwrap();
        months
            .entry(o.try_get("", "contact_id").unwrap())
            .or_default()
            .insert(at.format("%Y-%m").to_string());
    }
    for cohort in cohorts {
        let month = cohort["month"].as_str().unwrap();
        let members: Vec<_> = months
            .values()
            .filter(|m| m.first().unwrap() == month)
            .collect();
        assert_eq!(cohort["customers"], members.len(), "{month}");
        let active = cohort["active"].as_array().unwrap();
        assert_eq!(active[0], members.len());
        assert_eq!(cohort["retention"][0], 1.0);
        // The month after: members with an order in it.
        if active.len() > 1 {
            let first =
                chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").unwrap();
            let next = (first + chrono::Months::new(1)).format("%Y-%m").to_string();
            let again = members.iter().filter(|m| m.contains(&next)).count();
            assert_eq!(active[1], again, "{month} → {next}");
        }
    }
    let (code, _) = app
        .err(&key, "{ cohorts(months: 0) { month } }", json!({}))
        .await;
    assert_eq!(code, "VALIDATION");
}

async fn boosted_lead_scores_explain_themselves(app: TestApp) {
    let key = seeded(&app, 3000).await;
    let train = "mutation($a: ClassifierAlgorithm) { trainModel(kind: LEAD_SCORE, algorithm: $a) { version status auc metrics } }";
    let data = app.ok(&key, train, json!({"a": "BOOSTED"})).await;
    let model = &data["trainModel"];
    assert_eq!(model["status"], "ACTIVE", "{model}");
    assert_eq!(model["metrics"]["algorithm"], "boosted", "{model}");
    assert!(model["auc"].as_f64().unwrap() > 0.7, "{model}");
    let contacts = scored_contacts(&app, &key).await;
    let scored: Vec<&Value> = contacts
        .iter()
        .filter(|c| !c["leadScore"].is_null())
        .collect();
    assert!(scored.len() > 500, "{} scored", scored.len());
    // Every score has reasons from the trees, and the best leads' lead with engagement.
    let score = |c: &&Value| c["leadScore"]["score"].as_f64().unwrap();
    let mut best = scored.clone();
    best.sort_by(|a, b| score(b).total_cmp(&score(a)));
    for c in &best {
        let reasons = c["leadScore"]["reasons"].as_array().unwrap();
        assert!(!reasons.is_empty(), "{c}");
    }
    let engaged = best[..50]
        .iter()
        .filter(|c| {
            let top = &c["leadScore"]["reasons"][0];
            top["contribution"].as_f64().unwrap() > 0.0
                && [
                    "engagement",
                    "meetings",
                    "touches_90d",
                    "days_since_last_touch",
                    "calls",
                    "replies",
                    "source",
                ]
                .contains(&top["feature"].as_str().unwrap())
        })
        .count();
    assert!(engaged > 25, "{engaged} of the top 50");

    // AUTO fits both and keeps the better validation AUC, saying so.
    let data = app.ok(&key, train, json!({"a": "AUTO"})).await;
    let m = &data["trainModel"]["metrics"];
    let candidates = m["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 2, "{m}");
    let auc_of = |a: &str| {
        candidates
            .iter()
            .find(|c| c["algorithm"] == a)
            .and_then(|c| c["validation_auc"].as_f64())
            .unwrap()
    };
    let better = if auc_of("boosted") > auc_of("logistic") {
        "boosted"
    } else {
        "logistic"
    };
    assert_eq!(m["algorithm"], better, "{m}");
    // An unknown algorithm is refused before any work.
    let (_, message) = app.err(&key, train, json!({"a": "FOREST"})).await;
    assert!(message.contains("FOREST"), "{message}");
}

async fn customer_value_on_the_graph(app: TestApp) {
    let key = seeded(&app, 1500).await;
    // Before training: nothing is claimed.
    let none = app
        .ok(&key, "{ contacts(first: 50) { edges { node { clv { expectedPurchases } rfm { segment } churnRisk { risk } } } } }", json!({}))
        .await;
    for e in none["contacts"]["edges"].as_array().unwrap() {
        assert!(e["node"]["clv"].is_null() && e["node"]["rfm"].is_null());
    }
    let data = app.ok(&key, TRAIN, json!({"k": "CUSTOMER_VALUE"})).await;
    let model = &data["trainModel"];
    assert_eq!(model["status"], "ACTIVE", "{model}");
    let m = &model["metrics"];
    assert!(m["holdout_error"].as_f64().unwrap() < 0.5, "{m}");
    assert!(m["spend_fitted"].as_bool().unwrap(), "{m}");
    // BG/NBD and Pareto/NBD both predicted the holdout; the closer one is in use.
    let (bg, pareto) = (
        m["bgnbd_holdout_error"].as_f64().unwrap(),
        m["pareto_nbd_holdout_error"].as_f64().unwrap(),
    );
    let chosen = if pareto < bg { "pareto-nbd" } else { "bgnbd" };
    assert_eq!(m["model"], chosen, "{m}");
    assert_eq!(m["holdout_error"].as_f64().unwrap(), bg.min(pareto), "{m}");

    let nodes = all_contacts(
        &app,
        &key,
        "id clv(weeks: 26) { probabilityAlive expectedPurchases expectedValue orders repeatPurchases weeks } churnRisk { risk level method } rfm { recency frequency monetary segment } segments",
    )
    .await;
    let customers: Vec<&Value> = nodes.iter().filter(|n| !n["clv"].is_null()).collect();
    assert!(customers.len() > 100, "{} customers", customers.len());
    let n = customers.len();
    for c in &customers {
        let clv = &c["clv"];
        let alive = clv["probabilityAlive"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&alive));
        assert!(clv["expectedValue"].as_f64().unwrap() >= 0.0);
        assert_eq!(clv["weeks"], 26.0);
        // Frequency quintile against the population, computed here from order counts.
        let orders = clv["orders"].as_i64().unwrap();
        let fewer = customers
            .iter()
            .filter(|o| o["clv"]["orders"].as_i64().unwrap() < orders)
            .count();
        assert_eq!(c["rfm"]["frequency"], (fewer * 5 / n + 1) as i64, "{c}");
        assert_eq!(c["segments"], json!([c["rfm"]["segment"]]));
        let repeat = clv["repeatPurchases"].as_f64().unwrap() >= 1.0;
        assert_eq!(c["churnRisk"].is_null(), !repeat, "{c}");
        if repeat {
            let risk = c["churnRisk"]["risk"].as_f64().unwrap();
            assert!((risk - (1.0 - alive)).abs() < 1e-9);
        }
    }
    // Repeat buyers who bought lately are likelier alive than those long silent.
    let alive = |f: &dyn Fn(i64) -> bool| {
        mean(
            customers
                .iter()
                .filter(|c| c["clv"]["repeatPurchases"].as_f64().unwrap() >= 1.0)
                .filter(|c| f(c["rfm"]["recency"].as_i64().unwrap()))
                .map(|c| c["clv"]["probabilityAlive"].as_f64().unwrap()),
        )
    };
    let (recent, silent) = (alive(&|r| r == 5), alive(&|r| r <= 2));
    assert!(recent > silent + 0.1, "recent {recent} vs silent {silent}");
    let segments: std::collections::HashSet<&str> = customers
        .iter()
        .map(|c| c["rfm"]["segment"].as_str().unwrap())
        .collect();
    assert!(segments.len() >= 4, "{segments:?}");

    // Segments filter on what training stored: the same contacts as the figures the
    // graph computes for each.
    let stored = all_contacts(
        &app,
        &key,
        "id year: clv(weeks: 52) { expectedValue } churnRisk { level } rfm { segmentKey }",
    )
    .await;
    let ids_where = |f: &dyn Fn(&Value) -> bool| {
        let mut ids: Vec<String> = stored
            .iter()
            .filter(|c| f(c))
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    let filtered = |filter: Value| filtered_ids(&app, &key, filter);
    for segment in ["CHAMPIONS", "AT_RISK", "LOST"] {
        let expected = ids_where(&|c| c["rfm"]["segmentKey"] == segment);
        assert_eq!(
            filtered(json!({"rfm": {"segment": {"eq": segment}}})).await,
            expected,
            "{segment}"
        );
    }
    let mut values: Vec<f64> = stored
        .iter()
        .filter_map(|c| c["year"]["expectedValue"].as_f64())
        .collect();
    values.sort_by(f64::total_cmp);
    // Halfway across the widest gap between neighbours in the middle half: the stored
    // values (what the filter reads) and the ones computed now drift apart by the seconds
    // between storing and asking, and two neighbours can be closer than that drift.
    let mid = (values.len() / 4..values.len() * 3 / 4)
        .filter(|&i| values[i] < values[i + 1])
        .max_by(|&a, &b| (values[a + 1] - values[a]).total_cmp(&(values[b + 1] - values[b])))
        .expect("two different values");
    let cut = (values[mid] + values[mid + 1]) / 2.0;
    let expected = ids_where(&|c| {
        c["year"]["expectedValue"]
            .as_f64()
            .is_some_and(|v| v >= cut)
    });
    assert_eq!(expected.len(), values.len() - mid - 1);
    assert_eq!(
        filtered(json!({"clv": {"expectedValue": {"gte": cut}}})).await,
        expected
    );
    let high = ids_where(&|c| c["churnRisk"]["level"] == "HIGH");
    assert!(!high.is_empty());
    assert_eq!(
        filtered(json!({"churnRisk": {"level": {"eq": "HIGH"}}})).await,
        high
    );

    let (code, _) = app
        .err(
            &key,
            "{ contacts(first: 1) { edges { node { clv(weeks: -1) { weeks } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "VALIDATION");
}

/// A template names the contact's owner, the products recommended to it and its last
/// order; the preview renders what the graph says of each, and a field that does not
/// exist is refused on save by name.
async fn templates_speak_of_the_owner_the_offers_and_the_last_order(app: TestApp) {
    let key = seeded(&app, 1500).await;
    let data = app.ok(&key, TRAIN, json!({"k": "RECOMMENDATIONS"})).await;
    assert_eq!(data["trainModel"]["status"], "ACTIVE");
    let page = app
        .ok(&key, "{ orders(first: 100) { edges { node { contact { id recommendations(first: 5) { product { id name } } orders(first: 50) { edges { node { placedAt status total currency } } } } } } } }", json!({}))
        .await;
    let buyer = page["orders"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["contact"].clone())
        .find(|c| c["recommendations"].as_array().unwrap().len() >= 2)
        .expect("a buyer with recommendations");
    let offers: Vec<(String, String)> = buyer["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["product"]["id"].as_str().unwrap().to_string(),
                r["product"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let last = buyer["orders"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .filter(|o| !matches!(o["status"].as_str(), Some("CANCELLED" | "REFUNDED")))
        .max_by_key(|o| o["placedAt"].as_str().unwrap().to_string())
        .unwrap()
        .clone();

    let owner = app
        .ok(
            &key,
            "mutation($i: UserInput!) { createUser(input: $i) { id signature } }",
            json!({"i": {"name": "Dana Scully", "email": "dana@shop.example", "signature": "Dana Scully\nAccount manager"}}),
        )
        .await["createUser"]
        .clone();
    assert_eq!(owner["signature"], "Dana Scully\nAccount manager");
    app.ok(
        &key,
        "mutation($c: ID!, $o: ID!) { updateContact(id: $c, input: {ownerId: $o}) { id } }",
        json!({"c": buyer["id"], "o": owner["id"]}),
    )
    .await;
    let (code, message) = app
        .err(
            &key,
            "mutation($p: ID!) { updateProduct(id: $p, input: {url: \"javascript:alert(1)\"}) { id } }",
            json!({"p": offers[0].0}),
        )
        .await;
    assert_eq!(code, "VALIDATION", "{message}");
    app.ok(
        &key,
        "mutation($p: ID!) { updateProduct(id: $p, input: {url: \"https://shop.example/p/first\"}) { url } }",
        json!({"p": offers[0].0}),
    )
    .await;

    let template = app
        .ok(
            &key,
            "mutation($i: EmailTemplateInput!) { createEmailTemplate(input: $i) { id } }",
            json!({"i": {
                "name": "Picked for you",
                "subject": "{{ owner.first_name }} picked {{ recommendations | length }} for you",
                "html": "<ul>{% for p in recommendations %}<li>{{ p.name }}{% if p.url %} <a href=\"{{ p.url }}\">see</a>{% endif %}</li>{% endfor %}</ul>",
                "text": "Last order: {{ last_order.total }} {{ last_order.currency }}\nGrade: {{ lead_score.grade | default('customer') }}\n{{ owner.signature }}"
            }}),
        )
        .await["createEmailTemplate"]["id"]
        .clone();
    let preview = app
        .ok(
            &key,
            "query($t: ID!, $c: ID!) { emailTemplate(id: $t) { preview(contactId: $c) { subject html text } } }",
            json!({"t": template, "c": buyer["id"]}),
        )
        .await["emailTemplate"]["preview"]
        .clone();
    assert_eq!(
        preview["subject"],
        format!("Dana picked {} for you", offers.len())
    );
    // HTML escaping writes a link's slashes as references, which browsers (and click
    // tracking) read back.
    let html = preview["html"].as_str().unwrap().replace("&#x2f;", "/");
    let expected: String = offers
        .iter()
        .enumerate()
        .map(|(i, (_, name))| {
            let link = if i == 0 {
                " <a href=\"https://shop.example/p/first\">see</a>"
            } else {
                ""
            };
            format!("<li>{}{link}</li>", name.replace('&', "&amp;"))
        })
        .collect();
    assert_eq!(html, format!("<ul>{expected}</ul>"));
    assert_eq!(
        preview["text"],
        format!(
            "Last order: {} {}\nGrade: customer\nDana Scully\nAccount manager",
            last["total"],
            last["currency"].as_str().unwrap()
        )
    );

    // An unknown field of a known name is refused on save, named.
    let (code, message) = app
        .err(
            &key,
            "mutation { createEmailTemplate(input: {name: \"Bad\", subject: \"Hi\", text: \"{{ owner.salary }}\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "VALIDATION");
    assert!(message.contains("owner.salary"), "{message}");
}

async fn recommendations_find_the_bundles(app: TestApp) {
    let key = seeded(&app, 1500).await;
    let data = app.ok(&key, TRAIN, json!({"k": "RECOMMENDATIONS"})).await;
    let model = &data["trainModel"];
    assert_eq!(model["status"], "ACTIVE", "{model}");
    let m = &model["metrics"];
    assert!(
        m["hit_rate_at_1"].as_f64().unwrap() > m["best_seller_hit_rate_at_1"].as_f64().unwrap(),
        "{m}"
    );
    // The demo sells products in pairs (catalog neighbours); each one's best partner is
    // its pair.
    let products = app
        .ok(&key, "{ products(first: 20) { edges { node { sku frequentlyBoughtTogether(first: 1) { product { sku } lift together } } } } }", json!({}))
        .await;
    let pairs = [
        ("PRO-1", "ONB-1"),
        ("TEAM-1", "TRN-1"),
        ("API-1", "SSO-1"),
        ("STO-1", "SUP-1"),
    ];
    for e in products["products"]["edges"].as_array().unwrap() {
        let node = &e["node"];
        let sku = node["sku"].as_str().unwrap();
        let partner = pairs
            .iter()
            .find_map(|(a, b)| {
                if *a == sku {
                    Some(*b)
                } else if *b == sku {
                    Some(*a)
                } else {
                    None
                }
            })
            .unwrap();
        let top = &node["frequentlyBoughtTogether"][0];
        assert_eq!(top["product"]["sku"], partner, "{node}");
        assert!(top["lift"].as_f64().unwrap() > 1.0);
    }
    // Recommendations leave out what a customer owns.
    let page = app
        .ok(&key, "{ orders(first: 200) { edges { node { contact { id recommendations(first: 3) { score product { id } because { id } } orders(first: 50) { edges { node { lines { product { id } } } } } } } } } }", json!({}))
        .await;
    let mut checked = 0;
    for e in page["orders"]["edges"].as_array().unwrap() {
        let c = &e["node"]["contact"];
        let owned: std::collections::HashSet<&str> = c["orders"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|o| o["node"]["lines"].as_array().unwrap().iter())
            .map(|l| l["product"]["id"].as_str().unwrap())
            .collect();
        for r in c["recommendations"].as_array().unwrap() {
            assert!(!owned.contains(r["product"]["id"].as_str().unwrap()), "{c}");
            assert!(
                r["because"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|b| owned.contains(b["id"].as_str().unwrap()))
            );
            checked += 1;
        }
    }
    assert!(checked > 50, "{checked} recommendations checked");
}

async fn forecast_matches_the_raw_rows(app: TestApp) {
    use sea_orm::{ConnectionTrait, Statement};
    let key = seeded(&app, 1200).await;
    let q = "query($p: ForecastPeriod!) { forecast(period: $p, months: 6) { pipeline { period currency deals amount weighted } revenue { currency method backtestMape backtestMonths history { period amount } forecast { period amount } } } }";
    let data = app.ok(&key, q, json!({"p": "MONTH"})).await;
    let f = &data["forecast"];
    let rows = app
        .db
        .query_all_raw(Statement::from_string(
            app.db.get_database_backend(),
            "SELECT d.status, d.amount_minor, d.expected_close_date, d.closed_at, s.win_probability FROM deals d JOIN stages s ON s.id = d.stage_id WHERE d.deleted_at IS NULL",
        ))
        .await
        .unwrap();
    let mut weighted: std::collections::BTreeMap<String, (i64, f64, f64)> = Default::default();
    let mut won: std::collections::BTreeMap<String, f64> = Default::default();
    let this_month = chrono::Utc::now().format("%Y-%m").to_string();
    for r in &rows {
        let status: String = r.try_get("", "status").unwrap();
        let amount = r.try_get::<i64>("", "amount_minor").unwrap() as f64 / 100.0;
        if status == "open" {
            let close: chrono::NaiveDate = r.try_get("", "expected_close_date").unwrap();
            let p = f64::from(r.try_get::<i32>("", "win_probability").unwrap()) / 100.0;
            let e = weighted
                .entry(close.format("%Y-%m").to_string())
                .or_default();
            e.0 += 1;
            e.1 += amount;
            e.2 += amount * p;
        } else if status == "won" {
            let at: chrono::DateTime<chrono::Utc> = r.try_get("", "closed_at").unwrap();
            let month = at.format("%Y-%m").to_string();
            if month < this_month {
                *won.entry(month).or_default() += amount;
            }
        }
    }
    let pipeline = f["pipeline"].as_array().unwrap();
    assert_eq!(pipeline.len(), weighted.len());
    for b in pipeline {
        let (deals, amount, w) = weighted[b["period"].as_str().unwrap()];
        assert_eq!(b["deals"], deals);
        assert!((b["amount"].as_f64().unwrap() - amount).abs() < 1e-6);
        assert!((b["weighted"].as_f64().unwrap() - w).abs() < 1e-6, "{b}");
        assert_eq!(b["currency"], "USD");
    }
    let revenue = &f["revenue"][0];
    assert_eq!(revenue["currency"], "USD");
    assert!(revenue["method"].is_string(), "{revenue}");
    for h in revenue["history"].as_array().unwrap() {
        let expected = won
            .get(h["period"].as_str().unwrap())
            .copied()
            .unwrap_or(0.0);
        assert!(
            (h["amount"].as_f64().unwrap() - expected).abs() < 1e-6,
            "{h}"
        );
    }
    assert_eq!(revenue["forecast"].as_array().unwrap().len(), 6);
    assert_eq!(revenue["forecast"][0]["period"], this_month);
    assert!(revenue["backtestMape"].as_f64().is_some(), "{revenue}");
    // Quarters hold the same money.
    let quarters = app.ok(&key, q, json!({"p": "QUARTER"})).await;
    let total = |f: &Value| -> f64 {
        f["forecast"]["pipeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["weighted"].as_f64().unwrap())
            .sum()
    };
    assert!((total(&quarters) - total(&data)).abs() < 1e-6);
    assert!(
        quarters["forecast"]["pipeline"][0]["period"]
            .as_str()
            .unwrap()
            .contains("-Q")
    );
    let (code, _) = app
        .err(
            &key,
            "{ forecast(months: 0) { pipeline { deals } } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "VALIDATION");
}

async fn behaviour_segments_by_silhouette(app: TestApp) {
    let key = seeded(&app, 800).await;
    let data = app
        .ok(&key, "mutation { trainModel(kind: BEHAVIOUR_SEGMENTS) { status metrics rows clusters { index name size centroid { feature value } } } }", json!({}))
        .await;
    let model = &data["trainModel"];
    assert_eq!(model["status"], "ACTIVE", "{model}");
    let m = &model["metrics"];
    let k = m["k"].as_u64().unwrap() as usize;
    let tried = m["silhouettes"].as_array().unwrap();
    assert_eq!(tried.len(), 7, "k = 2..=8");
    let best = tried
        .iter()
        .map(|t| t[1].as_f64().unwrap())
        .fold(f64::MIN, f64::max);
    assert_eq!(
        m["silhouette"].as_f64().unwrap(),
        best,
        "k is the silhouette's choice"
    );
    assert!(best > 0.2, "{m}");
    let clusters = model["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), k);
    let sizes: i64 = clusters.iter().map(|c| c["size"].as_i64().unwrap()).sum();
    assert_eq!(sizes, model["rows"].as_i64().unwrap());
    assert_eq!(clusters[0]["centroid"].as_array().unwrap().len(), 6);
    let names: std::collections::HashSet<&str> = clusters
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let page = app
        .ok(
            &key,
            "{ contacts(first: 300) { edges { node { segments } } } }",
            json!({}),
        )
        .await;
    for e in page["contacts"]["edges"].as_array().unwrap() {
        let segments = e["node"]["segments"].as_array().unwrap();
        assert!(
            segments.iter().any(|s| names.contains(s.as_str().unwrap())),
            "{segments:?} has no cluster of {names:?}"
        );
    }
}

async fn scores_follow_changed_data(app: TestApp) {
    let key = seeded(&app, 1500).await;
    app.ok(&key, TRAIN, json!({"k": "LEAD_SCORE"})).await;
    let ws: i64 =
        app.ok(&key, "{ viewer { workspaceId } }", json!({})).await["viewer"]["workspaceId"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    let contacts = scored_contacts(&app, &key).await;
    let mut scored: Vec<&Value> = contacts
        .iter()
        .filter(|c| !c["leadScore"].is_null())
        .collect();
    scored.sort_by(|a, b| {
        a["leadScore"]["score"]
            .as_f64()
            .unwrap()
            .total_cmp(&b["leadScore"]["score"].as_f64().unwrap())
    });
    let (cold, other) = (scored[0], scored[scored.len() / 2]);
    let before = cold["leadScore"]["score"].as_f64().unwrap();
    // An app listening for score changes hears of this one only.
    let hook = app
        .ok(
            &key,
            "mutation { createWebhookEndpoint(input: {url: \"http://127.0.0.1:9/hook\", events: [\"score.changed\"]}) { endpoint { id } } }",
            json!({}),
        )
        .await["createWebhookEndpoint"]["endpoint"]["id"]
        .clone();
    let since = chrono::Utc::now();
    // A burst of meetings and replies.
    for (i, kind) in ["MEETING", "MEETING", "MEETING", "EMAIL", "EMAIL", "CALL"]
        .iter()
        .enumerate()
    {
        app.ok(
            &key,
            "mutation($i: ActivityInput!) { createActivity(input: $i) { id } }",
            json!({"i": {"kind": kind, "direction": "INBOUND", "subject": format!("touch {i}"), "contactId": cold["id"], "occurredAt": (chrono::Utc::now() - chrono::Duration::days(i as i64)).to_rfc3339()}}),
        )
        .await;
    }
    let changed =
        rapport_engine::intelligence::analytics::schedule::refresh_changed(&app.db, ws, since)
            .await
            .unwrap();
    assert_eq!(changed, 1, "only the contact that changed is rescored");
    let q = "query($id: ID!) { contact(id: $id) { leadScore { score grade computedAt } } }";
    let after = app.ok(&key, q, json!({"id": cold["id"]})).await;
    let after = after["contact"]["leadScore"]["score"].as_f64().unwrap();
    assert!(after > before * 2.0, "{before} -> {after}");
    let told = app
        .ok(
            &key,
            "query($id: ID!) { webhookEndpoint(id: $id) { deliveries { payload } } }",
            json!({"id": hook}),
        )
        .await["webhookEndpoint"]["deliveries"]
        .clone();
    assert_eq!(told.as_array().unwrap().len(), 1, "{told}");
    let data = &told[0]["payload"]["data"];
    assert_eq!(told[0]["payload"]["type"], "score.changed");
    assert_eq!(data["object"]["kind"], "lead_score");
    assert_eq!(data["object"]["subject"]["id"], cold["id"]);
    assert_eq!(data["object"]["score"].as_f64().unwrap(), after);
    assert_eq!(data["previous"]["score"].as_f64().unwrap(), before);
    let untouched = app.ok(&key, q, json!({"id": other["id"]})).await;
    assert_eq!(
        untouched["contact"]["leadScore"]["score"],
        other["leadScore"]["score"]
    );
    // Buying makes the lead a customer: no lead score any more.
    let products = app
        .ok(
            &key,
            "{ products(first: 1) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    let since = chrono::Utc::now();
    app.ok(
        &key,
        "mutation($i: OrderInput!) { createOrder(input: $i) { id } }",
        json!({"i": {"contactId": cold["id"], "status": "PAID", "lines": [{"productId": products["products"]["edges"][0]["node"]["id"], "quantity": 1}]}}),
    )
    .await;
    rapport_engine::intelligence::analytics::schedule::refresh_changed(&app.db, ws, since)
        .await
        .unwrap();
    let bought = app.ok(&key, q, json!({"id": cold["id"]})).await;
    assert!(bought["contact"]["leadScore"].is_null(), "{bought}");
    // Erasure takes the scores and their history with it.
    let other_id = other["id"].clone();
    app.ok(
        &key,
        "mutation($id: ID!) { deleteContact(id: $id, hard: true) }",
        json!({"id": other_id}),
    )
    .await;
    use sea_orm::{ConnectionTrait, Statement};
    for table in ["scores", "score_history"] {
        let left = app
            .db
            .query_all_raw(Statement::from_string(
                app.db.get_database_backend(),
                format!(
                    "SELECT id FROM {table} WHERE subject_id = {} AND kind = 'lead_score'",
                    other_id.as_str().unwrap()
                ),
            ))
            .await
            .unwrap();
        assert!(left.is_empty(), "{table} still holds the erased contact");
    }
}

/// A sequence triggered by the lead score entering a band enrolls the contact whose new
/// activity lifts it in, once: rescored again and still in the band, it is not enrolled
/// again, though its first enrollment has finished and re-entry is on.
async fn a_lead_score_crossing_enrolls_once(app: TestApp) {
    let smtp = rapport_tests::SmtpServer::start();
    let key = seeded(&app, 1500).await;
    app.ok(&key, TRAIN, json!({"k": "LEAD_SCORE"})).await;
    let ws: i64 =
        app.ok(&key, "{ viewer { workspaceId } }", json!({})).await["viewer"]["workspaceId"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    let contacts = scored_contacts(&app, &key).await;
    let cold = contacts
        .iter()
        .filter(|c| !c["leadScore"].is_null())
        .min_by(|a, b| {
            a["leadScore"]["score"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["leadScore"]["score"].as_f64().unwrap())
        })
        .unwrap();
    let before = cold["leadScore"]["score"].as_f64().unwrap();
    assert!(before > 0.0);
    // Twice the coldest lead's score: a burst of meetings lifts it past (see
    // scores_follow_changed_data), while nobody else is rescored.
    let threshold = 2.0 * before;
    let sequence = app
        .ok(
            &key,
            "mutation($d: JSON!) { createSequence(definition: $d) { id } }",
            json!({"d": {
                "name": "Hot leads",
                "fromEmail": "sales@shop.example",
                "allowReentry": true,
                "triggers": [{"kind": "score", "model": "lead_score", "atLeast": threshold}],
                "start": "tag",
                "steps": [{"id": "tag", "kind": "updateContact", "addTags": ["hot"]}]
            }}),
        )
        .await["createSequence"]["id"]
        .clone();
    app.ok(
        &key,
        "mutation($id: ID!) { activateSequence(id: $id) { status } }",
        json!({"id": sequence}),
    )
    .await;
    let _workers = app.workers(&smtp.url);
    let burst = |n: usize| {
        let app = &app;
        let key = &key;
        let id = cold["id"].clone();
        async move {
            let since = chrono::Utc::now();
            for i in 0..n {
                app.ok(
                    key,
                    "mutation($i: ActivityInput!) { createActivity(input: $i) { id } }",
                    json!({"i": {"kind": "MEETING", "direction": "INBOUND", "subject": format!("touch {i}"), "contactId": id, "occurredAt": (chrono::Utc::now() - chrono::Duration::days(i as i64)).to_rfc3339()}}),
                )
                .await;
            }
            rapport_engine::intelligence::analytics::schedule::refresh_changed(&app.db, ws, since)
                .await
                .unwrap();
        }
    };
    const ENROLLMENTS: &str = "query($s: ID!) { sequence(id: $s) { enrollments(first: 100) { contactId status trigger } } }";
    let enrollments = || async {
        app.ok(&key, ENROLLMENTS, json!({"s": sequence})).await["sequence"]["enrollments"]
            .as_array()
            .unwrap()
            .clone()
    };
    burst(6).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let first = loop {
        let all = enrollments().await;
        if all.len() == 1 && all[0]["status"] == "COMPLETED" {
            break all;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no enrollment: {all:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(first[0]["contactId"], cold["id"]);
    assert_eq!(
        first[0]["trigger"],
        format!("score:lead_score>={threshold}")
    );

    // More activity: rescored, still in the band.
    burst(2).await;
    let now = app
        .ok(
            &key,
            "query($id: ID!) { contact(id: $id) { leadScore { score } } }",
            json!({"id": cold["id"]}),
        )
        .await;
    assert!(now["contact"]["leadScore"]["score"].as_f64().unwrap() >= threshold);
    // Once the trigger scan has read past the new scores, nobody was enrolled again.
    use sea_orm::{ConnectionTrait, Statement};
    let number = |sql: String| {
        let db = app.db.clone();
        async move {
            let row = db
                .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
                .await
                .unwrap()
                .unwrap();
            row.try_get_by_index::<Option<i64>>(0).unwrap().unwrap_or(0)
        }
    };
    let last = number(format!(
        "SELECT MAX(id) FROM score_history WHERE workspace_id = {ws}"
    ))
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while number(format!(
        "SELECT MAX(last_id) FROM sequence_cursors WHERE workspace_id = {ws} AND source = 'score_history'"
    ))
    .await
        < last
    {
        assert!(std::time::Instant::now() < deadline, "the scan never read the new scores");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(enrollments().await.len(), 1);
}

async fn churn_for_one_time_buyers(app: TestApp) {
    // Churned customers are few: the larger sample keeps the held-out AUC from hanging on
    // a handful of rows.
    let key = seeded(&app, 6000).await;
    app.ok(&key, TRAIN, json!({"k": "CUSTOMER_VALUE"})).await;
    let page = app
        .ok(
            &key,
            "{ contacts(first: 500) { edges { node { id clv { repeatPurchases } } } } }",
            json!({}),
        )
        .await;
    let one_timers: Vec<Value> = page["contacts"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .filter(|c| {
            c["clv"]["repeatPurchases"]
                .as_f64()
                .is_some_and(|r| r < 1.0)
        })
        .collect();
    assert!(!one_timers.is_empty());
    // One-time buyers get their churn risk from the engagement classifier.
    let churn = app
        .ok(
            &key,
            "mutation { trainModel(kind: CHURN, minPositives: 15) { status auc message } }",
            json!({}),
        )
        .await;
    let churn = &churn["trainModel"];
    assert_eq!(churn["status"], "ACTIVE", "{churn}");
    assert!(churn["auc"].as_f64().unwrap() > 0.6, "{churn}");
    let one_timer = &one_timers[0];
    let risk = app
        .ok(
            &key,
            "query($id: ID!) { contact(id: $id) { churnRisk { risk level method } } }",
            json!({"id": one_timer["id"]}),
        )
        .await;
    let risk = &risk["contact"]["churnRisk"];
    assert_eq!(risk["method"], "engagement_classifier", "{risk}");
    assert!((0.0..=1.0).contains(&risk["risk"].as_f64().unwrap()));
}

/// The lifecycle funnel counts what the history says: a skipped stage was passed, a
/// churned customer was a customer, a lost lead went no further.
async fn lifecycle_funnel_follows_the_history(app: TestApp) {
    let key = app.workspace("Lifecycle").await;
    let person = |email: &str| {
        let app = &app;
        let key = &key;
        let email = email.to_string();
        async move {
            app.ok(
                key,
                "mutation($e: String!) { createContact(input: {email: $e}) { id } }",
                json!({"e": email}),
            )
            .await["createContact"]["id"]
                .clone()
        }
    };
    let moves: [(&str, &[&str]); 5] = [
        ("a@life.example", &["QUALIFIED", "CUSTOMER"]),
        ("b@life.example", &["OPPORTUNITY"]),
        ("c@life.example", &[]),
        ("d@life.example", &["LOST"]),
        ("e@life.example", &["CUSTOMER", "CHURNED"]),
    ];
    for (email, stages) in moves {
        let id = person(email).await;
        for stage in stages {
            app.ok(
                &key,
                "mutation($c: ID!, $s: LifecycleStage!) { updateContact(id: $c, input: {lifecycleStage: $s}) { id } }",
                json!({"c": id, "s": stage}),
            )
            .await;
        }
    }
    let funnel = app
        .ok(
            &key,
            "{ lifecycleFunnel { stage reached current conversionToNext medianDaysToReach } }",
            json!({}),
        )
        .await["lifecycleFunnel"]
        .clone();
    let rows: Vec<(String, i64, i64)> = funnel
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["stage"].as_str().unwrap().to_string(),
                r["reached"].as_i64().unwrap(),
                r["current"].as_i64().unwrap(),
            )
        })
        .collect();
    // Lead: all five; qualified: a, b (skipped it), e; opportunity: a, b, e; customer: a, e.
    assert_eq!(
        rows,
        [
            ("LEAD".to_string(), 5, 1),
            ("QUALIFIED".to_string(), 3, 0),
            ("OPPORTUNITY".to_string(), 3, 1),
            ("CUSTOMER".to_string(), 2, 1),
        ]
    );
    assert_eq!(funnel[0]["conversionToNext"], 0.6);
    assert!(funnel[3]["conversionToNext"].is_null());
    assert!(funnel[3]["medianDaysToReach"].as_f64().unwrap() < 1.0);
    // A window before anyone was created is empty.
    let empty = app
        .ok(
            &key,
            "{ lifecycleFunnel(to: \"2020-01-01T00:00:00Z\") { reached } }",
            json!({}),
        )
        .await;
    assert!(
        empty["lifecycleFunnel"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["reached"] == 0)
    );
}

/// Declared number and enum fields are features of the lead score: a field that tells
/// converters apart lifts the model, and a version keeps reading the fields it was
/// trained on when more are declared later.
async fn typed_fields_feed_the_lead_score(app: TestApp) {
    let created = demo::seed(&app.db, "Demo", &DemoSize::for_contacts(3000), &|_| {})
        .await
        .expect("seed");
    let (ws, key) = (created.workspace.id, created.key.key);
    let contacts = all_contacts(&app, &key, "email lifecycleStage").await;
    let rows: Vec<Value> = contacts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let converted = matches!(c["lifecycleStage"].as_str(), Some("CUSTOMER" | "CHURNED"));
            // "fit" is what a sales team might record: high for those who bought.
            let fit = if converted { 80 + i % 20 } else { i % 60 };
            let plan = ["free", "pro"][i % 2];
            json!({"email": c["email"], "attributes": {"fit": fit, "plan": plan}})
        })
        .collect();
    for chunk in rows.chunks(1000) {
        app.ok(
            &key,
            "mutation($c: [ContactInput!]!) { bulkUpsertContacts(contacts: $c) { created } }",
            json!({"c": chunk}),
        )
        .await;
    }
    let declare = "mutation($i: CustomFieldInput!) { createCustomField(input: $i) { id } }";
    app.ok(
        &key,
        declare,
        json!({"i": {"key": "fit", "kind": "NUMBER"}}),
    )
    .await;
    app.ok(
        &key,
        declare,
        json!({"i": {"key": "plan", "kind": "ENUM", "options": ["free", "pro"]}}),
    )
    .await;
    let model = app.ok(&key, TRAIN, json!({"k": "LEAD_SCORE"})).await["trainModel"].clone();
    assert_eq!(model["status"], "ACTIVE", "{model}");
    let features: Vec<&str> = model["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        features.contains(&"field.fit") && features.contains(&"field.plan"),
        "{features:?}"
    );
    assert!(
        model["auc"].as_f64().unwrap() > 0.9,
        "the field tells converters apart: {model}"
    );
    // Declared after training: the version reads only what it was trained on.
    app.ok(
        &key,
        declare,
        json!({"i": {"key": "later", "kind": "NUMBER"}}),
    )
    .await;
    let rescored = rapport_engine::intelligence::analytics::lead_score::rescore(&app.db, ws)
        .await
        .expect("rescoring with a field declared after training");
    assert!(rescored > 500, "{rescored}");
}

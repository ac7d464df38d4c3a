//! GraphQL over HTTP: the GraphQL Foundation's audit against the real server, queries over
//! GET (never mutations), persisted documents (automatic, or only trusted ones) and who
//! may introspect.

use rapport_api::graphql_http::{Documents, document_hash};
use rapport_api::server::{Config, Introspection};
use rapport_tests::{Backend, TestApp, both_backends};
use serde_json::{Value, json};

both_backends!(
    the_reference_audit_passes,
    queries_over_get_and_persisted_queries,
    answers_keep_the_order_of_the_selection
);

/// Runs the audit script with Node 22 and returns (id, name, status, reason) per audit.
fn audit(app: &TestApp, key: &str) -> Vec<Value> {
    let dir = std::env::var("RAPPORT_TEST_AUDIT").unwrap_or_else(|_| {
        panic!("RAPPORT_TEST_AUDIT is not set: scripts/test installs graphql-http and Node 22")
    });
    let node = std::path::Path::new(&dir).join("node_modules/.bin/node");
    let script = format!(
        "{}/../tests/fixtures/graphql_http_audit.mjs",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = std::process::Command::new(&node)
        .args([&script, &dir, &format!("{}/graphql", app.base), key])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", node.display()));
    assert!(
        out.status.success(),
        "the audit did not run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON line per audit"))
        .collect()
}

async fn the_reference_audit_passes(app: TestApp) {
    let key = app.workspace("Audit").await;
    let results = tokio::task::block_in_place(|| audit(&app, &key));
    assert!(results.len() > 40, "{results:?}");
    // No MUST (error) and no SHOULD (warn) fails; MAY notices are allowed.
    let failed: Vec<&Value> = results
        .iter()
        .filter(|r| r["status"] == "error" || r["status"] == "warn")
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    let count = |status: &str| results.iter().filter(|r| r["status"] == status).count();
    println!(
        "graphql-http audit: {} ok, {} notices (MAY) of {}",
        count("ok"),
        count("notice"),
        results.len()
    );
}

async fn get(
    app: &TestApp,
    key: &str,
    params: &[(&str, &str)],
    accept: &str,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let url = reqwest::Url::parse_with_params(&format!("{}/graphql", app.base), params).unwrap();
    let res = reqwest::Client::new()
        .get(url)
        .bearer_auth(key)
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, res.json().await.unwrap_or(Value::Null), headers)
}

async fn post(app: &TestApp, key: &str, body: Value) -> Value {
    reqwest::Client::new()
        .post(format!("{}/graphql", app.base))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn queries_over_get_and_persisted_queries(app: TestApp) {
    let key = app.workspace("Transport").await;
    // A query over GET, answered in the media type asked for.
    let (status, body, headers) = get(
        &app,
        &key,
        &[("query", "{ viewer { workspaceId } }")],
        "application/graphql-response+json",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/graphql-response+json")
    );
    assert!(body["data"]["viewer"]["workspaceId"].is_string());
    // A mutation over GET is refused without running.
    let (status, _, headers) = get(
        &app,
        &key,
        &[(
            "query",
            "mutation { createContact(input: {email: \"get@example.com\"}) { id } }",
        )],
        "application/json",
    )
    .await;
    assert_eq!(status, 405);
    assert_eq!(headers["allow"], "POST");
    // Named, alone in its document, it still runs without its name: refused all the same.
    let (status, _, _) = get(
        &app,
        &key,
        &[(
            "query",
            "mutation Sneaky { createContact(input: {email: \"get@example.com\"}) { id } }",
        )],
        "application/json",
    )
    .await;
    assert_eq!(status, 405);
    let count = post(&app, &key, json!({"query": "{ contacts { totalCount } }"})).await;
    assert_eq!(count["data"]["contacts"]["totalCount"], 0);

    // Automatic persisted queries: unknown hash, then registered, then by hash over GET.
    let query = "query Me { viewer { workspaceId } }";
    let hash = document_hash(query);
    let persisted = json!({"persistedQuery": {"version": 1, "sha256Hash": hash}});
    let unknown = post(&app, &key, json!({"extensions": persisted})).await;
    assert_eq!(
        unknown["errors"][0]["message"], "PersistedQueryNotFound",
        "{unknown}"
    );
    assert_eq!(
        unknown["errors"][0]["extensions"]["code"],
        "PERSISTED_QUERY_NOT_FOUND"
    );
    let registered = post(&app, &key, json!({"query": query, "extensions": persisted})).await;
    assert!(registered["data"]["viewer"].is_object(), "{registered}");
    let (status, by_hash, _) = get(
        &app,
        &key,
        &[("extensions", &persisted.to_string())],
        "application/json",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(by_hash["data"], registered["data"]);
    let lying = post(
        &app,
        &key,
        json!({"query": "{ __typename }", "extensions": persisted}),
    )
    .await;
    assert_eq!(
        lying["errors"][0]["extensions"]["code"], "VALIDATION",
        "{lying}"
    );

    // A locked-down server runs only its trusted documents, and introspects for admins only.
    let trusted = Documents::trusted([(hash.clone(), query.to_string())].into()).unwrap();
    let locked = TestApp::spawn_with(
        Backend::Sqlite,
        Config {
            documents: std::sync::Arc::new(trusted),
            introspection: Introspection::Admin,
            ..Default::default()
        },
    )
    .await;
    let admin = locked.workspace("Locked").await;
    let by_id = post(
        &locked,
        &admin,
        json!({"documentId": format!("sha256:{hash}")}),
    )
    .await;
    assert!(by_id["data"]["viewer"].is_object(), "{by_id}");
    let other = post(
        &locked,
        &admin,
        json!({"query": "{ contacts { totalCount } }"}),
    )
    .await;
    assert_eq!(
        other["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{other}"
    );
    let open = TestApp::spawn_with(
        Backend::Sqlite,
        Config {
            introspection: Introspection::Admin,
            ..Default::default()
        },
    )
    .await;
    let owner = open.workspace("Introspection").await;
    let reader = open
        .ok(
            &owner,
            "mutation { createApiKey(name: \"ro\", scopes: [READ]) { key } }",
            json!({}),
        )
        .await["createApiKey"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    let schema = "{ __schema { queryType { name } } }";
    assert_eq!(
        post(&open, &owner, json!({"query": schema})).await["data"]["__schema"]["queryType"]["name"],
        "Queries"
    );
    let refused = post(&open, &reader, json!({"query": schema})).await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );
    let typename = post(&open, &reader, json!({"query": "{ __typename }"})).await;
    assert_eq!(typename["data"]["__typename"], "Queries");
}

/// The keys of the objects in `text`'s `data`, in the order written.
fn keys_in_order(text: &str, keys: &[&str]) -> Vec<usize> {
    keys.iter()
        .map(|k| {
            text.find(&format!("\"{k}\""))
                .unwrap_or_else(|| panic!("{k} in {text}"))
        })
        .collect()
}

async fn answers_keep_the_order_of_the_selection(app: TestApp) {
    let key = app.workspace("Order").await;
    app.ok(
        &key,
        "mutation { createContact(input: {email: \"order@example.com\", firstName: \"Ada\"}) { id } }",
        json!({}),
    )
    .await;
    // Not alphabetical, not the order fields complete in: the order asked.
    let query = "{ contacts(first: 5) { totalCount pageInfo { hasNextPage endCursor } \
                 nodes { lastName firstName email id } } }";
    let keys = [
        "totalCount",
        "pageInfo",
        "hasNextPage",
        "endCursor",
        "nodes",
        "lastName",
        "firstName",
        "email",
    ];
    let raw = |query: &'static str, idempotency: Option<&'static str>| {
        let key = key.clone();
        let base = app.base.clone();
        async move {
            let mut req = reqwest::Client::new()
                .post(format!("{base}/graphql"))
                .bearer_auth(key)
                .json(&json!({"query": query}));
            if let Some(k) = idempotency {
                req = req.header("Idempotency-Key", k);
            }
            req.send().await.unwrap().text().await.unwrap()
        }
    };
    let text = raw(query, None).await;
    let at = keys_in_order(&text, &keys);
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
    // A mutation's answer kept for its Idempotency-Key comes back in the same order.
    let create = "mutation { createContact(input: {email: \"kept@example.com\", firstName: \"Kept\"}) \
                  { lastName firstName email id } }";
    let (first, again) = (
        raw(create, Some("order-1")).await,
        raw(create, Some("order-1")).await,
    );
    assert_eq!(first, again, "the retry is answered with the first answer");
    let at = keys_in_order(&again, &["lastName", "firstName", "email", "id"]);
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{again}");
}

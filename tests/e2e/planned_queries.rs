//! Planned execution through the real server: a document's first request runs on the
//! schema, later ones from its plan, and the two answers are the same bytes; the plan
//! keeps the schema's scoping, errors, complexity limit and key budget.

use rapport_tests::TestApp;
use rapport_tests::both_backends;
use serde_json::{Value, json};

both_backends!(
    planned_answers_are_the_schemas_to_the_byte,
    planned_requests_keep_scoping_errors_and_limits,
    roots_by_id_load_their_first_relation_in_one_statement,
);

/// The body of a GraphQL request, as the server wrote it.
async fn raw(
    app: &TestApp,
    key: &str,
    query: &str,
    variables: Value,
    operation: Option<&str>,
) -> String {
    let mut body = json!({"query": query, "variables": variables});
    if let Some(op) = operation {
        body["operationName"] = json!(op);
    }
    reqwest::Client::new()
        .post(format!("{}/graphql", app.base))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body")
}

async fn planned_count(app: &TestApp) -> u64 {
    let page = reqwest::Client::new()
        .get(format!("{}/metrics", app.base))
        .bearer_auth("scrape")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    page.lines()
        .find_map(|l| l.strip_prefix("rapport_graphql_planned_total "))
        .expect("the planned counter")
        .trim()
        .parse()
        .unwrap()
}

async fn with_metrics(app: TestApp) -> TestApp {
    TestApp::spawn_with(
        app.backend(),
        rapport_api::server::Config {
            metrics_token: Some("scrape".into()),
            ..Default::default()
        },
    )
    .await
}

/// Contacts (one without a company, one deleted), companies, deals in every state
/// (amounts in two currencies, one closed lost with a reason, one deleted) and activities
/// whose text needs escaping. Returns the contacts' ids in order.
async fn seed(app: &TestApp, key: &str) -> Vec<String> {
    let companies = app
        .ok(
            key,
            "mutation($c: [CompanyInput!]!) { bulkUpsertCompanies(companies: $c) { company { id } } }",
            json!({"c": [
                {"name": "Acme \"Rockets\"", "domain": "acme.test", "industry": "Aerospace", "size": 40, "country": "US"},
                {"name": "Zürich Bank", "domain": "zb.test"},
                {"name": "Tiny", "domain": "tiny.test"},
            ]}),
        )
        .await;
    let company = |i: usize| companies["bulkUpsertCompanies"][i % 3]["company"]["id"].clone();
    let contacts: Vec<Value> = (0..12)
        .map(|i| {
            let last = ["Ng", "O'Hara", "Smith", "Łukasz"][i % 4];
            let stage = ["LEAD", "CUSTOMER", "QUALIFIED"][i % 3];
            let plan = ["free", "pro"][i % 2];
            json!({
                "firstName": format!("Ann{i}"),
                "lastName": last,
                "email": format!("ann{i}@example.com"),
                "lifecycleStage": stage,
                "tags": if i % 2 == 0 { json!(["vip", "ünïcode \"q\""]) } else { json!([]) },
                "phone": if i % 3 == 0 { Value::Null } else { json!(format!("+1 555 01{i:02}")) },
                "attributes": {"plan": plan, "seats": i, "ratio": 0.1 * i as f64},
                "timezone": "Europe/Berlin",
            })
        })
        .collect();
    let made = app
        .ok(
            key,
            "mutation($c: [ContactInput!]!) { bulkUpsertContacts(contacts: $c) { contact { id } } }",
            json!({"c": contacts}),
        )
        .await;
    let ids: Vec<String> = made["bulkUpsertContacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["contact"]["id"].as_str().unwrap().to_string())
        .collect();
    for (i, id) in ids.iter().enumerate() {
        if i % 4 != 3 {
            app.ok(
                key,
                "mutation($id: ID!, $co: ID!) { updateContact(id: $id, input: {companyId: $co}) { id } }",
                json!({"id": id, "co": company(i)}),
            )
            .await;
        }
        for (k, kind) in ["NOTE", "CALL", "EMAIL"].iter().enumerate().take(1 + i % 3) {
            app.ok(
                key,
                "mutation($a: ActivityInput!) { createActivity(input: $a) { id } }",
                json!({"a": {
                    "kind": kind, "contactId": id,
                    "direction": if k == 1 { json!("INBOUND") } else { Value::Null },
                    "subject": format!("Re: \"offer\" №{i} <{k}>"),
                    "body": format!("line one\nline two 😀 \\ {i}"),
                    "occurredAt": format!("2026-0{}-1{}T10:00:00Z", 1 + k, i % 10),
                }}),
            )
            .await;
        }
        if i % 2 == 0 {
            let deal = app
                .ok(
                    key,
                    "mutation($d: DealInput!) { createDeal(input: $d) { id } }",
                    json!({"d": {
                        "name": format!("Deal {i}"), "contactId": id, "companyId": company(i),
                        "amount": if i % 4 == 0 { 1234.5 + i as f64 } else { 98765.0 + i as f64 }, "currency": if i % 4 == 0 { "EUR" } else { "JPY" },
                        "expectedCloseDate": if i % 3 == 0 { json!("2027-01-31") } else { Value::Null },
                    }}),
                )
                .await;
            let deal_id = deal["createDeal"]["id"].clone();
            match i {
                2 => {
                    app.ok(key, "mutation($id: ID!) { closeDeal(id: $id, outcome: LOST, reason: \"price\", competitor: \"Umbrella\") { id } }", json!({"id": deal_id})).await;
                }
                4 => {
                    app.ok(
                        key,
                        "mutation($id: ID!) { closeDeal(id: $id, outcome: WON) { id } }",
                        json!({"id": deal_id}),
                    )
                    .await;
                }
                6 => {
                    app.ok(
                        key,
                        "mutation($id: ID!) { deleteDeal(id: $id) }",
                        json!({"id": deal_id}),
                    )
                    .await;
                }
                _ => {}
            }
        }
    }
    app.ok(
        key,
        "mutation($id: ID!) { deleteContact(id: $id) }",
        json!({"id": ids[11]}),
    )
    .await;
    ids
}

const FRAGMENTS: &str = "query Page($n: Int = 4, $after: String) {
  __typename
  people: contacts(first: $n, after: $after, orderBy: [{field: LAST_NAME}, {field: FIRST_NAME, direction: DESC}]) {
    __typename
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor __typename }
    edges { __typename cursor node { ...Who ... on Contact { deals(first: 2, orderBy: [{field: AMOUNT_MINOR, direction: DESC}]) { nodes { id amount amountMinor currency expectedCloseDate status lostReason competitor externalId closedAt deletedAt } } } } }
  }
}
fragment Who on Contact { id name kind: __typename }";

async fn planned_answers_are_the_schemas_to_the_byte(app: TestApp) {
    let app = with_metrics(app).await;
    let key = app.workspace("Plans").await;
    let ids = seed(&app, &key).await;
    let (first, second) = (&ids[0], &ids[1]);
    let back = app
        .ok(
            &key,
            "{ contacts(first: 3) { pageInfo { endCursor } } }",
            json!({}),
        )
        .await["contacts"]["pageInfo"]["endCursor"]
        .clone();
    let ordered = app
        .ok(&key, "{ contacts(first: 3, orderBy: [{field: LAST_NAME}, {field: FIRST_NAME, direction: DESC}]) { pageInfo { endCursor } } }", json!({}))
        .await["contacts"]["pageInfo"]["endCursor"]
        .clone();
    // The same document with one more field: another shape, whose first request goes to
    // the schema.
    let fragments_again = FRAGMENTS.replacen("__typename", "__typename again: __typename", 1);
    let deal = app
        .ok(
            &key,
            "{ deals(first: 1) { edges { node { id } } } }",
            json!({}),
        )
        .await["deals"]["edges"][0]["node"]["id"]
        .clone();
    let docs: Vec<(&str, Value, Option<&str>)> = vec![
        // scripts/bench's two requests.
        (
            "query($from: ID!) { contacts(first: 50, filter: {id: {gte: $from}}) { edges { node { id name email company { name domain } deals(filter: {status: {eq: OPEN}}) { edges { node { name amount currency stage { name } } } } activities(first: 5) { edges { node { kind subject occurredAt } } } } } } }",
            json!({"from": first}),
            None,
        ),
        (
            "query($id: ID!) { contact(id: $id) { id name email lifecycleStage tags company { name } } }",
            json!({"id": second}),
            None,
        ),
        // Every column a plan writes.
        (
            "query($id: ID!) { contact(id: $id) { __typename id firstName lastName name email otherEmails phone lifecycleStage source tags attributes timezone createdAt updatedAt deletedAt mergedIntoId hasUnsubscribeUrl company { __typename id name domain industry size country createdAt updatedAt deletedAt } } }",
            json!({"id": first}),
            None,
        ),
        // Aliases, fragments, defaults, nodes, cursors and page info; a named operation.
        (FRAGMENTS, json!({}), Some("Page")),
        (
            &fragments_again,
            json!({"n": 2, "after": ordered}),
            Some("Page"),
        ),
        (
            "query($before: String) { contacts(last: 2, before: $before) { pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor node { id } } } }",
            json!({"before": back}),
            None,
        ),
        (
            "{ deals(first: 10, orderBy: [{field: STATUS}, {field: NAME, direction: DESC}]) { edges { node { id name status closedAt createdAt updatedAt stage { __typename id name position winProbability isWon isLost } contact { id name deletedAt } company { name } } } } }",
            json!({}),
            None,
        ),
        (
            "{ companies(first: 5, filter: {name: {contains: \"a\"}}) { edges { node { id name size contacts(first: 3, filter: {lifecycleStage: {in: [CUSTOMER, LEAD]}}) { edges { node { id name activities(first: 2, filter: {kind: {eq: CALL}}) { edges { node { kind direction subject body occurredAt contact { id } } } } } } } deals { edges { node { id amount } } } } } } }",
            json!({}),
            None,
        ),
        (
            "query($id: ID!, $c: ID!) { deal(id: $id) { id name amount company { name } } company(id: $c) { name deals(first: 1) { edges { node { name } } } } }",
            json!({"id": deal, "c": app.ok(&key, "{ companies(first: 1) { edges { node { id } } } }", json!({})).await["companies"]["edges"][0]["node"]["id"].clone()}),
            None,
        ),
        (
            "{ contacts(first: 0) { edges { node { id } } pageInfo { hasNextPage startCursor } } }",
            json!({}),
            None,
        ),
    ];
    let planned_before = planned_count(&app).await;
    for (query, variables, operation) in &docs {
        let by_schema = raw(&app, &key, query, variables.clone(), *operation).await;
        assert!(
            !by_schema.contains("\"errors\""),
            "the schema refused {query}: {by_schema}"
        );
        let by_plan = raw(&app, &key, query, variables.clone(), *operation).await;
        assert_eq!(by_plan, by_schema, "the planned answer of {query} differs");
    }
    assert_eq!(
        planned_count(&app).await - planned_before,
        docs.len() as u64,
        "every second request ran from its plan"
    );
    // Values written into the document: each text is new, its shape is not. The schema
    // runs the first; the rest run from plans and answer as the schema does.
    let literal =
        |id: &str| format!("{{ contact(id: \"{id}\") {{ id name email company {{ name }} }} }}");
    let by_variables = "query($id: ID!) { contact(id: $id) { id name email company { name } } }";
    let before = planned_count(&app).await;
    raw(&app, &key, &literal(first), json!({}), None).await;
    for id in &ids[1..5] {
        let by_schema_or_plan = raw(&app, &key, by_variables, json!({"id": id}), None).await;
        assert!(
            by_schema_or_plan.contains(id.as_str()),
            "{by_schema_or_plan}"
        );
        assert_eq!(
            raw(&app, &key, &literal(id), json!({}), None).await,
            by_schema_or_plan
        );
    }
    assert_eq!(planned_count(&app).await - before, 3 + 4);
    // A value of the wrong type in a known shape gets the schema's refusal.
    let sized = |n: &str| format!("{{ contacts(first: {n}) {{ edges {{ node {{ id }} }} }} }}");
    raw(&app, &key, &sized("2"), json!({}), None).await;
    for wrong in ["\"two\"", "-1", "2.5", "99999999999"] {
        let (code, message) = app.err(&key, &sized(wrong), json!({})).await;
        assert_eq!(code, "VALIDATION", "first: {wrong}: {message}");
    }
    let (code, _) = app.err(&key, &literal("-7"), json!({})).await;
    assert_eq!(code, "VALIDATION");

    // What a plan does not cover still runs on the schema, every time.
    let counted = "{ contacts(first: 2) { totalCount edges { node { id } } } }";
    raw(&app, &key, counted, json!({}), None).await;
    let planned_after = planned_count(&app).await;
    raw(&app, &key, counted, json!({}), None).await;
    assert_eq!(
        planned_count(&app).await,
        planned_after,
        "totalCount is not planned"
    );
}

async fn planned_requests_keep_scoping_errors_and_limits(app: TestApp) {
    let app = with_metrics(app).await;
    let mine = app.workspace("Mine").await;
    let theirs = app.workspace("Theirs").await;
    let my_ids = seed(&app, &mine).await;
    let their_ids = seed(&app, &theirs).await;
    let point = "query($id: ID!) { contact(id: $id) { id name email company { name } } }";
    app.ok(&mine, point, json!({"id": my_ids[0]})).await;
    let planned = planned_count(&app).await;
    app.ok(&mine, point, json!({"id": my_ids[0]})).await;
    assert_eq!(
        planned_count(&app).await,
        planned + 1,
        "planned from now on"
    );

    // Another workspace's contact, a deleted one, and a malformed id: the schema's errors.
    for (id, code) in [
        (their_ids[0].as_str(), "NOT_FOUND"),
        (my_ids[11].as_str(), "NOT_FOUND"),
        ("-3", "VALIDATION"),
    ] {
        let (got, message) = app.err(&mine, point, json!({"id": id})).await;
        assert_eq!(got, code, "{id}: {message}");
    }
    let (_, body) = app.post(Some(&mine), point, json!({})).await;
    assert!(
        body["errors"][0]["message"].as_str().is_some(),
        "a missing variable: {body}"
    );

    // A short document whose fragments would copy out into a huge plan (20 x 20 x 20
    // spreads of a 100-value argument) runs on the schema, every time.
    let list: Vec<String> = (0..100).map(|i| format!("\"x{i}\"")).collect();
    let spreads = |prefix: &str, body: &str| -> String {
        (0..20).map(|i| format!("{prefix}{i}: {body} ")).collect()
    };
    let bomb = format!(
        "query($id: ID!) {{ contact(id: $id) {{ {} }} }}
         fragment B on Company {{ {} }}
         fragment C on Contact {{ {} }}
         fragment D on Company {{ deals(first: 1, filter: {{name: {{in: [{}]}}}}) {{ nodes {{ id }} }} }}",
        spreads("a", "company { ...B }"),
        spreads("b", "contacts(first: 1) { nodes { ...C } }"),
        spreads("c", "company { ...D }"),
        list.join(", ")
    );
    // The fourth contact has no company: nothing below it is read.
    let lone = json!({"id": my_ids[3]});
    let before = planned_count(&app).await;
    let first = app.ok(&mine, &bomb, lone.clone()).await;
    assert_eq!(app.ok(&mine, &bomb, lone).await, first);
    assert!(first["contact"]["a0"].is_null(), "{first}");
    assert_eq!(planned_count(&app).await, before, "no plan for it");

    // A page lists only the caller's rows.
    let page = "query($n: Int) { contacts(first: $n) { edges { node { id company { name } deals { edges { node { contact { id } } } } } } } }";
    for _ in 0..2 {
        let data = app.ok(&theirs, page, json!({"n": 50})).await;
        let seen: Vec<&str> = data["contacts"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["id"].as_str().unwrap())
            .collect();
        assert_eq!(seen.len(), 11, "the deleted contact is not listed");
        assert!(seen.iter().all(|id| their_ids.iter().any(|t| t == id)));
    }
    // Arguments checked per request: a negative size, a cursor that is not one, a size
    // past the page limit.
    let (code, _) = app.err(&theirs, page, json!({"n": -1})).await;
    assert_eq!(code, "VALIDATION");
    let cursor = "query($a: String) { contacts(first: 2, after: $a) { edges { node { id } } } }";
    app.ok(&theirs, cursor, json!({})).await;
    let (code, _) = app.err(&theirs, cursor, json!({"a": "not a cursor"})).await;
    assert_eq!(code, "VALIDATION");
    let (code, _) = app.err(&theirs, page, json!({"n": 5000})).await;
    assert_eq!(code, "VALIDATION");

    // A misspelt field of a filter given as a variable is refused, as the schema refuses
    // it, not passed over (which would list everything).
    let by_filter = "query($f: DealFilter) { deals(filter: $f) { edges { node { id } } } }";
    let open = json!({"f": {"status": {"eq": "OPEN"}}});
    let a = app.ok(&theirs, by_filter, open.clone()).await;
    assert_eq!(app.ok(&theirs, by_filter, open).await, a);
    for wrong in [
        json!({"f": {"stauts": {"eq": "OPEN"}}}),
        json!({"f": {"status": {"eqq": "OPEN"}}}),
        json!({"f": {"or": [{"name": {"eq": "x"}}, {"nmae": {"eq": "y"}}]}}),
    ] {
        let (code, message) = app.err(&theirs, by_filter, wrong.clone()).await;
        assert_eq!(code, "VALIDATION", "{wrong}: {message}");
    }

    // Complexity follows the variables: learned small, refused large, before any read.
    let nested = "query($n: Int) { contacts(first: $n) { edges { node { deals(first: $n) { edges { node { id name amount } } } activities(first: $n) { edges { node { id } } } } } } }";
    app.ok(&theirs, nested, json!({"n": 2})).await;
    app.ok(&theirs, nested, json!({"n": 2})).await;
    let before = app.statements();
    let (_, body) = app.post(Some(&theirs), nested, json!({"n": 1000})).await;
    assert!(body["data"].is_null(), "refused: {body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("complex"), "{body}");
    let reads = app
        .statements_since(before)
        .iter()
        .filter(|s| s.contains("FROM \"contacts\"") || s.contains("FROM \"deals\""))
        .count();
    assert_eq!(reads, 0, "refused before reading");

    // The key's budget is charged by planned requests as by the schema's.
    let tight = TestApp::spawn_with(
        app.backend(),
        rapport_api::server::Config {
            limits: rapport_api::server::Limits {
                key_cost_per_second: 1,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await;
    let key = tight.workspace("Tight").await;
    let big = "{ contacts(first: 500) { edges { node { id name email deals(first: 20) { edges { node { id name } } } } } } }";
    let mut codes = Vec::new();
    for _ in 0..40 {
        let (_, body) = tight.post(Some(&key), big, json!({})).await;
        codes.push(
            body["errors"][0]["extensions"]["code"]
                .as_str()
                .unwrap_or("ok")
                .to_string(),
        );
    }
    assert_eq!(codes[0], "ok");
    assert!(
        codes.iter().any(|c| c == "RATE_LIMITED"),
        "the budget ran out: {codes:?}"
    );
}

/// A root by id reads the row its first to-one relation points at in its own statement,
/// and answers as the schema does: with no company, a company in the trash, another
/// workspace's ids, several roots of a kind, a deal with its stage and contact.
async fn roots_by_id_load_their_first_relation_in_one_statement(app: TestApp) {
    let app = with_metrics(app).await;
    let key = app.workspace("Joined").await;
    let theirs = app.workspace("Joined elsewhere").await;
    let ids = seed(&app, &key).await;
    let trashed = app
        .ok(
            &key,
            "query($id: ID!) { contact(id: $id) { company { id } } }",
            json!({"id": ids[1]}),
        )
        .await["contact"]["company"]["id"]
        .clone();
    app.ok(
        &key,
        "mutation($id: ID!) { deleteCompany(id: $id) }",
        json!({"id": trashed}),
    )
    .await;
    let deal = app
        .ok(&key, "{ deals(first: 1) { nodes { id } } }", json!({}))
        .await["deals"]["nodes"][0]["id"]
        .clone();
    let point = "query($id: ID!) { contact(id: $id) { id name company { id name deletedAt } } }";
    let several = "query($a: ID!, $b: ID!, $c: ID!, $d: ID!) { a: contact(id: $a) { name company { name deletedAt } } b: contact(id: $b) { id company { name } } c: contact(id: $c) { company { domain } email } deal(id: $d) { name stage { name isWon } contact { name } company { name } } }";
    let cases = [
        (point, json!({"id": ids[0]})),
        // No company.
        (point, json!({"id": ids[3]})),
        // A company in the trash is still the contact's.
        (point, json!({"id": ids[1]})),
        (
            several,
            json!({"a": ids[1], "b": ids[3], "c": ids[2], "d": deal}),
        ),
    ];
    for (query, variables) in &cases {
        let before = planned_count(&app).await;
        let first = raw(&app, &key, query, variables.clone(), None).await;
        assert!(!first.contains("\"errors\""), "{query}: {first}");
        let statements = app.statements();
        let again = raw(&app, &key, query, variables.clone(), None).await;
        let reads = app.statements_since(statements);
        assert_eq!(again, first, "the planned answer of {query} differs");
        assert!(planned_count(&app).await > before, "planned: {query}");
        if *query == point {
            let reads: Vec<&String> = reads
                .iter()
                .filter(|s| s.contains("\"contacts\"") || s.contains("\"companies\""))
                .collect();
            assert_eq!(reads.len(), 1, "one statement: {reads:#?}");
        }
    }
    assert!(
        raw(&app, &key, point, json!({"id": ids[1]}), None)
            .await
            .contains("\"deletedAt\":\"20"),
        "the company in the trash"
    );
    // Another workspace's contact is not found, planned or not.
    for _ in 0..2 {
        let (code, _) = app.err(&theirs, point, json!({"id": ids[0]})).await;
        assert_eq!(code, "NOT_FOUND");
    }
}

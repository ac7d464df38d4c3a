//! The CRM graph over GraphQL, end to end, on SQLite and PostgreSQL.

use rapport_engine::values::Scope;
use rapport_tests::TestApp;
use rapport_tests::both_backends;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashSet};

both_backends!(
    pagination_walks_every_row_once,
    filters_match_a_reference,
    workspaces_are_isolated,
    read_only_and_revoked_keys,
    validation_errors_are_clear,
    merge_moves_every_related_row,
    nested_relations_are_batched,
    deals_move_close_and_convert,
    timeline_merges_by_time,
    companies_roll_up_their_contacts,
    soft_delete_restore_and_erase,
    nested_lists_page_on_from_the_batched_first_page,
);

const UPSERT: &str = "mutation($c: [ContactInput!]!) { bulkUpsertContacts(contacts: $c) { created contact { id email } } }";

const LAST_NAMES: [&str; 5] = ["Smith", "Jones", "Brown", "Lee", "Garcia"];
const STAGES: [&str; 3] = ["LEAD", "QUALIFIED", "CUSTOMER"];
const SOURCES: [&str; 3] = ["web", "event", "referral"];
const PLANS: [&str; 3] = ["free", "pro", "enterprise"];

fn ids(conn: &Value) -> Vec<String> {
    conn["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_string())
        .collect()
}

async fn seed_contacts(app: &TestApp, key: &str, n: usize) -> Vec<Value> {
    let contacts: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "firstName": format!("F{}", i % 7),
                "lastName": LAST_NAMES[i % 5],
                "email": format!("p{i}@example.com"),
                "lifecycleStage": STAGES[i % 3],
                "source": if i.is_multiple_of(4) { Value::Null } else { json!(SOURCES[i % 3]) },
                "tags": if i.is_multiple_of(2) { json!(["vip"]) } else { json!(["trial", "newsletter"]) },
                "phone": format!("+1 555 {:04}", i),
                "attributes": {"plan": PLANS[i % 3], "seats": i},
            })
        })
        .collect();
    let data = app.ok(key, UPSERT, json!({"c": contacts})).await;
    data["bulkUpsertContacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["contact"].clone())
        .collect()
}

const PAGE: &str =
    "query($first: Int, $after: String, $last: Int, $before: String, $order: [ContactOrder!]) {
  contacts(first: $first, after: $after, last: $last, before: $before, orderBy: $order) {
    totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id lastName firstName } }
  } }";

async fn pagination_walks_every_row_once(app: TestApp) {
    let key = app.workspace("A").await;
    seed_contacts(&app, &key, 57).await;
    let order = json!([{"field": "LAST_NAME"}, {"field": "FIRST_NAME", "direction": "DESC"}]);

    // The reference order, computed here from the rows themselves.
    let all = app
        .ok(
            &key,
            PAGE,
            json!({"first": 500, "order": [{"field": "ID"}]}),
        )
        .await;
    let mut reference: Vec<(String, String, i64)> = all["contacts"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let n = &e["node"];
            (
                n["lastName"].as_str().unwrap().to_string(),
                n["firstName"].as_str().unwrap().to_string(),
                n["id"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    // Ties fall to the id, in the direction of the last key (here descending).
    reference.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(b.2.cmp(&a.2)));
    let reference: Vec<String> = reference.into_iter().map(|r| r.2.to_string()).collect();
    assert_eq!(reference.len(), 57);

    // Forward, inserting rows between fetches: every original row once, in order.
    let mut seen = Vec::new();
    let mut after = Value::Null;
    let mut pages = 0;
    loop {
        let data = app
            .ok(
                &key,
                PAGE,
                json!({"first": 10, "after": after, "order": order}),
            )
            .await;
        let conn = &data["contacts"];
        seen.extend(ids(conn));
        pages += 1;
        app.ok(&key, "mutation { createContact(input: {firstName: \"Zed\", lastName: \"Aardvark\"}) { id } }", json!({})).await;
        if !conn["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = conn["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(pages, 6);
    let inserted_before: HashSet<&String> = reference.iter().collect();
    let originals: Vec<String> = seen
        .iter()
        .filter(|id| inserted_before.contains(id))
        .cloned()
        .collect();
    assert_eq!(
        originals, reference,
        "forward walk must yield every original row once, in order"
    );

    // Backward from the end with last/before.
    let mut back = Vec::new();
    let mut before = Value::Null;
    loop {
        let data = app
            .ok(
                &key,
                PAGE,
                json!({"last": 7, "before": before, "order": order}),
            )
            .await;
        let conn = &data["contacts"];
        let mut page = ids(conn);
        page.reverse();
        back.extend(page);
        if !conn["pageInfo"]["hasPreviousPage"].as_bool().unwrap() {
            break;
        }
        before = conn["pageInfo"]["startCursor"].clone();
    }
    back.reverse();
    let total = app
        .ok(&key, PAGE, json!({"first": 1, "order": order}))
        .await["contacts"]["totalCount"]
        .as_u64()
        .unwrap();
    assert_eq!(back.len() as u64, total);
    assert_eq!(
        back.iter().collect::<HashSet<_>>().len(),
        back.len(),
        "no row twice"
    );
    let originals: Vec<String> = back
        .iter()
        .filter(|id| inserted_before.contains(id))
        .cloned()
        .collect();
    assert_eq!(originals, reference);

    // A cursor made for another order is refused.
    let first = app
        .ok(&key, PAGE, json!({"first": 1, "order": order}))
        .await;
    let cursor = first["contacts"]["pageInfo"]["endCursor"].clone();
    let (code, _) = app
        .err(
            &key,
            PAGE,
            json!({"first": 1, "after": cursor, "order": [{"field": "CREATED_AT"}]}),
        )
        .await;
    assert_eq!(code, "VALIDATION");
    let (code, _) = app.err(&key, PAGE, json!({"first": 100000})).await;
    assert_eq!(code, "VALIDATION");
}

async fn filter_ids(app: &TestApp, key: &str, filter: Value) -> BTreeSet<i64> {
    let q = "query($f: ContactFilter) { contacts(first: 500, filter: $f) { totalCount edges { node { id } } } }";
    let data = app.ok(key, q, json!({"f": filter})).await;
    let set: BTreeSet<i64> = ids(&data["contacts"])
        .iter()
        .map(|i| i.parse().unwrap())
        .collect();
    assert_eq!(
        data["contacts"]["totalCount"].as_u64().unwrap() as usize,
        set.len(),
        "totalCount agrees with the rows"
    );
    set
}

async fn filters_match_a_reference(app: TestApp) {
    let key = app.workspace("A").await;
    let company = app.ok(&key, "mutation { createCompany(input: {name: \"Acme\", domain: \"acme.com\", industry: \"Software\"}) { id } }", json!({})).await;
    let company_id = company["createCompany"]["id"].as_str().unwrap().to_string();
    let rows = seed_contacts(&app, &key, 40).await;
    for r in rows.iter().take(10) {
        app.ok(
            &key,
            "mutation($id: ID!, $c: ID!) { updateContact(id: $id, input: {companyId: $c}) { id } }",
            json!({"id": r["id"], "c": company_id}),
        )
        .await;
    }
    // The reference: the same rules applied in Rust to what was created.
    struct Row {
        id: i64,
        i: usize,
    }
    let rows: Vec<Row> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| Row {
            id: r["id"].as_str().unwrap().parse().unwrap(),
            i,
        })
        .collect();
    let stage = |i: usize| ["LEAD", "QUALIFIED", "CUSTOMER"][i % 3];
    let last = |i: usize| ["Smith", "Jones", "Brown", "Lee", "Garcia"][i % 5];
    let source = |i: usize| {
        if i.is_multiple_of(4) {
            None
        } else {
            Some(["web", "event", "referral"][i % 3])
        }
    };
    let expect = |f: &dyn Fn(usize) -> bool| {
        rows.iter()
            .filter(|r| f(r.i))
            .map(|r| r.id)
            .collect::<BTreeSet<i64>>()
    };

    assert_eq!(
        filter_ids(&app, &key, json!({"lifecycleStage": {"eq": "LEAD"}})).await,
        expect(&|i| stage(i) == "LEAD")
    );
    assert_eq!(
        filter_ids(
            &app,
            &key,
            json!({"lifecycleStage": {"in": ["LEAD", "CUSTOMER"]}})
        )
        .await,
        expect(&|i| stage(i) != "QUALIFIED")
    );
    assert_eq!(
        filter_ids(&app, &key, json!({"lastName": {"contains": "ON"}})).await,
        expect(&|i| last(i).to_lowercase().contains("on"))
    );
    assert_eq!(
        filter_ids(&app, &key, json!({"lastName": {"startsWith": "g"}})).await,
        expect(&|i| last(i).starts_with('G'))
    );
    assert_eq!(
        filter_ids(
            &app,
            &key,
            json!({"lastName": {"gte": "Jones", "lt": "Smith"}})
        )
        .await,
        expect(&|i| last(i) >= "Jones" && last(i) < "Smith")
    );
    assert_eq!(
        filter_ids(&app, &key, json!({"source": {"ne": "web"}})).await,
        expect(&|i| source(i) != Some("web"))
    );
    assert_eq!(
        filter_ids(&app, &key, json!({"source": {"isNull": true}})).await,
        expect(&|i| source(i).is_none())
    );
    assert_eq!(
        filter_ids(&app, &key, json!({"source": {"notIn": ["web", "event"]}})).await,
        expect(&|i| !matches!(source(i), Some("web") | Some("event")))
    );
    assert_eq!(
        filter_ids(&app, &key, json!({"tags": {"has": "vip"}})).await,
        expect(&|i| i.is_multiple_of(2))
    );
    assert_eq!(
        filter_ids(&app, &key, json!({"companyId": {"eq": company_id}})).await,
        expect(&|i| i < 10)
    );
    assert_eq!(
        filter_ids(
            &app,
            &key,
            json!({"company": {"industry": {"eq": "Software"}}})
        )
        .await,
        expect(&|i| i < 10)
    );
    assert_eq!(
        filter_ids(&app, &key, json!({"companyId": {"isNull": true}})).await,
        expect(&|i| i >= 10)
    );
    assert_eq!(
        filter_ids(&app, &key, json!({"or": [{"lastName": {"eq": "Lee"}}, {"and": [{"lifecycleStage": {"eq": "LEAD"}}, {"tags": {"has": "vip"}}]}]})).await,
        expect(&|i| last(i) == "Lee" || (stage(i) == "LEAD" && i.is_multiple_of(2)))
    );
    assert_eq!(
        filter_ids(
            &app,
            &key,
            json!({"not": {"lastName": {"in": ["Lee", "Smith"]}}})
        )
        .await,
        expect(&|i| !["Lee", "Smith"].contains(&last(i)))
    );
    assert_eq!(
        filter_ids(
            &app,
            &key,
            json!({"attributes": [{"key": "plan", "value": {"eq": "pro"}}]})
        )
        .await,
        expect(&|i| PLANS[i % 3] == "pro")
    );
    assert_eq!(
        filter_ids(&app, &key, json!({"attributes": [{"key": "seats", "value": {"in": ["7", "12"]}}, {"key": "plan", "value": {"startsWith": "ENT"}}]})).await,
        expect(&|i| (i == 7 || i == 12) && PLANS[i % 3] == "enterprise")
    );
    assert_eq!(
        filter_ids(
            &app,
            &key,
            json!({"attributes": [{"key": "no_such", "value": {"isNull": true}}]})
        )
        .await,
        expect(&|_| true)
    );
    let pivot = rows[19].id;
    assert_eq!(
        filter_ids(
            &app,
            &key,
            json!({"id": {"gt": pivot.to_string(), "lte": (pivot + 5).to_string()}})
        )
        .await,
        rows.iter()
            .filter(|r| r.id > pivot && r.id <= pivot + 5)
            .map(|r| r.id)
            .collect::<BTreeSet<i64>>()
    );
    assert_eq!(
        filter_ids(&app, &key, json!({"email": {"contains": "_"}})).await,
        BTreeSet::new(),
        "LIKE wildcards in input are literal"
    );

    // Sorting by several fields against the same reference.
    let q = "{ contacts(first: 500, orderBy: [{field: LIFECYCLE_STAGE, direction: DESC}, {field: LAST_NAME}]) { edges { node { id } } } }";
    let got: Vec<i64> = ids(&app.ok(&key, q, json!({})).await["contacts"])
        .iter()
        .map(|i| i.parse().unwrap())
        .collect();
    let mut want: Vec<&Row> = rows.iter().collect();
    want.sort_by(|a, b| {
        stage(b.i)
            .to_lowercase()
            .cmp(&stage(a.i).to_lowercase())
            .then(last(a.i).cmp(last(b.i)))
            .then(a.id.cmp(&b.id))
    });
    assert_eq!(got, want.iter().map(|r| r.id).collect::<Vec<_>>());
}

async fn workspaces_are_isolated(app: TestApp) {
    let a = app.workspace("A").await;
    let b = app.workspace("B").await;
    let created = app
        .ok(
            &a,
            "mutation { createContact(input: {firstName: \"Ann\", email: \"ann@a.com\"}) { id } }",
            json!({}),
        )
        .await;
    let id = created["createContact"]["id"].clone();
    let (code, _) = app
        .err(
            &b,
            "query($id: ID!) { contact(id: $id) { id } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(code, "NOT_FOUND");
    let list = app
        .ok(
            &b,
            "{ contacts { totalCount edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(list["contacts"]["totalCount"], 0);
    let (code, _) = app
        .err(
            &b,
            "mutation($id: ID!) { updateContact(id: $id, input: {firstName: \"X\"}) { id } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(code, "NOT_FOUND");
    let (code, _) = app
        .err(
            &b,
            "mutation($id: ID!) { deleteContact(id: $id) }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(code, "NOT_FOUND");
    let (code, _) = app
        .err(
            &b,
            "mutation($id: ID!) { createDeal(input: {name: \"D\", contactId: $id}) { id } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(code, "NOT_FOUND");
    // The same email may exist in both workspaces.
    app.ok(
        &b,
        "mutation { createContact(input: {email: \"ann@a.com\"}) { id } }",
        json!({}),
    )
    .await;
    let still = app
        .ok(
            &a,
            "query($id: ID!) { contact(id: $id) { firstName } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(still["contact"]["firstName"], "Ann");
}

async fn read_only_and_revoked_keys(app: TestApp) {
    let admin = app.workspace("A").await;
    let made = app
        .ok(
            &admin,
            "mutation { createApiKey(name: \"reader\", scopes: [READ]) { key apiKey { id } } }",
            json!({}),
        )
        .await;
    let reader = made["createApiKey"]["key"].as_str().unwrap().to_string();
    let reader_id = made["createApiKey"]["apiKey"]["id"].clone();
    app.ok(
        &reader,
        "{ contacts { totalCount } viewer { scopes } }",
        json!({}),
    )
    .await;
    let (code, _) = app
        .err(
            &reader,
            "mutation { createContact(input: {firstName: \"X\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");
    let (code, _) = app.err(&reader, "{ apiKeys { id } }", json!({})).await;
    assert_eq!(code, "FORBIDDEN");
    let count = app
        .ok(&admin, "{ contacts { totalCount } }", json!({}))
        .await;
    assert_eq!(
        count["contacts"]["totalCount"], 0,
        "the refused mutation wrote nothing"
    );

    let (status, body) = app
        .post(None, "{ contacts { totalCount } }", json!({}))
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    let (status, _) = app
        .post(
            Some("rk_nothere_000"),
            "{ contacts { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 401);

    app.ok(
        &admin,
        "mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }",
        json!({"id": reader_id}),
    )
    .await;
    let (status, body) = app
        .post(Some(&reader), "{ contacts { totalCount } }", json!({}))
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");

    // Prefixes are hex, so some are all digits; revoking by such a prefix must not read it as an id.
    let ws = rapport_schema::workspace::Entity::find()
        .one(&app.db)
        .await
        .unwrap()
        .unwrap()
        .id;
    let issued = rapport_engine::platform::auth::create_key(&app.db, ws, "digits", &[Scope::Read])
        .await
        .unwrap();
    let mut digits: rapport_schema::api_key::ActiveModel = issued.record.into();
    digits.prefix = Set("123456789012".into());
    let digits = digits.update(&app.db).await.unwrap();
    let revoked = rapport_engine::platform::auth::revoke_key(&app.db, Some(ws), "123456789012")
        .await
        .unwrap();
    assert_eq!(revoked.id, digits.id);
    assert!(revoked.revoked_at.is_some());
    let by_id =
        rapport_engine::platform::auth::revoke_key(&app.db, Some(ws), reader_id.as_str().unwrap())
            .await
            .unwrap();
    assert_ne!(by_id.id, digits.id, "a plain id still finds its key");
}

async fn validation_errors_are_clear(app: TestApp) {
    let key = app.workspace("A").await;
    let (code, msg) = app
        .err(
            &key,
            "mutation { createContact(input: {email: \"not-an-email\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "VALIDATION");
    assert!(
        msg.contains("email") && msg.contains("not-an-email"),
        "{msg}"
    );
    let (code, msg) = app
        .err(
            &key,
            "mutation { createDeal(input: {name: \"D\", amount: 10, currency: \"XXQ\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "VALIDATION");
    assert!(msg.contains("ISO 4217"), "{msg}");
    let (code, msg) = app
        .err(
            &key,
            "mutation { createDeal(input: {name: \"D\", amount: -5}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "VALIDATION");
    assert!(msg.contains("negative"), "{msg}");
    let (code, _) = app
        .err(
            &key,
            "mutation { createContact(input: {}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "VALIDATION");
    let (code, _) = app
        .err(&key, "{ contact(id: \"abc\") { id } }", json!({}))
        .await;
    assert_eq!(code, "VALIDATION");
    let (code, _) = app
        .err(&key, "{ contact(id: \"999999\") { id } }", json!({}))
        .await;
    assert_eq!(code, "NOT_FOUND");
    let (code, _) = app.err(&key, "{ nosuchfield }", json!({})).await;
    assert_eq!(code, "VALIDATION");

    app.ok(
        &key,
        "mutation { createContact(input: {email: \"dup@x.com\"}) { id } }",
        json!({}),
    )
    .await;
    let (code, _) = app
        .err(
            &key,
            "mutation { createContact(input: {email: \"DUP@x.com\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "CONFLICT");

    // A bulk call with one bad row writes nothing.
    let (code, msg) = app
        .err(&key, UPSERT, json!({"c": [{"email": "ok1@x.com", "firstName": "A"}, {"email": "bad", "firstName": "B"}]}))
        .await;
    assert_eq!(code, "VALIDATION");
    assert!(msg.contains("contacts[1]"), "{msg}");
    let n = app
        .ok(
            &key,
            "{ contacts(filter: {email: {eq: \"ok1@x.com\"}}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(n["contacts"]["totalCount"], 0);
    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({"email": format!("m{i}@x.com")}))
        .collect();
    let (code, _) = app.err(&key, UPSERT, json!({"c": too_many})).await;
    assert_eq!(code, "VALIDATION");

    // A stage of another pipeline is refused.
    let other = app.ok(&key, "mutation { createPipeline(input: {name: \"Renewals\", stages: [{name: \"Open\"}, {name: \"Renewed\", isWon: true}]}) { id stages { id } } }", json!({})).await;
    let foreign_stage = other["createPipeline"]["stages"][0]["id"].clone();
    let deal = app
        .ok(
            &key,
            "mutation { createDeal(input: {name: \"D\", amount: 100}) { id } }",
            json!({}),
        )
        .await;
    let (code, msg) = app
        .err(
            &key,
            "mutation($d: ID!, $s: ID!) { moveDealToStage(dealId: $d, stageId: $s) { id } }",
            json!({"d": deal["createDeal"]["id"], "s": foreign_stage}),
        )
        .await;
    assert_eq!(code, "VALIDATION");
    assert!(msg.contains("pipeline"), "{msg}");
}

async fn merge_moves_every_related_row(app: TestApp) {
    let key = app.workspace("A").await;
    let mk = |first: &str, email: &str, phone: &str| json!({"firstName": first, "lastName": "Doe", "email": email, "phone": phone, "tags": [first]});
    let made = app.ok(&key, UPSERT, json!({"c": [mk("Jane", "jane@x.com", "+1 555 0100"), mk("Janet", "janet@y.com", "+1 (555) 0100")]})).await;
    let survivor = made["bulkUpsertContacts"][0]["contact"]["id"].clone();
    let merged = made["bulkUpsertContacts"][1]["contact"]["id"].clone();

    let dups = app
        .ok(
            &key,
            "query($id: ID) { findDuplicates(contactId: $id) { reason contacts { id } } }",
            json!({"id": survivor}),
        )
        .await;
    assert!(
        dups["findDuplicates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["reason"] == "SAME_PHONE"),
        "{dups}"
    );

    let product = app
        .ok(
            &key,
            "mutation { createProduct(input: {sku: \"S1\", name: \"Thing\", price: 9.5}) { id } }",
            json!({}),
        )
        .await;
    for who in [&survivor, &merged] {
        let v = json!({"c": who, "p": product["createProduct"]["id"]});
        app.ok(&key, "mutation($c: ID!) { createDeal(input: {name: \"D\", contactId: $c, amount: 10}) { id } }", v.clone()).await;
        app.ok(&key, "mutation($c: ID!) { createActivity(input: {kind: CALL, contactId: $c, subject: \"hi\"}) { id } }", v.clone()).await;
        app.ok(
            &key,
            "mutation($c: ID!) { createTask(input: {title: \"t\", contactId: $c}) { id } }",
            v.clone(),
        )
        .await;
        app.ok(&key, "mutation($c: ID!) { createInquiry(input: {subject: \"q\", channel: EMAIL, contactId: $c}) { id } }", v.clone()).await;
        app.ok(&key, "mutation($c: ID!, $p: ID!) { createOrder(input: {contactId: $c, lines: [{productId: $p, quantity: 2}]}) { totalMinor } }", v.clone()).await;
        app.ok(&key, "mutation($c: ID!) { trackEvent(contactId: $c, type: \"page_view\", properties: {path: \"/\"}) { id } }", v.clone()).await;
    }
    let done = app.ok(&key, "mutation($s: ID!, $m: [ID!]!) { mergeContacts(survivorId: $s, mergedIds: $m) { id otherEmails tags } }", json!({"s": survivor, "m": [merged]})).await;
    assert_eq!(done["mergeContacts"]["otherEmails"], json!(["janet@y.com"]));
    assert_eq!(done["mergeContacts"]["tags"], json!(["Jane", "Janet"]));

    let q = "query($id: ID!) { contact(id: $id) {
        deals { totalCount } activities { totalCount } tasks { totalCount } inquiries { totalCount }
        orders { totalCount edges { node { total lines { quantity unitPrice product { sku } } } } } events { totalCount }
        merges { mergedId moved mergedSnapshot } } }";
    let c = app.ok(&key, q, json!({"id": survivor})).await["contact"].clone();
    for rel in [
        "deals",
        "activities",
        "tasks",
        "inquiries",
        "orders",
        "events",
    ] {
        assert_eq!(c[rel]["totalCount"], 2, "{rel} moved to the survivor: {c}");
    }
    assert_eq!(c["orders"]["edges"][0]["node"]["total"], 19.0);
    assert_eq!(c["merges"][0]["mergedId"], merged);
    assert_eq!(c["merges"][0]["moved"]["deals"], 1);
    assert_eq!(c["merges"][0]["mergedSnapshot"]["email"], "janet@y.com");
    let (code, _) = app
        .err(
            &key,
            "query($id: ID!) { contact(id: $id) { id } }",
            json!({"id": merged}),
        )
        .await;
    assert_eq!(code, "NOT_FOUND");
    let tag = app
        .ok(
            &key,
            "{ contacts(filter: {tags: {has: \"Janet\"}}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(tag["contacts"]["totalCount"], 1);
}

async fn nested_relations_are_batched(app: TestApp) {
    let key = app.workspace("A").await;
    let rows = seed_contacts(&app, &key, 100).await;
    let companies: Vec<Value> = (0..10)
        .map(|i| json!({"name": format!("C{i}"), "domain": format!("c{i}.com")}))
        .collect();
    let made = app.ok(&key, "mutation($c: [CompanyInput!]!) { bulkUpsertCompanies(companies: $c) { company { id } } }", json!({"c": companies})).await;
    let company_ids: Vec<Value> = made["bulkUpsertCompanies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["company"]["id"].clone())
        .collect();
    for (i, r) in rows.iter().enumerate() {
        let v = json!({"id": r["id"], "co": company_ids[i % 10]});
        app.ok(&key, "mutation($id: ID!, $co: ID!) { updateContact(id: $id, input: {companyId: $co}) { id } }", v.clone()).await;
        app.ok(&key, "mutation($id: ID!) { a: createActivity(input: {kind: NOTE, contactId: $id}) { id } b: createActivity(input: {kind: CALL, contactId: $id}) { id } }", v.clone()).await;
        if i.is_multiple_of(2) {
            app.ok(&key, "mutation($id: ID!) { createDeal(input: {name: \"D\", contactId: $id, amount: 5}) { id } }", v).await;
        }
    }
    let q = "query($n: Int!) { contacts(first: $n) { edges { node {
        id company { name owner { name } contacts(first: 2) { edges { node { id } } } }
        deals(filter: {status: {eq: OPEN}}) { totalCount edges { node { stage { name } pipeline { name } } } }
        activities(first: 5) { edges { node { kind author { name } } } }
        tasks { edges { node { id } } } } } } }";
    let mut counts = Vec::new();
    let mut statements = Vec::new();
    for n in [10, 100] {
        let before = app.statements();
        let data = app.ok(&key, q, json!({"n": n})).await;
        counts.push(app.statements() - before);
        statements.push(app.statements_since(before));
        let edges = data["contacts"]["edges"].as_array().unwrap();
        assert_eq!(edges.len(), n);
        assert!(
            edges
                .iter()
                .all(|e| e["node"]["company"]["name"].is_string())
        );
        assert!(
            edges
                .iter()
                .all(|e| e["node"]["activities"]["edges"].as_array().unwrap().len() == 2)
        );
        assert_eq!(edges[0]["node"]["deals"]["totalCount"], 1);
        assert_eq!(
            edges[0]["node"]["deals"]["edges"][0]["node"]["stage"]["name"],
            "Prospecting"
        );
    }
    assert_eq!(
        counts[0], counts[1],
        "statements per request must not grow with the page size: {counts:?}\n{statements:#?}"
    );
    assert!(counts[0] <= 20, "{counts:?}");
}

async fn deals_move_close_and_convert(app: TestApp) {
    let key = app.workspace("A").await;
    let lead = app.ok(&key, "mutation { createContact(input: {firstName: \"Lee\", lastName: \"Ray\", email: \"lee@ray.io\"}) { id } }", json!({})).await;
    let lead_id = lead["createContact"]["id"].clone();
    let conv = app
        .ok(&key, "mutation($id: ID!) { convertLead(contactId: $id, input: {amount: 1200.5, currency: \"EUR\", companyName: \"Ray Inc\"}) { contact { lifecycleStage company { name } } deal { id name amount amountMinor currency status stage { name } } company { name } } }", json!({"id": lead_id}))
        .await;
    let c = &conv["convertLead"];
    assert_eq!(c["contact"]["lifecycleStage"], "OPPORTUNITY");
    assert_eq!(c["contact"]["company"]["name"], "Ray Inc");
    assert_eq!(c["deal"]["amountMinor"], 120050);
    assert_eq!(c["deal"]["name"], "Lee Ray deal");
    let (code, _) = app
        .err(
            &key,
            "mutation($id: ID!) { convertLead(contactId: $id) { deal { id } } }",
            json!({"id": lead_id}),
        )
        .await;
    assert_eq!(code, "CONFLICT");

    let deal = c["deal"]["id"].clone();
    let stages = app
        .ok(
            &key,
            "{ pipelines { edges { node { stages { id name } } } } }",
            json!({}),
        )
        .await;
    let stage_ids: Vec<Value> = stages["pipelines"]["edges"][0]["node"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].clone())
        .collect();
    app.ok(
        &key,
        "mutation($d: ID!, $s: ID!) { moveDealToStage(dealId: $d, stageId: $s) { id } }",
        json!({"d": deal, "s": stage_ids[2]}),
    )
    .await;
    let closed = app.ok(&key, "mutation($d: ID!) { closeDeal(id: $d, outcome: LOST, reason: \"price\", competitor: \"Rival\") { status lostReason competitor closedAt stage { name } } }", json!({"d": deal})).await;
    assert_eq!(closed["closeDeal"]["status"], "LOST");
    assert_eq!(closed["closeDeal"]["stage"]["name"], "Closed lost");
    assert_eq!(closed["closeDeal"]["competitor"], "Rival");
    let (code, _) = app
        .err(
            &key,
            "mutation($d: ID!) { closeDeal(id: $d, outcome: WON) { id } }",
            json!({"d": deal}),
        )
        .await;
    assert_eq!(code, "CONFLICT");
    let hist = app.ok(&key, "query($d: ID!) { deal(id: $d) { stageHistory { fromStage { name } toStage { name } movedAt movedByKeyId } } }", json!({"d": deal})).await;
    let names: Vec<(Value, Value)> = hist["deal"]["stageHistory"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["fromStage"]["name"].clone(), h["toStage"]["name"].clone()))
        .collect();
    assert_eq!(
        names,
        vec![
            (Value::Null, json!("Prospecting")),
            (json!("Prospecting"), json!("Proposal")),
            (json!("Proposal"), json!("Closed lost"))
        ]
    );
    assert!(hist["deal"]["stageHistory"][1]["movedByKeyId"].is_string());
    // Moving it back to an open stage reopens it.
    let reopened = app.ok(&key, "mutation($d: ID!, $s: ID!) { moveDealToStage(dealId: $d, stageId: $s) { status lostReason closedAt } }", json!({"d": deal, "s": stage_ids[1]})).await;
    assert_eq!(
        reopened["moveDealToStage"],
        json!({"status": "OPEN", "lostReason": null, "closedAt": null})
    );
}

async fn timeline_merges_by_time(app: TestApp) {
    let key = app.workspace("A").await;
    let c = app
        .ok(
            &key,
            "mutation { createContact(input: {firstName: \"T\"}) { id } }",
            json!({}),
        )
        .await["createContact"]["id"]
        .clone();
    let v = json!({"c": c});
    app.ok(&key, "mutation($c: ID!) { createActivity(input: {kind: EMAIL, contactId: $c, occurredAt: \"2024-01-01T10:00:00Z\", subject: \"a1\"}) { id } }", v.clone()).await;
    app.ok(&key, "mutation($c: ID!) { createOrder(input: {contactId: $c, placedAt: \"2024-01-03T10:00:00Z\", lines: [{quantity: 1, unitPrice: 5}]}) { id } }", v.clone()).await;
    app.ok(&key, "mutation($c: ID!) { createInquiry(input: {subject: \"q\", channel: CHAT, contactId: $c, openedAt: \"2024-01-02T10:00:00Z\"}) { id } }", v.clone()).await;
    app.ok(&key, "mutation($c: ID!) { createActivity(input: {kind: CALL, contactId: $c, occurredAt: \"2024-01-04T10:00:00Z\", subject: \"a2\"}) { id } }", v.clone()).await;
    app.ok(&key, "mutation($c: ID!) { createActivity(input: {kind: NOTE, contactId: $c, occurredAt: \"2024-01-02T10:00:00Z\", subject: \"a3\"}) { id } }", v.clone()).await;
    let q = "query($c: ID!, $after: String) { contact(id: $c) { timeline(first: 2, after: $after) { pageInfo { hasNextPage endCursor } edges { occurredAt node { __typename } } } } }";
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = app.ok(&key, q, json!({"c": c, "after": after})).await;
        let t = &data["contact"]["timeline"];
        for e in t["edges"].as_array().unwrap() {
            seen.push((
                e["occurredAt"].as_str().unwrap()[..10].to_string(),
                e["node"]["__typename"].as_str().unwrap().to_string(),
            ));
        }
        if !t["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = t["pageInfo"]["endCursor"].clone();
    }
    // Newest first: the contact's creation (its first lifecycle stage) is today.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let want: Vec<(String, String)> = [
        (today.as_str(), "LifecycleChange"),
        ("2024-01-04", "Activity"),
        ("2024-01-03", "Order"),
        ("2024-01-02", "Inquiry"),
        ("2024-01-02", "Activity"),
        ("2024-01-01", "Activity"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(seen, want);
}

/// A company's activities, inquiries and timeline are its live contacts' (and its deals'
/// activities); another company's people and a deleted contact stay out.
async fn companies_roll_up_their_contacts(app: TestApp) {
    let key = app.workspace("Roll-up").await;
    let id = |v: &Value, f: &str| v[f]["id"].clone();
    let acme = id(
        &app.ok(
            &key,
            "mutation { createCompany(input: {name: \"Acme\"}) { id } }",
            json!({}),
        )
        .await,
        "createCompany",
    );
    let other = id(
        &app.ok(
            &key,
            "mutation { createCompany(input: {name: \"Other\"}) { id } }",
            json!({}),
        )
        .await,
        "createCompany",
    );
    let person = |name: &'static str, company: Value| {
        let (app, key) = (&app, &key);
        async move {
            app.ok(
                key,
                "mutation($n: String!, $co: ID!) { createContact(input: {firstName: $n, companyId: $co}) { id } }",
                json!({"n": name, "co": company}),
            )
            .await["createContact"]["id"]
                .clone()
        }
    };
    let ann = person("Ann", acme.clone()).await;
    let bob = person("Bob", acme.clone()).await;
    let gone = person("Gone", acme.clone()).await;
    let out = person("Out", other.clone()).await;
    let activity = |contact: Value, deal: Value, subject: &'static str, at: &'static str| {
        let (app, key) = (&app, &key);
        async move {
            app.ok(
                key,
                "mutation($c: ID, $d: ID, $s: String!, $at: DateTime!) { createActivity(input: {kind: NOTE, contactId: $c, dealId: $d, subject: $s, occurredAt: $at}) { id } }",
                json!({"c": contact, "d": deal, "s": subject, "at": at}),
            )
            .await;
        }
    };
    let deal = id(
        &app.ok(
            &key,
            "mutation($co: ID!) { createDeal(input: {name: \"Big\", companyId: $co}) { id } }",
            json!({"co": acme}),
        )
        .await,
        "createDeal",
    );
    activity(ann.clone(), Value::Null, "ann", "2024-01-01T10:00:00Z").await;
    activity(bob.clone(), Value::Null, "bob", "2024-01-03T10:00:00Z").await;
    activity(Value::Null, deal.clone(), "deal", "2024-01-02T10:00:00Z").await;
    activity(gone.clone(), Value::Null, "gone", "2024-01-04T10:00:00Z").await;
    activity(out.clone(), Value::Null, "out", "2024-01-05T10:00:00Z").await;
    app.ok(&key, "mutation($c: ID!) { createInquiry(input: {subject: \"help\", channel: CHAT, contactId: $c}) { id } }", json!({"c": bob})).await;
    app.ok(&key, "mutation($c: ID!) { createInquiry(input: {subject: \"elsewhere\", channel: CHAT, contactId: $c}) { id } }", json!({"c": out})).await;
    app.ok(
        &key,
        "mutation($c: ID!) { deleteContact(id: $c) }",
        json!({"c": gone}),
    )
    .await;

    let data = app
        .ok(
            &key,
            "query($co: ID!) { company(id: $co) { activities(first: 10) { totalCount edges { node { subject } } } inquiries { edges { node { subject } } } timeline(first: 50) { edges { node { __typename ... on Activity { subject } ... on Inquiry { subject } } } } } }",
            json!({"co": acme}),
        )
        .await;
    let company = &data["company"];
    let subjects: Vec<&str> = company["activities"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects,
        ["bob", "deal", "ann"],
        "newest first, the deal's included: {data}"
    );
    assert_eq!(company["activities"]["totalCount"], 3);
    assert_eq!(
        company["inquiries"]["edges"],
        json!([{"node": {"subject": "help"}}])
    );
    let timeline: Vec<(String, String)> = company["timeline"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["node"]["subject"].is_string())
        .map(|e| {
            (
                e["node"]["__typename"].as_str().unwrap().to_string(),
                e["node"]["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        timeline.contains(&("Inquiry".into(), "help".into())),
        "{timeline:?}"
    );
    for (_, subject) in &timeline {
        assert!(
            !["gone", "out", "elsewhere"].contains(&subject.as_str()),
            "{timeline:?}"
        );
    }
    let lifecycle = company["timeline"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["node"]["__typename"] == "LifecycleChange")
        .count();
    assert_eq!(lifecycle, 2, "Ann's and Bob's first stage: {data}");
}

async fn soft_delete_restore_and_erase(app: TestApp) {
    let key = app.workspace("A").await;
    let c = app
        .ok(
            &key,
            "mutation { createContact(input: {firstName: \"Del\", email: \"del@x.com\"}) { id } }",
            json!({}),
        )
        .await["createContact"]["id"]
        .clone();
    app.ok(&key, "mutation($c: ID!) { createActivity(input: {kind: NOTE, contactId: $c, body: \"secret\"}) { id } }", json!({"c": c})).await;
    app.ok(
        &key,
        "mutation($c: ID!) { deleteContact(id: $c) }",
        json!({"c": c}),
    )
    .await;
    assert_eq!(
        app.ok(&key, "{ contacts { totalCount } }", json!({})).await["contacts"]["totalCount"],
        0
    );
    let (code, _) = app
        .err(
            &key,
            "mutation($c: ID!) { deleteContact(id: $c) }",
            json!({"c": c}),
        )
        .await;
    assert_eq!(code, "NOT_FOUND", "already in the trash");
    let restored = app
        .ok(
            &key,
            "mutation($c: ID!) { restoreContact(id: $c) { firstName deletedAt } }",
            json!({"c": c}),
        )
        .await;
    assert_eq!(
        restored["restoreContact"],
        json!({"firstName": "Del", "deletedAt": null})
    );

    // Erasure needs admin and removes personal data for good.
    let writer = app
        .ok(
            &key,
            "mutation { createApiKey(name: \"w\", scopes: [WRITE]) { key } }",
            json!({}),
        )
        .await["createApiKey"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, _) = app
        .err(
            &writer,
            "mutation($c: ID!) { deleteContact(id: $c, hard: true) }",
            json!({"c": c}),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");
    app.ok(
        &key,
        "mutation($c: ID!) { deleteContact(id: $c, hard: true) }",
        json!({"c": c}),
    )
    .await;
    assert_eq!(
        app.ok(&key, "{ activities { totalCount } }", json!({}))
            .await["activities"]["totalCount"],
        0
    );
    let (code, _) = app
        .err(
            &key,
            "mutation($c: ID!) { restoreContact(id: $c) { id } }",
            json!({"c": c}),
        )
        .await;
    assert_eq!(code, "NOT_FOUND");
    // The email is free again.
    app.ok(
        &key,
        "mutation { createContact(input: {email: \"del@x.com\"}) { id } }",
        json!({}),
    )
    .await;
}

#[test]
fn exported_sdl_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema/rapport.graphql");
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    let current = rapport_api::graphql::sdl();
    assert!(
        on_disk == current,
        "schema/rapport.graphql is out of date: run `cargo run -p rapport-api -- schema > schema/rapport.graphql`"
    );
}

#[tokio::test]
async fn migrate_is_idempotent_on_both_databases() {
    for backend in [
        rapport_tests::Backend::Sqlite,
        rapport_tests::Backend::Postgres,
    ] {
        let app = TestApp::spawn(backend).await;
        rapport_engine::platform::db::migrate(&app.db)
            .await
            .expect("second migrate");
        rapport_engine::platform::db::migrate(&app.db)
            .await
            .expect("third migrate");
        let key = app.workspace("A").await;
        app.ok(&key, "{ viewer { workspaceName } }", json!({}))
            .await;
    }
}

/// The first page of a nested list comes from the batched loader (one statement for all
/// parents); the next pages from its `endCursor` are direct queries. Both must agree on
/// the order, ties included: newest first, equal times by id descending.
async fn nested_lists_page_on_from_the_batched_first_page(app: TestApp) {
    let key = app.workspace("A").await;
    let mut contacts = Vec::new();
    for n in 0..3 {
        let c = app
            .ok(
                &key,
                "mutation($e: String!) { createContact(input: {firstName: \"P\", email: $e}) { id } }",
                json!({"e": format!("p{n}@example.com")}),
            )
            .await["createContact"]["id"]
            .clone();
        contacts.push(c);
    }
    // Seven activities for the first two contacts, four of them at the same moment.
    let times = [
        "2024-03-01T10:00:00Z",
        "2024-03-02T10:00:00Z",
        "2024-03-02T10:00:00Z",
        "2024-03-02T10:00:00Z",
        "2024-03-02T10:00:00Z",
        "2024-02-01T10:00:00Z",
        "2024-03-05T10:00:00Z",
    ];
    let mut made: Vec<(String, String, i64)> = Vec::new();
    for contact in &contacts[..2] {
        for (i, at) in times.iter().enumerate() {
            let id = app
                .ok(
                    &key,
                    "mutation($c: ID!, $at: DateTime!, $s: String!) { createActivity(input: {kind: NOTE, contactId: $c, occurredAt: $at, subject: $s}) { id } }",
                    json!({"c": contact, "at": at, "s": format!("n{i}")}),
                )
                .await["createActivity"]["id"]
                .as_str()
                .unwrap()
                .parse::<i64>()
                .unwrap();
            made.push((contact.as_str().unwrap().to_string(), at.to_string(), id));
        }
    }
    let first_pages = app
        .ok(
            &key,
            "{ contacts(first: 10) { edges { node { id activities(first: 3) { pageInfo { hasNextPage endCursor } edges { cursor node { id } } } } } } }",
            json!({}),
        )
        .await;
    let next = "query($c: ID!, $after: String) { contact(id: $c) { activities(first: 3, after: $after) { pageInfo { hasNextPage endCursor } edges { cursor node { id } } } } }";
    for edge in first_pages["contacts"]["edges"].as_array().unwrap() {
        let contact = edge["node"]["id"].as_str().unwrap();
        let mut want: Vec<&(String, String, i64)> =
            made.iter().filter(|(c, _, _)| c == contact).collect();
        want.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)));
        let want: Vec<String> = want.iter().map(|(_, _, id)| id.to_string()).collect();

        let mut conn = edge["node"]["activities"].clone();
        let mut seen = Vec::new();
        loop {
            let page = ids(&conn);
            let cursors: Vec<&Value> = conn["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| &e["cursor"])
                .collect();
            assert!(
                cursors
                    .iter()
                    .all(|c| c.as_str().is_some_and(|c| !c.is_empty()))
            );
            if let Some(last) = cursors.last() {
                assert_eq!(*last, &conn["pageInfo"]["endCursor"]);
            }
            seen.extend(page);
            if !conn["pageInfo"]["hasNextPage"].as_bool().unwrap() {
                break;
            }
            let after = conn["pageInfo"]["endCursor"].clone();
            conn = app
                .ok(&key, next, json!({"c": contact, "after": after}))
                .await["contact"]["activities"]
                .clone();
        }
        assert_eq!(
            seen, want,
            "contact {contact}: every activity once, newest first, ties by id descending"
        );
    }
}

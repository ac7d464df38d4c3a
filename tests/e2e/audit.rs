//! The audit log through the real server: every mutation and sign-in is recorded with who,
//! from where and what changed (old and new values); failed mutations leave their names,
//! not their values; only admins read it; erasure takes a person's values out and keeps
//! the rows. And a person's complete data, exported for an access request.

use rapport_tests::{TestApp, both_backends};
use serde_json::{Value, json};

use crate::accounts::{as_session, auth, person};

both_backends!(every_change_is_recorded_with_its_caller);
both_backends!(sign_ins_are_recorded_and_sessions_act_as_their_user);
both_backends!(a_persons_data_exports_from_every_table);

const LOG: &str = "query($f: AuditLogFilter, $before: ID, $first: Int! = 50) {
  auditLog(filter: $f, before: $before, first: $first) {
    id at apiKeyId userId ip userAgent operation action objectType objectId changes outcome
  }
}";

/// A mutation sent with a user agent, as a browser or an app would.
async fn post_as(app: &TestApp, key: &str, agent: &str, query: &str, variables: Value) -> Value {
    reqwest::Client::new()
        .post(format!("{}/graphql", app.base))
        .bearer_auth(key)
        .header("user-agent", agent)
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn log(app: &TestApp, key: &str, filter: Value) -> Vec<Value> {
    app.ok(key, LOG, json!({"f": filter})).await["auditLog"]
        .as_array()
        .unwrap()
        .clone()
}

async fn every_change_is_recorded_with_its_caller(app: TestApp) {
    let admin = app.workspace("Audited").await;
    let created = post_as(
        &app,
        &admin,
        "crm-sync/2.1",
        "mutation { createContact(input: {firstName: \"Ada\", email: \"ada@example.com\"}) { id } }",
        json!({}),
    )
    .await;
    let id = created["data"]["createContact"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    post_as(
        &app,
        &admin,
        "crm-sync/2.1",
        "mutation($id: ID!) { updateContact(id: $id, input: {firstName: \"Grace\"}) { id } }",
        json!({"id": id}),
    )
    .await;
    // A failed mutation: recorded with its error code and argument names only.
    let failed = post_as(
        &app,
        &admin,
        "crm-sync/2.1",
        "mutation($id: ID!) { updateContact(id: $id, input: {email: \"not an address\"}) { id } }",
        json!({"id": id}),
    )
    .await;
    assert!(failed["errors"].is_array(), "{failed}");

    let rows = log(
        &app,
        &admin,
        json!({"objectType": "Contact", "objectId": id}),
    )
    .await;
    let ops: Vec<(&str, Option<&str>, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["operation"].as_str().unwrap(),
                r["action"].as_str(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        vec![
            ("updateContact", None, "VALIDATION"),
            ("updateContact", Some("contact.updated"), "ok"),
            ("createContact", Some("contact.created"), "ok"),
        ],
        "{rows:#?}"
    );
    let [failed, updated, created] = &rows[..] else {
        unreachable!()
    };
    assert_eq!(
        updated["changes"],
        json!({"firstName": {"old": "Ada", "new": "Grace"}})
    );
    assert_eq!(
        created["changes"]["email"],
        json!({"new": "ada@example.com"})
    );
    assert_eq!(created["changes"]["firstName"], json!({"new": "Ada"}));
    assert_eq!(
        failed["changes"],
        json!({"argumentNames": ["id", "input"], "ids": {"id": id}}),
        "a failed mutation's values describe nothing that exists"
    );
    for row in &rows {
        assert!(row["apiKeyId"].is_string(), "{row}");
        assert_eq!(row["userId"], Value::Null);
        assert_eq!(row["ip"], "127.0.0.1");
        assert_eq!(row["userAgent"], "crm-sync/2.1");
    }

    // A mutation no room reports: its arguments, secrets never.
    let segment = app
        .ok(
            &admin,
            "mutation { createSegment(input: {name: \"Adas\", filter: {firstName: {eq: \"Ada\"}}}) { id } }",
            json!({}),
        )
        .await["createSegment"]["id"]
        .clone();
    let key = app
        .ok(
            &admin,
            "mutation { createApiKey(name: \"sync\", scopes: [WRITE]) { key } }",
            json!({}),
        )
        .await["createApiKey"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    let rows = log(&app, &admin, json!({"operation": "createSegment"})).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["objectType"], "Segment");
    assert_eq!(rows[0]["objectId"], segment);
    assert_eq!(
        rows[0]["changes"],
        json!({"argumentNames": ["input"], "ids": {}}),
        "values of arguments are never kept"
    );
    let all = serde_json::to_string(&log(&app, &admin, json!({})).await).unwrap();
    assert!(!all.contains(&key), "an API key's secret is never logged");

    // Only admins read the log; a write key's changes are recorded as its own.
    let writer = app.scoped_key(&admin, "WRITE").await;
    let (code, _) = app.err(&writer, LOG, json!({})).await;
    assert_eq!(code, "FORBIDDEN");
    app.ok(
        &writer,
        "mutation($id: ID!) { updateContact(id: $id, input: {lastName: \"Hopper\"}) { id } }",
        json!({"id": id}),
    )
    .await;
    let latest = &log(&app, &admin, json!({"objectId": id})).await[0];
    assert_eq!(
        latest["changes"],
        json!({"lastName": {"old": "", "new": "Hopper"}})
    );
    assert_ne!(
        latest["apiKeyId"], updated["apiKeyId"],
        "the writer's own key"
    );
    let by_writer = log(
        &app,
        &admin,
        json!({"apiKeyId": latest["apiKeyId"], "objectType": "Contact"}),
    )
    .await;
    assert_eq!(by_writer.len(), 1);

    // Another workspace sees none of it.
    let other = app.workspace("Elsewhere").await;
    assert!(log(&app, &other, json!({"objectId": id})).await.is_empty());

    // Erasure: the rows stay, the person's values go, and the erasure is recorded.
    app.ok(
        &admin,
        "mutation($id: ID!) { deleteContact(id: $id, hard: true) }",
        json!({"id": id}),
    )
    .await;
    let rows = log(
        &app,
        &admin,
        json!({"objectType": "Contact", "objectId": id}),
    )
    .await;
    assert_eq!(rows.len(), 5, "{rows:#?}");
    assert_eq!(rows[0]["operation"], "deleteContact");
    assert_eq!(rows[0]["action"], "contact.deleted");
    assert_eq!(rows[0]["changes"]["erased"], true);
    for row in &rows[1..] {
        assert_eq!(row["changes"], Value::Null, "{row}");
    }
    let all = serde_json::to_string(&log(&app, &admin, json!({})).await).unwrap();
    assert!(
        !all.contains("ada@example.com") && !all.contains("Hopper"),
        "{all}"
    );

    // Pages run newest first past `before`, bounded.
    let first = log(&app, &admin, json!({})).await;
    let page = app
        .ok(&admin, LOG, json!({"before": first[0]["id"], "first": 2}))
        .await["auditLog"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0]["id"], first[1]["id"]);
    let (code, _) = app.err(&admin, LOG, json!({"first": 500})).await;
    assert_eq!(code, "VALIDATION");

    // One request holds at most 50 mutations: the 51st is refused, not run or logged.
    let many: String = (0..51)
        .map(|i| format!("m{i}: createContact(input: {{firstName: \"M{i}\"}}) {{ id }} "))
        .collect();
    let (_, body) = app
        .post(Some(&admin), &format!("mutation {{ {many} }}"), json!({}))
        .await;
    assert!(body["data"]["m49"]["id"].is_string(), "{body}");
    assert!(body["data"]["m50"].is_null(), "{body}");
    assert!(body.to_string().contains("at most 50 mutations"), "{body}");
    let made = app
        .ok(
            &admin,
            LOG,
            json!({"f": {"operation": "createContact"}, "first": 200}),
        )
        .await["auditLog"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(made, 51, "Ada's and these 50");
}

async fn sign_ins_are_recorded_and_sessions_act_as_their_user(app: TestApp) {
    let admin = app.workspace("Signed").await;
    let ada = person(&app, &admin, "ada@team.example", "MEMBER").await;
    let (status, _, _) = auth(
        &app,
        "/auth/sign-in",
        json!({"email": "ada@team.example", "password": "a wrong guess at it"}),
        None,
    )
    .await;
    assert_eq!(status, 401);
    let (status, _, _) = auth(
        &app,
        "/auth/sign-in",
        json!({"email": "ada@team.example", "password": "a long enough secret"}),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let rows = log(&app, &admin, json!({"operation": "signIn"})).await;
    let outcomes: Vec<&str> = rows
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, vec!["signed_in", "wrong_password"]);
    for row in &rows {
        assert_eq!(row["userId"], ada.user_id.as_str());
        assert_eq!(row["ip"], "127.0.0.1");
        assert!(
            !row.to_string().contains("a long enough secret")
                && !row.to_string().contains("wrong guess")
        );
    }

    let (status, body) = as_session(
        &app,
        &ada,
        Some(&ada.csrf),
        "mutation { createContact(input: {firstName: \"Lin\"}) { id } }",
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let row = &log(&app, &admin, json!({"operation": "createContact"})).await[0];
    assert_eq!(row["userId"], ada.user_id.as_str());
    assert_eq!(row["apiKeyId"], Value::Null);
}

async fn a_persons_data_exports_from_every_table(app: TestApp) {
    let admin = app.workspace("Exported").await;
    let id = app
        .ok(
            &admin,
            "mutation { createContact(input: {firstName: \"Rosa\", email: \"rosa@example.com\", tags: [\"vip\"]}) { id } }",
            json!({}),
        )
        .await["createContact"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.ok(
        &admin,
        "mutation($c: ID!) { createActivity(input: {contactId: $c, kind: CALL, subject: \"Intro call\"}) { id } }",
        json!({"c": id}),
    )
    .await;
    app.ok(
        &admin,
        "mutation($c: ID!) { recordConsent(contactId: $c, input: {purpose: MARKETING, status: GRANTED, source: \"call\"}) { id } }",
        json!({"c": id}),
    )
    .await;
    // A duplicate merged into her is the same person: its rows come too.
    let twin = app
        .ok(
            &admin,
            "mutation { createContact(input: {firstName: \"Rosa\", email: \"rosa@work.example\"}) { id } }",
            json!({}),
        )
        .await["createContact"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.ok(
        &admin,
        "mutation($s: ID!, $m: [ID!]!) { mergeContacts(survivorId: $s, mergedIds: $m) { id } }",
        json!({"s": id, "m": [twin]}),
    )
    .await;

    const EXPORT: &str = "query($id: ID!) { exportContactData(id: $id) }";
    let data = app.ok(&admin, EXPORT, json!({"id": id})).await["exportContactData"].clone();
    assert_eq!(data["contactId"], id.as_str());
    assert_eq!(data["mergedIds"], json!([twin]));
    let stores = &data["stores"];
    let people = stores["contacts"].as_array().unwrap();
    let mut ids: Vec<String> = people.iter().map(|c| c["id"].to_string()).collect();
    ids.sort();
    let mut expected = vec![id.clone(), twin.clone()];
    expected.sort();
    assert_eq!(ids, expected, "the survivor and the merged twin");
    let rows = serde_json::to_string(people).unwrap();
    assert!(
        rows.contains("rosa@example.com") && rows.contains("rosa@work.example"),
        "{rows}"
    );
    assert_eq!(stores["activities"][0]["subject"], "Intro call");
    assert_eq!(stores["consent_events"][0]["status"], "granted");
    assert_eq!(stores["contact_tags"].as_array().unwrap().len(), 1);
    assert_eq!(stores["contact_merges"].as_array().unwrap().len(), 1);
    assert!(
        stores["audit_events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["operation"] == "createActivity"),
        "{}",
        stores["audit_events"]
    );
    // Every store of a contact's data is named, even when empty.
    for table in [
        "orders",
        "sequence_enrollments",
        "campaign_messages",
        "plugin_scores",
        "scores",
    ] {
        assert!(stores[table].is_array(), "{table} missing");
    }

    // Admins only, their own workspace only.
    let reader = app.scoped_key(&admin, "READ").await;
    let (code, _) = app.err(&reader, EXPORT, json!({"id": id})).await;
    assert_eq!(code, "FORBIDDEN");
    let other = app.workspace("Not hers").await;
    let (code, _) = app.err(&other, EXPORT, json!({"id": id})).await;
    assert_eq!(code, "NOT_FOUND");
}

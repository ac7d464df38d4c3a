//! Lead capture: ingest keys from their origins only (CORS and on the server), the
//! per-address and per-key budgets, hosted forms with double opt-in over real SMTP,
//! `Idempotency-Key` on create mutations, and the API's own CORS.

use rapport_tests::{Backend, SmtpServer, TestApp};
use serde_json::{Value, json};

const SHOP: &str = "https://shop.example";

async fn ingest_key(app: &TestApp, key: &str, origins: &[&str]) -> (String, Value) {
    let r = app
        .ok(
            key,
            "mutation($o: [String!]!) { createIngestKey(name: \"Site\", allowedOrigins: $o) { key ingestKey { id allowedOrigins } } }",
            json!({"o": origins}),
        )
        .await["createIngestKey"]
        .clone();
    (
        r["key"].as_str().unwrap().to_string(),
        r["ingestKey"].clone(),
    )
}

async fn capture(
    app: &TestApp,
    path: &str,
    key: &str,
    origin: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{}/capture/v1/{path}", app.base))
        .bearer_auth(key)
        .json(&body);
    if let Some(o) = origin {
        req = req.header("Origin", o);
    }
    req.send().await.unwrap()
}

async fn find_contact(app: &TestApp, key: &str, email: &str) -> Option<Value> {
    let data = app
        .ok(
            key,
            "query($e: String!) { contacts(first: 2, filter: {email: {eq: $e}}) { nodes { id firstName lastName source consent { purpose status } events(first: 10) { nodes { type properties } } } } }",
            json!({"e": email}),
        )
        .await;
    data["contacts"]["nodes"]
        .as_array()
        .unwrap()
        .first()
        .cloned()
}

fn mailer(smtp: &SmtpServer) -> rapport_api::graphql::Mail {
    rapport_api::graphql::Mail {
        mailer: rapport_engine::platform::email::Mailer::configure(
            Some(&smtp.url),
            "unused".into(),
        )
        .unwrap(),
        from: rapport_engine::values::EmailAddress::parse("from", "hello@crm.example").unwrap(),
    }
}

async fn ingest_key_works_from_its_origins_only(backend: Backend) {
    let smtp = SmtpServer::start();
    let config = rapport_api::server::Config {
        mail: Some(mailer(&smtp)),
        trusted_proxies: vec![std::net::Ipv4Addr::LOCALHOST.into()],
        ..Default::default()
    };
    let app = TestApp::spawn_with(backend, config).await;
    let admin = app.workspace("Capture").await;
    let (pk, record) = ingest_key(&app, &admin, &[SHOP, "HTTP://LOCALHOST:3000"]).await;
    assert!(pk.starts_with("pk_"));
    assert_eq!(
        record["allowedOrigins"],
        json!(["https://shop.example", "http://localhost:3000"])
    );
    let http = reqwest::Client::new();

    // The preflight tells a browser which origins may call; nothing about any key.
    let preflight = |origin: &'static str| {
        http.request(
            reqwest::Method::OPTIONS,
            format!("{}/capture/v1/identify", app.base),
        )
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type",
        )
        .send()
    };
    let ok = preflight(SHOP).await.unwrap();
    assert_eq!(ok.status(), 204);
    assert_eq!(ok.headers()["access-control-allow-origin"], SHOP);
    assert!(
        ok.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization")
    );
    let evil = preflight("https://evil.example").await.unwrap();
    assert_eq!(evil.status(), 403);
    assert!(evil.headers().get("access-control-allow-origin").is_none());

    // From the shop: a contact is created, and double opt-in asked by email.
    let r = capture(
        &app,
        "identify",
        &pk,
        Some(SHOP),
        json!({"email": "Lin@Example.com", "firstName": "Lin", "optIn": true}),
    )
    .await;
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["access-control-allow-origin"], SHOP);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"accepted": true}));
    let lin = find_contact(&app, &admin, "lin@example.com")
        .await
        .expect("created");
    assert_eq!(lin["firstName"], "Lin");
    assert_eq!(lin["source"], "website: Site");
    assert_eq!(
        lin["consent"],
        json!([{"purpose": "MARKETING", "status": "PENDING"}])
    );
    let received = smtp.received();
    assert_eq!(received.len(), 1, "one confirmation email");
    assert!(received[0].contains("To: lin@example.com"));
    assert!(received[0].contains("Subject: Please confirm your subscription"));

    // Identified again: the empty last name is filled, the first name is not overwritten,
    // and no second confirmation goes to the address within a day.
    let r = capture(
        &app,
        "identify",
        &pk,
        Some("http://localhost:3000"),
        json!({"email": "lin@example.com", "firstName": "Mallory", "lastName": "Wu", "optIn": true}),
    )
    .await;
    assert_eq!(r.status(), 202);
    let lin = find_contact(&app, &admin, "lin@example.com").await.unwrap();
    assert_eq!(
        (lin["firstName"].as_str(), lin["lastName"].as_str()),
        (Some("Lin"), Some("Wu"))
    );
    assert_eq!(smtp.received().len(), 1);

    // Tracking an event.
    let r = capture(
        &app,
        "track",
        &pk,
        Some(SHOP),
        json!({"email": "lin@example.com", "type": "product_viewed", "properties": {"sku": "A-1"}}),
    )
    .await;
    assert_eq!(r.status(), 202);
    let lin = find_contact(&app, &admin, "lin@example.com").await.unwrap();
    assert_eq!(
        lin["events"]["nodes"],
        json!([{"type": "web.product_viewed", "properties": {"sku": "A-1"}}])
    );

    // Another origin is refused on the server too, before anything is stored; so is a
    // request without an origin (not from a browser page).
    for origin in [Some("https://evil.example"), None] {
        let r = capture(
            &app,
            "identify",
            &pk,
            origin,
            json!({"email": "eve@example.com"}),
        )
        .await;
        assert_eq!(r.status(), 403, "{origin:?}");
        assert!(r.headers().get("access-control-allow-origin").is_none());
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
    }
    assert!(
        find_contact(&app, &admin, "eve@example.com")
            .await
            .is_none()
    );

    // The ingest key reads nothing: GraphQL does not know it, by GET or POST.
    let (status, body) = app
        .post(
            Some(&pk),
            "{ contacts(first: 1) { nodes { email } } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 401, "{body}");
    let get = http
        .get(format!("{}/graphql?query=%7B__typename%7D", app.base))
        .bearer_auth(&pk)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 401);
    // And an API key is not an ingest key.
    let r = capture(
        &app,
        "identify",
        &admin,
        Some(SHOP),
        json!({"email": "x@example.com"}),
    )
    .await;
    assert_eq!(r.status(), 401);

    // Bad bodies are refused with what is wrong, and store nothing.
    let r = capture(
        &app,
        "identify",
        &pk,
        Some(SHOP),
        json!({"email": "not an address"}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = capture(
        &app,
        "identify",
        &pk,
        Some(SHOP),
        json!({"email": "z@example.com", "lifecycleStage": "CUSTOMER"}),
    )
    .await;
    assert_eq!(r.status(), 400, "fields a capture may not set are refused");
    let r = reqwest::Client::new()
        .post(format!("{}/capture/v1/identify", app.base))
        .bearer_auth(&pk)
        .header("Origin", SHOP)
        .header("Content-Type", "application/json")
        .body(vec![b' '; 20_000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(find_contact(&app, &admin, "z@example.com").await.is_none());

    // A capture tells nothing about what is stored: a known, a deleted and an unknown
    // address get the same answer to the same bad field, and nothing is written.
    app.ok(&admin, "mutation { createContact(input: {firstName: \"Known\", email: \"known@example.com\"}) { id } }", json!({})).await;
    let gone = app
        .ok(&admin, "mutation { createContact(input: {firstName: \"Gone\", email: \"gone@example.com\"}) { id } }", json!({}))
        .await["createContact"]["id"]
        .clone();
    app.ok(
        &admin,
        "mutation($c: ID!) { deleteContact(id: $c) }",
        json!({"c": gone}),
    )
    .await;
    for email in [
        "known@example.com",
        "gone@example.com",
        "unknown@example.com",
    ] {
        for (path, body) in [
            (
                "identify",
                json!({"email": email, "firstName": "x".repeat(101)}),
            ),
            ("identify", json!({"email": email, "phone": "not a phone"})),
            (
                "track",
                json!({"email": email, "type": "page_view", "properties": []}),
            ),
            ("track", json!({"email": email, "type": "Not Snake"})),
        ] {
            let r = capture(&app, path, &pk, Some(SHOP), body.clone()).await;
            assert_eq!(r.status(), 400, "{email} {body}");
        }
    }
    assert!(
        find_contact(&app, &admin, "unknown@example.com")
            .await
            .is_none()
    );
    // A retried track with its Idempotency-Key records one event.
    for _ in 0..2 {
        let r = reqwest::Client::new()
            .post(format!("{}/capture/v1/track", app.base))
            .bearer_auth(&pk)
            .header("Origin", SHOP)
            .header("Idempotency-Key", "evt-1")
            .json(&json!({"email": "lin@example.com", "type": "web.checkout_started"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let lin = find_contact(&app, &admin, "lin@example.com").await.unwrap();
    let checkouts = lin["events"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "web.checkout_started")
        .count();
    assert_eq!(
        checkouts, 1,
        "a website's events are typed web.*, once per key"
    );

    // A revoked key is unknown; a read key cannot make or revoke ingest keys.
    let id = record["id"].clone();
    let read = app
        .ok(
            &admin,
            "mutation { createApiKey(name: \"r\", scopes: [READ]) { key } }",
            json!({}),
        )
        .await["createApiKey"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, _) = app
        .err(
            &read,
            "mutation($o: [String!]!) { createIngestKey(name: \"x\", allowedOrigins: $o) { key } }",
            json!({"o": [SHOP]}),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");
    let (code, message) = app
        .err(
            &admin,
            "mutation($o: [String!]!) { createIngestKey(name: \"x\", allowedOrigins: $o) { key } }",
            json!({"o": ["https://shop.example/path"]}),
        )
        .await;
    assert_eq!(code, "VALIDATION", "{message}");
    app.ok(
        &admin,
        "mutation($id: ID!) { revokeIngestKey(id: $id) }",
        json!({"id": id}),
    )
    .await;
    let r = capture(
        &app,
        "identify",
        &pk,
        Some(SHOP),
        json!({"email": "late@example.com"}),
    )
    .await;
    assert_eq!(r.status(), 401);
    let after = preflight(SHOP).await.unwrap();
    assert_eq!(after.status(), 403, "no live key names the origin any more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_key_works_from_its_origins_only_sqlite() {
    ingest_key_works_from_its_origins_only(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_key_works_from_its_origins_only_postgres() {
    ingest_key_works_from_its_origins_only(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_budgets_per_address_and_per_key() {
    let config = rapport_api::server::Config {
        trusted_proxies: vec![std::net::Ipv4Addr::LOCALHOST.into()],
        capture: rapport_api::capture::CaptureLimits {
            per_ip_per_minute: 3,
            per_key_per_minute: 5,
        },
        ..Default::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, config).await;
    let admin = app.workspace("Budgets").await;
    let (pk, _) = ingest_key(&app, &admin, &[SHOP]).await;
    let from = |ip: &'static str, n: usize| {
        let (app, pk) = (&app, pk.clone());
        async move {
            reqwest::Client::new()
                .post(format!("{}/capture/v1/track", app.base))
                .bearer_auth(&pk)
                .header("Origin", SHOP)
                .header("X-Forwarded-For", ip)
                .json(&json!({"email": format!("v{n}@example.com"), "type": "page_view"}))
                .send()
                .await
                .unwrap()
        }
    };
    for n in 0..3 {
        assert_eq!(from("203.0.113.1", n).await.status(), 202);
    }
    let limited = from("203.0.113.1", 3).await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().get("retry-after").is_some());
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    // Another address has its own budget, until the key's own runs out (5 a minute).
    assert_eq!(from("203.0.113.2", 4).await.status(), 202);
    assert_eq!(from("203.0.113.2", 5).await.status(), 202);
    assert_eq!(from("203.0.113.3", 6).await.status(), 429);
    // Hosted forms draw on the address's budget too.
    let form = app
        .ok(
            &admin,
            "mutation { createCaptureForm(input: {name: \"News\"}) { url } }",
            json!({}),
        )
        .await["createCaptureForm"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let path = form.split_once("/f/").unwrap().1;
    let post = reqwest::Client::new()
        .post(format!("{}/f/{path}", app.base))
        .header("X-Forwarded-For", "203.0.113.1")
        .form(&[("email", "w@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 429);
    assert!(post.text().await.unwrap().contains("Please wait a moment"));
}

async fn hosted_form_with_double_opt_in(backend: Backend) {
    let smtp = SmtpServer::start();
    let config = rapport_api::server::Config {
        mail: Some(mailer(&smtp)),
        trusted_proxies: vec![std::net::Ipv4Addr::LOCALHOST.into()],
        ..Default::default()
    };
    let app = TestApp::spawn_with(backend, config).await;
    let admin = app.workspace("Forms").await;
    let topic = app
        .ok(
            &admin,
            "mutation { createEmailTopic(input: {key: \"newsletter\", name: \"Newsletter\"}) { id } }",
            json!({}),
        )
        .await["createEmailTopic"]["id"]
        .clone();
    let form = app
        .ok(
            &admin,
            "mutation($i: CaptureFormInput!) { createCaptureForm(input: $i) { id url title fields doubleOptIn topic { key } } }",
            json!({"i": {"name": "Newsletter", "title": "Get our <newsletter>", "fields": ["FIRST_NAME"], "topicId": topic}}),
        )
        .await["createCaptureForm"]
        .clone();
    assert_eq!(form["fields"], json!(["FIRST_NAME"]));
    assert_eq!(form["doubleOptIn"], true);
    assert_eq!(form["topic"]["key"], "newsletter");
    let url = form["url"].as_str().unwrap();
    let page_url = format!("{}/f/{}", app.base, url.split_once("/f/").unwrap().1);
    let http = reqwest::Client::new();

    let page = http.get(&page_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("form-action 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Get our &lt;newsletter&gt;"),
        "the title is escaped"
    );
    assert!(html.contains("name=\"first_name\"") && html.contains("name=\"email\""));
    assert!(
        !html.contains("name=\"phone\""),
        "only the fields the form asks"
    );

    // A bad address: the form again, with what was typed and what is wrong.
    let bad = http
        .post(&page_url)
        .form(&[("email", "nope"), ("first_name", "Kim")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let html = bad.text().await.unwrap();
    assert!(html.contains("Please enter a valid email address") && html.contains("value=\"Kim\""));
    // A bot filling the hidden field is thanked, and nothing is stored.
    let bot = http
        .post(&page_url)
        .form(&[("email", "bot@example.com"), ("website", "http://spam")])
        .send()
        .await
        .unwrap();
    assert_eq!(bot.status(), 200);
    assert!(
        find_contact(&app, &admin, "bot@example.com")
            .await
            .is_none()
    );

    // A person signs up: the contact, the event, the topic, and a pending consent until
    // the emailed link is followed.
    let ok = http
        .post(&page_url)
        .header("X-Forwarded-For", "198.51.100.4")
        .form(&[
            ("email", "kim@example.com"),
            ("first_name", "Kim"),
            ("phone", "+1 555"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains("check your inbox"));
    let kim = find_contact(&app, &admin, "kim@example.com")
        .await
        .expect("signed up");
    assert_eq!(kim["firstName"], "Kim");
    assert_eq!(kim["source"], "form: Newsletter");
    assert_eq!(kim["events"]["nodes"][0]["type"], "web.form_submitted");
    assert_eq!(
        kim["consent"],
        json!([{"purpose": "MARKETING", "status": "PENDING"}])
    );
    let prefs = app
        .ok(
            &admin,
            "query($c: ID!) { contact(id: $c) { phone topicPreferences { topic { key } subscribed } } }",
            json!({"c": kim["id"]}),
        )
        .await["contact"]
        .clone();
    assert_eq!(
        prefs["phone"],
        Value::Null,
        "a field the form does not ask is ignored"
    );
    assert_eq!(
        prefs["topicPreferences"],
        json!([{"topic": {"key": "newsletter"}, "subscribed": true}])
    );
    let received = smtp.received();
    assert_eq!(received.len(), 1);
    let link = rapport_tests::links(&received[0], "http://127.0.0.1:8080/consent/confirm?token=");
    let token = link[0].split_once("token=").unwrap().1.to_string();
    let confirmed = http
        .post(format!("{}/consent/confirm?token={token}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status(), 200);
    let kim = find_contact(&app, &admin, "kim@example.com").await.unwrap();
    assert_eq!(
        kim["consent"],
        json!([{"purpose": "MARKETING", "status": "GRANTED"}])
    );
    // Signing up again asks nothing more: consent stands.
    let again = http
        .post(&page_url)
        .form(&[("email", "kim@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(smtp.received().len(), 1);

    // A closed form takes nothing.
    app.ok(
        &admin,
        "mutation($id: ID!) { archiveCaptureForm(id: $id) { archivedAt } }",
        json!({"id": form["id"]}),
    )
    .await;
    let closed = http
        .post(&page_url)
        .form(&[("email", "late@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(closed.status(), 404);
    assert!(
        find_contact(&app, &admin, "late@example.com")
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosted_form_with_double_opt_in_sqlite() {
    hosted_form_with_double_opt_in(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosted_form_with_double_opt_in_postgres() {
    hosted_form_with_double_opt_in(Backend::Postgres).await;
}

async fn create_with(
    app: &TestApp,
    key: &str,
    idempotency: Option<&str>,
    name: &str,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{}/graphql", app.base))
        .bearer_auth(key)
        .json(&json!({
            "query": "mutation($i: ContactInput!) { createContact(input: $i) { id firstName } }",
            "variables": {"i": {"firstName": name}},
        }));
    if let Some(k) = idempotency {
        req = req.header("Idempotency-Key", k);
    }
    req.send().await.unwrap()
}

async fn retried_creates_make_one_row(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.workspace("Retries").await;
    let first = create_with(&app, &key, Some("0f1e2d3c-retry"), "Ana").await;
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let retry = create_with(&app, &key, Some("0f1e2d3c-retry"), "Ana").await;
    assert_eq!(retry.status(), 200);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(first, retry, "the first answer, again");
    // The same key for a different request is refused; a new key creates.
    let other = create_with(&app, &key, Some("0f1e2d3c-retry"), "Bo").await;
    assert_eq!(other.status(), 422);
    let body: Value = other.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "VALIDATION");
    assert_eq!(
        create_with(&app, &key, Some("another"), "Ana")
            .await
            .status(),
        200
    );
    // A malformed key is refused before anything runs.
    assert_eq!(
        create_with(&app, &key, Some("a b"), "Ana").await.status(),
        400
    );
    let count = app
        .ok(
            &key,
            "{ contacts(first: 10, filter: {firstName: {eq: \"Ana\"}}) { totalCount } }",
            json!({}),
        )
        .await["contacts"]["totalCount"]
        .clone();
    assert_eq!(count, 2, "one row per key, however often it was sent");
    // Keys belong to their workspace: another workspace's same key is its own.
    let other_ws = app.workspace("Elsewhere").await;
    let there: Value = create_with(&app, &other_ws, Some("0f1e2d3c-retry"), "Ana")
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(
        there["data"]["createContact"]["id"],
        first["data"]["createContact"]["id"]
    );
    // A request whose second mutation fails after the first committed keeps its answer:
    // the retry does not create the first row again.
    let both = "mutation { a: createContact(input: {firstName: \"Half\"}) { id } b: createContact(input: {email: \"not an address\"}) { id } }";
    for attempt in 0..2 {
        let r = reqwest::Client::new()
            .post(format!("{}/graphql", app.base))
            .bearer_auth(&key)
            .header("Idempotency-Key", "half-done")
            .json(&json!({"query": both}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.headers().get("idempotent-replayed").is_some(),
            attempt == 1,
            "the retry is answered from the first"
        );
    }
    let halves = app
        .ok(
            &key,
            "{ contacts(first: 10, filter: {firstName: {eq: \"Half\"}}) { totalCount } }",
            json!({}),
        )
        .await["contacts"]["totalCount"]
        .clone();
    assert_eq!(halves, 1);
    // A query with a key just runs.
    let q = reqwest::Client::new()
        .post(format!("{}/graphql", app.base))
        .bearer_auth(&key)
        .header("Idempotency-Key", "0f1e2d3c-retry")
        .json(&json!({"query": "{ __typename }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(q.status(), 200);
    assert!(q.headers().get("idempotent-replayed").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_creates_make_one_row_sqlite() {
    retried_creates_make_one_row(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_creates_make_one_row_postgres() {
    retried_creates_make_one_row(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_answers_configured_origins() {
    let config = rapport_api::server::Config {
        cors_origins: vec![
            rapport_engine::engagement::capture::keys::WebOrigin::parse("o", "https://app.example")
                .unwrap(),
        ],
        ..Default::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, config).await;
    let key = app.workspace("Cors").await;
    let http = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        http.request(reqwest::Method::OPTIONS, format!("{}/graphql", app.base))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .send()
    };
    let ok = preflight("https://app.example").await.unwrap();
    assert_eq!(ok.status(), 204);
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert!(
        ok.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert_eq!(
        preflight("https://other.example").await.unwrap().status(),
        403
    );
    for (origin, allowed) in [
        ("https://app.example", true),
        ("https://other.example", false),
    ] {
        let r = http
            .post(format!("{}/graphql", app.base))
            .bearer_auth(&key)
            .header("Origin", origin)
            .json(&json!({"query": "{ __typename }"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers().get("access-control-allow-origin").is_some(),
            allowed,
            "{origin}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sign_ups_send_one_confirmation_postgres() {
    concurrent_sign_ups_send_one_confirmation(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sign_ups_send_one_confirmation_sqlite() {
    concurrent_sign_ups_send_one_confirmation(Backend::Sqlite).await;
}

/// Many sign-ups of one address at once send it one confirmation; a key with a long name
/// still creates contacts.
async fn concurrent_sign_ups_send_one_confirmation(backend: Backend) {
    let smtp = SmtpServer::start();
    let config = rapport_api::server::Config {
        mail: Some(mailer(&smtp)),
        ..Default::default()
    };
    let app = TestApp::spawn_with(backend, config).await;
    let admin = app.workspace("Race").await;
    let name = "N".repeat(100);
    let pk = app
        .ok(
            &admin,
            "mutation($n: String!, $o: [String!]!) { createIngestKey(name: $n, allowedOrigins: $o) { key } }",
            json!({"n": name, "o": [SHOP]}),
        )
        .await["createIngestKey"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    let first = capture(
        &app,
        "identify",
        &pk,
        Some(SHOP),
        json!({"email": "solo@example.com", "firstName": "Claim your prize at evil.example"}),
    )
    .await;
    assert_eq!(
        first.status(),
        202,
        "a long key name fits the contact's source"
    );
    let sends = (0..6).map(|_| {
        capture(
            &app,
            "identify",
            &pk,
            Some(SHOP),
            json!({"email": "solo@example.com", "optIn": true}),
        )
    });
    for r in futures_util::future::join_all(sends).await {
        assert_eq!(r.status(), 202);
    }
    let received = smtp.received();
    assert_eq!(
        received.len(),
        1,
        "one confirmation, however many sign-ups at once"
    );
    assert!(
        !received[0].contains("evil.example"),
        "the email carries nothing a stranger typed: {}",
        received[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_belong_to_their_caller() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.workspace("Callers").await;
    let other = app
        .ok(
            &admin,
            "mutation { createApiKey(name: \"w\", scopes: [WRITE]) { key } }",
            json!({}),
        )
        .await["createApiKey"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    let a: Value = create_with(&app, &admin, Some("shared"), "Cy")
        .await
        .json()
        .await
        .unwrap();
    let b = create_with(&app, &other, Some("shared"), "Cy").await;
    assert!(
        b.headers().get("idempotent-replayed").is_none(),
        "another key's answer is never replayed"
    );
    let b: Value = b.json().await.unwrap();
    assert_ne!(
        a["data"]["createContact"]["id"],
        b["data"]["createContact"]["id"]
    );
    // A mutation that returns a secret takes no key: its answer would be kept in clear.
    let r = reqwest::Client::new()
        .post(format!("{}/graphql", app.base))
        .bearer_auth(&admin)
        .header("Idempotency-Key", "k-1")
        .json(&json!({"query": "mutation { createApiKey(name: \"x\", scopes: [READ]) { key } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("secret"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_opt_in_form_does_not_undo_a_withdrawal() {
    let smtp = SmtpServer::start();
    let config = rapport_api::server::Config {
        mail: Some(mailer(&smtp)),
        ..Default::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, config).await;
    let admin = app.workspace("Withdrawn").await;
    let topic = app
        .ok(
            &admin,
            "mutation { createEmailTopic(input: {key: \"news\", name: \"News\"}) { id } }",
            json!({}),
        )
        .await["createEmailTopic"]["id"]
        .clone();
    let url = app
        .ok(
            &admin,
            "mutation($t: ID!) { createCaptureForm(input: {name: \"Quick\", doubleOptIn: false, topicId: $t}) { url } }",
            json!({"t": topic}),
        )
        .await["createCaptureForm"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let page_url = format!("{}/f/{}", app.base, url.split_once("/f/").unwrap().1);
    let id = app
        .ok(
            &admin,
            "mutation { createContact(input: {email: \"out@example.com\"}) { id } }",
            json!({}),
        )
        .await["createContact"]["id"]
        .clone();
    app.ok(
        &admin,
        "mutation($c: ID!) { recordConsent(contactId: $c, input: {purpose: MARKETING, status: WITHDRAWN}) { id } }",
        json!({"c": id}),
    )
    .await;
    app.ok(
        &admin,
        "mutation($c: ID!) { setTopicPreference(contactId: $c, topic: \"news\", subscribed: false) { subscribed } }",
        json!({"c": id}),
    )
    .await;
    let r = reqwest::Client::new()
        .post(&page_url)
        .form(&[("email", "out@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let after = app
        .ok(
            &admin,
            "query($c: ID!) { contact(id: $c) { consent { purpose status } topicPreferences { subscribed } } }",
            json!({"c": id}),
        )
        .await["contact"]
        .clone();
    assert_eq!(
        after["consent"],
        json!([{"purpose": "MARKETING", "status": "PENDING"}]),
        "asked, not granted"
    );
    assert_eq!(
        after["topicPreferences"],
        json!([{"subscribed": false}]),
        "the person's own no stands"
    );
    assert_eq!(
        smtp.received().len(),
        1,
        "the confirmation request went out"
    );
    // A newcomer on the same form is granted at once, as the form says.
    let r = reqwest::Client::new()
        .post(&page_url)
        .form(&[("email", "new@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let fresh = find_contact(&app, &admin, "new@example.com").await.unwrap();
    assert_eq!(
        fresh["consent"],
        json!([{"purpose": "MARKETING", "status": "GRANTED"}])
    );
}

//! Attacks and outages, each reproduced through the real server: hostile input answered
//! with VALIDATION while the server lives on, bodies refused before they are read, link
//! tokens that work only where they belong, and workers that survive a locked database.

use rapport_tests::{Backend, SmtpServer, TestApp, both_backends};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

both_backends!(
    hostile_filters_are_refused_and_the_server_lives,
    query_cost_counts_pages_and_aliases,
    oversized_input_is_a_validation_error_with_a_short_message,
    control_characters_are_refused_in_names,
    templates_render_at_most_their_byte_limit,
    consent_links_work_only_where_they_belong,
    tracking_tokens_are_checked_before_any_write,
);

/// A key of the workspace with only the given scope.
fn nested(depth: usize, key: &str, leaf: Value) -> Value {
    let mut v = leaf;
    for _ in 0..depth {
        v = if key == "not" {
            json!({ "not": v })
        } else {
            json!({ key: [v] })
        };
    }
    v
}

async fn alive(app: &TestApp, key: &str) {
    let data = app
        .ok(key, "{ contacts(first: 1) { totalCount } }", json!({}))
        .await;
    assert!(data["contacts"]["totalCount"].is_number(), "{data}");
}

async fn hostile_filters_are_refused_and_the_server_lives(app: TestApp) {
    let admin = app.workspace("Hostile filters").await;
    let read = app.scoped_key(&admin, "READ").await;
    let q = "query($f: ContactFilter) { contacts(first: 5, filter: $f) { totalCount } }";
    let leaf = json!({"email": {"eq": "a@example.com"}});

    // `not` 110 deep, `and` 50 deep, in variables: each used to overflow a thread's stack.
    for (depth, key) in [(110, "not"), (50, "and"), (12, "or")] {
        let (code, message) = app
            .err(&read, q, json!({"f": nested(depth, key, leaf.clone())}))
            .await;
        assert_eq!(code, "VALIDATION", "{key} {depth}: {message}");
        assert!(message.contains("nested too deeply"), "{message}");
        alive(&app, &read).await;
    }
    // The same in the document itself.
    let doc = format!(
        "{{ contacts(filter: {}{{email: {{eq: \"a@example.com\"}}}}{}) {{ totalCount }} }}",
        "{not: ".repeat(110),
        "}".repeat(110)
    );
    let (code, message) = app.err(&read, &doc, json!({})).await;
    assert_eq!(code, "VALIDATION", "{message}");
    assert!(message.contains("nest deeper"), "{message}");
    // A wide `or`: tens of thousands of conditions.
    let wide = json!({"or": vec![leaf.clone(); 30_000]});
    let (code, message) = app.err(&read, q, json!({"f": wide})).await;
    assert_eq!(code, "VALIDATION", "{message}");
    alive(&app, &read).await;
    // Within bounds, a nested filter still works.
    let fine = app
        .ok(
            &read,
            q,
            json!({"f": nested(4, "not", nested(3, "and", leaf.clone()))}),
        )
        .await;
    assert!(fine["contacts"]["totalCount"].is_number());

    // Saving it as a segment is refused by the same check.
    let (code, message) = app
        .err(
            &admin,
            "mutation($f: ContactFilter) { createSegment(input: {name: \"bomb\", filter: $f}) { id } }",
            json!({"f": nested(17, "not", leaf.clone())}),
        )
        .await;
    assert_eq!(code, "VALIDATION", "{message}");
    assert!(message.contains("nested too deeply"), "{message}");

    // A segment stored before the rule existed is refused when read, not a crash.
    let seg = app
        .ok(
            &admin,
            "mutation { createSegment(input: {name: \"old\", filter: {lifecycleStage: {eq: LEAD}}}) { id } }",
            json!({}),
        )
        .await["createSegment"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    use sea_orm::{ConnectionTrait, Statement};
    let backend = app.db.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => "UPDATE segments SET filter = $1 WHERE id = $2",
        _ => "UPDATE segments SET filter = ? WHERE id = ?",
    };
    app.db
        .execute_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [
                nested(120, "not", leaf.clone()).into(),
                seg.parse::<i64>().unwrap().into(),
            ],
        ))
        .await
        .expect("store a hostile filter directly");
    let (code, message) = app
        .err(
            &read,
            "query($id: ID!) { segment(id: $id) { preview { count } } }",
            json!({"id": seg}),
        )
        .await;
    assert_eq!(code, "VALIDATION", "{message}");
    alive(&app, &read).await;
}

async fn query_cost_counts_pages_and_aliases(app: TestApp) {
    let admin = app.workspace("Cost").await;
    let read = app.scoped_key(&admin, "READ").await;
    // Three levels of big pages: 100 × 500 × 500 rows asked for.
    let deep = "{ companies(first: 100) { edges { node { contacts(first: 500) { edges { node { company { contacts(first: 500) { edges { node { id } } } } } } } } } } }";
    let (code, message) = app.err(&read, deep, json!({})).await;
    assert_eq!(code, "VALIDATION", "{message}");
    assert!(message.contains("complex"), "{message}");
    // Each alias costs on its own: 300 cheap-looking aliases of one big page are not cheap.
    let aliases: String = (0..300)
        .map(|i| format!("a{i}: contacts(first: 500) {{ edges {{ node {{ id email }} }} }} "))
        .collect();
    let (code, message) = app.err(&read, &format!("{{ {aliases} }}"), json!({})).await;
    assert_eq!(code, "VALIDATION", "{message}");
    // The costliest read is priced so a request holds only a few of them.
    let dups: String = (0..20)
        .map(|i| format!("d{i}: findDuplicates {{ reason }} "))
        .collect();
    let (code, message) = app.err(&read, &format!("{{ {dups} }}"), json!({})).await;
    assert_eq!(code, "VALIDATION", "{message}");
    // A filter's reads of other tables are priced too: 40 aliases of a count whose
    // filter reads events 40 times each ask the database for 1,600 aggregates.
    let events: String = (0..40)
        .map(|i| format!("{{type: \"e{i}\", count: {{gte: 2}}}}, "))
        .collect();
    let heavy: String = (0..40)
        .map(|i| {
            format!("h{i}: contacts(first: 1, filter: {{events: [{events}]}}) {{ totalCount }} ")
        })
        .collect();
    let (code, message) = app.err(&read, &format!("{{ {heavy} }}"), json!({})).await;
    assert_eq!(code, "VALIDATION", "{message}");
    assert!(message.contains("complex"), "{message}");
    // What a real screen asks still passes.
    app.ok(
        &read,
        "{ contacts(first: 50) { edges { node { name company { name } deals { edges { node { name stage { name } } } } activities(first: 5) { edges { node { kind } } } } } } findDuplicates { reason } }",
        json!({}),
    )
    .await;
}

async fn oversized_input_is_a_validation_error_with_a_short_message(app: TestApp) {
    let admin = app.workspace("Oversized").await;
    let q = "query($f: ContactFilter) { contacts(filter: $f) { totalCount } }";
    let checks = [
        json!({"email": {"contains": "x".repeat(200_000)}}),
        json!({"id": {"in": vec!["1"; 100_000]}}),
        json!({"tags": {"hasAny": vec!["vip"; 20_000]}}),
    ];
    for f in checks {
        let (code, message) = app.err(&admin, q, json!({"f": f})).await;
        assert_eq!(code, "VALIDATION", "{message}");
        assert!(message.len() < 300, "the error echoes the input: {message}");
    }
    let create = "mutation($i: ContactInput!) { createContact(input: $i) { id } }";
    let tags: Vec<String> = (0..101).map(|i| format!("t{i}")).collect();
    let (code, message) = app
        .err(
            &admin,
            create,
            json!({"i": {"email": "t@example.com", "tags": tags}}),
        )
        .await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("VALIDATION", "tags: at most 100 tags (got 101)")
    );
    let long_tag = format!("{}{}", "x".repeat(5000), ",");
    let (code, message) = app
        .err(
            &admin,
            create,
            json!({"i": {"email": "t@example.com", "tags": [long_tag]}}),
        )
        .await;
    assert_eq!(code, "VALIDATION");
    assert!(message.len() < 200, "{message}");
    let emails: Vec<String> = (0..21).map(|i| format!("o{i}@example.com")).collect();
    let (code, _) = app
        .err(
            &admin,
            create,
            json!({"i": {"email": "t@example.com", "otherEmails": emails}}),
        )
        .await;
    assert_eq!(code, "VALIDATION");
    let (code, _) = app
        .err(
            &admin,
            create,
            json!({"i": {"email": "t@example.com", "attributes": {"blob": "x".repeat(20_000)}}}),
        )
        .await;
    assert_eq!(code, "VALIDATION");
    alive(&app, &admin).await;
}

async fn control_characters_are_refused_in_names(app: TestApp) {
    let admin = app.workspace("Control characters").await;
    let (code, message) = app
        .err(
            &admin,
            "mutation { createContact(input: {email: \"n@example.com\", firstName: \"Eve\\u0000\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("VALIDATION", "firstName: must not contain NUL characters")
    );
    let seg = app
        .ok(
            &admin,
            "mutation { createSegment(input: {name: \"all\", filter: {}}) { id } }",
            json!({}),
        )
        .await["createSegment"]["id"]
        .clone();
    let input = json!({
        "name": "Injected",
        "segmentId": seg,
        "fromEmail": "news@shop.example",
        "fromName": "Shop\r\nBcc: victim@example.com",
        "variants": [{"subject": "Hi", "html": "<p>Hi</p>", "text": "Hi"}],
    });
    let (code, message) = app
        .err(
            &admin,
            "mutation($i: CampaignInput!) { createCampaign(input: $i) { id } }",
            json!({"i": input}),
        )
        .await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("VALIDATION", "fromName: must be a single line")
    );
    let (code, message) = app
        .err(
            &admin,
            "mutation { createSegment(input: {name: \"evil\u{202e}gpj.exe\", filter: {}}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "VALIDATION", "{message}");
}

async fn templates_render_at_most_their_byte_limit(app: TestApp) {
    let admin = app.workspace("Template bomb").await;
    let read = app.scoped_key(&admin, "READ").await;
    let contact = app
        .ok(
            &admin,
            "mutation { createContact(input: {email: \"b@example.com\", firstName: \"B\"}) { id } }",
            json!({}),
        )
        .await["createContact"]["id"]
        .clone();
    // Sixty characters that would build 100 MB inside the render: refused on save.
    let (code, message) = app
        .err(
            &admin,
            "mutation { createEmailTemplate(input: {name: \"bomb\", subject: \"Hi\", html: \"{{ 'x' * 100000000 }}\", text: \"t\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "VALIDATION", "{message}");
    assert!(message.contains("multiplies"), "{message}");
    // A loop that would render 1 MB is stopped at the byte cap.
    let bomb = app
        .ok(
            &admin,
            "mutation($html: String!) { createEmailTemplate(input: {name: \"bomb\", subject: \"Hi\", html: $html, text: \"t\"}) { id } }",
            json!({"html": format!("{}{}{}", "{% for i in [1,2,3,4,5,6,7,8,9,10] %}".repeat(3), "x".repeat(1000), "{% endfor %}".repeat(3))}),
        )
        .await["createEmailTemplate"]["id"]
        .clone();
    let started = Instant::now();
    let (code, message) = app
        .err(
            &read,
            "query($t: ID!, $c: ID!) { emailTemplate(id: $t) { preview(contactId: $c) { html } } }",
            json!({"t": bomb, "c": contact}),
        )
        .await;
    assert_eq!(code, "VALIDATION", "{message}");
    assert!(message.contains("renders to more than"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // A read key's preview carries no working unsubscribe link.
    let fine = app
        .ok(
            &admin,
            "mutation { createEmailTemplate(input: {name: \"fine\", subject: \"Hi\", html: \"<a href='{{ unsubscribe_url }}'>x</a>\", text: \"{{ unsubscribe_url }}\"}) { id } }",
            json!({}),
        )
        .await["createEmailTemplate"]["id"]
        .clone();
    let preview = app
        .ok(
            &read,
            "query($t: ID!, $c: ID!) { emailTemplate(id: $t) { preview(contactId: $c) { text } } }",
            json!({"t": fine, "c": contact}),
        )
        .await;
    let text = preview["emailTemplate"]["preview"]["text"]
        .as_str()
        .unwrap();
    assert!(
        text.ends_with("/unsubscribe?token=preview-without-write-scope"),
        "{text}"
    );
}

fn token_of(url: &str) -> String {
    url.split("token=").nth(1).unwrap().to_string()
}

async fn post_form(url: &str) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

const CONSENT: &str =
    "query($c: ID!) { contact(id: $c) { consent { purpose status } hasUnsubscribeUrl } }";

async fn marketing(app: &TestApp, key: &str, contact: &Value) -> String {
    let data = app.ok(key, CONSENT, json!({"c": contact})).await;
    data["contact"]["consent"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["purpose"] == "MARKETING")
        .map(|c| c["status"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

async fn consent_links_work_only_where_they_belong(app: TestApp) {
    let admin = app.workspace("Links").await;
    let read = app.scoped_key(&admin, "READ").await;
    let contact = app
        .ok(
            &admin,
            "mutation { createContact(input: {email: \"l@example.com\", firstName: \"L\"}) { id } }",
            json!({}),
        )
        .await["createContact"]["id"]
        .clone();
    // A read key may not hold a link that withdraws consent; it learns one exists.
    let (code, _) = app
        .err(
            &read,
            "query($c: ID!) { contact(id: $c) { unsubscribeUrl } }",
            json!({"c": contact}),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");
    let data = app.ok(&read, CONSENT, json!({"c": contact})).await;
    assert_eq!(data["contact"]["hasUnsubscribeUrl"], true);

    let requested = app
        .ok(
            &admin,
            "mutation($c: ID!) { requestConsent(contactId: $c) { confirmUrl } }",
            json!({"c": contact}),
        )
        .await;
    // Links carry the configured public address; the test server listens elsewhere.
    let here = |url: &str| format!("{}/{}", app.base, url.splitn(4, '/').nth(3).unwrap());
    let confirm_url = here(requested["requestConsent"]["confirmUrl"].as_str().unwrap());
    let confirm_token = token_of(&confirm_url);
    // A confirmation token at the unsubscribe route does nothing.
    let (status, page) =
        post_form(&format!("{}/unsubscribe?token={confirm_token}", app.base)).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("not an unsubscribe link"), "{page}");
    assert_eq!(marketing(&app, &admin, &contact).await, "PENDING");
    // GET (a mail scanner prefetching) shows a button and grants nothing.
    let (status, _, body) = app.get(&confirm_url).await;
    let page = String::from_utf8(body).unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("<form method=\"post\""), "{page}");
    assert_eq!(marketing(&app, &admin, &contact).await, "PENDING");
    // The page's own POST confirms, once.
    let (status, page) = post_form(&confirm_url).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(marketing(&app, &admin, &contact).await, "GRANTED");
    let (status, page) = post_form(&confirm_url).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("already used"), "{page}");
    // Withdrawn afterwards: the old confirmation cannot grant again.
    let unsubscribe_url = here(
        app.ok(
            &admin,
            "query($c: ID!) { contact(id: $c) { unsubscribeUrl } }",
            json!({"c": contact}),
        )
        .await["contact"]["unsubscribeUrl"]
            .as_str()
            .unwrap(),
    );
    let (status, page) = post_form(&unsubscribe_url).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(marketing(&app, &admin, &contact).await, "WITHDRAWN");
    let (status, _) = post_form(&confirm_url).await;
    assert_eq!(status, 400);
    assert_eq!(marketing(&app, &admin, &contact).await, "WITHDRAWN");
    // An unsubscribe token does not confirm either.
    let (status, _) = post_form(&format!(
        "{}/consent/confirm?token={}",
        app.base,
        token_of(&unsubscribe_url)
    ))
    .await;
    assert_eq!(status, 400);
    // The pages cannot be framed and load nothing from elsewhere.
    let resp = reqwest::get(&unsubscribe_url).await.unwrap();
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
    assert!(
        resp.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    assert_eq!(resp.headers()["referrer-policy"], "no-referrer");
}

async fn tracking_tokens_are_checked_before_any_write(app: TestApp) {
    use base64::Engine as _;
    use sea_orm::{ConnectionTrait, Statement};
    let count_secrets = || async {
        let backend = app.db.get_database_backend();
        app.db
            .query_one_raw(Statement::from_string(
                backend,
                "SELECT COUNT(*) AS n FROM workspace_secrets",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<i64>("", "n")
            .unwrap()
    };
    let before = count_secrets().await;
    // A forged claim naming a workspace that does not exist, with a made-up MAC.
    let claim = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        br#"{"ws":987654,"contact":1,"action":"open","purpose":"marketing","exp":null,"msg":1}"#,
    );
    let mac = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 32]);
    for path in ["t/o", "t/c"] {
        let (status, _, _) = app.get(&format!("{}/{path}/{claim}.{mac}", app.base)).await;
        assert_eq!(status, 400);
    }
    assert_eq!(count_secrets().await, before, "verifying wrote a secret");
}

// -- Outside both_backends: HTTP-level limits and the SQLite outage. --

/// Sends raw HTTP and returns the status line and how long the answer took.
async fn raw(app: &TestApp, head: &str, body: &[u8]) -> (String, Duration) {
    let addr = app.base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("an answer without the rest of the body")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    (
        text.lines().next().unwrap_or_default().to_string(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_body_is_refused_before_it_is_read() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.workspace("Bodies").await;
    // 60 MB announced, one kilobyte sent: the answer must not wait for the rest.
    let head = |auth: &str| {
        format!(
            "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 62914560\r\n{auth}\r\n"
        )
    };
    let (status, took) = raw(&app, &head(""), &[b' '; 1024]).await;
    assert!(status.contains(" 401 "), "{status}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    let (status, took) = raw(
        &app,
        &head(&format!("Authorization: Bearer {key}\r\n")),
        &[b' '; 1024],
    )
    .await;
    assert!(status.contains(" 413 "), "{status}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    // The bounce webhook too.
    let (status, _) = raw(
        &app,
        "POST /webhooks/bounce HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 62914560\r\n\r\n",
        &[b' '; 1024],
    )
    .await;
    assert!(status.contains(" 401 "), "{status}");
    alive(&app, &key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_locked_for_14_seconds_workers_recover_and_reads_do_not_wait() {
    use sea_orm::ConnectionTrait;
    // The server's readiness and the workers share one health report, as in `serve`.
    let health = std::sync::Arc::new(rapport_engine::platform::health::Health::default());
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        rapport_api::server::Config {
            health: health.clone(),
            ..Default::default()
        },
    )
    .await;
    let smtp = SmtpServer::start();
    let key = app.workspace("Outage").await;
    let mut config = app.worker_config(&smtp.url);
    config.health = health;
    let workers = app.workers_with(config);
    let ready = || async {
        let (status, _, body) = app.get(&format!("{}/readyz", app.base)).await;
        (status, serde_json::from_slice::<Value>(&body).unwrap())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = ready().await;
        if status == 200 && body["loops"]["job workers"]["status"] == "running" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the workers never reported: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let contact = app
        .ok(
            &key,
            "mutation { createContact(input: {email: \"o@outage.example\", firstName: \"O\", tags: [\"outage\"]}) { id } }",
            json!({}),
        )
        .await["createContact"]["id"]
        .clone();
    app.ok(
        &key,
        "mutation($c: ID!) { recordConsent(contactId: $c, input: {purpose: MARKETING, status: GRANTED}) { id } }",
        json!({"c": contact}),
    )
    .await;
    // A key made now and not used yet: its first use is due to be recorded.
    let read = app.scoped_key(&key, "READ").await;
    // Another process takes the write lock and holds it for 14 s (longer than the
    // 10 s busy timeout, so the workers' polling fails).
    let url = app.database_url.clone();
    let locker = tokio::spawn(async move {
        let other = sea_orm::Database::connect(&url).await.unwrap();
        other.execute_unprepared("BEGIN EXCLUSIVE").await.unwrap();
        tokio::time::sleep(Duration::from_secs(14)).await;
        other.execute_unprepared("COMMIT").await.unwrap();
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A read with a key never used before (its last use is due) does not wait for the
    // lock: the read is a read.
    let started = Instant::now();
    let (status, body) = app
        .post(
            Some(&read),
            "{ contacts(first: 1) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["errors"].is_null(), "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // The workers' polling fails once the busy timeout passes; readiness says so while
    // they wait to start again.
    let mut seen = None;
    while !locker.is_finished() {
        let (status, body) = ready().await;
        if status == 503 && body["loops"]["job workers"]["status"] == "restarting" {
            seen = Some(body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = seen.expect("readiness never reported the stopped workers");
    assert_eq!(
        seen["loops"]["job workers"]["status"], "restarting",
        "{seen}"
    );
    assert!(
        seen["loops"]["job workers"]["error"]
            .as_str()
            .unwrap()
            .contains("locked"),
        "{seen}"
    );
    locker.await.unwrap();
    // Without a restart, a campaign sends.
    let seg = app
        .ok(
            &key,
            "mutation { createSegment(input: {name: \"o\", filter: {tags: {has: \"outage\"}}}) { id } }",
            json!({}),
        )
        .await["createSegment"]["id"]
        .clone();
    let id = app
        .ok(
            &key,
            "mutation($i: CampaignInput!) { createCampaign(input: $i) { id } }",
            json!({"i": {"name": "After", "segmentId": seg, "fromEmail": "news@shop.example", "variants": [{"subject": "Hi", "html": "<p>Hi {{ unsubscribe_url }}</p>", "text": "Hi {{ unsubscribe_url }}"}]}}),
        )
        .await["createCampaign"]["id"]
        .clone();
    app.ok(
        &key,
        "mutation($id: ID!) { sendCampaign(id: $id) { id } }",
        json!({"id": id}),
    )
    .await;
    app.until(
        &key,
        "query($id: ID!) { campaign(id: $id) { status stats { sent } } }",
        json!({"id": id}),
        60,
        |d| d["campaign"]["stats"]["sent"] == 1,
    )
    .await;
    assert_eq!(smtp.received().len(), 1);
    // Every loop is back. A loop that meets a busy database now and then restarts after
    // 50 ms and says so meanwhile, so readiness is read until it holds.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = ready().await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never ready again: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    workers.stop().await;
}

/// A restart of PostgreSQL drops every open connection. The pool checks a connection that
/// sat idle for a second before handing it out (and every connection as it comes back), so
/// the requests after the drop are answered on new connections, not failed on dead ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_postgres_dropped_are_replaced_before_use() {
    use sea_orm::ConnectionTrait;
    let app = TestApp::spawn(Backend::Postgres).await;
    let key = app.workspace("Dropped").await;
    let page = "{ contacts(first: 1) { edges { node { id } } } }";
    for _ in 0..3 {
        app.ok(&key, page, json!({})).await;
    }
    let name = app
        .database_url
        .rsplit('/')
        .next()
        .expect("a database name");
    let admin = sea_orm::Database::connect(rapport_tests::postgres_admin_url())
        .await
        .expect("the admin connection");
    let dropped = admin
        .query_all_raw(sea_orm::Statement::from_string(
            admin.get_database_backend(),
            format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            ),
        ))
        .await
        .expect("dropping the server's connections");
    assert!(!dropped.is_empty(), "the server held connections");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    for _ in 0..5 {
        app.ok(&key, page, json!({})).await;
        app.ok(
            &key,
            "mutation { createContact(input: {firstName: \"After\"}) { id } }",
            json!({}),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_spends_its_query_budget_is_rate_limited() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        rapport_api::server::Config {
            limits: rapport_api::server::Limits {
                key_cost_per_second: 1_000,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await;
    let key = app.workspace("Budget").await;
    let other = app.workspace("Other budget").await;
    // About 60,000 each: the saved-up budget (1,000,000) holds sixteen of them.
    let aliases: String = (0..40)
        .map(|i| format!("a{i}: contacts(first: 500) {{ edges {{ node {{ id }} }} }} "))
        .collect();
    let heavy = format!("{{ {aliases} }}");
    let mut limited = None;
    for i in 0..30 {
        let (_, body) = app.post(Some(&key), &heavy, json!({})).await;
        if body["errors"][0]["extensions"]["code"] == "RATE_LIMITED" {
            limited = Some(i);
            break;
        }
        assert!(body["errors"].is_null(), "{body}");
    }
    let limited = limited.expect("never rate limited");
    assert!(
        (14..=17).contains(&limited),
        "limited after {limited} requests"
    );
    // Cheap requests of the same key wait too; another key is not affected.
    alive(&app, &other).await;
    let (_, body) = app.post(Some(&other), &heavy, json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_past_its_requests_per_minute_gets_429_with_retry_after_and_webhooks_have_their_own()
{
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        rapport_api::server::Config {
            limits: rapport_api::server::Limits {
                requests_per_minute: 5,
                inbound_webhooks_per_minute: 3,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await;
    let key = app.workspace("Requests").await;
    let other = app.workspace("Other requests").await;
    let ask = |key: String| {
        let url = format!("{}/graphql", app.base);
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(key)
                .json(&json!({"query": "{ contacts(first: 1) { totalCount } }"}))
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..5 {
        assert_eq!(ask(key.clone()).await.status(), 200);
    }
    let refused = ask(key.clone()).await;
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=12).contains(&wait), "Retry-After: {wait}");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "RATE_LIMITED",
        "{body}"
    );
    // Another key has its own budget; an unknown key is refused as unknown, not counted.
    assert_eq!(ask(other).await.status(), 200);
    assert_eq!(ask("rk_nobody_0000".into()).await.status(), 401);
    // Bounce reports have a budget of their own: the spent key still reports them, up
    // to theirs.
    let bounce = || {
        reqwest::Client::new()
            .post(format!("{}/webhooks/bounce", app.base))
            .bearer_auth(&key)
            .json(&json!({"email": "gone@requests.example", "type": "soft"}))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(bounce().await.unwrap().status(), 200);
    }
    assert_eq!(bounce().await.unwrap().status(), 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_loads_nothing_from_elsewhere() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let page = reqwest::Client::new()
        .get(format!("{}/graphql", app.base))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().await.unwrap();
    assert!(!html.contains("https://"), "{html}");
    // Every script and stylesheet the page names is served here.
    for part in html
        .split(['"', '\''])
        .filter(|p| p.starts_with("/graphiql/"))
    {
        let (status, _, body) = app.get(&format!("{}{part}", app.base)).await;
        assert_eq!(status, 200, "{part}");
        assert!(!body.is_empty(), "{part}");
    }
    assert_eq!(
        app.get(&format!("{}/graphiql/secrets", app.base)).await.0,
        404
    );
    // With GraphiQL turned off there is no page and no assets: a browser's GET is an API
    // request like any other, refused without a key.
    let off = TestApp::spawn_with(
        Backend::Sqlite,
        rapport_api::server::Config {
            graphiql: false,
            ..Default::default()
        },
    )
    .await;
    let (status, _, body) = off.get(&format!("{}/graphql", off.base)).await;
    assert_eq!(status, 401);
    assert!(!String::from_utf8_lossy(&body).contains("<html"));
    assert_eq!(
        off.get(&format!("{}/graphiql/graphiql.min.js", off.base))
            .await
            .0,
        404
    );
}

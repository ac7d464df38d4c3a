//! Campaigns end to end: GraphQL in, the job queue's workers out, a real SMTP server
//! (aiosmtpd) receiving, and the links in the received mail followed back.

use std::collections::{HashMap, HashSet};

use rapport_tests::{Backend, SmtpServer, TestApp, both_backends, free_port, header, links};
use serde_json::{Value, json};

both_backends!(
    campaign_sends_once_to_consenting_contacts_and_tracks,
    withdrawal_while_sending_stops_that_email,
    campaign_validation_errors,
    pause_resume_and_cancel,
    failing_mail_server_pauses_and_dead_letters_retry,
    ab_test_sends_the_winner_to_the_rest,
    smtp_refusals_bounce_or_retry,
    mail_server_down_campaign_waits_and_resumes,
    rate_limit_holds_in_every_second,
    a_topic_opt_out_stops_that_topic_only,
);

/// Creates `n` contacts tagged `tag` (`p{i}@{tag}.example`); every contact whose index is
/// in `granted` gets marketing consent. Returns their ids in index order.
pub(crate) async fn audience(
    app: &TestApp,
    key: &str,
    tag: &str,
    n: usize,
    granted: impl Fn(usize) -> bool,
) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = app
            .ok(
                key,
                "mutation($i: ContactInput!) { createContact(input: $i) { id } }",
                json!({"i": {"firstName": format!("P{i}"), "lastName": "Example", "email": format!("p{i}@{tag}.example"), "tags": [tag]}}),
            )
            .await["createContact"]["id"]
            .clone();
        if granted(i) {
            app.ok(
                key,
                "mutation($c: ID!) { recordConsent(contactId: $c, input: {purpose: MARKETING, status: GRANTED, source: \"signup form\"}) { id } }",
                json!({"c": id}),
            )
            .await;
        }
        ids.push(id.as_str().unwrap().to_string());
    }
    ids
}

pub(crate) async fn segment(app: &TestApp, key: &str, tag: &str) -> Value {
    app.ok(
        key,
        "mutation($t: String!) { createSegment(input: {name: $t, filter: {tags: {has: $t}}}) { id } }",
        json!({"t": tag}),
    )
    .await["createSegment"]["id"]
        .clone()
}

const CREATE: &str =
    "mutation($i: CampaignInput!) { createCampaign(input: $i) { id status variants { id name } } }";
const STATUS: &str = "query($id: ID!) { campaign(id: $id) { status statusReason winnerVariantId stats { recipients pending sent skipped failed unknown bounced uniqueOpens uniqueClicks unsubscribes openRate clickRate } variantStats { variantId recipients sent } } }";

fn variant(name: &str, subject: &str) -> Value {
    json!({
        "name": name,
        "subject": subject,
        "html": "<html><body><p>Hello {{ contact.first_name | default('there') }},</p><p><a href=\"https://shop.example/spring?utm=mail&amp;x=1\">See the collection</a></p><p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p></body></html>",
        "text": "Hello {{ contact.first_name | default('there') }}, see https://shop.example/spring\nUnsubscribe: {{ unsubscribe_url }}",
    })
}

pub(crate) async fn campaign(app: &TestApp, key: &str, segment: &Value, extra: Value) -> Value {
    let mut input = json!({
        "name": "Spring launch",
        "segmentId": segment,
        "fromEmail": "news@shop.example",
        "fromName": "Shop",
        "variants": [variant("A", "Spring is here, {{ contact.first_name }}")],
    });
    for (k, v) in extra.as_object().unwrap() {
        input[k] = v.clone();
    }
    app.ok(key, CREATE, json!({"i": input})).await["createCampaign"].clone()
}

pub(crate) async fn send(app: &TestApp, key: &str, id: &Value) {
    app.ok(
        key,
        "mutation($id: ID!) { sendCampaign(id: $id) { id } }",
        json!({"id": id}),
    )
    .await;
}

async fn wait_status(app: &TestApp, key: &str, id: &Value, status: &str, seconds: u64) -> Value {
    app.until(key, STATUS, json!({"id": id}), seconds, |d| {
        d["campaign"]["status"] == status
    })
    .await["campaign"]
        .clone()
}

fn recipients(smtp: &SmtpServer) -> Vec<String> {
    smtp.received()
        .iter()
        .map(|m| header(m, "To").unwrap_or_default())
        .collect()
}

async fn campaign_sends_once_to_consenting_contacts_and_tracks(app: TestApp) {
    let smtp = SmtpServer::start();
    let key = app.workspace("Campaigns").await;
    // 0–3 consented; 4 withdrew; 5 never consented; 3 is also on the suppression list.
    let ids = audience(&app, &key, "spring", 6, |i| i < 5).await;
    app.ok(
        &key,
        "mutation($c: ID!) { recordConsent(contactId: $c, input: {purpose: MARKETING, status: WITHDRAWN}) { id } }",
        json!({"c": ids[4]}),
    )
    .await;
    app.ok(
        &key,
        "mutation { suppressEmail(email: \"p3@spring.example\") { reason } }",
        json!({}),
    )
    .await;
    let seg = segment(&app, &key, "spring").await;
    let c = campaign(&app, &key, &seg, json!({})).await;
    assert_eq!(c["status"], "DRAFT");
    let workers = app.workers(&smtp.url);
    let sent = app
        .ok(
            &key,
            "mutation($id: ID!) { sendCampaign(id: $id) { status scheduledAt } }",
            json!({"id": c["id"]}),
        )
        .await;
    assert!(
        ["SCHEDULED", "SENDING", "SENT"]
            .contains(&sent["sendCampaign"]["status"].as_str().unwrap())
    );
    let done = wait_status(&app, &key, &c["id"], "SENT", 60).await;
    let stats = &done["stats"];
    assert_eq!(stats["recipients"], 6, "{done}");
    assert_eq!(stats["sent"], 3);
    assert_eq!(stats["skipped"], 3);
    assert_eq!(stats["pending"], 0);

    // Exactly one email each to the three who may receive it.
    let mut to = recipients(&smtp);
    to.sort();
    assert_eq!(
        to,
        [
            "p0@spring.example",
            "p1@spring.example",
            "p2@spring.example"
        ]
    );
    let mail = smtp.received();
    let first = mail
        .iter()
        .find(|m| header(m, "To").unwrap() == "p0@spring.example")
        .unwrap();
    assert_eq!(header(first, "Subject").unwrap(), "Spring is here, P0");
    assert_eq!(
        header(first, "List-Unsubscribe-Post").unwrap(),
        "List-Unsubscribe=One-Click"
    );
    assert!(
        header(first, "Message-ID")
            .unwrap()
            .ends_with("@shop.example>")
    );
    let ids_seen: HashSet<_> = mail
        .iter()
        .map(|m| header(m, "Message-ID").unwrap())
        .collect();
    assert_eq!(ids_seen.len(), 3, "one Message-ID per (campaign, contact)");

    // Why the others were skipped is on their messages.
    let skipped = app
        .ok(&key, "query($id: ID!) { campaign(id: $id) { messages(state: SKIPPED) { contactId reason } } }", json!({"id": c["id"]}))
        .await;
    let reasons: HashMap<String, String> = skipped["campaign"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["contactId"].as_str().unwrap().to_string(),
                m["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(reasons[&ids[3]].contains("suppressed"), "{reasons:?}");
    assert_eq!(reasons[&ids[4]], "marketing consent is withdrawn");
    assert_eq!(reasons[&ids[5]], "no marketing consent on record");

    // A campaign is sent once.
    let (code, message) = app
        .err(
            &key,
            "mutation($id: ID!) { sendCampaign(id: $id) { status } }",
            json!({"id": c["id"]}),
        )
        .await;
    assert_eq!(code, "CONFLICT");
    assert!(message.contains("already sent"), "{message}");

    // The open pixel and click redirects in the received mail work, and are recorded.
    let base = format!("{}/t/", app.base);
    let pixel = links(first, &format!("{base}o/"));
    assert_eq!(pixel.len(), 1, "one open pixel");
    let (status, _, body) = app.get(&pixel[0]).await;
    assert_eq!(status, 200);
    assert!(body.starts_with(b"GIF89a"));
    let clicks = links(first, &format!("{base}c/"));
    assert_eq!(
        clicks.len(),
        1,
        "the shop link is tracked, the unsubscribe link is not: {clicks:?}"
    );
    let (status, location, _) = app.get(&clicks[0]).await;
    assert_eq!(status, 302);
    assert_eq!(
        location.as_deref(),
        Some("https://shop.example/spring?utm=mail&x=1")
    );
    app.get(&clicks[0]).await;
    // An altered link is refused, never redirected.
    let mut forged = clicks[0].clone();
    forged.insert(forged.len() - 3, 'A');
    let (status, location, _) = app.get(&forged).await;
    assert_eq!(status, 400);
    assert!(location.is_none());
    let (status, location, _) = app.get(&format!("{base}c/eyJ3cyI6MX0.bm9wZQ")).await;
    assert_eq!(status, 400);
    assert!(location.is_none());

    // Unsubscribing through the email's one-click link.
    let unsubscribe = header(first, "List-Unsubscribe").unwrap();
    let unsubscribe = unsubscribe.trim_matches(|c| c == '<' || c == '>');
    let resp = reqwest::Client::new()
        .post(unsubscribe)
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // p1's mailbox turns out not to exist: the bounce report marks the message.
    let resp = reqwest::Client::new()
        .post(format!("{}/webhooks/bounce", app.base))
        .bearer_auth(&key)
        .json(&json!({"email": "p1@spring.example", "type": "hard", "status": "5.1.1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let after = app.ok(&key, STATUS, json!({"id": c["id"]})).await["campaign"]["stats"].clone();
    assert_eq!(after["bounced"], 1);
    assert_eq!(after["sent"], 2);
    assert_eq!(after["uniqueOpens"], 1);
    assert_eq!(after["uniqueClicks"], 1);
    assert_eq!(after["unsubscribes"], 1);
    assert!((after["openRate"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9);
    let msg = app
        .ok(&key, "query($id: ID!) { campaign(id: $id) { messages(state: SENT) { contactId opens clicks openedAt clickedAt unsubscribedAt } } }", json!({"id": c["id"]}))
        .await;
    let m0 = msg["campaign"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["contactId"] == ids[0].as_str())
        .unwrap()
        .clone();
    assert_eq!(m0["opens"], 1);
    assert_eq!(m0["clicks"], 2);
    assert!(!m0["unsubscribedAt"].is_null());
    // Opens and clicks are on the contact: an activity the first time, an event each time.
    let person = app
        .ok(
            &key,
            "query($c: ID!) { contact(id: $c) { activities(first: 10) { edges { node { kind direction subject } } } events(first: 10) { edges { node { type } } } emailPermission(purpose: MARKETING) { allowed } } }",
            json!({"c": ids[0]}),
        )
        .await["contact"]
        .clone();
    let subjects: Vec<&str> = person["activities"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["subject"].as_str().unwrap())
        .collect();
    assert!(
        subjects.contains(&"Opened campaign email: Spring launch"),
        "{subjects:?}"
    );
    assert!(
        subjects.contains(&"Clicked in campaign email: Spring launch"),
        "{subjects:?}"
    );
    let mut events: Vec<&str> = person["events"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["type"].as_str().unwrap())
        .collect();
    events.sort();
    assert_eq!(events, ["email_clicked", "email_clicked", "email_opened"]);
    assert_eq!(person["emailPermission"]["allowed"], false);
    workers.stop().await;
}

async fn withdrawal_while_sending_stops_that_email(app: TestApp) {
    let smtp = SmtpServer::start();
    let key = app.workspace("Withdraw").await;
    let ids = audience(&app, &key, "slow", 10, |_| true).await;
    let seg = segment(&app, &key, "slow").await;
    // Two a second: the last contact's turn comes about four and a half seconds in.
    let c = campaign(&app, &key, &seg, json!({"ratePerSecond": 2})).await;
    let workers = app.workers(&smtp.url);
    send(&app, &key, &c["id"]).await;
    // Sending is under way once the first email has arrived.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while smtp.received().is_empty() {
        assert!(std::time::Instant::now() < deadline, "nothing arrived");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let last = ids.last().unwrap();
    app.ok(
        &key,
        "mutation($c: ID!) { recordConsent(contactId: $c, input: {purpose: MARKETING, status: WITHDRAWN, source: \"preference centre\"}) { id } }",
        json!({"c": last}),
    )
    .await;
    let done = wait_status(&app, &key, &c["id"], "SENT", 60).await;
    assert_eq!(done["stats"]["sent"], 9, "{done}");
    assert_eq!(done["stats"]["skipped"], 1);
    assert!(!recipients(&smtp).contains(&"p9@slow.example".to_string()));
    assert_eq!(smtp.received().len(), 9);
    workers.stop().await;
}

async fn campaign_validation_errors(app: TestApp) {
    let key = app.workspace("Validation").await;
    audience(&app, &key, "some", 2, |_| true).await;
    let seg = segment(&app, &key, "some").await;
    let empty = segment(&app, &key, "nobody").await;
    let input = |extra: Value| {
        let mut i = json!({"name": "X", "segmentId": seg, "fromEmail": "news@shop.example", "variants": [variant("A", "Hi")]});
        for (k, v) in extra.as_object().unwrap() {
            i[k] = v.clone();
        }
        json!({"i": i})
    };
    let (code, message) = app
        .err(&key, CREATE, input(json!({"fromEmail": "not an address"})))
        .await;
    assert_eq!(code, "VALIDATION");
    assert!(message.contains("fromEmail"), "{message}");
    let (code, message) = app
        .err(&key, CREATE, input(json!({"variants": [variant("A", "Hi"), {"subject": "Hi {{ contact.frist_name }}", "html": "x", "text": "x"}]})))
        .await;
    assert_eq!(code, "VALIDATION");
    assert!(
        message.contains("variants[1].subject") && message.contains("contact.frist_name"),
        "{message}"
    );
    let (code, message) = app
        .err(
            &key,
            CREATE,
            input(json!({"variants": [{"subject": "Hi", "html": "{% if %}", "text": "x"}]})),
        )
        .await;
    assert_eq!(code, "VALIDATION");
    assert!(message.contains("variants[0].html"), "{message}");
    let (code, _) = app.err(&key, CREATE, input(json!({"variants": []}))).await;
    assert_eq!(code, "VALIDATION");
    let (code, _) = app
        .err(&key, CREATE, input(json!({"ratePerSecond": 0})))
        .await;
    assert_eq!(code, "VALIDATION");
    let (code, message) = app
        .err(
            &key,
            CREATE,
            input(json!({"abTest": {"testShare": 1.5, "waitMinutes": 60}})),
        )
        .await;
    assert_eq!(code, "VALIDATION");
    assert!(message.contains("testShare"), "{message}");
    // Nothing half-saved.
    let list = app.ok(&key, "{ campaigns { id } }", json!({})).await;
    assert_eq!(list["campaigns"], json!([]));

    // An A/B test needs two variants; an empty segment cannot be sent to.
    let ab = app
        .ok(
            &key,
            CREATE,
            input(json!({"abTest": {"testShare": 0.2, "waitMinutes": 60}})),
        )
        .await["createCampaign"]["id"]
        .clone();
    let (code, message) = app
        .err(
            &key,
            "mutation($id: ID!) { sendCampaign(id: $id) { id } }",
            json!({"id": ab}),
        )
        .await;
    assert_eq!(code, "VALIDATION");
    assert!(message.contains("two variants"), "{message}");
    let to_nobody = app
        .ok(&key, CREATE, input(json!({"segmentId": empty})))
        .await["createCampaign"]["id"]
        .clone();
    let (code, message) = app
        .err(
            &key,
            "mutation($id: ID!) { sendCampaign(id: $id) { id } }",
            json!({"id": to_nobody}),
        )
        .await;
    assert_eq!(code, "VALIDATION");
    assert!(message.contains("no contacts"), "{message}");
    let status = app.ok(&key, STATUS, json!({"id": to_nobody})).await;
    assert_eq!(status["campaign"]["status"], "DRAFT");

    // Scheduled for later: it cannot be sent a second time or edited.
    let later = app.ok(&key, CREATE, input(json!({}))).await["createCampaign"]["id"].clone();
    let at = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let s = app
        .ok(&key, "mutation($id: ID!, $at: DateTime!) { scheduleCampaign(id: $id, at: $at) { status scheduledAt } }", json!({"id": later, "at": at}))
        .await;
    assert_eq!(s["scheduleCampaign"]["status"], "SCHEDULED");
    let (code, message) = app
        .err(
            &key,
            "mutation($id: ID!) { sendCampaign(id: $id) { id } }",
            json!({"id": later}),
        )
        .await;
    assert_eq!(code, "CONFLICT");
    assert!(message.contains("already scheduled"), "{message}");
    let (code, _) = app
        .err(
            &key,
            "mutation($id: ID!) { updateCampaign(id: $id, input: {name: \"Y\"}) { id } }",
            json!({"id": later}),
        )
        .await;
    assert_eq!(code, "CONFLICT");

    // Read-only keys cannot send; other workspaces do not see it.
    let read = app
        .ok(
            &key,
            "mutation { createApiKey(name: \"ro\", scopes: [READ]) { key } }",
            json!({}),
        )
        .await["createApiKey"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, _) = app
        .err(
            &read,
            "mutation($id: ID!) { sendCampaign(id: $id) { id } }",
            json!({"id": to_nobody}),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");
    let other = app.workspace("Other").await;
    let (code, _) = app.err(&other, STATUS, json!({"id": later})).await;
    assert_eq!(code, "NOT_FOUND");
    let (code, _) = app
        .err(&other, CREATE, json!({"i": {"name": "X", "segmentId": seg, "fromEmail": "a@b.example", "variants": [variant("A", "Hi")]}}))
        .await;
    assert_eq!(code, "NOT_FOUND");
}

async fn pause_resume_and_cancel(app: TestApp) {
    let smtp = SmtpServer::start();
    let key = app.workspace("Pause").await;
    audience(&app, &key, "paced", 8, |_| true).await;
    let seg = segment(&app, &key, "paced").await;
    let c = campaign(&app, &key, &seg, json!({"ratePerSecond": 2})).await;
    let workers = app.workers(&smtp.url);
    send(&app, &key, &c["id"]).await;
    app.until(&key, STATUS, json!({"id": c["id"]}), 30, |d| {
        d["campaign"]["stats"]["sent"].as_u64() >= Some(1)
    })
    .await;
    let paused = app
        .ok(
            &key,
            "mutation($id: ID!) { pauseCampaign(id: $id) { status } }",
            json!({"id": c["id"]}),
        )
        .await;
    assert_eq!(paused["pauseCampaign"]["status"], "PAUSED");
    // A message already handed to the server may still land; nothing after that.
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let at_pause = smtp.received().len();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        smtp.received().len(),
        at_pause,
        "nothing is sent while paused"
    );
    assert!(at_pause < 8);
    let (code, _) = app
        .err(
            &key,
            "mutation($id: ID!) { pauseCampaign(id: $id) { status } }",
            json!({"id": c["id"]}),
        )
        .await;
    assert_eq!(code, "CONFLICT");
    app.ok(
        &key,
        "mutation($id: ID!) { resumeCampaign(id: $id) { status } }",
        json!({"id": c["id"]}),
    )
    .await;
    let done = wait_status(&app, &key, &c["id"], "SENT", 60).await;
    assert_eq!(done["stats"]["sent"], 8);
    assert_eq!(smtp.received().len(), 8);
    let (code, _) = app
        .err(
            &key,
            "mutation($id: ID!) { cancelCampaign(id: $id) { status } }",
            json!({"id": c["id"]}),
        )
        .await;
    assert_eq!(code, "CONFLICT");

    // Cancelled before its time: nobody gets it, ever.
    let later = campaign(&app, &key, &seg, json!({"name": "Later"})).await;
    let at = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    app.ok(
        &key,
        "mutation($id: ID!, $at: DateTime!) { scheduleCampaign(id: $id, at: $at) { status } }",
        json!({"id": later["id"], "at": at}),
    )
    .await;
    let cancelled = app
        .ok(
            &key,
            "mutation($id: ID!) { cancelCampaign(id: $id) { status } }",
            json!({"id": later["id"]}),
        )
        .await;
    assert_eq!(cancelled["cancelCampaign"]["status"], "CANCELLED");
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert_eq!(smtp.received().len(), 8);
    let s = app.ok(&key, STATUS, json!({"id": later["id"]})).await;
    assert_eq!(s["campaign"]["status"], "CANCELLED");
    assert_eq!(s["campaign"]["stats"]["recipients"], 0);
    workers.stop().await;
}

async fn failing_mail_server_pauses_and_dead_letters_retry(app: TestApp) {
    let key = app.workspace("Failures").await;
    audience(&app, &key, "fail", 4, |_| true).await;
    let seg = segment(&app, &key, "fail").await;
    // Nothing listens on this port: every attempt is refused for now (deferred).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead_smtp = format!("smtp://127.0.0.1:{closed}");

    // A low failure limit pauses the campaign with the reason given.
    let mut config = app.worker_config(&dead_smtp);
    config.failure_limit = 3;
    let workers = app.workers_with(config);
    let c = campaign(&app, &key, &seg, json!({})).await;
    send(&app, &key, &c["id"]).await;
    let paused = wait_status(&app, &key, &c["id"], "PAUSED", 60).await;
    assert!(
        paused["statusReason"]
            .as_str()
            .unwrap()
            .contains("3 consecutive failed sends"),
        "{paused}"
    );
    assert_eq!(paused["stats"]["sent"], 0);
    assert_eq!(
        paused["stats"]["pending"], 4,
        "deferred messages go back to the queue"
    );
    workers.stop().await;

    // With a patient limit, the batch job uses up its attempts and becomes a dead letter.
    let mut config = app.worker_config(&dead_smtp);
    config.failure_limit = 1000;
    let workers = app.workers_with(config);
    app.ok(
        &key,
        "mutation($id: ID!) { resumeCampaign(id: $id) { status } }",
        json!({"id": c["id"]}),
    )
    .await;
    let failed = app
        .until(
            &key,
            "{ failedJobs { id attempts error job } }",
            json!({}),
            90,
            |d| d["failedJobs"].as_array().is_some_and(|a| !a.is_empty()),
        )
        .await;
    let job = &failed["failedJobs"][0];
    assert_eq!(job["job"]["kind"], "send_batch", "{job}");
    assert_eq!(job["attempts"], 5);
    assert!(job["error"].as_str().unwrap().contains("deferred"), "{job}");
    workers.stop().await;
    // Other workspaces see none of it.
    let other = app.workspace("Other").await;
    assert_eq!(
        app.ok(&other, "{ failedJobs { id } }", json!({})).await["failedJobs"],
        json!([])
    );

    // The mail server is back: retrying the dead letter sends everything, once.
    let smtp = SmtpServer::start();
    let workers = app.workers(&smtp.url);
    // Every dead letter goes back (a batch left over from the first workers can be one
    // too); sending is idempotent, so a retried job with nothing left to send just ends.
    let id = job["id"].clone();
    let dead = app.ok(&key, "{ failedJobs { id } }", json!({})).await["failedJobs"].clone();
    for j in dead.as_array().unwrap() {
        app.ok(
            &key,
            "mutation($id: ID!) { retryJob(id: $id) }",
            json!({"id": j["id"]}),
        )
        .await;
    }
    let done = wait_status(&app, &key, &c["id"], "SENT", 60).await;
    assert_eq!(done["stats"]["sent"], 4, "{done}");
    assert_eq!(smtp.received().len(), 4);
    assert_eq!(
        app.ok(&key, "{ failedJobs { id } }", json!({})).await["failedJobs"],
        json!([])
    );
    let (code, _) = app
        .err(
            &key,
            "mutation($id: ID!) { retryJob(id: $id) }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(code, "NOT_FOUND");
    workers.stop().await;
}

async fn ab_test_sends_the_winner_to_the_rest(app: TestApp) {
    let smtp = SmtpServer::start();
    let key = app.workspace("AB").await;
    audience(&app, &key, "ab", 40, |_| true).await;
    let seg = segment(&app, &key, "ab").await;
    let c = campaign(
        &app,
        &key,
        &seg,
        json!({
            "variants": [variant("A", "Plain subject"), variant("B", "Curious subject")],
            "abTest": {"testShare": 0.5, "waitMinutes": 60, "metric": "OPEN"},
        }),
    )
    .await;
    let b = c["variants"][1]["id"].clone();
    let workers = app.workers(&smtp.url);
    send(&app, &key, &c["id"]).await;
    // The test group gets its mail; the rest is held back for the winner.
    let test = app
        .until(&key, STATUS, json!({"id": c["id"]}), 60, |d| {
            let variants = d["campaign"]["variantStats"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            variants.len() == 3
                && variants
                    .iter()
                    .filter(|v| !v["variantId"].is_null())
                    .all(|v| v["sent"] == v["recipients"])
        })
        .await;
    let in_test = test["campaign"]["stats"]["sent"].as_u64().unwrap();
    assert!(
        (8..=32).contains(&in_test),
        "about half are in the test: {test}"
    );
    let held = test["campaign"]["variantStats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["variantId"].is_null())
        .unwrap()["recipients"]
        .as_u64()
        .unwrap();
    assert_eq!(held + in_test, 40);
    // Recipients of B open their mail; A's do not.
    let mut opened = 0;
    for m in smtp.received() {
        if header(&m, "Subject").unwrap() == "Curious subject" {
            let pixel = links(&m, &format!("{}/t/o/", app.base));
            assert_eq!(app.get(&pixel[0]).await.0, 200);
            opened += 1;
        }
    }
    assert!(opened > 0);
    // The wait is an hour; the test does not sleep it out but runs the job that the
    // campaign scheduled for then.
    let id: i64 = c["id"].as_str().unwrap().parse().unwrap();
    let workspace_id = {
        use sea_orm::EntityTrait;
        rapport_schema::campaign::Entity::find_by_id(id)
            .one(&app.db)
            .await
            .unwrap()
            .unwrap()
            .workspace_id
    };
    rapport_engine::platform::queue::Queue::new(&app.db)
        .unwrap()
        .push(
            rapport_engine::platform::queue::Job::PickWinner {
                workspace_id,
                campaign_id: id,
            },
            None,
        )
        .await
        .unwrap();
    let done = wait_status(&app, &key, &c["id"], "SENT", 60).await;
    assert_eq!(done["winnerVariantId"], b);
    assert_eq!(done["stats"]["sent"], 40);
    let mail = smtp.received();
    assert_eq!(mail.len(), 40);
    let curious = mail
        .iter()
        .filter(|m| header(m, "Subject").unwrap() == "Curious subject")
        .count();
    assert_eq!(
        curious as u64,
        40 - (in_test - opened as u64),
        "everyone held back got the winner"
    );
    workers.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_never_sends_twice_sqlite() {
    killed_worker_never_sends_twice(TestApp::spawn(Backend::Sqlite).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_never_sends_twice_postgres() {
    killed_worker_never_sends_twice(TestApp::spawn(Backend::Postgres).await).await;
}

/// A `rapport worker` process is SIGKILLed in the middle of a campaign; two fresh worker
/// processes sharing the queue take over. Nobody receives the email twice, and every
/// message ends sent or (the few the dead worker had in flight) unknown.
async fn killed_worker_never_sends_twice(app: TestApp) {
    let smtp = SmtpServer::start();
    let key = app.workspace("Crash").await;
    let n = 120;
    audience(&app, &key, "crash", n, |_| true).await;
    let seg = segment(&app, &key, "crash").await;
    // 30 a second: four seconds of sending, so the kill lands mid-batch.
    let c = campaign(&app, &key, &seg, json!({"ratePerSecond": 30})).await;
    let mut first = app.worker_process(&smtp.url);
    send(&app, &key, &c["id"]).await;
    app.until(&key, STATUS, json!({"id": c["id"]}), 60, |d| {
        d["campaign"]["stats"]["sent"].as_u64() >= Some(20)
    })
    .await;
    first.kill().expect("SIGKILL the worker");
    first.wait().unwrap();
    let at_kill = smtp.received().len();
    assert!(at_kill < n, "the kill came before the end ({at_kill} sent)");

    // The dead worker's claims are settled when its batches are taken over (three missed
    // one-second heartbeats), not after the claim timeout, which these workers keep at
    // the production default of 15 minutes.
    let patient = [("RAPPORT_CLAIM_TIMEOUT_SECONDS", "900")];
    let mut second = app.worker_process_with(&smtp.url, &patient);
    let mut third = app.worker_process_with(&smtp.url, &patient);
    let done = wait_status(&app, &key, &c["id"], "SENT", 60).await;
    for w in [&mut second, &mut third] {
        // SIGTERM: a graceful stop, with nothing in flight left behind.
        let _ = std::process::Command::new("kill")
            .arg(w.id().to_string())
            .status();
        let status = w.wait().unwrap();
        assert!(
            status.success(),
            "a worker stops cleanly on SIGTERM: {status}"
        );
    }

    let stats = &done["stats"];
    let sent = stats["sent"].as_u64().unwrap() as usize;
    let unknown = stats["unknown"].as_u64().unwrap() as usize;
    assert_eq!(stats["failed"], 0, "nothing was refused: {done}");
    assert_eq!(sent + unknown, n, "{done}");
    // Only what the dead worker had in flight, or accepted within the last tenth of a
    // second before it died (accepted messages are recorded at most 100 ms late), is
    // unknown: at 30 a second, a handful.
    assert!(
        unknown <= 20,
        "only the dead worker's last sends are unknown: {done}"
    );
    let to = recipients(&smtp);
    eprintln!(
        "killed after {at_kill} received; {sent} sent, {unknown} unknown, {} received",
        to.len()
    );
    let unique: HashSet<&String> = to.iter().collect();
    assert_eq!(unique.len(), to.len(), "somebody got the email twice");
    assert!(
        to.len() >= sent && to.len() <= sent + unknown,
        "{} received, {sent} sent, {unknown} unknown",
        to.len()
    );
    if unknown > 0 {
        let lost = app
            .ok(
                &key,
                "query($id: ID!) { campaign(id: $id) { messages(state: UNKNOWN) { reason } } }",
                json!({"id": c["id"]}),
            )
            .await;
        for m in lost["campaign"]["messages"].as_array().unwrap() {
            assert!(
                m["reason"].as_str().unwrap().starts_with("interrupted"),
                "{m}"
            );
        }
    }
}

/// Campaign mail signed with a configured DKIM key verifies (dkimpy, against the test
/// key's public half) as it arrives at the SMTP server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dkim_signed_campaign_mail_verifies() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let smtp = SmtpServer::start();
    let key = app.workspace("DKIM").await;
    audience(&app, &key, "signed", 2, |_| true).await;
    let seg = segment(&app, &key, "signed").await;
    let c = campaign(&app, &key, &seg, json!({})).await;
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let private_key = std::fs::read_to_string(fixtures.join("dkim-test-rsa.pem")).unwrap();
    let mut config = app.worker_config(&smtp.url);
    config.mailer = config
        .mailer
        .with_dkim(&rapport_engine::platform::email::DkimKey {
            selector: "rapport".into(),
            domain: "shop.example".into(),
            private_key,
        })
        .unwrap();
    let workers = app.workers_with(config);
    send(&app, &key, &c["id"]).await;
    wait_status(&app, &key, &c["id"], "SENT", 60).await;
    workers.stop().await;
    let public = std::fs::read_to_string(fixtures.join("dkim-test-rsa.pub.b64")).unwrap();
    let mail = smtp.received();
    assert_eq!(mail.len(), 2);
    for m in mail {
        assert!(
            header(&m, "DKIM-Signature")
                .unwrap()
                .contains("d=shop.example")
        );
        let verify = |message: &str| {
            use std::io::Write;
            let mut child = std::process::Command::new("python3")
                .arg(fixtures.join("dkim_verify.py"))
                .arg(&public)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("python3 with dkimpy (scripts/test installs it)");
            child
                .stdin
                .take()
                .unwrap()
                .write_all(message.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        // aiosmtpd's Maildir adds its own headers on top, which DKIM ignores.
        assert_eq!(verify(&m), "valid", "{m}");
        // Any change to a signed part breaks it.
        assert_eq!(
            verify(&m.replace("Subject: Spring is here", "Subject: Spring is near")),
            "invalid"
        );
    }
}

/// 5xx for a recipient: that message bounces and the address is suppressed; 4xx: the
/// message waits and goes out on the retry. Everyone else gets exactly one copy.
async fn smtp_refusals_bounce_or_retry(app: TestApp) {
    let smtp = SmtpServer::start_on(free_port(), true);
    let key = app.workspace("Refusals").await;
    let mut ids = Vec::new();
    for local in ["ok0", "ok1", "gone2", "greylist3"] {
        let id = app
            .ok(
                &key,
                "mutation($i: ContactInput!) { createContact(input: $i) { id } }",
                json!({"i": {"firstName": local, "lastName": "X", "email": format!("{local}@faults.example"), "tags": ["faults"]}}),
            )
            .await["createContact"]["id"]
            .clone();
        app.ok(
            &key,
            "mutation($c: ID!) { recordConsent(contactId: $c, input: {purpose: MARKETING, status: GRANTED}) { id } }",
            json!({"c": id}),
        )
        .await;
        ids.push(id);
    }
    let seg = segment(&app, &key, "faults").await;
    let c = campaign(&app, &key, &seg, json!({})).await;
    let workers = app.workers(&smtp.url);
    send(&app, &key, &c["id"]).await;
    let done = wait_status(&app, &key, &c["id"], "SENT", 60).await;
    assert_eq!(done["stats"]["sent"], 3, "{done}");
    assert_eq!(done["stats"]["bounced"], 1);
    assert_eq!(done["stats"]["failed"], 0);
    let mut to = recipients(&smtp);
    to.sort();
    assert_eq!(
        to,
        [
            "greylist3@faults.example",
            "ok0@faults.example",
            "ok1@faults.example"
        ]
    );
    let bounced = app
        .ok(&key, "query($id: ID!) { campaign(id: $id) { messages(state: BOUNCED) { contactId reason bouncedAt } } }", json!({"id": c["id"]}))
        .await["campaign"]["messages"]
        .clone();
    assert_eq!(bounced[0]["contactId"], ids[2]);
    assert!(
        bounced[0]["reason"].as_str().unwrap().starts_with("550"),
        "{bounced}"
    );
    let permission = app
        .ok(&key, "query($c: ID!) { contact(id: $c) { emailPermission(purpose: MARKETING) { allowed reason } } }", json!({"c": ids[2]}))
        .await;
    assert_eq!(
        permission["contact"]["emailPermission"]["reason"],
        "the address is suppressed (hard_bounce)"
    );
    let greylisted = app
        .ok(&key, "query($id: ID!) { campaign(id: $id) { messages(state: SENT) { contactId attempts } } }", json!({"id": c["id"]}))
        .await["campaign"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["contactId"] == ids[3])
        .unwrap()
        .clone();
    assert_eq!(greylisted["attempts"], 2, "sent on the second try");
    workers.stop().await;
}

/// The mail server is down when the campaign starts: the campaign pauses itself, and when
/// the server comes back on the same address it resumes by itself. Nothing is lost.
async fn mail_server_down_campaign_waits_and_resumes(app: TestApp) {
    let key = app.workspace("Down").await;
    audience(&app, &key, "down", 5, |_| true).await;
    let seg = segment(&app, &key, "down").await;
    let port = free_port();
    let mut config = app.worker_config(&format!("smtp://127.0.0.1:{port}"));
    config.failure_limit = 2;
    config.probe_delay = std::time::Duration::from_millis(500);
    let workers = app.workers_with(config);
    let c = campaign(&app, &key, &seg, json!({})).await;
    send(&app, &key, &c["id"]).await;
    let paused = wait_status(&app, &key, &c["id"], "PAUSED", 60).await;
    assert!(
        paused["statusReason"]
            .as_str()
            .unwrap()
            .contains("resumes by itself"),
        "{paused}"
    );
    assert_eq!(paused["stats"]["pending"], 5);
    // Still down a while later: still paused, nothing lost.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        app.ok(&key, STATUS, json!({"id": c["id"]})).await["campaign"]["status"],
        "PAUSED"
    );
    let smtp = SmtpServer::start_on(port, false);
    let done = wait_status(&app, &key, &c["id"], "SENT", 90).await;
    assert_eq!(done["stats"]["sent"], 5, "{done}");
    let to: HashSet<String> = recipients(&smtp).into_iter().collect();
    assert_eq!(to.len(), 5);
    assert_eq!(smtp.received().len(), 5);
    workers.stop().await;
}

/// `ratePerSecond` holds in every second of the send, with two worker processes running
/// batches side by side (each used to pace itself from its own start): measured where
/// Rapport decides, at the claim that immediately precedes each SMTP transaction.
async fn rate_limit_holds_in_every_second(app: TestApp) {
    use sea_orm::{EntityTrait, QuerySelect};
    let smtp = SmtpServer::start();
    let key = app.workspace("Rate").await;
    // Fast enough that 10% is a few messages: a send's own jitter (a few tens of
    // milliseconds on a loaded machine) moves one or two across a second's edge.
    let n = 200;
    let rate = 50;
    audience(&app, &key, "paced", n, |_| true).await;
    let seg = segment(&app, &key, "paced").await;
    let c = campaign(&app, &key, &seg, json!({"ratePerSecond": rate})).await;
    let mut workers = [app.worker_process(&smtp.url), app.worker_process(&smtp.url)];
    send(&app, &key, &c["id"]).await;
    wait_status(&app, &key, &c["id"], "SENT", 60).await;
    for w in &mut workers {
        let _ = w.kill();
        let _ = w.wait();
    }
    assert_eq!(smtp.received().len(), n);
    let mut times: Vec<chrono::DateTime<chrono::Utc>> =
        rapport_schema::campaign_message::Entity::find()
            .select_only()
            .column(rapport_schema::campaign_message::Column::ClaimedAt)
            .into_tuple::<Option<chrono::DateTime<chrono::Utc>>>()
            .all(&app.db)
            .await
            .unwrap()
            .into_iter()
            .flatten()
            .collect();
    times.sort();
    assert_eq!(times.len(), n);
    // Every second of the send, counted from the first claim, holds at most the rate and
    // 10%.
    let mut per_second = std::collections::BTreeMap::<i64, usize>::new();
    for t in &times {
        *per_second
            .entry((*t - times[0]).num_milliseconds() / 1000)
            .or_default() += 1;
    }
    let most = per_second.values().copied().max().unwrap();
    let offsets: Vec<i64> = times
        .iter()
        .map(|t| (*t - times[0]).num_milliseconds())
        .collect();
    eprintln!("at most {most} sends in one second at {rate} a second: {per_second:?}");
    assert!(
        most as f64 <= rate as f64 * 1.1,
        "{most} emails within one second at {rate} a second: {offsets:?}"
    );
}

/// Two topics; one person opts out of the newsletter on their preference page, another
/// out of product updates through the API. Each topic's campaign skips only the person
/// who left it, and "unsubscribe from all" on the page withdraws marketing consent.
async fn a_topic_opt_out_stops_that_topic_only(app: TestApp) {
    let smtp = SmtpServer::start();
    let key = app.workspace("Topics").await;
    let ids = audience(&app, &key, "topics", 2, |_| true).await;
    let (ada, bob) = (&ids[0], &ids[1]);
    let topic = |k: &str, n: &str| {
        let app = &app;
        let key = &key;
        let (k, n) = (k.to_string(), n.to_string());
        async move {
            app.ok(
                key,
                "mutation($i: EmailTopicInput!) { createEmailTopic(input: $i) { id key } }",
                json!({"i": {"key": k, "name": n, "description": "Now and then"}}),
            )
            .await["createEmailTopic"]["id"]
                .clone()
        }
    };
    let newsletter = topic("newsletter", "Newsletter").await;
    let updates = topic("updates", "Product <updates>").await;

    // Ada, on her page: both ticked at first; she keeps only the product updates.
    let url = app
        .ok(
            &key,
            "query($c: ID!) { contact(id: $c) { preferencesUrl } }",
            json!({"c": ada}),
        )
        .await["contact"]["preferencesUrl"]
        .as_str()
        .unwrap()
        .to_string();
    // The server's public address is configured; the test reaches it where it listens.
    let path = url[url.find("/preferences").unwrap()..].to_string();
    let (status, _, body) = app.get(&format!("{}{path}", app.base)).await;
    assert_eq!(status, 200);
    let html = String::from_utf8(body).unwrap();
    assert!(
        html.contains(&format!(
            "name=\"topic_{}\" checked",
            newsletter.as_str().unwrap()
        )),
        "{html}"
    );
    assert!(
        html.contains("Product &lt;updates&gt;"),
        "names are escaped: {html}"
    );
    let client = reqwest::Client::new();
    let saved = client
        .post(format!("{}{path}", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("topic_{}=on", updates.as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), 200);
    // A forged token is refused before its form is read.
    let forged = client
        .post(format!("{}/preferences?token=eyJ3cyI6MX0.bm9wZQ", app.base))
        .body("all=on")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    // Bob, through the API.
    app.ok(
        &key,
        "mutation($c: ID!) { setTopicPreference(contactId: $c, topic: \"updates\", subscribed: false) { subscribed } }",
        json!({"c": bob}),
    )
    .await;
    let prefs = app
        .ok(
            &key,
            "query($c: ID!) { contact(id: $c) { topicPreferences { topic { key } subscribed } } }",
            json!({"c": ada}),
        )
        .await;
    assert_eq!(
        prefs["contact"]["topicPreferences"],
        json!([{"topic": {"key": "newsletter"}, "subscribed": false}, {"topic": {"key": "updates"}, "subscribed": true}])
    );

    let _workers = app.workers(&smtp.url);
    let seg = segment(&app, &key, "topics").await;
    for (topic, receives) in [
        (&newsletter, "p1@topics.example"),
        (&updates, "p0@topics.example"),
    ] {
        let c = campaign(&app, &key, &seg, json!({"topicId": topic})).await;
        send(&app, &key, &c["id"]).await;
        let done = wait_status(&app, &key, &c["id"], "SENT", 60).await;
        assert_eq!(
            (
                done["stats"]["sent"].clone(),
                done["stats"]["skipped"].clone()
            ),
            (json!(1), json!(1)),
            "{done}"
        );
        let mut to: Vec<String> = recipients(&smtp);
        to.retain(|t| t == receives);
        assert_eq!(to.len(), 1, "{receives}: {:?}", recipients(&smtp));
    }
    assert_eq!(smtp.received().len(), 2);

    // "Unsubscribe from all" withdraws marketing consent.
    client
        .post(format!("{}{path}", app.base))
        .body("all=on")
        .send()
        .await
        .unwrap();
    let consent = app
        .ok(&key, "query($c: ID!) { contact(id: $c) { emailPermission(purpose: MARKETING) { allowed } } }", json!({"c": ada}))
        .await;
    assert_eq!(
        consent["contact"]["emailPermission"]["allowed"], false,
        "{consent}"
    );
}

//! Outbound webhooks through the real server and workers, on both databases: a receiver
//! on loopback gets each event once, signed (Standard Webhooks), in order per subject; a
//! mutation that fails emits nothing; a receiver that fails three times gets the event on
//! the fourth attempt, with every attempt in the log; 410 Gone disables the endpoint;
//! deliveries claimed by a worker that died are sent by another, once; private addresses
//! are refused without the operator's flag, on save and at delivery; an endpoint that
//! keeps failing is disabled and its admins get an email; an email's send and click are
//! told.

use rapport_engine::integrations::webhooks::delivery::signature;
use rapport_tests::receiver::{Received, Receiver};
use rapport_tests::{SmtpServer, TestApp, both_backends, links};
use serde_json::{Value, json};

both_backends!(every_change_is_told_once_signed_and_in_order);
both_backends!(a_failing_receiver_gets_the_event_on_the_fourth_attempt);
both_backends!(deliveries_of_a_dead_worker_are_sent_once_by_another);
both_backends!(private_targets_are_refused_without_the_flag);
both_backends!(an_endpoint_failing_too_long_is_disabled_and_admins_told);
both_backends!(an_email_is_told_when_sent_and_clicked);
both_backends!(erasure_takes_undelivered_events_about_the_person);
both_backends!(an_enrollment_is_told_when_it_starts_and_completes);

const CREATE: &str = "mutation($i: WebhookEndpointInput!) { createWebhookEndpoint(input: $i) { secret endpoint { id url events enabled } } }";
const LOG: &str = "query($id: ID!) { webhookEndpoint(id: $id) { enabled disabledReason failingSince deliveries { id messageId eventType subject state attemptCount lastStatus attempts { status latencyMs error responseExcerpt } } } }";

/// Checks a request's signature with the endpoint's secret and returns its JSON body.
fn verified(r: &Received, secret: &str) -> Value {
    let id = &r.headers["webhook-id"];
    let timestamp: i64 = r.headers["webhook-timestamp"].parse().expect("a timestamp");
    assert!(
        (chrono::Utc::now().timestamp() - timestamp).abs() < 300,
        "a fresh timestamp"
    );
    assert_eq!(
        r.headers["webhook-signature"],
        signature(secret, id, timestamp, &r.body),
        "signature of {}",
        r.body
    );
    assert_eq!(r.headers["content-type"], "application/json");
    r.json()
}

async fn endpoint(app: &TestApp, key: &str, url: &str, events: &[&str]) -> (String, String) {
    let made = app
        .ok(
            key,
            CREATE,
            json!({"i": {"url": url, "events": events, "description": "test receiver"}}),
        )
        .await["createWebhookEndpoint"]
        .clone();
    assert_eq!(made["endpoint"]["enabled"], true);
    let secret = made["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (made["endpoint"]["id"].as_str().unwrap().to_string(), secret)
}

async fn every_change_is_told_once_signed_and_in_order(app: TestApp) {
    let key = app.workspace("Hooks").await;
    let receiver = Receiver::start().await;
    let all: Vec<String> =
        app.ok(&key, "{ webhookEventTypes }", json!({})).await["webhookEventTypes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
    assert!(all.contains(&"deal.won".to_string()), "{all:?}");
    let names: Vec<&str> = all.iter().map(String::as_str).collect();
    let (endpoint_id, secret) = endpoint(&app, &key, &receiver.url, &names).await;
    // Another workspace's endpoint hears nothing of this one.
    let other_key = app.workspace("Elsewhere").await;
    let elsewhere = Receiver::start().await;
    endpoint(&app, &other_key, &elsewhere.url, &["contact.created"]).await;

    let smtp = SmtpServer::start();
    let _workers = app.workers(&smtp.url);

    let ada = app
        .ok(
            &key,
            "mutation { createContact(input: {firstName: \"Ada\", email: \"ada@hooks.example\"}) { id } }",
            json!({}),
        )
        .await["createContact"]["id"]
        .clone();
    // A mutation that fails after writing rolls back, and its events with it: the first
    // contact of this upsert is written before the second's company turns out missing.
    let (code, _) = app
        .err(
            &key,
            "mutation { bulkUpsertContacts(contacts: [{firstName: \"Ghost\", email: \"ghost@hooks.example\"}, {firstName: \"Orphan\", email: \"orphan@hooks.example\", companyId: \"999999\"}]) { created } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "NOT_FOUND");
    app.ok(
        &key,
        "mutation($id: ID!) { updateContact(id: $id, input: {firstName: \"Augusta\"}) { id } }",
        json!({"id": ada}),
    )
    .await;
    // Saving without a change tells nobody.
    app.ok(
        &key,
        "mutation($id: ID!) { updateContact(id: $id, input: {firstName: \"Augusta\"}) { id } }",
        json!({"id": ada}),
    )
    .await;
    let deal = app
        .ok(
            &key,
            "mutation($id: ID!) { createDeal(input: {name: \"Engines\", contactId: $id, amount: 1200}) { id stage { id } pipeline { stages { id isWon isLost } } } }",
            json!({"id": ada}),
        )
        .await["createDeal"]
        .clone();
    let open_stage = deal["pipeline"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["isWon"] == false && s["isLost"] == false && s["id"] != deal["stage"]["id"])
        .expect("a second open stage")["id"]
        .clone();
    app.ok(
        &key,
        "mutation($d: ID!, $s: ID!) { moveDealToStage(dealId: $d, stageId: $s) { id } }",
        json!({"d": deal["id"], "s": open_stage}),
    )
    .await;
    app.ok(
        &key,
        "mutation($d: ID!) { closeDeal(id: $d, outcome: WON) { id } }",
        json!({"d": deal["id"]}),
    )
    .await;
    app.ok(
        &key,
        "mutation($id: ID!) { createActivity(input: {kind: CALL, subject: \"Intro call\", contactId: $id}) { id } }",
        json!({"id": ada}),
    )
    .await;
    app.ok(
        &key,
        "mutation($id: ID!) { createOrder(input: {contactId: $id, lines: [{unitPrice: 20, quantity: 2}]}) { id } }",
        json!({"id": ada}),
    )
    .await;
    app.ok(
        &key,
        "mutation($id: ID!) { recordConsent(contactId: $id, input: {purpose: MARKETING, status: GRANTED, ip: \"203.0.113.9\"}) { id } }",
        json!({"id": ada}),
    )
    .await;
    let twin = app
        .ok(
            &key,
            "mutation { createContact(input: {firstName: \"Ada L.\", email: \"ada.l@hooks.example\"}) { id } }",
            json!({}),
        )
        .await["createContact"]["id"]
        .clone();
    app.ok(
        &key,
        "mutation($s: ID!, $m: ID!) { mergeContacts(survivorId: $s, mergedIds: [$m]) { id } }",
        json!({"s": ada, "m": twin}),
    )
    .await;
    app.ok(
        &key,
        "mutation($id: ID!) { deleteContact(id: $id) }",
        json!({"id": ada}),
    )
    .await;

    let expected = [
        "contact.created",
        "contact.updated",
        "deal.created",
        "deal.stage_changed",
        "deal.won",
        "activity.created",
        "order.created",
        "consent.changed",
        "contact.created",
        "contact.merged",
        "contact.deleted",
    ];
    let got = receiver.until(30, |got| got.len() >= expected.len()).await;
    // Nothing more comes (no duplicates, nothing for the refused mutation).
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let got = if receiver.received().len() > got.len() {
        receiver.received()
    } else {
        got
    };
    let bodies: Vec<Value> = got.iter().map(|r| verified(r, &secret)).collect();
    let mut types: Vec<&str> = bodies.iter().map(|b| b["type"].as_str().unwrap()).collect();
    let mut want = expected.to_vec();
    types.sort();
    want.sort();
    assert_eq!(types, want, "{bodies:#?}");
    let ids: std::collections::HashSet<&String> =
        got.iter().map(|r| &r.headers["webhook-id"]).collect();
    assert_eq!(ids.len(), got.len(), "each event once");
    assert!(
        elsewhere.received().is_empty(),
        "the other workspace heard nothing"
    );

    // Ada's events arrive in the order they happened.
    let ada_id = ada.as_str().unwrap();
    let about_ada: Vec<&str> = bodies
        .iter()
        .filter(|b| {
            let o = &b["data"]["object"];
            (o["__typename"] == "Contact" && o["id"] == ada_id) || o["contactId"] == ada_id
        })
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    let position = |t: &str| about_ada.iter().position(|x| *x == t).unwrap_or(usize::MAX);
    assert!(
        position("contact.created") < position("contact.updated"),
        "{about_ada:?}"
    );
    assert!(
        position("contact.updated") < position("activity.created"),
        "{about_ada:?}"
    );
    assert!(
        position("consent.changed") < position("contact.deleted"),
        "{about_ada:?}"
    );
    let deal_events: Vec<&str> = bodies
        .iter()
        .filter(|b| b["data"]["object"]["__typename"] == "Deal")
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        deal_events,
        ["deal.created", "deal.stage_changed", "deal.won"]
    );

    // Payloads: the object as the API names it, changed fields with old values, no proof
    // of consent, nothing Rapport keeps for itself.
    let update = bodies
        .iter()
        .find(|b| b["type"] == "contact.updated")
        .unwrap();
    assert_eq!(update["data"]["object"]["firstName"], "Augusta");
    assert_eq!(update["data"]["changedFields"], json!(["firstName"]));
    assert_eq!(update["data"]["previous"]["firstName"], "Ada");
    assert!(update["timestamp"].is_string());
    assert!(update["data"]["object"].get("workspaceId").is_none());
    assert!(update["data"]["object"].get("emailHash").is_none());
    let won = bodies.iter().find(|b| b["type"] == "deal.won").unwrap();
    assert_eq!(won["data"]["object"]["status"], "won");
    assert_eq!(won["data"]["previous"]["status"], "open");
    let consent = bodies
        .iter()
        .find(|b| b["type"] == "consent.changed")
        .unwrap();
    assert_eq!(consent["data"]["object"]["status"], "granted");
    assert!(
        consent["data"]["object"].get("proofIp").is_none(),
        "{consent}"
    );
    let merged = bodies
        .iter()
        .find(|b| b["type"] == "contact.merged")
        .unwrap();
    assert_eq!(merged["data"]["mergedIds"], json!([twin]));

    // The log: every delivery delivered on its first attempt.
    let log = app.ok(&key, LOG, json!({"id": endpoint_id})).await["webhookEndpoint"].clone();
    let deliveries = log["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), expected.len());
    for d in deliveries {
        assert_eq!(d["state"], "DELIVERED", "{d}");
        assert_eq!(d["attemptCount"], 1);
        assert_eq!(d["attempts"][0]["status"], 200);
        assert_eq!(d["attempts"][0]["responseExcerpt"], "ok");
    }

    // A replay is a new delivery of the same event, with the same webhook-id.
    let first = &deliveries[deliveries.len() - 1];
    let replay = app
        .ok(
            &key,
            "mutation($id: ID!) { replayWebhookDelivery(id: $id) { id messageId state } }",
            json!({"id": first["id"]}),
        )
        .await["replayWebhookDelivery"]
        .clone();
    assert_eq!(replay["messageId"], first["messageId"]);
    assert_ne!(replay["id"], first["id"]);
    let again = receiver.until(15, |got| got.len() > expected.len()).await;
    assert_eq!(
        again.last().unwrap().headers["webhook-id"],
        first["messageId"].as_str().unwrap()
    );
    // And a test delivery reaches it like any other.
    app.ok(
        &key,
        "mutation($id: ID!) { sendTestWebhook(endpointId: $id) { eventType } }",
        json!({"id": endpoint_id}),
    )
    .await;
    let with_test = receiver
        .until(15, |got| got.len() > expected.len() + 1)
        .await;
    assert_eq!(
        verified(with_test.last().unwrap(), &secret)["type"],
        "webhook.test"
    );

    // Only admins see or manage endpoints.
    let writer = app.scoped_key(&key, "WRITE").await;
    let (code, _) = app.err(&writer, LOG, json!({"id": endpoint_id})).await;
    assert_eq!(code, "FORBIDDEN");
    let (code, _) = app
        .err(
            &writer,
            CREATE,
            json!({"i": {"url": receiver.url, "events": ["contact.created"]}}),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");
    let (code, _) = app.err(&other_key, LOG, json!({"id": endpoint_id})).await;
    assert_eq!(code, "NOT_FOUND");
}

async fn a_failing_receiver_gets_the_event_on_the_fourth_attempt(app: TestApp) {
    let key = app.workspace("Retries").await;
    let receiver = Receiver::start().await;
    let (endpoint_id, secret) = endpoint(
        &app,
        &key,
        &receiver.url,
        &["contact.created", "contact.updated"],
    )
    .await;
    let smtp = SmtpServer::start();
    let _workers = app.workers(&smtp.url);
    receiver.fail_next(3);
    let id = app
        .ok(
            &key,
            "mutation { createContact(input: {firstName: \"Retry\", email: \"retry@hooks.example\"}) { id } }",
            json!({}),
        )
        .await["createContact"]["id"]
        .clone();
    // An update right behind it waits for the created event to get through.
    app.ok(
        &key,
        "mutation($id: ID!) { updateContact(id: $id, input: {lastName: \"Later\"}) { id } }",
        json!({"id": id}),
    )
    .await;
    let got = receiver.until(30, |got| got.len() >= 5).await;
    let types: Vec<String> = got
        .iter()
        .map(|r| verified(r, &secret)["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        types,
        [
            "contact.created",
            "contact.created",
            "contact.created",
            "contact.created",
            "contact.updated"
        ]
    );
    let first_id = &got[0].headers["webhook-id"];
    assert!(
        got[..4]
            .iter()
            .all(|r| &r.headers["webhook-id"] == first_id),
        "the same id on every retry"
    );

    let log = app.ok(&key, LOG, json!({"id": endpoint_id})).await["webhookEndpoint"].clone();
    assert!(
        log["failingSince"].is_null(),
        "a success ends the failing run: {log}"
    );
    let created = log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["eventType"] == "contact.created")
        .unwrap()
        .clone();
    assert_eq!(created["state"], "DELIVERED");
    assert_eq!(created["attemptCount"], 4);
    let statuses: Vec<&Value> = created["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["status"])
        .collect();
    assert_eq!(
        statuses,
        [&json!(503), &json!(503), &json!(503), &json!(200)]
    );
    assert_eq!(created["attempts"][0]["error"], "the endpoint answered 503");
    assert_eq!(created["attempts"][0]["responseExcerpt"], "busy, try later");

    // 410 Gone: the endpoint is disabled with the reason, and what follows waits.
    receiver.answer(410);
    app.ok(
        &key,
        "mutation($id: ID!) { updateContact(id: $id, input: {lastName: \"Gone\"}) { id } }",
        json!({"id": id}),
    )
    .await;
    let log = app
        .until(&key, LOG, json!({"id": endpoint_id}), 20, |d| {
            d["webhookEndpoint"]["enabled"] == false
        })
        .await["webhookEndpoint"]
        .clone();
    assert_eq!(log["disabledReason"], "the endpoint answered 410 Gone");
    let before = receiver.received().len();
    app.ok(
        &key,
        "mutation($id: ID!) { updateContact(id: $id, input: {lastName: \"Unheard\"}) { id } }",
        json!({"id": id}),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(
        receiver.received().len(),
        before,
        "a disabled endpoint gets nothing"
    );
    // Enabled again, it hears what follows.
    receiver.answer(200);
    app.ok(
        &key,
        "mutation($id: ID!) { updateWebhookEndpoint(id: $id, input: {enabled: true}) { enabled disabledReason } }",
        json!({"id": endpoint_id}),
    )
    .await;
    app.ok(
        &key,
        "mutation($id: ID!) { updateContact(id: $id, input: {lastName: \"Back\"}) { id } }",
        json!({"id": id}),
    )
    .await;
    let got = receiver.until(15, |got| got.len() > before).await;
    let last = verified(got.last().unwrap(), &secret);
    assert_eq!(last["data"]["object"]["lastName"], "Back");
    assert_eq!(last["data"]["previous"]["lastName"], "Unheard");
    assert_eq!(got.len(), before + 1);
}

async fn deliveries_of_a_dead_worker_are_sent_once_by_another(app: TestApp) {
    let key = app.workspace("Lease").await;
    let receiver = Receiver::start().await;
    let (endpoint_id, _) = endpoint(&app, &key, &receiver.url, &["contact.created"]).await;
    for n in 0..5 {
        app.ok(
            &key,
            "mutation($e: String!) { createContact(input: {firstName: \"Lease\", email: $e}) { id } }",
            json!({"e": format!("lease{n}@hooks.example")}),
        )
        .await;
    }
    // A dispatcher claims them and its process dies before any job runs.
    let claimed = rapport_engine::integrations::webhooks::delivery::claim_due(
        &app.db,
        chrono::Utc::now(),
        std::time::Duration::from_secs(3),
        100,
    )
    .await
    .unwrap();
    assert_eq!(claimed.len(), 5);
    // Another process's workers take them over once the lease (3 s here) runs out.
    let smtp = SmtpServer::start();
    let _workers = app.workers(&smtp.url);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(receiver.received().is_empty(), "a live claim is left alone");
    let got = receiver.until(20, |got| got.len() >= 5).await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(receiver.received().len(), 5, "each sent once: {got:?}");
    let log = app.ok(&key, LOG, json!({"id": endpoint_id})).await["webhookEndpoint"].clone();
    assert!(
        log["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["state"] == "DELIVERED" && d["attemptCount"] == 1)
    );
}

async fn private_targets_are_refused_without_the_flag(app: TestApp) {
    // This server runs without --allow-private-webhooks.
    let strict = TestApp::spawn_with(app.backend(), rapport_api::server::Config::default()).await;
    let key = strict.workspace("Strict").await;
    for (url, why) in [
        ("http://127.0.0.1:9/hook", "private"),
        ("http://localhost:9/hook", "private"),
        ("http://[::1]/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "private"),
        ("http://10.0.0.8/hook", "private"),
        ("http://[::ffff:127.0.0.1]/hook", "private"),
        ("file:///etc/passwd", "http or https"),
        ("https://user:secret@example.com/hook", "credentials"),
    ] {
        let (_, body) = strict
            .post(
                Some(&key),
                CREATE,
                json!({"i": {"url": url, "events": ["contact.created"]}}),
            )
            .await;
        let error = &body["errors"][0];
        assert_eq!(error["extensions"]["code"], "VALIDATION", "{url}: {body}");
        assert_eq!(error["extensions"]["field"], "url", "{url}: {body}");
        assert!(
            error["message"].as_str().unwrap().contains(why),
            "{url}: {body}"
        );
    }
    let (_, body) = strict
        .post(
            Some(&key),
            CREATE,
            json!({"i": {"url": "https://hooks.example.com/x", "events": ["contact.exploded"]}}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["field"], "events[0]",
        "{body}"
    );

    // An endpoint saved where private targets were allowed is still refused by workers
    // that do not allow them: the address is checked again at every delivery.
    let key = app.workspace("Rebinding").await;
    let receiver = Receiver::start().await;
    let (endpoint_id, _) = endpoint(&app, &key, &receiver.url, &["contact.created"]).await;
    let smtp = SmtpServer::start();
    let mut config = app.worker_config(&smtp.url);
    config.webhooks.allow_private = false;
    let _workers = app.workers_with(config);
    app.ok(
        &key,
        "mutation { createContact(input: {firstName: \"Private\"}) { id } }",
        json!({}),
    )
    .await;
    let log = app
        .until(&key, LOG, json!({"id": endpoint_id}), 20, |d| {
            d["webhookEndpoint"]["deliveries"][0]["attemptCount"]
                .as_i64()
                .unwrap_or(0)
                >= 1
        })
        .await["webhookEndpoint"]
        .clone();
    let attempt = &log["deliveries"][0]["attempts"][0];
    assert!(attempt["status"].is_null(), "{attempt}");
    assert!(
        attempt["error"].as_str().unwrap().contains("private"),
        "{attempt}"
    );
    assert!(receiver.received().is_empty());
}

async fn an_endpoint_failing_too_long_is_disabled_and_admins_told(app: TestApp) {
    let key = app.workspace("Failing").await;
    app.ok(
        &key,
        "mutation { createUser(input: {name: \"Ops\", email: \"ops@hooks.example\", role: ADMIN}) { id } }",
        json!({}),
    )
    .await;
    app.ok(
        &key,
        "mutation { createUser(input: {name: \"Rep\", email: \"rep@hooks.example\", role: MEMBER}) { id } }",
        json!({}),
    )
    .await;
    let receiver = Receiver::start().await;
    receiver.answer(500);
    let (endpoint_id, _) = endpoint(&app, &key, &receiver.url, &["contact.created"]).await;
    let smtp = SmtpServer::start();
    let mut config = app.worker_config(&smtp.url);
    // "Too long" is a second here (five days by default).
    config.webhooks.disable_after = chrono::Duration::seconds(1);
    config.webhooks.notify_from =
        Some(rapport_engine::values::EmailAddress::parse("from", "rapport@hooks.example").unwrap());
    let _workers = app.workers_with(config);
    app.ok(
        &key,
        "mutation { createContact(input: {firstName: \"Never\"}) { id } }",
        json!({}),
    )
    .await;
    let log = app
        .until(&key, LOG, json!({"id": endpoint_id}), 30, |d| {
            d["webhookEndpoint"]["enabled"] == false
        })
        .await["webhookEndpoint"]
        .clone();
    let reason = log["disabledReason"].as_str().unwrap();
    assert!(
        reason.starts_with("every delivery failed since"),
        "{reason}"
    );
    assert!(reason.contains("the endpoint answered 500"), "{reason}");
    let attempts = log["deliveries"][0]["attemptCount"].as_i64().unwrap();
    assert!(attempts >= 2, "retried before giving up: {log}");
    // The admin is told; the member is not.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mail = loop {
        let got = smtp.received();
        if let Some(m) = got
            .iter()
            .find(|m| m.contains("A webhook endpoint was disabled"))
        {
            break m.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no email to the admins"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(mail.contains("ops@hooks.example"), "{mail}");
    assert!(
        !smtp
            .received()
            .iter()
            .any(|m| m.contains("rep@hooks.example"))
    );
    // Nothing more is tried while it is disabled.
    let tried = receiver.received().len();
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(receiver.received().len(), tried);
}

async fn an_email_is_told_when_sent_and_clicked(app: TestApp) {
    let key = app.workspace("Mail hooks").await;
    let receiver = Receiver::start().await;
    let (_, secret) = endpoint(
        &app,
        &key,
        &receiver.url,
        &["message.sent", "message.opened", "message.clicked"],
    )
    .await;
    let contact = app
        .ok(
            &key,
            "mutation { createContact(input: {firstName: \"Ada\", email: \"ada@mail-hooks.example\"}) { id } }",
            json!({}),
        )
        .await["createContact"]["id"]
        .clone();
    let template = app
        .ok(
            &key,
            "mutation($i: EmailTemplateInput!) { createEmailTemplate(input: $i) { id } }",
            json!({"i": {
                "name": "Receipt",
                "subject": "Your receipt",
                "html": "<p>Thanks!</p><a href=\"https://shop.example/orders/1\">Your order</a>",
                "text": "Thanks! https://shop.example/orders/1"
            }}),
        )
        .await["createEmailTemplate"]["id"]
        .clone();
    let smtp = SmtpServer::start();
    let _workers = app.workers(&smtp.url);
    let sent = app
        .ok(
            &key,
            "mutation($i: SendEmailInput!) { sendEmail(input: $i) { id } }",
            json!({"i": {"contactId": contact, "templateId": template, "idempotencyKey": "order-1", "fromEmail": "shop@mail-hooks.example"}}),
        )
        .await["sendEmail"]["id"]
        .clone();
    let got = receiver.until(20, |got| !got.is_empty()).await;
    let body = verified(&got[0], &secret);
    assert_eq!(body["type"], "message.sent");
    assert_eq!(body["data"]["object"]["__typename"], "TransactionalEmail");
    assert_eq!(body["data"]["object"]["id"], sent);
    assert_eq!(body["data"]["object"]["contactId"], contact);
    assert_eq!(body["data"]["object"]["state"], "sent");

    // The recipient clicks: the app hears which link.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mail = loop {
        if let Some(m) = smtp.received().into_iter().next() {
            break m;
        }
        assert!(std::time::Instant::now() < deadline, "no email");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let clicks = links(&mail, &format!("{}/t/c/", app.base));
    let (status, _, _) = app.get(&clicks[0]).await;
    assert_eq!(status, 302);
    let got = receiver.until(20, |got| got.len() >= 2).await;
    let clicked = verified(&got[1], &secret);
    assert_eq!(clicked["type"], "message.clicked");
    assert_eq!(clicked["data"]["url"], "https://shop.example/orders/1");
}

async fn erasure_takes_undelivered_events_about_the_person(app: TestApp) {
    let key = app.workspace("Erasure hooks").await;
    let receiver = Receiver::start().await;
    // The receiver is down: everything stays owed, in the outbox.
    receiver.answer(500);
    let (endpoint_id, _) = endpoint(
        &app,
        &key,
        &receiver.url,
        &[
            "contact.created",
            "deal.created",
            "activity.created",
            "contact.deleted",
        ],
    )
    .await;
    let erin = app
        .ok(
            &key,
            "mutation { createContact(input: {firstName: \"Erin\", lastName: \"Forgotten\", email: \"erin@erase.example\"}) { id } }",
            json!({}),
        )
        .await["createContact"]["id"]
        .clone();
    app.ok(
        &key,
        "mutation($id: ID!) { createDeal(input: {name: \"Erin Forgotten deal\", contactId: $id}) { id } }",
        json!({"id": erin}),
    )
    .await;
    app.ok(
        &key,
        "mutation($id: ID!) { createActivity(input: {kind: NOTE, body: \"Erin Forgotten called\", contactId: $id}) { id } }",
        json!({"id": erin}),
    )
    .await;
    let other = app
        .ok(
            &key,
            "mutation { createContact(input: {firstName: \"Kept\"}) { id } }",
            json!({}),
        )
        .await["createContact"]["id"]
        .clone();
    app.ok(
        &key,
        "mutation($id: ID!) { deleteContact(id: $id, hard: true) }",
        json!({"id": erin}),
    )
    .await;
    let log = app.ok(
        &key,
        "query($id: ID!) { webhookEndpoint(id: $id) { deliveries { eventType subject payload } } }",
        json!({"id": endpoint_id}),
    )
    .await["webhookEndpoint"]["deliveries"]
        .clone();
    let text = log.to_string();
    assert!(!text.contains("Forgotten"), "{log:#}");
    assert!(!text.contains("erin@erase.example"), "{log:#}");
    let types: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["contact.deleted", "contact.created"], "{log:#}");
    let deleted = &log[0]["payload"]["data"];
    assert_eq!(deleted["erased"], true);
    assert_eq!(deleted["object"]["id"], erin);
    assert_eq!(log[1]["payload"]["data"]["object"]["id"], other);
}

async fn an_enrollment_is_told_when_it_starts_and_completes(app: TestApp) {
    let key = app.workspace("Sequence hooks").await;
    let receiver = Receiver::start().await;
    let (_, secret) = endpoint(
        &app,
        &key,
        &receiver.url,
        &[
            "sequence.enrollment.started",
            "sequence.enrollment.completed",
            "contact.updated",
        ],
    )
    .await;
    let contact = app
        .ok(
            &key,
            "mutation { createContact(input: {firstName: \"Seq\"}) { id } }",
            json!({}),
        )
        .await["createContact"]["id"]
        .clone();
    let sequence = app
        .ok(
            &key,
            "mutation($d: JSON!) { createSequence(definition: $d) { id } }",
            json!({"d": {
                "name": "Tag and done",
                "fromEmail": "hello@seq-hooks.example",
                "start": "mark",
                "steps": [{"id": "mark", "kind": "updateContact", "addTags": ["sequenced"]}]
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
    let smtp = SmtpServer::start();
    let _workers = app.workers(&smtp.url);
    app.ok(
        &key,
        "mutation($s: ID!, $c: [ID!]!) { enrollInSequence(sequenceId: $s, contactIds: $c) { enrollments { id } } }",
        json!({"s": sequence, "c": [contact]}),
    )
    .await;
    let got = receiver.until(30, |got| got.len() >= 3).await;
    let bodies: Vec<Value> = got.iter().map(|r| verified(r, &secret)).collect();
    let types: Vec<&str> = bodies.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "sequence.enrollment.started",
            "contact.updated",
            "sequence.enrollment.completed"
        ],
        "{bodies:#?}"
    );
    let started = &bodies[0]["data"]["object"];
    assert_eq!(started["__typename"], "SequenceEnrollment");
    assert_eq!(started["sequenceId"], sequence);
    assert_eq!(started["contactId"], contact);
    assert_eq!(bodies[1]["data"]["changedFields"], json!(["tags"]));
    assert_eq!(bodies[2]["data"]["object"]["status"], "completed");
}

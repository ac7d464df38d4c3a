//! Transactional email end to end: `sendEmail` through the job queue to a real SMTP
//! server, once per idempotency key, under the consent rules of its purpose, tracked.

use std::time::Duration;

use rapport_tests::{SmtpServer, TestApp, both_backends, header, links};
use serde_json::{Value, json};

both_backends!(a_receipt_is_sent_once_per_key_and_tracked);

const SEND: &str = "mutation($i: SendEmailInput!) { sendEmail(input: $i) { id state replayed idempotencyKey purpose } }";
const STATE: &str = "query($id: ID!) { transactionalEmail(id: $id) { state reason sentAt openedAt clickedAt opens clicks } }";

async fn contact(app: &TestApp, key: &str, first: &str, email: Option<&str>) -> String {
    app.ok(
        key,
        "mutation($i: ContactInput!) { createContact(input: $i) { id } }",
        json!({"i": {"firstName": first, "email": email}}),
    )
    .await["createContact"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The message once it has left the queue.
async fn settled(app: &TestApp, key: &str, id: &Value) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let m = app.ok(key, STATE, json!({"id": id})).await["transactionalEmail"].clone();
        if m["state"] != "QUEUED" && m["state"] != "SENDING" {
            return m;
        }
        assert!(std::time::Instant::now() < deadline, "still {m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_receipt_is_sent_once_per_key_and_tracked(app: TestApp) {
    let smtp = SmtpServer::start();
    let key = app.workspace("Receipts").await;
    // No consent recorded at all: transactional mail needs none.
    let ada = contact(&app, &key, "Ada", Some("ada@tx.example")).await;
    let bob = contact(&app, &key, "Bob", Some("bob@tx.example")).await;
    let nobody = contact(&app, &key, "Nobody", None).await;
    app.ok(
        &key,
        "mutation($c: ID!) { recordConsent(contactId: $c, input: {purpose: TRANSACTIONAL, status: WITHDRAWN}) { id } }",
        json!({"c": bob}),
    )
    .await;
    let template = app
        .ok(
            &key,
            "mutation($i: EmailTemplateInput!) { createEmailTemplate(input: $i) { id } }",
            json!({"i": {
                "name": "Receipt",
                "subject": "Your receipt, {{ contact.first_name }}",
                "html": "<p>Thanks!</p><a href=\"https://shop.example/orders/1\">Your order</a>",
                "text": "Thanks! https://shop.example/orders/1"
            }}),
        )
        .await["createEmailTemplate"]["id"]
        .clone();
    let input = |contact: &str, idempotency: &str| json!({"i": {"contactId": contact, "templateId": template, "idempotencyKey": idempotency, "fromEmail": "shop@tx.example", "fromName": "Shop"}});

    let first = app.ok(&key, SEND, input(&ada, "order-1/receipt")).await["sendEmail"].clone();
    assert_eq!(first["replayed"], false);
    assert_eq!(first["purpose"], "TRANSACTIONAL");
    // A retried request, before and after the workers ran: the same message, nothing new.
    let again = app.ok(&key, SEND, input(&ada, "order-1/receipt")).await["sendEmail"].clone();
    assert_eq!(
        (again["id"].clone(), again["replayed"].clone()),
        (first["id"].clone(), json!(true))
    );
    let _workers = app.workers(&smtp.url);
    let sent = settled(&app, &key, &first["id"]).await;
    assert_eq!(sent["state"], "SENT", "{sent}");
    let again = app.ok(&key, SEND, input(&ada, "order-1/receipt")).await["sendEmail"].clone();
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["state"], "SENT");

    // The key cannot be reused for another contact; bad keys and read keys are refused.
    let (code, _) = app.err(&key, SEND, input(&bob, "order-1/receipt")).await;
    assert_eq!(code, "CONFLICT");
    let (code, message) = app.err(&key, SEND, input(&ada, "has space")).await;
    assert_eq!(code, "VALIDATION", "{message}");
    let reader = app
        .ok(
            &key,
            "mutation { createApiKey(name: \"ro\", scopes: [READ]) { key } }",
            json!({}),
        )
        .await["createApiKey"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, _) = app.err(&reader, SEND, input(&ada, "order-2/receipt")).await;
    assert_eq!(code, "FORBIDDEN");

    // A withdrawal of transactional mail, and a contact without an address, skip.
    let withdrawn = app.ok(&key, SEND, input(&bob, "order-3/receipt")).await["sendEmail"].clone();
    let skipped = settled(&app, &key, &withdrawn["id"]).await;
    assert_eq!(skipped["state"], "SKIPPED", "{skipped}");
    assert!(
        skipped["reason"].as_str().unwrap().contains("withdrawn"),
        "{skipped}"
    );
    let no_address =
        app.ok(&key, SEND, input(&nobody, "order-4/receipt")).await["sendEmail"].clone();
    let skipped = settled(&app, &key, &no_address["id"]).await;
    assert_eq!(skipped["reason"], "the contact has no email address");

    // Exactly one email reached Ada, without marketing's unsubscribe headers.
    let received = smtp.received();
    let to_ada: Vec<&String> = received
        .iter()
        .filter(|m| header(m, "To").as_deref() == Some("ada@tx.example"))
        .collect();
    assert_eq!(to_ada.len(), 1, "{received:?}");
    assert_eq!(
        header(to_ada[0], "Subject").as_deref(),
        Some("Your receipt, Ada")
    );
    assert!(header(to_ada[0], "List-Unsubscribe").is_none());
    assert!(
        !received
            .iter()
            .any(|m| header(m, "To").as_deref() == Some("bob@tx.example"))
    );

    // Its click link redirects to the order and is recorded, with the open it proves.
    let clicks = links(to_ada[0], &format!("{}/t/c/", app.base));
    assert_eq!(clicks.len(), 1, "{clicks:?}");
    let (status, location, _) = app.get(&clicks[0]).await;
    assert_eq!(status, 302);
    assert_eq!(location.as_deref(), Some("https://shop.example/orders/1"));
    let tracked =
        app.ok(&key, STATE, json!({"id": first["id"]})).await["transactionalEmail"].clone();
    assert_eq!(tracked["clicks"], 1, "{tracked}");
    assert!(!tracked["openedAt"].is_null() && !tracked["clickedAt"].is_null());

    // Ada's timeline is the whole story: the email (with its click), the click's event, a
    // consent record and a lifecycle change, newest first.
    app.ok(
        &key,
        "mutation($c: ID!) { recordConsent(contactId: $c, input: {purpose: MARKETING, status: GRANTED}) { id } }",
        json!({"c": ada}),
    )
    .await;
    app.ok(
        &key,
        "mutation($c: ID!) { updateContact(id: $c, input: {lifecycleStage: CUSTOMER}) { id } }",
        json!({"c": ada}),
    )
    .await;
    let story = app
        .ok(
            &key,
            "query($c: ID!) { contact(id: $c) { lifecycleHistory { fromStage toStage } timeline(first: 20) { edges { occurredAt node { __typename ... on EmailSent { kind clicks } ... on Event { type } ... on ConsentRecord { status } ... on LifecycleChange { toStage } } } } } }",
            json!({"c": ada}),
        )
        .await["contact"]
        .clone();
    assert_eq!(
        story["lifecycleHistory"],
        json!([{"fromStage": null, "toStage": "LEAD"}, {"fromStage": "LEAD", "toStage": "CUSTOMER"}])
    );
    let edges = story["timeline"]["edges"].as_array().unwrap();
    let kinds: Vec<&str> = edges
        .iter()
        .map(|e| e["node"]["__typename"].as_str().unwrap())
        .collect();
    for kind in ["EmailSent", "Event", "ConsentRecord", "LifecycleChange"] {
        assert!(kinds.contains(&kind), "{kind} missing: {kinds:?}");
    }
    let email = edges
        .iter()
        .find(|e| e["node"]["__typename"] == "EmailSent")
        .unwrap();
    assert_eq!(
        email["node"],
        json!({"__typename": "EmailSent", "kind": "TRANSACTIONAL", "clicks": 1})
    );
    let times: Vec<chrono::DateTime<chrono::FixedOffset>> = edges
        .iter()
        .map(|e| chrono::DateTime::parse_from_rfc3339(e["occurredAt"].as_str().unwrap()).unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );

    // A bounce of Ada's address answers the receipt, her latest email: webhooks hear
    // `message.bounced` with the transactional message.
    let receiver = rapport_tests::receiver::Receiver::start().await;
    app.ok(
        &key,
        "mutation($i: WebhookEndpointInput!) { createWebhookEndpoint(input: $i) { secret } }",
        json!({"i": {"url": receiver.url, "events": ["message.bounced"]}}),
    )
    .await;
    let answer = reqwest::Client::new()
        .post(format!("{}/webhooks/bounce", app.base))
        .bearer_auth(&key)
        .json(&json!({"email": "ada@tx.example", "type": "soft"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let got = receiver.until(20, |got| !got.is_empty()).await;
    let event = got[0].json();
    assert_eq!(event["type"], "message.bounced", "{event}");
    assert_eq!(
        event["data"]["object"]["__typename"], "TransactionalMessage",
        "{event}"
    );
    assert_eq!(event["data"]["object"]["id"], first["id"], "{event}");
}

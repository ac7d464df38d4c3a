//! Consent history, the suppression list and the send-time decision, over GraphQL.

use rapport_tests::TestApp;
use rapport_tests::both_backends;
use serde_json::{Value, json};

both_backends!(
    consent_is_an_append_only_history,
    suppression_blocks_marketing_and_survives_erasure,
    unsubscribe_and_confirmation_links,
    bounce_webhook_suppresses,
    email_permission_filter_matches_the_send_time_check,
);

async fn contact(app: &TestApp, key: &str, email: &str) -> Value {
    app.ok(
        key,
        "mutation($i: ContactInput!) { createContact(input: $i) { id } }",
        json!({"i": {"firstName": "Ada", "lastName": "Lovelace", "email": email}}),
    )
    .await["createContact"]["id"]
        .clone()
}

const RECORD: &str = "mutation($c: ID!, $i: ConsentInput!) { recordConsent(contactId: $c, input: $i) { id channel purpose status lawfulBasis source ip userAgent form recordedAt } }";
const PERMISSION: &str = "query($c: ID!) { contact(id: $c) { marketing: emailPermission(purpose: MARKETING) { allowed reason } transactional: emailPermission(purpose: TRANSACTIONAL) { allowed reason } consent { purpose status } consentHistory { status } } }";

async fn consent_is_an_append_only_history(app: TestApp) {
    let key = app.workspace("Consent").await;
    let ada = contact(&app, &key, "ada@example.com").await;
    // Nothing on record: no marketing, transactional mail is fine.
    let p = app.ok(&key, PERMISSION, json!({"c": ada})).await["contact"].clone();
    assert_eq!(p["marketing"]["allowed"], false);
    assert_eq!(p["marketing"]["reason"], "no marketing consent on record");
    assert_eq!(p["transactional"]["allowed"], true);

    let granted = app
        .ok(
            &key,
            RECORD,
            json!({"c": ada, "i": {"purpose": "MARKETING", "status": "GRANTED", "source": "newsletter form", "ip": "203.0.113.7", "userAgent": "Mozilla/5.0", "form": "/signup"}}),
        )
        .await;
    let g = &granted["recordConsent"];
    assert_eq!(g["channel"], "EMAIL");
    assert_eq!(g["lawfulBasis"], "CONSENT");
    assert_eq!(g["ip"], "203.0.113.7");
    assert_eq!(g["form"], "/signup");
    let p = app.ok(&key, PERMISSION, json!({"c": ada})).await["contact"].clone();
    assert_eq!(p["marketing"]["allowed"], true);

    app.ok(&key, RECORD, json!({"c": ada, "i": {"purpose": "MARKETING", "status": "WITHDRAWN", "source": "unsubscribe link"}}))
        .await;
    let p = app.ok(&key, PERMISSION, json!({"c": ada})).await["contact"].clone();
    assert_eq!(p["marketing"]["allowed"], false);
    assert_eq!(p["marketing"]["reason"], "marketing consent is withdrawn");
    // The history keeps both events; the current view shows the latest.
    assert_eq!(
        p["consentHistory"],
        json!([{"status": "GRANTED"}, {"status": "WITHDRAWN"}])
    );
    assert_eq!(
        p["consent"],
        json!([{"purpose": "MARKETING", "status": "WITHDRAWN"}])
    );

    // Bad input is named; nothing is written.
    let (code, message) = app
        .err(&key, RECORD, json!({"c": ada, "i": {"purpose": "MARKETING", "status": "GRANTED", "ip": "not-an-ip"}}))
        .await;
    assert_eq!(code, "VALIDATION");
    assert!(message.contains("ip"), "{message}");
    let p = app.ok(&key, PERMISSION, json!({"c": ada})).await["contact"].clone();
    assert_eq!(p["consentHistory"].as_array().unwrap().len(), 2);
    // Other workspaces cannot record consent for this contact.
    let other = app.workspace("Other").await;
    let (code, _) = app
        .err(
            &other,
            RECORD,
            json!({"c": ada, "i": {"purpose": "MARKETING", "status": "GRANTED"}}),
        )
        .await;
    assert_eq!(code, "NOT_FOUND");
}

async fn suppression_blocks_marketing_and_survives_erasure(app: TestApp) {
    let key = app.workspace("Suppression").await;
    let grace = contact(&app, &key, "grace@example.com").await;
    app.ok(
        &key,
        RECORD,
        json!({"c": grace, "i": {"purpose": "MARKETING", "status": "GRANTED"}}),
    )
    .await;
    let s = app
        .ok(
            &key,
            "mutation { suppressEmail(email: \"GRACE@example.com\", reason: COMPLAINT, note: \"spam report\") { reason emailHash note } }",
            json!({}),
        )
        .await;
    assert_eq!(s["suppressEmail"]["reason"], "COMPLAINT");
    assert_eq!(s["suppressEmail"]["emailHash"].as_str().unwrap().len(), 64);
    let p = app.ok(&key, PERMISSION, json!({"c": grace})).await["contact"].clone();
    assert_eq!(
        p["marketing"]["allowed"], false,
        "granted consent does not pass the list"
    );
    assert_eq!(
        p["marketing"]["reason"],
        "the address is suppressed (complaint)"
    );
    // Lifting a complaint needs admin; a write key is refused.
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
            "mutation { liftSuppression(email: \"grace@example.com\") }",
            json!({}),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");
    let lifted = app
        .ok(
            &key,
            "mutation { liftSuppression(email: \"grace@example.com\") }",
            json!({}),
        )
        .await;
    assert_eq!(lifted["liftSuppression"], true);
    let p = app.ok(&key, PERMISSION, json!({"c": grace})).await["contact"].clone();
    assert_eq!(p["marketing"]["allowed"], true);

    // Erasing a person keeps their address suppressed (as a hash) and their consent gone.
    app.ok(
        &key,
        "mutation($c: ID!) { deleteContact(id: $c, hard: true) }",
        json!({"c": grace}),
    )
    .await;
    let s = app
        .ok(
            &key,
            "{ suppression(email: \"grace@example.com\") { reason } suppressions { reason } }",
            json!({}),
        )
        .await;
    assert_eq!(s["suppression"]["reason"], "ERASED");
    assert_eq!(s["suppressions"], json!([{"reason": "ERASED"}]));
    use sea_orm::{ConnectionTrait, Statement};
    let backend = app.db.get_database_backend();
    let events = app
        .db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT id FROM consent_events",
        ))
        .await
        .unwrap();
    assert!(events.is_empty(), "consent history went with the person");
    let kept = app
        .db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT email_hash FROM suppressions",
        ))
        .await
        .unwrap();
    let hash: String = kept[0].try_get("", "email_hash").unwrap();
    assert!(!hash.contains('@'), "only the hash is kept");
    // Re-imported, the address is still blocked.
    let again = contact(&app, &key, "grace@example.com").await;
    app.ok(
        &key,
        RECORD,
        json!({"c": again, "i": {"purpose": "MARKETING", "status": "GRANTED"}}),
    )
    .await;
    let p = app.ok(&key, PERMISSION, json!({"c": again})).await["contact"].clone();
    assert_eq!(
        p["marketing"]["reason"],
        "the address is suppressed (erased)"
    );
    let (code, _) = app
        .err(
            &key,
            "mutation { suppressEmail(email: \"not an address\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "VALIDATION");
}

fn token_of(url: &str) -> String {
    url.split_once("token=").unwrap().1.to_string()
}

async fn unsubscribe_and_confirmation_links(app: TestApp) {
    let key = app.workspace("Links").await;
    let ada = contact(&app, &key, "ada@example.com").await;
    app.ok(
        &key,
        RECORD,
        json!({"c": ada, "i": {"purpose": "MARKETING", "status": "GRANTED"}}),
    )
    .await;
    let url = app
        .ok(
            &key,
            "query($c: ID!) { contact(id: $c) { unsubscribeUrl } }",
            json!({"c": ada}),
        )
        .await["contact"]["unsubscribeUrl"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        url.starts_with("http://") && url.contains("/unsubscribe?token="),
        "{url}"
    );
    let token = token_of(&url);
    let http = reqwest::Client::new();
    let link = format!("{}/unsubscribe?token={token}", app.base);

    // A GET (a mail scanner, a preview) shows a button and changes nothing.
    let page = http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<form method=\"post\""));
    let p = app.ok(&key, PERMISSION, json!({"c": ada})).await["contact"].clone();
    assert_eq!(p["marketing"]["allowed"], true);

    // RFC 8058 one-click: a POST withdraws at once, with the proof kept.
    let done = http
        .post(&link)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("User-Agent", "MailClient/1.0")
        // What the client wrote itself (6.6.6.6) is ignored; our proxy (the test, on
        // loopback) saw 198.51.100.4.
        .header("X-Forwarded-For", "6.6.6.6, 198.51.100.4")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let q = "query($c: ID!) { contact(id: $c) { emailPermission(purpose: MARKETING) { allowed reason } consentHistory { status source ip userAgent } } }";
    let after = app.ok(&key, q, json!({"c": ada})).await["contact"].clone();
    assert_eq!(after["emailPermission"]["allowed"], false);
    let last = after["consentHistory"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        last,
        json!({"status": "WITHDRAWN", "source": "unsubscribe link", "ip": "198.51.100.4", "userAgent": "MailClient/1.0"})
    );
    // Twice is the same as once.
    assert_eq!(http.post(&link).send().await.unwrap().status(), 200);
    let again = app.ok(&key, q, json!({"c": ada})).await["contact"].clone();
    assert_eq!(again["consentHistory"].as_array().unwrap().len(), 2);

    // An altered link is refused and records nothing.
    let (body, mac) = token.split_once('.').unwrap();
    let flipped: String = mac
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i == 0 {
                if c == 'A' { 'B' } else { 'A' }
            } else {
                c
            }
        })
        .collect();
    for bad in [
        format!("{body}.{flipped}"),
        "garbage".to_string(),
        format!("{body}x.{mac}"),
    ] {
        let r = http
            .post(format!("{}/unsubscribe?token={bad}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    let unchanged = app.ok(&key, q, json!({"c": ada})).await["contact"].clone();
    assert_eq!(unchanged["consentHistory"].as_array().unwrap().len(), 2);

    // Double opt-in: pending until the person follows the link.
    let grace = contact(&app, &key, "grace@example.com").await;
    let req = app
        .ok(
            &key,
            "mutation($c: ID!) { requestConsent(contactId: $c, source: \"signup form\") { consent { status } confirmUrl } }",
            json!({"c": grace}),
        )
        .await;
    assert_eq!(req["requestConsent"]["consent"]["status"], "PENDING");
    let confirm = token_of(req["requestConsent"]["confirmUrl"].as_str().unwrap());
    let p = app.ok(&key, PERMISSION, json!({"c": grace})).await["contact"].clone();
    assert_eq!(p["marketing"]["reason"], "marketing consent is pending");
    // An unsubscribe token does not confirm anything.
    let wrong = http
        .get(format!("{}/consent/confirm?token={token}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 400);
    // Following the link (GET, as a mail scanner would) shows a button; its POST confirms.
    let page = http
        .get(format!("{}/consent/confirm?token={confirm}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<form method=\"post\""));
    let ok = http
        .post(format!("{}/consent/confirm?token={confirm}", app.base))
        .header("X-Forwarded-For", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let p = app.ok(&key, q, json!({"c": grace})).await["contact"].clone();
    assert_eq!(p["emailPermission"]["allowed"], true);
    let last = p["consentHistory"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["status"], "GRANTED");
    assert_eq!(last["source"], "double opt-in confirmation");
    assert_eq!(last["ip"], "203.0.113.9");
}

mod confirmation_email {
    use rapport_tests::{Backend, SmtpServer, TestApp};
    use serde_json::json;

    async fn sent_over_smtp(backend: Backend) {
        let smtp = SmtpServer::start();
        let config = rapport_api::server::Config {
            public_url: "https://crm.example".into(),
            mail: Some(rapport_api::graphql::Mail {
                mailer: rapport_engine::platform::email::Mailer::configure(
                    Some(&smtp.url),
                    "unused".into(),
                )
                .unwrap(),
                from: rapport_engine::values::EmailAddress::parse("from", "hello@crm.example")
                    .unwrap(),
            }),
            ..Default::default()
        };
        let app = TestApp::spawn_with(backend, config).await;
        let key = app.workspace("Mail").await;
        let ada = super::contact(&app, &key, "ada@example.com").await;
        let q = "mutation($c: ID!) { requestConsent(contactId: $c) { confirmUrl emailSent notSentBecause } }";
        let r = app.ok(&key, q, json!({"c": ada})).await["requestConsent"].clone();
        assert_eq!(r["emailSent"], true, "{r}");
        let url = r["confirmUrl"].as_str().unwrap();
        assert!(url.starts_with("https://crm.example/consent/confirm?token="));
        // What the SMTP server received: one message, to Ada, with both parts and the link.
        let received = smtp.received();
        assert_eq!(received.len(), 1, "{received:?}");
        let raw = &received[0];
        assert!(raw.contains("To: ada@example.com"), "{raw}");
        assert!(raw.contains("From: hello@crm.example"), "{raw}");
        assert!(raw.contains("Subject: Please confirm your subscription"));
        assert!(raw.contains("Message-ID: <") && raw.contains("@crm.example>"));
        assert!(raw.contains("text/plain") && raw.contains("text/html"));
        let unfolded = raw
            .replace("=\r\n", "")
            .replace("=\n", "")
            .replace("=3D", "=");
        assert!(unfolded.contains(url), "the link is in the message");
        // A suppressed address gets nothing, and the caller is told why.
        let grace = super::contact(&app, &key, "grace@example.com").await;
        app.ok(
            &key,
            "mutation { suppressEmail(email: \"grace@example.com\", reason: HARD_BOUNCE) { id } }",
            json!({}),
        )
        .await;
        let r = app.ok(&key, q, json!({"c": grace})).await["requestConsent"].clone();
        assert_eq!(r["emailSent"], false);
        assert_eq!(
            r["notSentBecause"],
            "the address is suppressed (hard_bounce)"
        );
        assert_eq!(smtp.received().len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        sent_over_smtp(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        sent_over_smtp(Backend::Postgres).await;
    }
}

async fn bounce_webhook_suppresses(app: TestApp) {
    let key = app.workspace("Bounces").await;
    let ada = contact(&app, &key, "ada@example.com").await;
    app.ok(
        &key,
        RECORD,
        json!({"c": ada, "i": {"purpose": "MARKETING", "status": "GRANTED"}}),
    )
    .await;
    let http = reqwest::Client::new();
    let url = format!("{}/webhooks/bounce", app.base);
    let post = |body: Value, key: Option<String>| {
        let mut req = http.post(&url).json(&body);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let k = || Some(key.clone());
    assert_eq!(
        post(json!({"email": "ada@example.com", "type": "soft"}), None)
            .await
            .0,
        401
    );
    // Soft bounces count up; the third suppresses.
    for n in 1..=3 {
        let (status, body) = post(
            json!({"email": "ADA@example.com", "type": "soft", "status": "4.2.2"}),
            k(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["results"][0]["softBounces"], n);
        assert_eq!(body["results"][0]["suppressed"], n == 3, "{body}");
    }
    let p = app.ok(&key, PERMISSION, json!({"c": ada})).await["contact"].clone();
    assert_eq!(
        p["marketing"]["reason"],
        "the address is suppressed (hard_bounce)"
    );
    // A complaint suppresses at once.
    let (_, body) = post(
        json!({"email": "grace@example.com", "type": "complaint"}),
        k(),
    )
    .await;
    assert_eq!(body["results"][0]["suppressed"], true);
    let s = app
        .ok(
            &key,
            "{ suppression(email: \"grace@example.com\") { reason } }",
            json!({}),
        )
        .await;
    assert_eq!(s["suppression"]["reason"], "COMPLAINT");
    // A delivery status notification: the failed recipient is suppressed, the delayed
    // one counted, the delivered one ignored.
    let dsn = "Reporting-MTA: dns; mx.example.net\n\nFinal-Recipient: rfc822; linus@example.com\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 no such user\n\nFinal-Recipient: rfc822; ken@example.com\nAction: delayed\nStatus: 4.4.1\n\nFinal-Recipient: rfc822; dennis@example.com\nAction: delivered\nStatus: 2.0.0\n";
    let (status, body) = post(json!({"dsn": dsn}), k()).await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["suppressed"], true);
    assert_eq!(results[1]["suppressed"], false);
    assert_eq!(results[1]["softBounces"], 1);
    // Bad input: a clear 400, nothing recorded.
    for bad in [
        json!({"email": "not an address", "type": "hard"}),
        json!({"email": "a@example.com", "type": "bouncy"}),
        json!({"unexpected": 1}),
        json!({"dsn": "nothing useful"}),
    ] {
        let (status, body) = post(bad.clone(), k()).await;
        assert_eq!(status, 400, "{bad} -> {body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "VALIDATION");
    }
    let reader = app
        .ok(
            &key,
            "mutation { createApiKey(name: \"r\", scopes: [READ]) { key } }",
            json!({}),
        )
        .await["createApiKey"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = post(
        json!({"email": "z@example.com", "type": "hard"}),
        Some(reader),
    )
    .await;
    assert_eq!(status, 403);
    let none = app
        .ok(
            &key,
            "{ suppression(email: \"z@example.com\") { reason } }",
            json!({}),
        )
        .await;
    assert!(none["suppression"].is_null());
}

/// `emailPermission` in a filter picks exactly the contacts the send-time check would
/// email: consent as the purpose needs it, an address, not suppressed (also when the
/// address was suppressed before the contact existed, or after an email change).
async fn email_permission_filter_matches_the_send_time_check(app: TestApp) {
    let key = app.workspace("Permission").await;
    app.ok(
        &key,
        "mutation { suppressEmail(email: \"early@example.com\", reason: COMPLAINT) { createdAt } }",
        json!({}),
    )
    .await;
    let mut ids = std::collections::BTreeMap::new();
    for who in [
        "granted",
        "suppressed",
        "norecord",
        "withdrawn",
        "denied",
        "early",
        "moved",
    ] {
        ids.insert(
            who,
            contact(&app, &key, &format!("{who}@example.com")).await,
        );
    }
    let nameless = app
        .ok(
            &key,
            "mutation { createContact(input: {firstName: \"NoMail\"}) { id } }",
            json!({}),
        )
        .await["createContact"]["id"]
        .clone();
    let record = |who: &'static str, purpose: &'static str, status: &'static str| {
        let (app, key, id) = (&app, &key, ids[who].clone());
        async move {
            app.ok(
                key,
                RECORD,
                json!({"c": id, "i": {"purpose": purpose, "status": status}}),
            )
            .await;
        }
    };
    for who in ["granted", "suppressed", "early", "moved"] {
        record(who, "MARKETING", "GRANTED").await;
    }
    record("withdrawn", "MARKETING", "GRANTED").await;
    record("withdrawn", "MARKETING", "WITHDRAWN").await;
    record("denied", "TRANSACTIONAL", "DENIED").await;
    app.ok(
        &key,
        "mutation { suppressEmail(email: \"suppressed@example.com\") { createdAt } }",
        json!({}),
    )
    .await;
    app.ok(
        &key,
        "mutation { suppressEmail(email: \"blocked@example.com\") { createdAt } }",
        json!({}),
    )
    .await;
    app.ok(
        &key,
        "mutation($c: ID!) { updateContact(id: $c, input: {email: \"blocked@example.com\"}) { id } }",
        json!({"c": ids["moved"]}),
    )
    .await;
    for (purpose, want) in [
        ("MARKETING", vec!["granted"]),
        ("TRANSACTIONAL", vec!["granted", "norecord", "withdrawn"]),
    ] {
        let filtered = app
            .ok(
                &key,
                "query($p: ConsentPurpose!) { contacts(first: 50, filter: {emailPermission: $p}) { nodes { id } } }",
                json!({"p": purpose}),
            )
            .await;
        let mut got: Vec<&str> = filtered["contacts"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                ids.iter()
                    .find(|(_, id)| **id == n["id"])
                    .map(|(who, _)| *who)
                    .unwrap_or("nameless")
            })
            .collect();
        got.sort();
        assert_eq!(got, want, "{purpose}");
        // The same set the per-contact send-time check allows.
        for (who, id) in ids
            .iter()
            .map(|(w, i)| (*w, i.clone()))
            .chain([("nameless", nameless.clone())])
        {
            let allowed = app
                .ok(
                    &key,
                    "query($c: ID!, $p: ConsentPurpose!) { contact(id: $c) { emailPermission(purpose: $p) { allowed } } }",
                    json!({"c": id, "p": purpose}),
                )
                .await["contact"]["emailPermission"]["allowed"]
                .as_bool()
                .unwrap_or(false);
            assert_eq!(allowed, want.contains(&who), "{purpose} {who}");
        }
    }
}

//! What marketers and plugin authors see while they write, through GraphQL over HTTP: a
//! draft template previewed with its errors on their line, the variables on offer, whom a
//! campaign would reach and why the rest are skipped (checked against the real send), a
//! test send that reaches only the typed address, which campaigns and sequences use a
//! segment, and a plugin's sample run and score spread.

use rapport_tests::{
    Backend, SmtpServer, TestApp, both_backends, component, header, plugin_cache, repo_file,
};
use serde_json::{Value, json};

both_backends!(
    draft_previews_pin_errors_to_their_line,
    reach_says_whom_a_send_skips_and_the_send_agrees,
    segments_say_what_uses_them,
    plugins_report_their_sample_run_and_score_spread,
    costly_reads_cost_what_they_do,
);

const PREVIEW: &str = "query($i: EmailTemplateInput!, $c: ID!) { previewEmailTemplate(input: $i, contactId: $c) { subject html text } }";

async fn contact(app: &TestApp, key: &str, input: Value) -> String {
    app.ok(
        key,
        "mutation($i: ContactInput!) { createContact(input: $i) { id } }",
        json!({"i": input}),
    )
    .await["createContact"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The first error's code, field and line.
async fn error_of(
    app: &TestApp,
    key: &str,
    query: &str,
    variables: Value,
) -> (String, String, Value) {
    let (_, body) = app.post(Some(key), query, variables).await;
    let e = &body["errors"][0];
    assert!(!e.is_null(), "expected an error, got {body}");
    (
        e["extensions"]["code"].as_str().unwrap_or_default().into(),
        e["extensions"]["field"].as_str().unwrap_or_default().into(),
        e["extensions"]["line"].clone(),
    )
}

async fn draft_previews_pin_errors_to_their_line(app: TestApp) {
    let key = app.workspace("Drafts").await;
    let ada = contact(
        &app,
        &key,
        json!({"firstName": "Ada", "lastName": "Byron", "email": "ada@example.com"}),
    )
    .await;
    let good = json!({
        "subject": "Hi {{ contact.first_name }}",
        "html": "<p>Hello {{ contact.first_name }}</p>\n<p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p>",
        "text": "Hello {{ contact.first_name }}",
    });
    let out =
        app.ok(&key, PREVIEW, json!({"i": good, "c": ada})).await["previewEmailTemplate"].clone();
    assert_eq!(out["subject"], "Hi Ada");
    assert!(out["html"].as_str().unwrap().contains("Hello Ada"), "{out}");
    // The preview's links are placeholders: a preview never mints a working unsubscribe.
    assert!(
        out["html"].as_str().unwrap().contains("token=preview"),
        "{out}"
    );

    // A syntax error on the third line of the HTML.
    let mut broken = good.clone();
    broken["html"] = json!("<p>one</p>\n<p>two</p>\n<p>{% if contact.first_name %}three</p>");
    let (code, field, line) = error_of(&app, &key, PREVIEW, json!({"i": broken, "c": ada})).await;
    assert_eq!((code.as_str(), field.as_str()), ("VALIDATION", "html"));
    assert_eq!(line, json!(3));

    // An unknown variable on the second line of the text.
    let mut unknown = good.clone();
    unknown["text"] = json!("Hello\n{{ contact.nickname }}\nBye");
    let (code, field, line) = error_of(&app, &key, PREVIEW, json!({"i": unknown, "c": ada})).await;
    assert_eq!((code.as_str(), field.as_str()), ("VALIDATION", "text"));
    assert_eq!(line, json!(2));

    // A contact of another workspace is not found, and a read key previews too (it reads).
    let other = app.workspace("Elsewhere").await;
    let theirs = contact(&app, &other, json!({"firstName": "Eve", "lastName": "X"})).await;
    let (code, _, _) = error_of(&app, &key, PREVIEW, json!({"i": good, "c": theirs})).await;
    assert_eq!(code, "NOT_FOUND");
    let read = app.scoped_key(&key, "READ").await;
    app.ok(&read, PREVIEW, json!({"i": good, "c": ada})).await;

    let vars = app.ok(&key, "{ emailTemplateVariables }", json!({})).await;
    let vars: Vec<&str> = vars["emailTemplateVariables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for v in [
        "contact.first_name",
        "company.name",
        "lead_score.grade",
        "unsubscribe_url",
    ] {
        assert!(vars.contains(&v), "{v} missing from {vars:?}");
    }
}

async fn reach_says_whom_a_send_skips_and_the_send_agrees(app: TestApp) {
    let smtp = SmtpServer::start();
    let key = app.workspace("Reach").await;
    let topic = app
        .ok(
            &key,
            "mutation { createEmailTopic(input: {key: \"news\", name: \"News\"}) { id } }",
            json!({}),
        )
        .await["createEmailTopic"]["id"]
        .clone();
    // 0–3 consented, 4 withdrew, 5 never asked, 6 has no address; 3 is suppressed and 2
    // opted out of the topic. So 0 and 1 receive it.
    let mut ids = Vec::new();
    for i in 0..7 {
        let email = (i != 6).then(|| format!("r{i}@reach.example"));
        ids.push(contact(&app, &key, json!({"firstName": format!("R{i}"), "lastName": "X", "email": email, "tags": ["reach"]})).await);
    }
    for (i, status) in [
        (0, "GRANTED"),
        (1, "GRANTED"),
        (2, "GRANTED"),
        (3, "GRANTED"),
        (4, "GRANTED"),
        (4, "WITHDRAWN"),
    ] {
        app.ok(
            &key,
            "mutation($c: ID!, $s: ConsentStatus!) { recordConsent(contactId: $c, input: {purpose: MARKETING, status: $s}) { id } }",
            json!({"c": ids[i], "s": status}),
        )
        .await;
    }
    app.ok(
        &key,
        "mutation { suppressEmail(email: \"r3@reach.example\") { reason } }",
        json!({}),
    )
    .await;
    app.ok(
        &key,
        "mutation($c: ID!) { setTopicPreference(contactId: $c, topic: \"news\", subscribed: false) { subscribed } }",
        json!({"c": ids[2]}),
    )
    .await;
    let seg = app
        .ok(&key, "mutation { createSegment(input: {name: \"reach\", filter: {tags: {has: \"reach\"}}}) { id } }", json!({}))
        .await["createSegment"]["id"]
        .clone();
    let c = app
        .ok(
            &key,
            "mutation($i: CampaignInput!) { createCampaign(input: $i) { id } }",
            json!({"i": {"name": "Reach", "segmentId": seg, "topicId": topic, "fromEmail": "news@shop.example",
                "variants": [{"name": "A", "subject": "Hi {{ contact.first_name }}", "html": "<p>Hi</p><a href=\"{{ unsubscribe_url }}\">u</a>", "text": "Hi {{ unsubscribe_url }}"}]}}),
        )
        .await["createCampaign"]["id"]
        .clone();
    let reach = app
        .ok(&key, "query($id: ID!) { campaign(id: $id) { reach { members willReceive noAddress suppressed noConsent topicOptedOut complete } } }", json!({"id": c}))
        .await["campaign"]["reach"]
        .clone();
    assert_eq!(
        reach,
        json!({"members": 7, "willReceive": 2, "noAddress": 1, "suppressed": 1, "noConsent": 2, "topicOptedOut": 1, "complete": true})
    );

    // The send does what the reach said.
    let workers = app.workers(&smtp.url);
    app.ok(
        &key,
        "mutation($id: ID!) { sendCampaign(id: $id) { id } }",
        json!({"id": c}),
    )
    .await;
    let stats = app
        .until(
            &key,
            "query($id: ID!) { campaign(id: $id) { status stats { sent skipped } } }",
            json!({"id": c}),
            30,
            |d| d["campaign"]["status"] == "SENT",
        )
        .await["campaign"]["stats"]
        .clone();
    assert_eq!(stats, json!({"sent": 2, "skipped": 5}));
    drop(workers);
}

async fn segments_say_what_uses_them(app: TestApp) {
    let key = app.workspace("Uses").await;
    let seg = app
        .ok(&key, "mutation { createSegment(input: {name: \"vip\", filter: {tags: {has: \"vip\"}}}) { id } }", json!({}))
        .await["createSegment"]["id"]
        .clone();
    let unused = app
        .ok(&key, "mutation { createSegment(input: {name: \"none\", filter: {tags: {has: \"none\"}}}) { id } }", json!({}))
        .await["createSegment"]["id"]
        .clone();
    app.ok(
        &key,
        "mutation($i: CampaignInput!) { createCampaign(input: $i) { id } }",
        json!({"i": {"name": "VIP offer", "segmentId": seg, "fromEmail": "news@shop.example",
            "variants": [{"name": "A", "subject": "Hi", "html": "<p>Hi</p>", "text": "Hi"}]}}),
    )
    .await;
    let segment_id: i64 = seg.as_str().unwrap().parse().unwrap();
    app.ok(
        &key,
        "mutation($d: JSON!) { createSequence(definition: $d) { id } }",
        json!({"d": {"name": "VIP welcome", "fromEmail": "news@shop.example", "start": "bye",
            "triggers": [{"kind": "segment", "segmentId": segment_id}],
            "steps": [{"id": "bye", "kind": "exit"}]}}),
    )
    .await;
    let uses = app
        .ok(
            &key,
            "{ segments { id usedBy { kind name status } } }",
            json!({}),
        )
        .await["segments"]
        .clone();
    let of = |id: &Value| {
        uses.as_array()
            .unwrap()
            .iter()
            .find(|s| &s["id"] == id)
            .unwrap()["usedBy"]
            .clone()
    };
    assert_eq!(
        of(&seg),
        json!([{"kind": "campaign", "name": "VIP offer", "status": "draft"}, {"kind": "sequence", "name": "VIP welcome", "status": "draft"}])
    );
    assert_eq!(of(&unused), json!([]));
}

async fn plugins_report_their_sample_run_and_score_spread(app: TestApp) {
    let key = app.workspace("Spread").await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(contact(&app, &key, json!({"firstName": format!("S{i}"), "lastName": "X", "email": format!("s{i}@spread.example")})).await);
    }
    let (_, registered) = app
        .upload(
            &key,
            "mutation($q: String!, $wasm: Upload!) { registerPlugin(name: \"engagement\", inputQuery: $q, wasm: $wasm) { events { kind message } } }",
            json!({"q": repo_file("plugins/examples/engagement-score/query.graphql")}),
            "wasm",
            component("engagement_score"),
        )
        .await;
    let events = &registered["data"]["registerPlugin"]["events"];
    assert_eq!(events[0]["kind"], "registered", "{registered}");
    let said = events[0]["message"].as_str().unwrap();
    assert!(
        said.starts_with(&format!(
            "version 1; sample run on contact {}: score ",
            ids[0]
        )),
        "{said}"
    );
    assert!(said.contains("fuel "), "{said}");
    app.ok(
        &key,
        "mutation($ids: [ID!]!) { runPlugins(contactIds: $ids) { scored } }",
        json!({"ids": ids}),
    )
    .await;
    let d = app
        .ok(
            &key,
            "{ plugin(name: \"engagement\") { scoreDistribution { count mean buckets } } }",
            json!({}),
        )
        .await["plugin"]["scoreDistribution"]
        .clone();
    assert_eq!(d["count"], 4, "{d}");
    let buckets: Vec<u64> = d["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap())
        .collect();
    assert_eq!(buckets.len(), 10);
    assert_eq!(buckets.iter().sum::<u64>(), 4);
    let mean = d["mean"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&mean), "{d}");
}

/// A test send goes to the typed address only, once per variant, rendered for the
/// segment's first contact, with links that do nothing; it needs write scope and the
/// address of a person of the workspace who is not suppressed, queues nothing, and a
/// workspace sends at most 30 an hour.
async fn test_sends(backend: Backend) {
    let smtp = SmtpServer::start();
    let config = rapport_api::server::Config {
        plugin_cache: Some(plugin_cache()),
        mail: Some(rapport_api::graphql::Mail {
            mailer: rapport_engine::platform::email::Mailer::configure(
                Some(&smtp.url),
                std::env::temp_dir().join("rapport-test-send-outbox"),
            )
            .unwrap(),
            from: rapport_engine::values::EmailAddress::parse("from", "crm@rapport.example")
                .unwrap(),
        }),
        ..Default::default()
    };
    let app = TestApp::spawn_with(backend, config).await;
    let key = app.workspace("Tests").await;
    // The marketer is a person of the workspace; test mail goes to people only.
    for (email, name) in [
        ("me@marketing.example", "Mia"),
        ("gone@marketing.example", "Gus"),
    ] {
        app.ok(
            &key,
            "mutation($e: String!, $n: String!) { createUser(input: {email: $e, name: $n, role: MEMBER}) { id } }",
            json!({"e": email, "n": name}),
        )
        .await;
    }
    app.ok(
        &key,
        "mutation { suppressEmail(email: \"gone@marketing.example\") { reason } }",
        json!({}),
    )
    .await;
    contact(&app, &key, json!({"firstName": "Grace", "lastName": "Hopper", "email": "grace@navy.example", "tags": ["t"]})).await;
    let seg = app
        .ok(
            &key,
            "mutation { createSegment(input: {name: \"t\", filter: {tags: {has: \"t\"}}}) { id } }",
            json!({}),
        )
        .await["createSegment"]["id"]
        .clone();
    let variant = |name: &str| json!({"name": name, "subject": format!("{name} for {{{{ contact.first_name }}}}"), "html": "<p>Hi {{ contact.first_name }}</p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a>", "text": "Hi {{ contact.first_name }} {{ unsubscribe_url }}"});
    let c = app
        .ok(
            &key,
            "mutation($i: CampaignInput!) { createCampaign(input: $i) { id } }",
            json!({"i": {"name": "T", "segmentId": seg, "fromEmail": "news@shop.example", "variants": [variant("A"), variant("B")],
                "abTest": {"testShare": 0.5, "waitMinutes": 60}}}),
        )
        .await["createCampaign"]["id"]
        .clone();
    const SEND: &str = "mutation($id: ID!, $to: String!) { sendCampaignTest(id: $id, to: $to) }";
    let sent = app
        .ok(&key, SEND, json!({"id": c, "to": "me@marketing.example"}))
        .await;
    assert_eq!(sent["sendCampaignTest"], 2);
    let got = smtp.received();
    assert_eq!(got.len(), 2, "{got:?}");
    let mut subjects: Vec<String> = got.iter().map(|m| header(m, "Subject").unwrap()).collect();
    subjects.sort();
    assert_eq!(subjects, ["[Test A] A for Grace", "[Test B] B for Grace"]);
    for m in &got {
        assert_eq!(header(m, "To").unwrap(), "me@marketing.example");
        assert!(
            m.contains("example.invalid"),
            "a test mail's links go nowhere: {m}"
        );
        assert!(
            !m.contains("/unsubscribe?token="),
            "no working unsubscribe link: {m}"
        );
    }
    let queued = app
        .ok(
            &key,
            "query($id: ID!) { campaign(id: $id) { status messages { id } } }",
            json!({"id": c}),
        )
        .await;
    assert_eq!(
        queued["campaign"],
        json!({"status": "DRAFT", "messages": []})
    );

    let read = app.scoped_key(&key, "READ").await;
    let (code, _) = app
        .err(&read, SEND, json!({"id": c, "to": "me@marketing.example"}))
        .await;
    assert_eq!(code, "FORBIDDEN");
    let (code, field, _) =
        error_of(&app, &key, SEND, json!({"id": c, "to": "not an address"})).await;
    assert_eq!((code.as_str(), field.as_str()), ("VALIDATION", "to"));
    // Not an open relay: strangers and suppressed colleagues get nothing.
    for to in ["victim@elsewhere.example", "gone@marketing.example"] {
        let (code, field, _) = error_of(&app, &key, SEND, json!({"id": c, "to": to})).await;
        assert_eq!(
            (code.as_str(), field.as_str()),
            ("VALIDATION", "to"),
            "{to}"
        );
    }
    assert_eq!(smtp.received().len(), 2);
    // And a few an hour: 30 messages in all (two per call), then RATE_LIMITED.
    for _ in 0..14 {
        app.ok(&key, SEND, json!({"id": c, "to": "me@marketing.example"}))
            .await;
    }
    let (code, _) = app
        .err(&key, SEND, json!({"id": c, "to": "me@marketing.example"}))
        .await;
    assert_eq!(code, "RATE_LIMITED");
    assert_eq!(smtp.received().len(), 30);
}

mod test_sends {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::test_sends(rapport_tests::Backend::Sqlite).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::test_sends(rapport_tests::Backend::Postgres).await;
    }
}

/// The reads that walk a segment or render a template are priced as what they do, so a
/// read key cannot fold hundreds of them into one request; what the console asks passes.
async fn costly_reads_cost_what_they_do(app: TestApp) {
    let key = app.workspace("Costs").await;
    let read = app.scoped_key(&key, "READ").await;
    let ada = contact(
        &app,
        &key,
        json!({"firstName": "Ada", "lastName": "B", "tags": ["t"]}),
    )
    .await;
    let seg = app
        .ok(
            &key,
            "mutation { createSegment(input: {name: \"t\", filter: {tags: {has: \"t\"}}}) { id } }",
            json!({}),
        )
        .await["createSegment"]["id"]
        .clone();
    let c = app
        .ok(
            &key,
            "mutation($i: CampaignInput!) { createCampaign(input: $i) { id } }",
            json!({"i": {"name": "C", "segmentId": seg, "fromEmail": "news@shop.example",
                "variants": [{"name": "A", "subject": "Hi", "html": "<p>Hi</p>", "text": "Hi"}]}}),
        )
        .await["createCampaign"]["id"]
        .clone();
    let complex = |body: &Value| {
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("complex"))
    };
    // Every campaign's reach in one list: refused before any is counted.
    let (_, body) = app
        .post(
            Some(&read),
            "{ campaigns { reach { members } } }",
            json!({}),
        )
        .await;
    assert!(complex(&body), "{body}");
    // Many aliased reaches or previews: refused too.
    let reaches: String = (0..5)
        .map(|i| format!("r{i}: campaign(id: $c) {{ reach {{ members }} }} "))
        .collect();
    let (_, body) = app
        .post(
            Some(&read),
            &format!("query($c: ID!) {{ {reaches} }}"),
            json!({"c": c}),
        )
        .await;
    assert!(complex(&body), "{body}");
    let previews: String = (0..60)
        .map(|i| format!("p{i}: previewEmailTemplate(input: $i, contactId: $c) {{ subject }} "))
        .collect();
    let (_, body) = app
        .post(
            Some(&read),
            &format!("query($i: EmailTemplateInput!, $c: ID!) {{ {previews} }}"),
            json!({"i": {"subject": "Hi", "html": "<p>Hi</p>", "text": "Hi"}, "c": ada}),
        )
        .await;
    assert!(complex(&body), "{body}");
    // One reach, the list without it, and one preview are what the console asks: fine.
    app.ok(
        &read,
        "query($c: ID!) { campaign(id: $c) { reach { members willReceive } } }",
        json!({"c": c}),
    )
    .await;
    app.ok(&read, "{ campaigns { id name status segment { name } stats { recipients sent openRate clickRate } } }", json!({})).await;
    app.ok(
        &read,
        PREVIEW,
        json!({"i": {"subject": "Hi", "html": "<p>Hi</p>", "text": "Hi"}, "c": ada}),
    )
    .await;
    // A template source past its bound is refused before it is parsed.
    let huge = "x".repeat(300 * 1024);
    let (code, field, _) = error_of(
        &app,
        &key,
        PREVIEW,
        json!({"i": {"subject": "Hi", "html": huge, "text": "Hi"}, "c": ada}),
    )
    .await;
    assert_eq!((code.as_str(), field.as_str()), ("VALIDATION", "html"));
}

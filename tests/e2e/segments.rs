//! The audience and content of campaigns: segments (saved filters whose members are
//! evaluated on every read) and email templates (checked on save, previewed per contact).

use rapport_tests::TestApp;
use rapport_tests::both_backends;
use serde_json::json;

both_backends!(
    segments_are_live_saved_filters,
    segments_see_events_orders_and_consent,
    templates_are_checked_on_save,
    typed_fields_compare_by_type
);

async fn segments_are_live_saved_filters(app: TestApp) {
    let key = app.workspace("Segments").await;
    let people: Vec<_> = (0..12)
        .map(|i| {
            json!({
                "email": format!("p{i}@example.com"),
                "firstName": format!("P{i}"),
                "lastName": "Example",
                "lifecycleStage": if i % 2 == 0 { "CUSTOMER" } else { "LEAD" },
                "tags": if i % 3 == 0 { json!(["vip"]) } else { json!([]) },
            })
        })
        .collect();
    app.ok(
        &key,
        "mutation($c: [ContactInput!]!) { bulkUpsertContacts(contacts: $c) { created } }",
        json!({"c": people}),
    )
    .await;
    // Customers tagged vip: 0, 6 (every 6th of 0..12).
    let created = app
        .ok(
            &key,
            "mutation { createSegment(input: {name: \"VIP customers\", description: \"for the launch\", filter: {lifecycleStage: {eq: CUSTOMER}, tags: {has: \"vip\"}}}) { id name filter preview(sample: 5) { count sample { email } } } }",
            json!({}),
        )
        .await;
    let segment = &created["createSegment"];
    assert_eq!(segment["preview"]["count"], 2);
    let mut sample: Vec<&str> = segment["preview"]["sample"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["email"].as_str().unwrap())
        .collect();
    sample.sort();
    assert_eq!(sample, ["p0@example.com", "p6@example.com"]);
    let id = segment["id"].clone();

    // Membership is evaluated on read: a new VIP customer is in at once.
    app.ok(
        &key,
        "mutation { createContact(input: {email: \"new@example.com\", firstName: \"N\", lastName: \"New\", lifecycleStage: CUSTOMER, tags: [\"vip\"]}) { id } }",
        json!({}),
    )
    .await;
    let q = "query($id: ID!) { segment(id: $id) { preview { count } contacts(first: 10) { totalCount edges { node { email } } } } }";
    let now = app.ok(&key, q, json!({"id": id})).await;
    assert_eq!(now["segment"]["preview"]["count"], 3);
    assert_eq!(now["segment"]["contacts"]["totalCount"], 3);

    // Changing the filter changes the members.
    app.ok(
        &key,
        "mutation($id: ID!) { updateSegment(id: $id, input: {filter: {lifecycleStage: {eq: LEAD}}}) { id } }",
        json!({"id": id}),
    )
    .await;
    let leads = app.ok(&key, q, json!({"id": id})).await;
    assert_eq!(leads["segment"]["preview"]["count"], 6);

    // Bad input is refused with a clear code; other workspaces see nothing.
    let (code, _) = app
        .err(
            &key,
            "mutation { createSegment(input: {name: \"x\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "VALIDATION");
    let (code, _) = app
        .err(
            &key,
            "mutation { createSegment(input: {name: \"\", filter: {}}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "VALIDATION");
    let (code, _) = app
        .err(
            &key,
            "mutation { createSegment(input: {name: \"x\", filter: {nope: 1}}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "VALIDATION");
    let other = app.workspace("Other").await;
    let (code, _) = app.err(&other, q, json!({"id": id})).await;
    assert_eq!(code, "NOT_FOUND");

    app.ok(
        &key,
        "mutation($id: ID!) { deleteSegment(id: $id) }",
        json!({"id": id}),
    )
    .await;
    let list = app.ok(&key, "{ segments { id } }", json!({})).await;
    assert_eq!(list["segments"], json!([]));
}

async fn templates_are_checked_on_save(app: TestApp) {
    let key = app.workspace("Templates").await;
    let ada = app
        .ok(
            &key,
            "mutation { createCompany(input: {name: \"Analytical Engines\", domain: \"engines.example\"}) { id } }",
            json!({}),
        )
        .await["createCompany"]["id"]
        .clone();
    let ada = app
        .ok(
            &key,
            "mutation($co: ID!) { createContact(input: {email: \"ada@example.com\", firstName: \"Ada\", lastName: \"Lovelace\", companyId: $co, attributes: {plan: \"<pro>\"}}) { id } }",
            json!({"co": ada}),
        )
        .await["createContact"]["id"]
        .clone();
    let nameless = app
        .ok(&key, "mutation { createContact(input: {email: \"x@example.com\", firstName: \"\", lastName: \"X\"}) { id } }", json!({}))
        .await["createContact"]["id"]
        .clone();
    let t = app
        .ok(
            &key,
            "mutation($i: EmailTemplateInput!) { createEmailTemplate(input: $i) { id name } }",
            json!({"i": {
                "name": "Welcome",
                "subject": "Welcome, {{ contact.first_name | default('there') }}",
                "html": "<p>{{ company.name | default('') }} on {{ contact.attributes.plan }}</p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a>",
                "text": "Hello {{ contact.name }}. Unsubscribe: {{ unsubscribe_url }}"
            }}),
        )
        .await;
    let id = t["createEmailTemplate"]["id"].clone();
    let q = "query($t: ID!, $c: ID!) { emailTemplate(id: $t) { preview(contactId: $c) { subject html text } } }";
    let p = app.ok(&key, q, json!({"t": id, "c": ada})).await["emailTemplate"]["preview"].clone();
    assert_eq!(p["subject"], "Welcome, Ada");
    assert!(
        p["html"]
            .as_str()
            .unwrap()
            .starts_with("<p>Analytical Engines on &lt;pro&gt;</p>"),
        "{p}"
    );
    assert!(
        p["text"].as_str().unwrap().contains("/unsubscribe?token="),
        "{p}"
    );
    let fallback = app.ok(&key, q, json!({"t": id, "c": nameless})).await;
    assert_eq!(
        fallback["emailTemplate"]["preview"]["subject"],
        "Welcome, there"
    );

    // A typo or a syntax error is refused when saved, naming the part and the variable.
    let bad = |subject: &str| json!({"i": {"name": "Bad", "subject": subject, "text": "x"}});
    let create = "mutation($i: EmailTemplateInput!) { createEmailTemplate(input: $i) { id } }";
    let (code, message) = app
        .err(&key, create, bad("Hi {{ contact.frist_name }}"))
        .await;
    assert_eq!(code, "VALIDATION");
    assert!(
        message.contains("unknown variable 'contact.frist_name'"),
        "{message}"
    );
    let (code, message) = app
        .err(&key, create, bad("Hi {{ contact.first_name "))
        .await;
    assert_eq!(code, "VALIDATION");
    assert!(message.contains("does not parse"), "{message}");
    let (_, message) = app
        .err(&key, "mutation($id: ID!) { updateEmailTemplate(id: $id, input: {html: \"{{ password }}\"}) { id } }", json!({"id": id}))
        .await;
    assert!(message.contains("unknown variable 'password'"), "{message}");
    // The saved template is unchanged by the refused update.
    let still = app.ok(&key, q, json!({"t": id, "c": ada})).await;
    assert_eq!(still["emailTemplate"]["preview"]["subject"], "Welcome, Ada");
    let other = app.workspace("Other").await;
    let (code, _) = app.err(&other, q, json!({"t": id, "c": ada})).await;
    assert_eq!(code, "NOT_FOUND");
}

/// A segment of "visited in the last week, no order in 30 days, marketing consent
/// granted", built from what the API recorded, equals the set the test computes from the
/// same facts; a query's filter and the saved segment agree.
async fn segments_see_events_orders_and_consent(app: TestApp) {
    let key = app.workspace("Behaviour").await;
    let days_ago = |d: i64| (chrono::Utc::now() - chrono::Duration::days(d)).to_rfc3339();
    // Visits this week, an order placed so many days ago with its status, and the consent
    // records in the order they were given.
    type Facts = (usize, Option<(i64, &'static str)>, &'static [&'static str]);
    let facts: [Facts; 6] = [
        (2, None, &["GRANTED"]),
        (1, Some((10, "PAID")), &["GRANTED", "WITHDRAWN"]),
        (0, Some((40, "PAID")), &["GRANTED"]),
        (3, None, &[]),
        (1, Some((5, "CANCELLED")), &["GRANTED"]),
        (1, Some((45, "FULFILLED")), &["WITHDRAWN", "GRANTED"]),
    ];
    let mut ids = Vec::new();
    for (i, (visits, order, consent)) in facts.iter().enumerate() {
        let created = app
            .ok(
                &key,
                "mutation($e: String!) { createContact(input: {email: $e}) { id } }",
                json!({"e": format!("b{i}@example.com")}),
            )
            .await;
        let id = created["createContact"]["id"].as_str().unwrap().to_string();
        for _ in 0..*visits {
            app.ok(
                &key,
                "mutation($c: ID!, $at: DateTime!) { trackEvent(contactId: $c, type: \"visit\", occurredAt: $at) { id } }",
                json!({"c": id, "at": days_ago(1)}),
            )
            .await;
        }
        if let Some((ago, status)) = order {
            app.ok(
                &key,
                &format!("mutation($c: ID!, $at: DateTime!) {{ createOrder(input: {{contactId: $c, placedAt: $at, status: {status}, currency: \"EUR\", lines: [{{quantity: 1, unitPrice: 20}}]}}) {{ id }} }}"),
                json!({"c": id, "at": days_ago(*ago)}),
            )
            .await;
        }
        for status in consent.iter() {
            app.ok(
                &key,
                &format!("mutation($c: ID!) {{ recordConsent(contactId: $c, input: {{purpose: MARKETING, status: {status}}}) {{ id }} }}"),
                json!({"c": id}),
            )
            .await;
        }
        ids.push(id);
    }
    let expected: Vec<String> = facts
        .iter()
        .zip(&ids)
        .filter(|((visits, order, consent), _)| {
            *visits >= 1
                && !order.is_some_and(|(ago, status)| ago <= 30 && status != "CANCELLED")
                && consent.last() == Some(&"GRANTED")
        })
        .map(|(_, id)| id.clone())
        .collect();
    assert_eq!(expected, [ids[0].clone(), ids[4].clone(), ids[5].clone()]);

    let filter = "{events: [{type: \"visit\", withinDays: 7}], orders: {withinDays: 30, count: {eq: 0}}, consent: [{purpose: MARKETING, status: {eq: GRANTED}}]}";
    let listed = app
        .ok(
            &key,
            &format!("{{ contacts(first: 50, filter: {filter}) {{ totalCount edges {{ node {{ id }} }} }} }}"),
            json!({}),
        )
        .await;
    let got: Vec<String> = listed["contacts"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, expected);
    let saved = app
        .ok(
            &key,
            &format!("mutation {{ createSegment(input: {{name: \"Warm, no recent order\", filter: {filter}}}) {{ preview(sample: 10) {{ count sample {{ id }} }} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(saved["createSegment"]["preview"]["count"], expected.len());

    // Out-of-range days are refused before any query runs.
    let (code, _) = app
        .err(
            &key,
            "{ contacts(filter: {orders: {withinDays: 0}}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "VALIDATION");
}

/// Declared fields are checked on write and compared by type: 100 seats is more than 9
/// (as text it sorts before), dates by date, options by membership.
async fn typed_fields_compare_by_type(app: TestApp) {
    let key = app.workspace("Fields").await;
    let person = |i: usize, attributes: serde_json::Value| json!({"email": format!("f{i}@example.com"), "firstName": format!("F{i}"), "attributes": attributes});
    app.ok(
        &key,
        "mutation($c: [ContactInput!]!) { bulkUpsertContacts(contacts: $c) { created } }",
        json!({"c": [
            person(0, json!({"seats": 9, "renewal": "2027-01-15", "active": true, "modules": ["crm"]})),
            person(1, json!({"seats": 100, "renewal": "2026-12-31", "active": false, "modules": ["crm", "mail"]})),
            person(2, json!({"seats": 25, "modules": ["ai"]})),
            person(3, json!({"seats": "many"})),
            person(4, json!({})),
        ]}),
    )
    .await;
    let declare = "mutation($i: CustomFieldInput!) { createCustomField(input: $i) { id key label kind options } }";
    // A value that does not fit is named, and nothing is declared.
    let (code, message) = app
        .err(
            &key,
            declare,
            json!({"i": {"key": "seats", "label": "Seats", "kind": "NUMBER"}}),
        )
        .await;
    assert_eq!(code, "VALIDATION");
    assert!(
        message.contains("1 contact(s)") && message.contains("\"many\""),
        "{message}"
    );
    let fields = app.ok(&key, "{ customFields { key } }", json!({})).await;
    assert_eq!(fields["customFields"], json!([]));
    app.ok(
        &key,
        "mutation($i: [ContactInput!]!) { bulkUpsertContacts(contacts: $i) { created } }",
        json!({"i": [{"email": "f3@example.com", "attributes": {"seats": 3}}]}),
    )
    .await;
    for input in [
        json!({"key": "seats", "label": "Seats", "kind": "NUMBER"}),
        json!({"key": "renewal", "kind": "DATE"}),
        json!({"key": "active", "kind": "BOOLEAN"}),
        json!({"key": "modules", "kind": "MULTI_SELECT", "options": ["crm", "mail", "ai"]}),
    ] {
        app.ok(&key, declare, json!({"i": input})).await;
    }
    let fields = app
        .ok(&key, "{ customFields { key kind options } }", json!({}))
        .await;
    assert_eq!(
        fields["customFields"][1],
        json!({"key": "modules", "kind": "MULTI_SELECT", "options": ["crm", "mail", "ai"]})
    );

    // Writes are checked against the declarations, naming the attribute.
    let (code, message) = app
        .err(
            &key,
            "mutation { createContact(input: {email: \"bad@example.com\", attributes: {seats: \"lots\"}}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "VALIDATION");
    assert!(message.contains("attributes.seats"), "{message}");
    let (code, _) = app
        .err(
            &key,
            "mutation { createContact(input: {email: \"bad@example.com\", attributes: {modules: [\"fax\"]}}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "VALIDATION");

    let names = |filter: serde_json::Value| {
        let app = &app;
        let key = &key;
        async move {
            let data = app
                .ok(
                    key,
                    "query($f: ContactFilter) { contacts(first: 50, filter: $f, orderBy: {field: FIRST_NAME, direction: ASC}) { edges { node { firstName } } } }",
                    json!({"f": filter}),
                )
                .await;
            data["contacts"]["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"]["firstName"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    // As numbers, 100 and 25 are at least 10; as text, "100" and "25" are both below "9".
    assert_eq!(
        names(json!({"attributes": [{"key": "seats", "number": {"gte": 10}}]})).await,
        ["F1", "F2"]
    );
    assert_eq!(
        names(json!({"attributes": [{"key": "seats", "value": {"gte": "9"}}]})).await,
        ["F0"]
    );
    assert_eq!(
        names(json!({"attributes": [{"key": "seats", "number": {"isNull": true}}]})).await,
        ["F4"]
    );
    assert_eq!(
        names(json!({"attributes": [{"key": "renewal", "date": {"lt": "2027-01-01"}}]})).await,
        ["F1"]
    );
    assert_eq!(
        names(json!({"attributes": [{"key": "active", "boolean": true}]})).await,
        ["F0"]
    );
    assert_eq!(
        names(json!({"attributes": [{"key": "modules", "options": {"hasAll": ["crm", "mail"]}}]}))
            .await,
        ["F1"]
    );
    assert_eq!(
        names(json!({"attributes": [{"key": "modules", "options": {"hasAny": ["crm"], "hasNone": ["mail"]}}]})).await,
        ["F0"]
    );

    // Sorted by a typed field: numbers as numbers, dates in time, contacts without a value
    // last either way; pages follow on from their cursors.
    let sorted = |key_name: &'static str,
                  direction: &'static str,
                  first: i64,
                  after: Option<String>| {
        let app = &app;
        let key = &key;
        async move {
            let data = app
                .ok(
                    key,
                    "query($by: AttributeOrder, $first: Int, $after: String) { contacts(first: $first, after: $after, orderByAttribute: $by) { edges { node { firstName } } pageInfo { endCursor hasNextPage } } }",
                    json!({"by": {"key": key_name, "direction": direction}, "first": first, "after": after}),
                )
                .await;
            let names: Vec<String> = data["contacts"]["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"]["firstName"].as_str().unwrap().to_string())
                .collect();
            let end = data["contacts"]["pageInfo"]["endCursor"]
                .as_str()
                .map(String::from);
            (
                names,
                end,
                data["contacts"]["pageInfo"]["hasNextPage"]
                    .as_bool()
                    .unwrap(),
            )
        }
    };
    assert_eq!(
        sorted("seats", "ASC", 10, None).await.0,
        ["F3", "F0", "F2", "F1", "F4"]
    );
    assert_eq!(
        sorted("seats", "DESC", 10, None).await.0,
        ["F1", "F2", "F0", "F3", "F4"]
    );
    let (page, end, more) = sorted("seats", "ASC", 2, None).await;
    assert_eq!(
        (page.as_slice(), more),
        (&["F3".to_string(), "F0".to_string()][..], true)
    );
    let (page, _, more) = sorted("seats", "ASC", 10, end).await;
    assert_eq!(
        (page, more),
        (vec!["F2".to_string(), "F1".into(), "F4".into()], false)
    );
    assert_eq!(
        sorted("renewal", "ASC", 10, None).await.0[..2],
        ["F1", "F0"]
    );
    // orderBy breaks ties in the attribute's direction, whatever it says.
    let tied = app
        .ok(
            &key,
            "{ contacts(first: 10, orderByAttribute: {key: \"seats\", direction: DESC}, orderBy: [{field: FIRST_NAME}]) { edges { node { firstName } } } }",
            json!({}),
        )
        .await;
    assert_eq!(tied["contacts"]["edges"][0]["node"]["firstName"], "F1");
    // Only a declared field has an order.
    let (code, message) = app
        .err(
            &key,
            "{ contacts(orderByAttribute: {key: \"plan\"}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "VALIDATION");
    assert!(message.contains("not a declared custom field"), "{message}");
    // An update rewrites the typed copy.
    let f2 = app
        .ok(
            &key,
            "{ contacts(filter: {email: {eq: \"f2@example.com\"}}) { edges { node { id } } } }",
            json!({}),
        )
        .await["contacts"]["edges"][0]["node"]["id"]
        .clone();
    app.ok(
        &key,
        "mutation($id: ID!) { updateContact(id: $id, input: {attributes: {seats: 5}}) { id } }",
        json!({"id": f2}),
    )
    .await;
    assert_eq!(
        names(json!({"attributes": [{"key": "seats", "number": {"gte": 10}}]})).await,
        ["F1"]
    );
    // A segment saves typed conditions like any other.
    let segment = app
        .ok(
            &key,
            "mutation { createSegment(input: {name: \"Big accounts\", filter: {attributes: [{key: \"seats\", number: {gt: 50}}]}}) { preview(sample: 5) { count } } }",
            json!({}),
        )
        .await;
    assert_eq!(segment["createSegment"]["preview"]["count"], 1);
    // Every subquery a typed condition makes counts toward the filter's reads.
    let many: Vec<String> = (0..41).map(|i| format!("o{i}")).collect();
    let (code, message) = app
        .err(
            &key,
            "query($f: ContactFilter) { contacts(filter: $f) { totalCount } }",
            json!({"f": {"attributes": [{"key": "modules", "options": {"hasAll": many}}]}}),
        )
        .await;
    assert_eq!(code, "VALIDATION");
    assert!(message.contains("reads other records"), "{message}");
    // Two comparisons in one condition are refused.
    let (code, _) = app
        .err(
            &key,
            "{ contacts(filter: {attributes: [{key: \"seats\", number: {gt: 1}, value: {eq: \"1\"}}]}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "VALIDATION");
}

//! Console accounts through the real server: invitations and one-time links, sign-in with
//! lock-out, sessions with their CSRF token, roles, and workspaces kept apart.

use rapport_tests::{TestApp, both_backends};
use serde_json::{Value, json};

/// A signed-in browser, as the server sees it: the cookie's token and the CSRF token.
pub struct Session {
    pub token: String,
    pub csrf: String,
    pub user_id: String,
}

/// Invites `email` with `role` through the API, sets the password through the link (which
/// comes back when there is no mailer), and returns the session that opens.
pub async fn person(app: &TestApp, admin_key: &str, email: &str, role: &str) -> Session {
    let invited = app
        .ok(
            admin_key,
            "mutation($e: String!, $r: UserRole!) { inviteUser(email: $e, name: $e, role: $r) { emailed link emailError invitation { user { id } } } }",
            json!({"e": email, "r": role}),
        )
        .await;
    let token = match invited["inviteUser"]["link"].as_str() {
        Some(link) => {
            assert_eq!(invited["inviteUser"]["emailed"], false);
            link.split("token=").nth(1).unwrap().to_string()
        }
        // Emailed: a fresh link straight from the engine (the emailed one stops working).
        None => {
            use sea_orm::EntityTrait;
            let id: i64 = invited["inviteUser"]["invitation"]["user"]["id"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            let user = rapport_schema::user::Entity::find_by_id(id)
                .one(&app.db)
                .await
                .unwrap()
                .unwrap();
            rapport_engine::platform::accounts::issue_link(
                &app.db,
                &user,
                rapport_engine::platform::accounts::LinkPurpose::Invite,
                None,
            )
            .await
            .unwrap()
            .token
        }
    };
    let token = token.as_str();
    let (status, headers, body) = auth(
        app,
        "/auth/set-password",
        json!({"token": token, "password": "a long enough secret"}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    session_of(&headers, &body)
}

fn session_of(headers: &reqwest::header::HeaderMap, body: &Value) -> Session {
    let cookie = headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let token = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("rapport_session=")
        .to_string();
    Session {
        token,
        csrf: body["csrfToken"].as_str().unwrap().to_string(),
        user_id: body["user"]["id"].as_str().unwrap().to_string(),
    }
}

/// POSTs JSON to a sign-in route from `ip` (X-Forwarded-For; the tests stand in for the proxy).
pub async fn auth(
    app: &TestApp,
    path: &str,
    body: Value,
    ip: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}{path}", app.base))
        .json(&body);
    if let Some(ip) = ip {
        req = req.header("x-forwarded-for", ip);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap_or(Value::Null))
}

/// A GraphQL request with a session cookie and (when given) a CSRF header.
pub async fn as_session(
    app: &TestApp,
    s: &Session,
    csrf: Option<&str>,
    query: &str,
    variables: Value,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/graphql", app.base))
        .header("cookie", format!("rapport_session={}", s.token))
        .json(&json!({"query": query, "variables": variables}));
    if let Some(c) = csrf {
        req = req.header("x-csrf-token", c);
    }
    let resp = req.send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

async fn ok(app: &TestApp, s: &Session, query: &str, variables: Value) -> Value {
    let (status, body) = as_session(app, s, Some(&s.csrf), query, variables).await;
    assert!(body["errors"].is_null(), "{status}: {body}");
    body["data"].clone()
}

async fn refused(app: &TestApp, s: &Session, query: &str, variables: Value) -> String {
    let (_, body) = as_session(app, s, Some(&s.csrf), query, variables).await;
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error: {body}"))
        .to_string()
}

async fn a_link_signs_in_once_and_a_session_needs_its_csrf_token(app: TestApp) {
    let admin = app.workspace("Accounts").await;
    let invited = app
        .ok(&admin, "mutation { inviteUser(email: \"ada@example.com\", name: \"Ada\", role: MANAGER) { link invitation { id expired } } }", json!({}))
        .await;
    let link = invited["inviteUser"]["link"].as_str().unwrap().to_string();
    assert!(link.contains("/#/set-password?token=rl_"), "{link}");
    let token = link.split("token=").nth(1).unwrap();
    let pending = app
        .ok(&admin, "{ invitations { email role expired } }", json!({}))
        .await;
    assert_eq!(
        pending["invitations"],
        json!([{"email": "ada@example.com", "role": "MANAGER", "expired": false}])
    );

    // A short password is refused beside its field, and the link still works afterwards.
    let (status, _, body) = auth(
        &app,
        "/auth/set-password",
        json!({"token": token, "password": "short"}),
        None,
    )
    .await;
    assert_eq!(
        (status, body["errors"][0]["extensions"]["field"].as_str()),
        (400, Some("password")),
        "{body}"
    );
    let (status, headers, body) = auth(
        &app,
        "/auth/set-password",
        json!({"token": token, "password": "correct horse battery"}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let s = session_of(&headers, &body);
    assert_eq!(body["user"]["role"], "MANAGER");
    // Once only.
    let (status, _, body) = auth(
        &app,
        "/auth/set-password",
        json!({"token": token, "password": "another long secret"}),
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.to_string().contains("unknown, used or expired"),
        "{body}"
    );
    let pending = app.ok(&admin, "{ invitations { email } }", json!({})).await;
    assert_eq!(pending["invitations"], json!([]));

    // The cookie alone does nothing; with a wrong token neither; with its own it reads.
    let viewer = "{ viewer { scopes ownerBound user { email role } } }";
    let (status, body) = as_session(&app, &s, None, viewer, json!({})).await;
    assert_eq!(
        (status, body["errors"][0]["extensions"]["code"].as_str()),
        (403, Some("FORBIDDEN")),
        "{body}"
    );
    let (status, _) = as_session(&app, &s, Some(&"0".repeat(64)), viewer, json!({})).await;
    assert_eq!(status, 403);
    let me = ok(&app, &s, viewer, json!({})).await;
    assert_eq!(
        me["viewer"],
        json!({"scopes": ["WRITE"], "ownerBound": false, "user": {"email": "ada@example.com", "role": "MANAGER"}})
    );
    // `/auth/session` hands the page its CSRF token again after a reload.
    let again: Value = reqwest::Client::new()
        .get(format!("{}/auth/session", app.base))
        .header("cookie", format!("rapport_session={}", s.token))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["csrfToken"], s.csrf.as_str());
    assert_eq!(again["workspaceName"], "Accounts");

    // A cross-site page cannot sign anyone in or out: another Origin, or a form's media type.
    let cross = reqwest::Client::new()
        .post(format!("{}/auth/sign-in", app.base))
        .header("origin", "https://evil.example")
        .json(&json!({"email": "ada@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status().as_u16(), 403);
    let form = reqwest::Client::new()
        .post(format!("{}/auth/sign-in", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=ada%40example.com&password=correct+horse+battery")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status().as_u16(), 415);
    let no_csrf = reqwest::Client::new()
        .post(format!("{}/auth/sign-out", app.base))
        .header("cookie", format!("rapport_session={}", s.token))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status().as_u16(), 403);

    // Sign in again with the password; answers never hold a hash or another session's token.
    let (status, headers, body) = auth(
        &app,
        "/auth/sign-in",
        json!({"email": "ADA@example.com", "password": "correct horse battery"}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let second = session_of(&headers, &body);
    assert_ne!(second.token, s.token);
    let people = app
        .ok(
            &admin,
            "{ users(first: 10) { nodes { email role } } }",
            json!({}),
        )
        .await;
    for text in [body.to_string(), people.to_string(), me.to_string()] {
        assert!(
            !text.contains("$argon2") && !text.contains(&s.token) && !text.contains(&second.token),
            "{text}"
        );
    }

    // Signing out ends that session only; signing out everywhere ends the rest.
    let out = reqwest::Client::new()
        .post(format!("{}/auth/sign-out", app.base))
        .header("cookie", format!("rapport_session={}", s.token))
        .header("x-csrf-token", &s.csrf)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status().as_u16(), 200);
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let (status, body) = as_session(&app, &s, Some(&s.csrf), viewer, json!({})).await;
    assert_eq!(
        (status, body["errors"][0]["extensions"]["code"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
    ok(&app, &second, viewer, json!({})).await;
    let everywhere = reqwest::Client::new()
        .post(format!("{}/auth/sign-out-everywhere", app.base))
        .header("cookie", format!("rapport_session={}", second.token))
        .header("x-csrf-token", &second.csrf)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(everywhere.status().as_u16(), 200);
    let (status, _) = as_session(&app, &second, Some(&second.csrf), viewer, json!({})).await;
    assert_eq!(status, 401);
}

async fn repeated_failures_lock_an_account_and_are_recorded(app: TestApp) {
    let admin = app.workspace("Lock-out").await;
    person(&app, &admin, "bob@example.com", "MEMBER").await;
    for i in 0..5 {
        let (status, _, body) = auth(
            &app,
            "/auth/sign-in",
            json!({"email": "bob@example.com", "password": format!("wrong guess {i}")}),
            Some("203.0.113.5"),
        )
        .await;
        let expected = if i < 4 { 401 } else { 429 };
        assert_eq!(status, expected, "attempt {i}: {body}");
    }
    // Locked: even the right password is refused, with how long to wait.
    let (status, headers, body) = auth(
        &app,
        "/auth/sign-in",
        json!({"email": "bob@example.com", "password": "a long enough secret"}),
        Some("203.0.113.6"),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    assert!(headers.get("retry-after").is_some());
    assert!(body.to_string().contains("locked"), "{body}");
    // An unknown address is refused like a wrong password: no oracle.
    let (status, _, unknown) = auth(
        &app,
        "/auth/sign-in",
        json!({"email": "nobody@example.com", "password": "whatever it is"}),
        Some("203.0.113.7"),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        unknown["errors"][0]["message"],
        "the email or the password is wrong"
    );
    let attempts = app
        .ok(
            &admin,
            "{ signInAttempts(first: 20) { outcome ip user { email } } }",
            json!({}),
        )
        .await;
    let outcomes: Vec<&str> = attempts["signInAttempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "WRONG_PASSWORD").count(),
        5,
        "{attempts}"
    );
    assert!(outcomes.contains(&"LOCKED"), "{attempts}");
    assert_eq!(attempts["signInAttempts"][0]["ip"], "203.0.113.6");

    // One address gets 20 sign-in requests a minute, whatever the accounts.
    let mut last = 0;
    for i in 0..21 {
        let (status, _, _) = auth(
            &app,
            "/auth/sign-in",
            json!({"email": format!("x{i}@example.com"), "password": "not the one at all"}),
            Some("198.51.100.9"),
        )
        .await;
        last = status;
    }
    assert_eq!(last, 429);
}

async fn roles_decide_what_a_session_may_change(app: TestApp) {
    let admin = app.workspace("Roles").await;
    let viewer = person(&app, &admin, "viewer@example.com", "VIEWER").await;
    let member = person(&app, &admin, "member@example.com", "MEMBER").await;
    let other = person(&app, &admin, "other@example.com", "MEMBER").await;
    let manager = person(&app, &admin, "manager@example.com", "MANAGER").await;
    let create =
        "mutation($o: ID) { createContact(input: {firstName: \"C\", ownerId: $o}) { id } }";
    let mine = ok(&app, &member, create, json!({"o": member.user_id})).await["createContact"]["id"]
        .clone();
    let theirs =
        ok(&app, &member, create, json!({"o": other.user_id})).await["createContact"]["id"].clone();
    let nobodys =
        ok(&app, &member, create, json!({"o": null})).await["createContact"]["id"].clone();
    let update =
        "mutation($id: ID!) { updateContact(id: $id, input: {lastName: \"Changed\"}) { id } }";

    // A viewer reads and changes nothing.
    ok(
        &app,
        &viewer,
        "{ contacts(first: 5) { totalCount } }",
        json!({}),
    )
    .await;
    assert_eq!(
        refused(&app, &viewer, update, json!({"id": mine})).await,
        "FORBIDDEN"
    );
    assert_eq!(
        refused(&app, &viewer, create, json!({"o": null})).await,
        "FORBIDDEN"
    );
    assert_eq!(refused(&app, &viewer, "mutation($id: ID!) { recordConsent(contactId: $id, input: {purpose: MARKETING, status: GRANTED}) { id } }", json!({"id": mine})).await, "FORBIDDEN");
    // A member changes their own records and nobody's, not a colleague's.
    ok(&app, &member, update, json!({"id": mine})).await;
    ok(&app, &member, update, json!({"id": nobodys})).await;
    assert_eq!(
        refused(&app, &member, update, json!({"id": theirs})).await,
        "FORBIDDEN"
    );
    assert_eq!(
        refused(
            &app,
            &member,
            "mutation($id: ID!) { deleteContact(id: $id) }",
            json!({"id": theirs})
        )
        .await,
        "FORBIDDEN"
    );
    assert_eq!(
        refused(
            &app,
            &member,
            "mutation($s: ID!, $m: [ID!]!) { mergeContacts(survivorId: $s, mergedIds: $m) { id } }",
            json!({"s": mine, "m": [theirs]})
        )
        .await,
        "FORBIDDEN"
    );
    assert_eq!(refused(&app, &member, "mutation { bulkUpsertContacts(contacts: [{email: \"x@example.com\", firstName: \"X\"}]) { created } }", json!({})).await, "FORBIDDEN");
    // A manager changes anyone's, but manages no people and no keys.
    ok(&app, &manager, update, json!({"id": theirs})).await;
    assert_eq!(refused(&app, &manager, "mutation { inviteUser(email: \"x@example.com\", name: \"X\", role: ADMIN) { emailed } }", json!({})).await, "FORBIDDEN");
    assert_eq!(
        refused(
            &app,
            &manager,
            "mutation($id: ID!) { updateUser(id: $id, input: {role: ADMIN}) { id } }",
            json!({"id": manager.user_id})
        )
        .await,
        "FORBIDDEN"
    );
    assert_eq!(
        refused(
            &app,
            &manager,
            "mutation { createApiKey(name: \"k\", scopes: [READ]) { key } }",
            json!({})
        )
        .await,
        "FORBIDDEN"
    );
    // A role change holds from the next request; a removed person's sessions end.
    app.ok(
        &admin,
        "mutation($id: ID!) { updateUser(id: $id, input: {role: VIEWER}) { id } }",
        json!({"id": manager.user_id}),
    )
    .await;
    assert_eq!(
        refused(&app, &manager, update, json!({"id": theirs})).await,
        "FORBIDDEN"
    );
    app.ok(
        &admin,
        "mutation($id: ID!) { deleteUser(id: $id) }",
        json!({"id": other.user_id}),
    )
    .await;
    let (status, _) = as_session(
        &app,
        &other,
        Some(&other.csrf),
        "{ viewer { scopes } }",
        json!({}),
    )
    .await;
    assert_eq!(status, 401);
}

async fn a_session_sees_only_its_workspace(app: TestApp) {
    let a = app.workspace("A").await;
    let b = app.workspace("B").await;
    let in_b = app
        .ok(&b, "mutation { createContact(input: {firstName: \"Secret\", email: \"secret@b.example\"}) { id } }", json!({}))
        .await["createContact"]["id"]
        .clone();
    app.ok(
        &a,
        "mutation { createContact(input: {firstName: \"Mine\"}) { id } }",
        json!({}),
    )
    .await;
    let s = person(&app, &a, "ann@a.example", "ADMIN").await;
    let list = ok(&app, &s, "{ contacts(first: 10) { totalCount nodes { firstName } } users(first: 10) { nodes { email } } }", json!({})).await;
    assert_eq!(list["contacts"]["totalCount"], 1);
    assert!(!list.to_string().contains("Secret"));
    assert_eq!(
        refused(
            &app,
            &s,
            "query($id: ID!) { contact(id: $id) { id } }",
            json!({"id": in_b})
        )
        .await,
        "NOT_FOUND"
    );
    assert_eq!(
        refused(
            &app,
            &s,
            "mutation($id: ID!) { updateContact(id: $id, input: {firstName: \"x\"}) { id } }",
            json!({"id": in_b})
        )
        .await,
        "NOT_FOUND"
    );
    // The same email in B is another account: A's password does not open it.
    let (status, _, body) = auth(
        &app,
        "/auth/sign-in",
        json!({"email": "ann@a.example", "password": "a long enough secret"}),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["user"]["id"].as_str(), Some(s.user_id.as_str()));
}

both_backends!(
    a_link_signs_in_once_and_a_session_needs_its_csrf_token,
    repeated_failures_lock_an_account_and_are_recorded,
    roles_decide_what_a_session_may_change,
    a_session_sees_only_its_workspace,
);

async fn attacks_on_sign_in_find_nothing_to_hold_on_to(backend: rapport_tests::Backend) {
    let smtp = rapport_tests::SmtpServer::start();
    let config = rapport_api::server::Config {
        trusted_proxies: vec![std::net::Ipv4Addr::LOCALHOST.into()],
        public_url: "http://console.test".into(),
        mail: Some(rapport_api::graphql::Mail {
            mailer: rapport_engine::platform::email::Mailer::configure(
                Some(&smtp.url),
                std::env::temp_dir().join("rapport-accounts-outbox"),
            )
            .unwrap(),
            from: rapport_engine::values::EmailAddress::parse("from", "crm@rapport.example")
                .unwrap(),
        }),
        ..Default::default()
    };
    let app = TestApp::spawn_with(backend, config).await;
    let admin = app.workspace("Attacks").await;
    let boss = person(&app, &admin, "boss@example.com", "ADMIN").await;
    let member = person(&app, &admin, "mia@example.com", "MEMBER").await;
    let colleague = person(&app, &admin, "cole@example.com", "MEMBER").await;

    // A burst of wrong guesses all counts: concurrent failures are counted in SQL.
    let guesses = (0..8).map(|i| {
        auth(
            &app,
            "/auth/sign-in",
            json!({"email": "mia@example.com", "password": format!("burst guess {i}")}),
            Some("192.0.2.10"),
        )
    });
    futures_util::future::join_all(guesses).await;
    let (status, _, _) = auth(
        &app,
        "/auth/sign-in",
        json!({"email": "mia@example.com", "password": "a long enough secret"}),
        Some("192.0.2.11"),
    )
    .await;
    assert_eq!(status, 429, "the burst locked the account");

    // An address without an account locks the same way, with the same words.
    let mut answers = Vec::new();
    for i in 0..5 {
        let (status, _, body) = auth(
            &app,
            "/auth/sign-in",
            json!({"email": "ghost@example.com", "password": format!("guess {i} for nobody")}),
            Some("192.0.2.12"),
        )
        .await;
        answers.push((
            status,
            body["errors"][0]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ));
    }
    assert_eq!(
        answers[0],
        (401, "the email or the password is wrong".to_string())
    );
    assert_eq!(answers[4].0, 429);
    assert!(
        answers[4].1.contains("this account is locked"),
        "{answers:?}"
    );

    // A withdrawn invitation cannot be turned into an account through "forgot password".
    let invited = app
        .ok(&admin, "mutation { inviteUser(email: \"eve@example.com\", name: \"Eve\", role: ADMIN) { invitation { id } } }", json!({}))
        .await;
    app.ok(
        &admin,
        "mutation($id: ID!) { revokeInvitation(id: $id) }",
        json!({"id": invited["inviteUser"]["invitation"]["id"]}),
    )
    .await;
    let (status, _, _) = auth(
        &app,
        "/auth/forgot-password",
        json!({"email": "eve@example.com"}),
        Some("192.0.2.13"),
    )
    .await;
    assert_eq!(status, 202);
    let (status, _, _) = auth(
        &app,
        "/auth/forgot-password",
        json!({"email": "boss@example.com"}),
        Some("192.0.2.13"),
    )
    .await;
    assert_eq!(status, 202);
    // The answers come at once; the email follows.
    let mut mail = Vec::new();
    for _ in 0..100 {
        mail = smtp.received();
        if mail
            .iter()
            .any(|m| m.contains("boss@example.com") && m.contains("Reset your Rapport password"))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let reset_link = mail
        .iter()
        .filter(|m| m.contains("boss@example.com") && m.contains("Reset your Rapport password"))
        .flat_map(|m| rapport_tests::links(m, "http://console.test/#/set-password?token="))
        .next()
        .expect("the reset email with its link");
    assert!(
        !mail
            .iter()
            .any(|m| m.contains("eve@example.com") && m.contains("Reset your Rapport password")),
        "no reset for eve"
    );
    let token = reset_link.split("token=").nth(1).unwrap();
    let (status, _, _) = auth(
        &app,
        "/auth/set-password",
        json!({"token": token, "password": "the boss's new secret"}),
        Some("192.0.2.14"),
    )
    .await;
    assert_eq!(status, 200, "the reset link sets a new password");
    let (status, _) = as_session(
        &app,
        &boss,
        Some(&boss.csrf),
        "{ viewer { scopes } }",
        json!({}),
    )
    .await;
    assert_eq!(status, 401, "a new password ends the old sessions");
    let (status, headers, body) = auth(
        &app,
        "/auth/sign-in",
        json!({"email": "boss@example.com", "password": "the boss's new secret"}),
        Some("192.0.2.14"),
    )
    .await;
    assert_eq!(status, 200);
    let boss = session_of(&headers, &body);
    let resets = |email: &'static str| {
        let db = app.db.clone();
        async move {
            use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
            let user = rapport_schema::user::Entity::find()
                .filter(rapport_schema::user::Column::Email.eq(email))
                .one(&db)
                .await
                .unwrap()
                .unwrap();
            rapport_schema::user_token::Entity::find()
                .filter(rapport_schema::user_token::Column::UserId.eq(user.id))
                .filter(rapport_schema::user_token::Column::Purpose.eq("reset"))
                .count(&db)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        resets("eve@example.com").await,
        0,
        "no reset for an account that never signed in"
    );
    assert_eq!(resets("boss@example.com").await, 1);

    // Members: no structure, no colleague's tasks, no way around ownership in bulk.
    assert_eq!(
        refused(
            &app,
            &member,
            "mutation { createPipeline(input: {name: \"Mine\", stages: [{name: \"A\"}]}) { id } }",
            json!({})
        )
        .await,
        "FORBIDDEN"
    );
    let contact = ok(
        &app,
        &colleague,
        "mutation($o: ID) { createContact(input: {firstName: \"Theirs\", ownerId: $o}) { id } }",
        json!({"o": colleague.user_id}),
    )
    .await["createContact"]["id"]
        .clone();
    let task = ok(&app, &colleague, "mutation($c: ID, $a: ID) { createTask(input: {title: \"Call\", contactId: $c, assigneeId: $a}) { id } }", json!({"c": contact, "a": colleague.user_id})).await["createTask"]["id"].clone();
    assert_eq!(
        refused(
            &app,
            &member,
            "mutation($id: ID!) { deleteTask(id: $id) }",
            json!({"id": task})
        )
        .await,
        "FORBIDDEN"
    );
    assert_eq!(
        refused(
            &app,
            &member,
            "mutation($id: ID!) { requestConsent(contactId: $id) { confirmUrl } }",
            json!({"id": contact})
        )
        .await,
        "FORBIDDEN"
    );
    ok(
        &app,
        &colleague,
        "mutation($id: ID!) { deleteTask(id: $id) }",
        json!({"id": task}),
    )
    .await;

    // An admin made a manager keeps no admin key.
    let kept = ok(
        &app,
        &boss,
        "mutation { createApiKey(name: \"boss's admin key\", scopes: [ADMIN]) { key } }",
        json!({}),
    )
    .await["createApiKey"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    app.ok(&kept, "{ viewer { scopes } }", json!({})).await;
    let set_role =
        "mutation($id: ID!, $r: UserRole!) { updateUser(id: $id, input: {role: $r}) { role } }";
    app.ok(
        &admin,
        set_role,
        json!({"id": boss.user_id, "r": "MANAGER"}),
    )
    .await;
    let (status, _) = app
        .post(Some(&kept), "{ viewer { scopes } }", json!({}))
        .await;
    assert_eq!(status, 401);
    app.ok(&admin, set_role, json!({"id": boss.user_id, "r": "ADMIN"}))
        .await;

    // A removed admin's API keys stop working with them.
    let key = ok(
        &app,
        &boss,
        "mutation { createApiKey(name: \"boss's\", scopes: [READ]) { key } }",
        json!({}),
    )
    .await["createApiKey"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    app.ok(&key, "{ viewer { scopes } }", json!({})).await;
    app.ok(
        &admin,
        "mutation($id: ID!) { deleteUser(id: $id) }",
        json!({"id": boss.user_id}),
    )
    .await;
    let (status, _) = app
        .post(Some(&key), "{ viewer { scopes } }", json!({}))
        .await;
    assert_eq!(status, 401);
}

mod attacks_on_sign_in_find_nothing_to_hold_on_to {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::attacks_on_sign_in_find_nothing_to_hold_on_to(rapport_tests::Backend::Sqlite).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::attacks_on_sign_in_find_nothing_to_hold_on_to(rapport_tests::Backend::Postgres)
            .await;
    }
}

//! GraphQL subscriptions over `graphql-transport-ws` at `/graphql`, through the real
//! server: changes reach subscribers as they commit — including those a separate
//! `rapport worker` process makes — scoped to the caller's workspace; a socket without a
//! caller is closed; only subscriptions run over the socket.

use futures_util::{SinkExt, StreamExt};
use rapport_tests::{SmtpServer, TestApp, both_backends};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

both_backends!(changes_reach_subscribers_as_they_commit);
both_backends!(sockets_need_a_caller_and_carry_only_subscriptions);
both_backends!(a_worker_processs_campaign_progress_reaches_the_server);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A subscription socket.
struct Socket(Ws);

impl Socket {
    /// Opens a socket (`graphql-transport-ws`) and sends `connection_init` with `payload`.
    async fn connect(app: &TestApp, payload: Value) -> Socket {
        let url = format!("{}/graphql", app.base.replacen("http", "ws", 1));
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        let (ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(
            response.headers()["sec-websocket-protocol"],
            "graphql-transport-ws"
        );
        let mut socket = Socket(ws);
        socket
            .send(json!({"type": "connection_init", "payload": payload}))
            .await;
        socket
    }

    /// A socket whose `connection_init` names `key`, acknowledged.
    async fn open(app: &TestApp, key: &str) -> Socket {
        let mut socket =
            Socket::connect(app, json!({"authorization": format!("Bearer {key}")})).await;
        let ack = socket
            .message()
            .await
            .expect("an answer to connection_init");
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        socket
    }

    async fn send(&mut self, message: Value) {
        self.0
            .send(Message::Text(message.to_string().into()))
            .await
            .unwrap();
    }

    /// The next protocol message (pings answered), or None once the server closed.
    async fn message(&mut self) -> Option<Value> {
        loop {
            let next = tokio::time::timeout(std::time::Duration::from_secs(20), self.0.next())
                .await
                .expect("the server answers within 20 s");
            match next {
                Some(Ok(Message::Text(text))) => {
                    let v: Value = serde_json::from_str(&text).unwrap();
                    if v["type"] == "ping" {
                        self.send(json!({"type": "pong"})).await;
                        continue;
                    }
                    return Some(v);
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({"id": id, "type": "subscribe", "payload": {"query": query, "variables": variables}}))
            .await;
    }

    /// The next message about subscription `id` other than its end (`complete`); those of
    /// other subscriptions are skipped.
    async fn message_for(&mut self, id: &str) -> Value {
        loop {
            let m = self.message().await.expect("the socket stays open");
            if m["id"] == id && m["type"] != "complete" {
                return m;
            }
        }
    }

    /// The next `next` payload of subscription `id` (messages of others are skipped).
    async fn next(&mut self, id: &str) -> Value {
        loop {
            let m = self.message().await.expect("the socket stays open");
            if m["id"] == id {
                assert_eq!(m["type"], "next", "{m}");
                return m["payload"].clone();
            }
        }
    }
}

async fn changes_reach_subscribers_as_they_commit(app: TestApp) {
    let key = app.workspace("Live").await;
    let contact = app
        .ok(
            &key,
            "mutation { createContact(input: {firstName: \"Ann\"}) { id } }",
            json!({}),
        )
        .await["createContact"]["id"]
        .clone();
    let pipeline = app
        .ok(
            &key,
            "mutation { createPipeline(input: {name: \"Sales\", stages: [{name: \"New\"}, {name: \"Demo\"}, {name: \"Won\", isWon: true}]}) { id stages { id } } }",
            json!({}),
        )
        .await["createPipeline"]
        .clone();
    // A read key follows changes like any reader.
    let reader = app.scoped_key(&key, "READ").await;
    let mut socket = Socket::open(&app, &reader).await;
    socket
        .subscribe(
            "a",
            "subscription($c: ID!) { activityAdded(contactId: $c) { subject contact { firstName } } }",
            json!({"c": contact}),
        )
        .await;
    socket
        .subscribe(
            "d",
            "subscription($p: ID!) { dealChanged(pipelineId: $p) { name stage { name } } }",
            json!({"p": pipeline["id"]}),
        )
        .await;
    // The server has the subscriptions once a change made after them arrives; give it a
    // moment to register them before the first change.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    app.ok(
        &key,
        "mutation($c: ID!) { createActivity(input: {contactId: $c, kind: CALL, subject: \"Discovery call\"}) { id } }",
        json!({"c": contact}),
    )
    .await;
    let added = socket.next("a").await;
    assert_eq!(
        added["data"]["activityAdded"],
        json!({"subject": "Discovery call", "contact": {"firstName": "Ann"}})
    );

    let deal = app
        .ok(
            &key,
            "mutation($p: ID!) { createDeal(input: {name: \"Ann's order\", pipelineId: $p}) { id } }",
            json!({"p": pipeline["id"]}),
        )
        .await["createDeal"]["id"]
        .clone();
    let created = socket.next("d").await;
    assert_eq!(
        created["data"]["dealChanged"],
        json!({"name": "Ann's order", "stage": {"name": "New"}})
    );
    app.ok(
        &key,
        "mutation($d: ID!, $s: ID!) { updateDeal(id: $d, input: {stageId: $s}) { id } }",
        json!({"d": deal, "s": pipeline["stages"][1]["id"]}),
    )
    .await;
    let moved = socket.next("d").await;
    assert_eq!(moved["data"]["dealChanged"]["stage"]["name"], "Demo");

    // Another workspace's changes never reach this socket, and its contacts are not found.
    let other = app.workspace("Elsewhere").await;
    let theirs = app
        .ok(
            &other,
            "mutation { createContact(input: {firstName: \"Bo\"}) { id } }",
            json!({}),
        )
        .await["createContact"]["id"]
        .clone();
    socket
        .subscribe(
            "x",
            "subscription($c: ID!) { activityAdded(contactId: $c) { subject } }",
            json!({"c": theirs}),
        )
        .await;
    let refused = socket.message_for("x").await;
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{refused}"
    );
    app.ok(
        &other,
        "mutation($c: ID!) { createActivity(input: {contactId: $c, kind: NOTE, subject: \"theirs\"}) { id } }",
        json!({"c": theirs}),
    )
    .await;
    // A later change of ours arrives next: nothing of theirs came before it.
    app.ok(
        &key,
        "mutation($c: ID!) { createActivity(input: {contactId: $c, kind: NOTE, subject: \"Follow-up\"}) { id } }",
        json!({"c": contact}),
    )
    .await;
    let next = socket.next("a").await;
    assert_eq!(next["data"]["activityAdded"]["subject"], "Follow-up");

    // Completing a subscription stops it; the socket goes on.
    socket.send(json!({"id": "a", "type": "complete"})).await;
    socket
        .subscribe("q", "query { viewer { workspaceId } }", json!({}))
        .await;
    let answer = socket.message_for("q").await;
    assert!(
        answer
            .to_string()
            .contains("only subscriptions run over the socket"),
        "{answer}"
    );
}

async fn sockets_need_a_caller_and_carry_only_subscriptions(app: TestApp) {
    let key = app.workspace("Guarded").await;
    // No caller: the socket is closed.
    let mut anonymous = Socket::connect(&app, json!({})).await;
    assert_eq!(anonymous.message().await, None, "closed without a caller");
    let mut wrong = Socket::connect(&app, json!({"authorization": "Bearer rk_wrong"})).await;
    assert_eq!(wrong.message().await, None, "closed with an unknown key");

    // A key on the upgrade request itself is checked before the socket opens.
    let url = format!("{}/graphql", app.base.replacen("http", "ws", 1));
    let mut request = url.into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    headers.insert("authorization", "Bearer rk_wrong".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("expected 401, got {:?}", other.map(|(_, r)| r.status())),
    }

    // Mutations go over HTTP, never the socket.
    let mut socket = Socket::open(&app, &key).await;
    socket
        .subscribe(
            "m",
            "mutation { createContact(input: {firstName: \"Sneaky\"}) { id } }",
            json!({}),
        )
        .await;
    let refused = socket.message_for("m").await;
    assert!(refused.to_string().contains("POST"), "{refused}");
    let count = app
        .ok(&key, "{ contacts(first: 1) { totalCount } }", json!({}))
        .await;
    assert_eq!(count["contacts"]["totalCount"], 0);
    // A document past the limits is refused.
    let deep = format!("subscription {{ {} }}", "a { ".repeat(40) + &"}".repeat(40));
    socket.subscribe("deep", &deep, json!({})).await;
    let refused = socket.message_for("deep").await;
    assert!(refused["payload"]["errors"].is_array(), "{refused}");
    assert!(refused["payload"]["data"].is_null(), "{refused}");
}

async fn a_worker_processs_campaign_progress_reaches_the_server(app: TestApp) {
    use crate::campaigns::{audience, campaign, segment, send};
    let smtp = SmtpServer::start();
    let key = app.workspace("Progress").await;
    audience(&app, &key, "live", 12, |_| true).await;
    let seg = segment(&app, &key, "live").await;
    let c = campaign(&app, &key, &seg, json!({"ratePerSecond": 4})).await;
    let mut socket = Socket::open(&app, &key).await;
    socket
        .subscribe(
            "c",
            "subscription($id: ID!) { campaignProgress(id: $id) { status stats { sent recipients } } }",
            json!({"id": c["id"]}),
        )
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // The worker is another process: what it commits reaches this server's subscribers.
    let mut worker = app.worker_process(&smtp.url);
    send(&app, &key, &c["id"]).await;
    let mut seen = Vec::new();
    loop {
        let p = socket.next("c").await;
        let progress = p["data"]["campaignProgress"].clone();
        seen.push(progress.clone());
        if progress["status"] == "SENT" {
            break;
        }
    }
    let _ = worker.kill();
    let _ = worker.wait();
    let last = seen.last().unwrap();
    assert_eq!(last["stats"]["sent"], 12, "{seen:#?}");
    let partial = seen
        .iter()
        .filter(|p| p["stats"]["sent"].as_u64().is_some_and(|n| n > 0 && n < 12))
        .count();
    assert!(partial >= 1, "progress came in steps: {seen:#?}");
}

/// One address cannot hold the server's memory with sockets that never name a caller:
/// past `MAX_SOCKETS_PER_ADDRESS` open at once, the upgrade is refused (429) before a
/// socket opens, and the places come back as sockets close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_opens_a_bounded_number_of_sockets() {
    let app = TestApp::spawn(rapport_tests::Backend::Sqlite).await;
    let url = format!("{}/graphql", app.base.replacen("http", "ws", 1));
    let open = || {
        let mut request = url.clone().into_client_request().unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        tokio_tungstenite::connect_async(request)
    };
    let mut held = Vec::new();
    for _ in 0..rapport_api::subscriptions::MAX_SOCKETS_PER_ADDRESS {
        held.push(open().await.expect("a socket within the limit").0);
    }
    match open().await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429)
        }
        other => panic!("expected 429, got {:?}", other.map(|(_, r)| r.status())),
    }
    for mut ws in held.drain(..) {
        let _ = ws.close(None).await;
    }
    let mut reopened = false;
    for _ in 0..50 {
        if open().await.is_ok() {
            reopened = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(reopened, "closed sockets give their places back");
}

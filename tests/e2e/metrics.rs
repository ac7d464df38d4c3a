//! `GET /metrics` through the real server: off without a token, refused with a wrong one,
//! and with the operator's token a Prometheus text page that Prometheus' own parser
//! (prometheus_client) reads, counting the requests and GraphQL operations just made and
//! showing the pool, the queue and webhook deliveries.

use rapport_tests::{TestApp, both_backends};
use serde_json::json;

both_backends!(metrics_are_prometheus_text_behind_a_token);

async fn metrics_are_prometheus_text_behind_a_token(app: TestApp) {
    let off = reqwest::get(format!("{}/metrics", app.base)).await.unwrap();
    assert_eq!(off.status(), 404, "off without a token");

    let app = TestApp::spawn_with(
        app.backend(),
        rapport_api::server::Config {
            metrics_token: Some("scrape-me".into()),
            ..Default::default()
        },
    )
    .await;
    let key = app.workspace("Metrics").await;
    for _ in 0..3 {
        app.ok(
            &key,
            "query Probe { contacts(first: 1) { totalCount } }",
            json!({}),
        )
        .await;
    }
    app.ok(
        &key,
        "mutation AddOne { createContact(input: {firstName: \"M\"}) { id } }",
        json!({}),
    )
    .await;
    let client = reqwest::Client::new();
    let url = format!("{}/metrics", app.base);
    let wrong = client.get(&url).bearer_auth("guess").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let page = client
        .get(&url)
        .bearer_auth("scrape-me")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = page.text().await.unwrap();

    // Prometheus' parser reads every family; print name, labels and value per sample.
    let parser = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", parser])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let done = child.wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "the parser refused the page: {}\n{text}",
        String::from_utf8_lossy(&done.stderr)
    );
    let samples: Vec<(String, serde_json::Value, f64)> =
        serde_json::from_slice(&done.stdout).unwrap();
    let value = |name: &str, labels: serde_json::Value| -> Option<f64> {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && labels
                        .as_object()
                        .unwrap()
                        .iter()
                        .all(|(k, v)| l.get(k) == Some(v))
            })
            .map(|(_, _, v)| *v)
    };
    assert!(
        value(
            "rapport_http_requests_total",
            json!({"route": "/graphql", "status": "200"})
        )
        .unwrap_or(0.0)
            >= 4.0,
        "{text}"
    );
    assert_eq!(
        value(
            "rapport_graphql_operations_total",
            json!({"operation": "Probe", "kind": "query"})
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(
            "rapport_graphql_operations_total",
            json!({"operation": "AddOne", "kind": "mutation"})
        ),
        Some(1.0)
    );
    assert!(
        value(
            "rapport_http_request_duration_seconds_count",
            json!({"route": "/graphql"})
        )
        .unwrap_or(0.0)
            >= 4.0
    );
    assert!(value("rapport_db_pool_connections", json!({"state": "idle"})).is_some());
    assert!(text.contains("# TYPE rapport_jobs gauge"), "{text}");
    assert!(text.contains("# TYPE rapport_webhook_deliveries gauge"));
    assert!(text.contains("# TYPE rapport_emails_total counter"));
    // The token never shows up, and nothing of a workspace's data does.
    assert!(!text.contains("scrape-me"));
}

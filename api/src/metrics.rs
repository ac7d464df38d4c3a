//! `GET /metrics`: the process in Prometheus' text format, for an operator's scraper —
//! requests by route and status with latency histograms, GraphQL operations by name,
//! the database pool, the job queue and webhook deliveries by state, and the engine's
//! counters (emails, jobs, webhook attempts, plugin calls and fuel).
//!
//! The numbers span every workspace, so they are not for an API key: the endpoint answers
//! only a bearer token the operator configured (`--metrics-token`), and is off without
//! one. Labels are route templates and Rapport's own names; GraphQL operation names come
//! from clients, so at most [`MAX_OPERATIONS`] distinct ones are kept, the rest count as
//! `other`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rapport_engine::platform::metrics::{self as counters, labels};
use sea_orm::{DbBackend, FromQueryResult, Statement};

use crate::http::ApiContext;

/// Distinct GraphQL operation names counted; later ones count as `other`.
pub const MAX_OPERATIONS: usize = 200;

/// Latency buckets, in seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Latency {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// What the HTTP side counted.
#[derive(Default)]
pub struct HttpMetrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Latency>>,
    operations: Mutex<BTreeMap<(String, &'static str), u64>>,
    planned: std::sync::atomic::AtomicU64,
}

impl HttpMetrics {
    fn observe(&self, route: &str, status: u16, seconds: f64) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((route.to_string(), status))
            .or_insert(0) += 1;
        let mut latency = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let l = latency.entry(route.to_string()).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                l.counts[i] += 1;
            }
        }
        l.sum += seconds;
        l.count += 1;
    }

    /// Counts a GraphQL operation (`kind`: query, mutation).
    pub fn operation(&self, name: Option<&str>, kind: &'static str) {
        let name = match name {
            None => "anonymous".to_string(),
            Some(n) => n
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect(),
        };
        let mut ops = self.operations.lock().unwrap_or_else(|e| e.into_inner());
        let key = if ops.contains_key(&(name.clone(), kind)) || ops.len() < MAX_OPERATIONS {
            (name, kind)
        } else {
            ("other".to_string(), kind)
        };
        *ops.entry(key).or_insert(0) += 1;
    }

    /// Counts a GraphQL request answered from its document's plan (`crate::plans`).
    pub fn planned(&self) {
        self.planned
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP rapport_http_requests_total HTTP requests, by route and status.\n# TYPE rapport_http_requests_total counter"
        );
        for ((route, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let status = status.to_string();
            let _ = writeln!(
                out,
                "rapport_http_requests_total{} {n}",
                labels(&["route", "status"], &[route, &status])
            );
        }
        let _ = writeln!(
            out,
            "# HELP rapport_http_request_duration_seconds Time to answer, by route.\n# TYPE rapport_http_request_duration_seconds histogram"
        );
        for (route, l) in self
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            for (i, bound) in BUCKETS.iter().enumerate() {
                let le = bound.to_string();
                let _ = writeln!(
                    out,
                    "rapport_http_request_duration_seconds_bucket{} {}",
                    labels(&["route", "le"], &[route, &le]),
                    l.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "rapport_http_request_duration_seconds_bucket{} {}",
                labels(&["route", "le"], &[route, "+Inf"]),
                l.count
            );
            let route = labels(&["route"], &[route]);
            let _ = writeln!(
                out,
                "rapport_http_request_duration_seconds_sum{route} {}",
                l.sum
            );
            let _ = writeln!(
                out,
                "rapport_http_request_duration_seconds_count{route} {}",
                l.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP rapport_graphql_operations_total GraphQL operations, by name and kind.\n# TYPE rapport_graphql_operations_total counter"
        );
        for ((name, kind), n) in self
            .operations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "rapport_graphql_operations_total{} {n}",
                labels(&["operation", "kind"], &[name, kind])
            );
        }
        let _ = writeln!(
            out,
            "# HELP rapport_graphql_planned_total GraphQL requests answered from their document's plan.\n# TYPE rapport_graphql_planned_total counter\nrapport_graphql_planned_total {}",
            self.planned.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
}

/// Middleware: times every request and counts it by route template and status.
pub async fn track(State(ctx): State<ApiContext>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    ctx.metrics.observe(
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// The `/metrics` route.
pub fn router() -> Router<ApiContext> {
    Router::new().route("/metrics", get(scrape))
}

async fn scrape(State(ctx): State<ApiContext>, headers: HeaderMap) -> Response {
    let Some(token) = ctx.metrics_token.as_deref() else {
        return (
            StatusCode::NOT_FOUND,
            "metrics are off: start the server with --metrics-token to turn them on\n",
        )
            .into_response();
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !rapport_engine::platform::auth::secret_matches(
        given,
        &rapport_engine::platform::auth::secret_hash(token),
    ) {
        return (
            StatusCode::UNAUTHORIZED,
            "the metrics token is missing or wrong\n",
        )
            .into_response();
    }
    let mut out = String::new();
    ctx.metrics.render(&mut out);
    counters::render(&mut out);
    pool(&ctx, &mut out);
    if let Err(e) = tables(&ctx, &mut out).await {
        tracing::warn!(error = ?e, "metrics: reading the queue and webhook tables");
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

fn pool(ctx: &ApiContext, out: &mut String) {
    let (size, idle) = match ctx.db.get_database_backend() {
        DbBackend::Postgres => {
            let p = ctx.db.get_postgres_connection_pool();
            (p.size() as usize, p.num_idle())
        }
        DbBackend::Sqlite => {
            let p = ctx.db.get_sqlite_connection_pool();
            (p.size() as usize, p.num_idle())
        }
        _ => return,
    };
    let _ = writeln!(
        out,
        "# HELP rapport_db_pool_connections Database connections of this process, by state.\n# TYPE rapport_db_pool_connections gauge\nrapport_db_pool_connections{{state=\"idle\"}} {idle}\nrapport_db_pool_connections{{state=\"in_use\"}} {}",
        size.saturating_sub(idle)
    );
}

#[derive(FromQueryResult)]
struct Count {
    state: String,
    n: i64,
}

/// Gauges read from the database: jobs of the shared queue and webhook deliveries, by
/// state (every process sees the same numbers).
async fn tables(ctx: &ApiContext, out: &mut String) -> Result<(), sea_orm::DbErr> {
    let backend = ctx.db.get_database_backend();
    let jobs = match backend {
        DbBackend::Postgres => {
            "SELECT status AS state, COUNT(*) AS n FROM apalis.jobs GROUP BY status"
        }
        _ => "SELECT status AS state, COUNT(*) AS n FROM Jobs GROUP BY status",
    };
    for (name, help, sql) in [
        ("rapport_jobs", "Jobs in the queue, by state.", jobs),
        (
            "rapport_webhook_deliveries",
            "Webhook deliveries, by state.",
            "SELECT state, COUNT(*) AS n FROM webhook_deliveries GROUP BY state",
        ),
    ] {
        let rows = Count::find_by_statement(Statement::from_string(backend, sql))
            .all(&ctx.db)
            .await?;
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for r in rows {
            let _ = writeln!(out, "{name}{} {}", labels(&["state"], &[&r.state]), r.n);
        }
    }
    Ok(())
}

/// The shared handle the router and the GraphQL handler count into.
pub type Shared = Arc<HttpMetrics>;

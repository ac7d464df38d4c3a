//! Shared harness for end-to-end tests: a real server on a loopback port over a fresh
//! SQLite file or a fresh PostgreSQL database, driven with GraphQL over HTTP.

use rapport_engine::db;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Which database a test runs against.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running server and a client for it.
pub struct TestApp {
    pub base: String,
    pub db: DatabaseConnection,
    statements: Arc<AtomicUsize>,
    log: Arc<std::sync::Mutex<Vec<String>>>,
    client: reqwest::Client,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        nanos % 1_000_000_000
    )
}

/// The PostgreSQL server tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("RAPPORT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

async fn database_url(backend: Backend) -> String {
    match backend {
        Backend::Sqlite => {
            let path = std::env::temp_dir().join(format!("rapport_t_{}.db", unique_name()));
            format!("sqlite://{}?mode=rwc", path.display())
        }
        Backend::Postgres => {
            // Each test gets its own database, so tests run in parallel without sharing rows.
            let admin_url = postgres_admin_url();
            let admin = Database::connect(&admin_url).await.unwrap_or_else(|e| {
                panic!("PostgreSQL is required for these tests (RAPPORT_TEST_POSTGRES_URL={admin_url}): {e}")
            });
            let name = format!("rapport_t_{}", unique_name());
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create test database");
            admin.close().await.ok();
            let base = admin_url
                .rsplit_once('/')
                .map(|(b, _)| b.to_string())
                .unwrap_or(admin_url);
            format!("{base}/{name}")
        }
    }
}

/// A real SMTP server (aiosmtpd) on a free loopback port, storing what it receives in a
/// Maildir; stopped when dropped.
pub struct SmtpServer {
    /// `smtp://127.0.0.1:PORT`.
    pub url: String,
    dir: std::path::PathBuf,
    child: std::process::Child,
}

impl SmtpServer {
    /// Starts one and waits until it accepts connections.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // aiosmtpd creates the Maildir (and its tmp/new/cur) only if it does not exist.
        let dir = std::env::temp_dir().join(format!("rapport_t_smtp_{}", unique_name()));
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("aiosmtpd is required (scripts/test installs it)");
        // Owned by the guard from here on, so every path kills and waits for it.
        let server = SmtpServer {
            url: format!("smtp://127.0.0.1:{port}"),
            dir,
            child,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("aiosmtpd did not start on port {port}");
    }

    /// The raw messages received so far.
    pub fn received(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.dir.join(sub)) {
                for e in entries.flatten() {
                    out.push(std::fs::read_to_string(e.path()).unwrap());
                }
            }
        }
        out
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TestApp {
    /// Starts a server on a fresh, migrated database.
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, rapport_api::server::Config::default()).await
    }

    /// Starts a server on a fresh, migrated database, configured.
    pub async fn spawn_with(backend: Backend, config: rapport_api::server::Config) -> Self {
        let url = database_url(backend).await;
        let mut conn = db::connect(&url, 8).await.expect("connect");
        db::migrate(&conn).await.expect("migrate");
        let statements = Arc::new(AtomicUsize::new(0));
        let counter = statements.clone();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = log.clone();
        conn.set_metric_callback(move |info| {
            counter.fetch_add(1, Ordering::SeqCst);
            sink.lock()
                .unwrap()
                .push(info.statement.sql.chars().take(160).collect());
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = rapport_api::server::router_with(conn.clone(), config);
        tokio::spawn(async move { axum::serve(listener, router).await.expect("server") });
        Self {
            base,
            db: conn,
            statements,
            log,
            client: reqwest::Client::new(),
        }
    }

    /// A new workspace and its admin key.
    pub async fn workspace(&self, name: &str) -> String {
        rapport_engine::workspaces::create(&self.db, name)
            .await
            .expect("workspace")
            .key
            .key
    }

    /// SQL statements run so far.
    pub fn statements(&self) -> usize {
        self.statements.load(Ordering::SeqCst)
    }

    /// The SQL of the statements run since statement number `from` (for failure messages).
    pub fn statements_since(&self, from: usize) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .skip(from)
            .cloned()
            .collect()
    }

    /// Posts a GraphQL request; returns the HTTP status and body.
    pub async fn post(&self, key: Option<&str>, query: &str, variables: Value) -> (u16, Value) {
        let mut req = self
            .client
            .post(format!("{}/graphql", self.base))
            .json(&json!({"query": query, "variables": variables}));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("json body"))
    }

    /// Runs a request that must succeed; returns `data`.
    pub async fn ok(&self, key: &str, query: &str, variables: Value) -> Value {
        let (status, body) = self.post(Some(key), query, variables).await;
        assert!(
            body.get("errors")
                .is_none_or(|e| e.as_array().is_some_and(|a| a.is_empty())),
            "unexpected errors ({status}): {body}"
        );
        body["data"].clone()
    }

    /// Runs a request that must fail; returns the first error's code and message.
    pub async fn err(&self, key: &str, query: &str, variables: Value) -> (String, String) {
        let (_, body) = self.post(Some(key), query, variables).await;
        let e = &body["errors"][0];
        assert!(!e.is_null(), "expected an error, got {body}");
        (
            e["extensions"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            e["message"].as_str().unwrap_or_default().to_string(),
        )
    }
}

/// Runs one async scenario against both databases, as two tests.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(rapport_tests::TestApp::spawn(rapport_tests::Backend::Sqlite).await).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(rapport_tests::TestApp::spawn(rapport_tests::Backend::Postgres).await).await;
                }
            }
        )+
    };
}

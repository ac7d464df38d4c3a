//! Shared harness for end-to-end tests: a real server on a loopback port over a fresh
//! SQLite file or a fresh PostgreSQL database, driven with GraphQL over HTTP.

pub mod browser;
pub mod receiver;

use rapport_engine::platform::db;
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
    /// The database's URL, for processes started by the test.
    pub database_url: String,
    /// The clock the server and workers run sequences on; tests move it forward.
    pub clock: rapport_engine::clock::ManualClock,
    statements: Arc<AtomicUsize>,
    log: Arc<std::sync::Mutex<Vec<String>>>,
    client: reqwest::Client,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The runtime a test runs its server on: two workers with the stack `rapport` gives its
/// own (8 MiB: debug builds spend far more stack per frame than release ones).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(8 * 1024 * 1024)
        .enable_all()
        .build()
        .expect("a test runtime")
}

/// A name no other test of this run uses (databases, files).
pub fn unique_name() -> String {
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
        Self::start_on(free_port(), false)
    }

    /// Starts one on `port`; with `faults`, one that refuses recipients as
    /// `tests/fixtures/smtp_faults.py` describes (`gone…@` 550 always, `greylist…@` 451
    /// the first time).
    pub fn start_on(port: u16, faults: bool) -> Self {
        // aiosmtpd creates the Maildir (and its tmp/new/cur) only if it does not exist.
        let dir = std::env::temp_dir().join(format!("rapport_t_smtp_{}", unique_name()));
        let mut command = std::process::Command::new("python3");
        if faults {
            command
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/fixtures/smtp_faults.py"
                ))
                .arg(port.to_string());
        } else {
            command.args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ]);
        }
        let child = command
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

    /// When each message arrived (its file's modification time), earliest first.
    pub fn arrival_times(&self) -> Vec<std::time::SystemTime> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.dir.join(sub)) {
                for e in entries.flatten() {
                    out.push(e.metadata().unwrap().modified().unwrap());
                }
            }
        }
        out.sort();
        out
    }
}

/// A loopback port nothing listens on (at the moment of asking).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Undoes quoted-printable encoding (soft line breaks, `=XX`), so links in a received
/// message can be read back whole.
pub fn unquote(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of a header of a raw message (unfolded), if present.
pub fn header(raw: &str, name: &str) -> Option<String> {
    let head = raw.split("\r\n\r\n").next().unwrap_or(raw);
    let head = head.split("\n\n").next().unwrap_or(head);
    let unfolded = head
        .replace("\r\n ", " ")
        .replace("\r\n\t", " ")
        .replace("\n ", " ");
    let prefix = format!("{}:", name.to_ascii_lowercase());
    unfolded
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
        .map(|l| l[prefix.len()..].trim().to_string())
}

/// Every link in a message (after [`unquote`]) that starts with `prefix`, up to the
/// closing quote or whitespace.
pub fn links(raw: &str, prefix: &str) -> Vec<String> {
    let text = unquote(raw);
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find(prefix) {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| c == '"' || c == '>' || c == '<' || c.is_whitespace())
            .unwrap_or(tail.len());
        out.push(tail[..end].replace("&amp;", "&"));
        rest = &tail[end..];
    }
    out
}

/// The `rapport` binary cargo built beside this test executable.
pub fn rapport_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    // target/<profile>/deps/<test> → target/<profile>/rapport
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("rapport"))
        .expect("target directory");
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace` so the binary is built",
        bin.display()
    );
    bin
}

/// Job workers running in the test process on an app's database; stopped when dropped.
pub struct Workers {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<rapport_engine::Result<()>>>,
}

impl Workers {
    /// Asks them to stop and waits until they have.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(30), task).await;
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Webhook settings for tests: loopback receivers allowed, retries and dispatch in
/// milliseconds.
pub fn test_webhooks() -> rapport_engine::integrations::webhooks::Settings {
    let mut settings = rapport_engine::integrations::webhooks::Settings::new();
    settings.allow_private = true;
    settings.retry_base = std::time::Duration::from_millis(100);
    settings.every = std::time::Duration::from_millis(50);
    settings.lease = std::time::Duration::from_secs(3);
    settings.timeout = std::time::Duration::from_secs(3);
    settings
}

impl TestApp {
    /// Starts a server on a fresh, migrated database.
    pub async fn spawn(backend: Backend) -> Self {
        let config = rapport_api::server::Config {
            plugin_cache: Some(plugin_cache()),
            // The tests stand in for the reverse proxy, setting X-Forwarded-For.
            trusted_proxies: vec![std::net::Ipv4Addr::LOCALHOST.into()],
            // Webhook receivers in tests listen on loopback.
            webhooks: test_webhooks(),
            // Tests poll; the request limit has its own test.
            limits: rapport_api::server::Limits {
                requests_per_minute: 1_000_000,
                ..Default::default()
            },
            ..Default::default()
        };
        Self::spawn_with(backend, config).await
    }

    /// Posts a GraphQL request with one file upload (the multipart request spec), the file
    /// going to variable `file_variable`; returns the HTTP status and body.
    pub async fn upload(
        &self,
        key: &str,
        query: &str,
        variables: Value,
        file_variable: &str,
        bytes: Vec<u8>,
    ) -> (u16, Value) {
        let file = ("plugin.wasm", "application/wasm", bytes);
        self.upload_file(key, query, variables, file_variable, file)
            .await
    }

    /// Posts a GraphQL request with one file (name, media type, bytes) going to variable
    /// `file_variable` (the multipart request spec); returns the HTTP status and body.
    pub async fn upload_file(
        &self,
        key: &str,
        query: &str,
        mut variables: Value,
        file_variable: &str,
        (name, media, bytes): (&str, &str, Vec<u8>),
    ) -> (u16, Value) {
        variables[file_variable] = Value::Null;
        let form = reqwest::multipart::Form::new()
            .text(
                "operations",
                json!({"query": query, "variables": variables}).to_string(),
            )
            .text(
                "map",
                json!({"0": [format!("variables.{file_variable}")]}).to_string(),
            )
            .part(
                "0",
                reqwest::multipart::Part::bytes(bytes)
                    .file_name(name.to_string())
                    .mime_str(media)
                    .unwrap(),
            );
        let resp = self
            .client
            .post(format!("{}/graphql", self.base))
            .bearer_auth(key)
            .multipart(form)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("json body"))
    }

    /// The database this server runs on.
    pub fn backend(&self) -> Backend {
        if self.database_url.starts_with("postgres") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }

    /// Starts a server on a fresh, migrated database, configured.
    pub async fn spawn_with(backend: Backend, mut config: rapport_api::server::Config) -> Self {
        // RAPPORT_TEST_LOG=warn (an env filter) shows the server's and workers' logs.
        if let Ok(filter) = std::env::var("RAPPORT_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
        let clock = rapport_engine::clock::ManualClock::new();
        config.clock = std::sync::Arc::new(clock.clone());
        let url = database_url(backend).await;
        let mut conn = db::connect(&url, 8).await.expect("connect");
        db::migrate(&conn).await.expect("migrate");
        let statements = Arc::new(AtomicUsize::new(0));
        let counter = statements.clone();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = log.clone();
        conn.set_metric_callback(move |info| {
            // The live notices' poller and publishers run beside every request; the counts
            // are of the work a request itself asks for.
            let sql = &info.statement.sql;
            if sql.contains("live_notices") || sql.contains("pg_notify") {
                return;
            }
            counter.fetch_add(1, Ordering::SeqCst);
            sink.lock()
                .unwrap()
                .push(info.statement.sql.chars().take(160).collect());
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = rapport_api::server::router_with(conn.clone(), config)
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, router).await.expect("server") });
        Self {
            base,
            database_url: url,
            clock,
            db: conn,
            statements,
            log,
            client: reqwest::Client::new(),
        }
    }

    /// Worker settings for tests: fast heartbeats, retries and claim timeouts, links to
    /// this server, mail to `smtp_url`.
    pub fn worker_config(&self, smtp_url: &str) -> rapport_api::workers::WorkerConfig {
        let mailer = rapport_engine::platform::email::Mailer::configure(
            Some(smtp_url),
            std::env::temp_dir(),
        )
        .expect("mailer");
        let mut config = rapport_api::workers::WorkerConfig::new(mailer, self.base.clone());
        config.claim_timeout = std::time::Duration::from_secs(3);
        config.options.heartbeat = std::time::Duration::from_secs(1);
        config.options.retry_delay = std::time::Duration::from_millis(100);
        config.options.shutdown_timeout = std::time::Duration::from_secs(5);
        config.options.name = format!("test-worker-{}", unique_name());
        config.plugin_cache = Some(plugin_cache());
        config.clock = Arc::new(self.clock.clone());
        config.ticking = rapport_engine::engagement::sequences::runner::Ticking {
            every: std::time::Duration::from_millis(50),
            slow_every: std::time::Duration::ZERO,
            lease: std::time::Duration::from_secs(3),
        };
        config.webhooks = test_webhooks();
        config
    }

    /// Starts job workers in this process that send to `smtp_url`.
    pub fn workers(&self, smtp_url: &str) -> Workers {
        self.workers_with(self.worker_config(smtp_url))
    }

    /// Starts job workers configured.
    pub fn workers_with(&self, config: rapport_api::workers::WorkerConfig) -> Workers {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(rapport_api::workers::run(self.db.clone(), config, async {
            let _ = stopped.await;
        }));
        Workers {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Polls `query` until `done` holds for its data (at most `seconds`); returns the data.
    pub async fn until(
        &self,
        key: &str,
        query: &str,
        variables: Value,
        seconds: u64,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        loop {
            let data = self.ok(key, query, variables.clone()).await;
            if done(&data) {
                return data;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still waiting after {seconds} s: {data}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// A GET without following redirects: status, `Location`, body.
    pub async fn get(&self, url: &str) -> (u16, Option<String>, Vec<u8>) {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let resp = client.get(url).send().await.expect("request");
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        (status, location, resp.bytes().await.unwrap().to_vec())
    }

    /// Starts a `rapport worker` process on this app's database, sending to `smtp_url`
    /// and linking to this server; `RAPPORT_*` settings for tests (fast heartbeats and
    /// claim timeouts).
    pub fn worker_process(&self, smtp_url: &str) -> std::process::Child {
        self.worker_process_with(smtp_url, &[])
    }

    /// [`Self::worker_process`] with more (or overriding) `RAPPORT_*` settings.
    pub fn worker_process_with(&self, smtp_url: &str, env: &[(&str, &str)]) -> std::process::Child {
        std::process::Command::new(rapport_binary())
            .arg("worker")
            .env("RAPPORT_DATABASE_URL", &self.database_url)
            .env("RAPPORT_SMTP_URL", smtp_url)
            .env("RAPPORT_PUBLIC_URL", &self.base)
            .env("RAPPORT_WORKER_HEARTBEAT_SECONDS", "1")
            .env("RAPPORT_CLAIM_TIMEOUT_SECONDS", "3")
            .env("RAPPORT_WORKER_CONCURRENCY", "2")
            .env("RAPPORT_SEQUENCE_TICK_MS", "100")
            .env("RAPPORT_SEQUENCE_LEASE_SECONDS", "3")
            .env("RAPPORT_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start rapport worker")
    }

    /// A new workspace and its admin key.
    pub async fn workspace(&self, name: &str) -> String {
        rapport_engine::crm::workspaces::create(&self.db, name)
            .await
            .expect("workspace")
            .key
            .key
    }

    /// A new key of `admin`'s workspace with one scope (`READ`, `WRITE`, `ADMIN`).
    pub async fn scoped_key(&self, admin: &str, scope: &str) -> String {
        self.ok(
            admin,
            &format!("mutation {{ createApiKey(name: \"{scope}\", scopes: [{scope}]) {{ key }} }}"),
            json!({}),
        )
        .await["createApiKey"]["key"]
            .as_str()
            .unwrap()
            .to_string()
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

/// Compiled plugins shared by every test server, so each component compiles once.
pub fn plugin_cache() -> std::path::PathBuf {
    std::env::temp_dir().join("rapport-test-plugin-cache")
}

/// A guest component built by `scripts/test` (`engagement_score`, `hostile`, ...).
pub fn component(name: &str) -> Vec<u8> {
    let dir = std::env::var("RAPPORT_TEST_PLUGINS").unwrap_or_else(|_| {
        let target = std::env::var("CARGO_TARGET_DIR")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").to_string());
        format!("{target}/wasm32-wasip2/release")
    });
    let path = std::path::Path::new(&dir).join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the guest components first (scripts/test does)",
            path.display()
        )
    })
}

/// The text of a file in the repository (an example plugin's input query, say).
pub fn repo_file(path: &str) -> String {
    let full = format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

/// Runs one async scenario against both databases, as two tests.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    rapport_tests::runtime().block_on(async {
                        super::$name(rapport_tests::TestApp::spawn(rapport_tests::Backend::Sqlite).await).await;
                    });
                }
                #[test]
                fn postgres() {
                    rapport_tests::runtime().block_on(async {
                        super::$name(rapport_tests::TestApp::spawn(rapport_tests::Backend::Postgres).await).await;
                    });
                }
            }
        )+
    };
}

//! The `rapport` binary as a user runs it.

use std::process::{Command, Stdio};
use std::time::Duration;

fn rapport(db: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rapport"))
        .env("RAPPORT_DATABASE_URL", db)
        .env("RAPPORT_LOG", "warn")
        .args(args)
        .output()
        .expect("run rapport")
}

fn temp_db(name: &str) -> String {
    let path = std::env::temp_dir().join(format!("rapport_t_cli_{name}_{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    format!("sqlite://{}?mode=rwc", path.display())
}

/// A loopback address with a port nobody listens on.
fn free_addr() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

/// Waits (up to 10 s) until the server at `addr` answers.
async fn up(client: &reqwest::Client, addr: &str) {
    for _ in 0..100 {
        if client
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn stdout(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// A fresh PostgreSQL database on the server the other end-to-end tests use.
async fn postgres_db(name: &str) -> String {
    use sea_orm::ConnectionTrait;
    let admin_url = std::env::var("RAPPORT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let admin = sea_orm::Database::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is required ({admin_url}): {e}"));
    let db = format!("rapport_t_cli_{name}_{}", std::process::id());
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {db}"))
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    format!("{}/{db}", admin_url.rsplit_once('/').unwrap().0)
}

#[test]
fn demo_and_key_commands_on_sqlite() {
    demo_and_key_commands(&temp_db("keys"));
}

#[tokio::test]
async fn demo_and_key_commands_on_postgres() {
    let db = postgres_db("keys").await;
    tokio::task::spawn_blocking(move || demo_and_key_commands(&db))
        .await
        .unwrap();
}

fn demo_and_key_commands(db: &str) {
    assert!(rapport(db, &["migrate"]).status.success());
    assert!(
        rapport(db, &["migrate"]).status.success(),
        "migrate is idempotent"
    );
    let out = stdout(&rapport(db, &["demo", "--contacts", "40"]));
    let key = out.lines().last().unwrap();
    assert!(key.starts_with("rk_"), "last line is the key: {out}");
    let created = stdout(&rapport(
        db,
        &["api-key", "create", "--workspace", "1", "--scopes", "read"],
    ));
    assert_eq!(created.lines().count(), 1, "create prints only the key");
    assert!(created.starts_with("rk_"));
    let listed = stdout(&rapport(db, &["api-key", "list", "--workspace", "1"]));
    assert_eq!(listed.lines().count(), 2);
    assert!(!listed.contains(created.trim()), "list never shows secrets");
    let prefix = created.trim().split('_').nth(1).unwrap();
    stdout(&rapport(db, &["api-key", "revoke", prefix]));
    assert!(stdout(&rapport(db, &["api-key", "list", "--workspace", "1"])).contains("revoked"));
    let bad = rapport(
        db,
        &["api-key", "create", "--workspace", "1", "--scopes", "root"],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("root"));
    assert!(stdout(&rapport(db, &["schema"])).contains("type Contact"));
}

#[tokio::test]
async fn serve_answers_and_stops_gracefully_on_sigterm_on_sqlite() {
    serve_and_stop(&temp_db("serve")).await;
}

#[tokio::test]
async fn serve_answers_and_stops_gracefully_on_sigterm_on_postgres() {
    serve_and_stop(&postgres_db("serve").await).await;
}

async fn serve_and_stop(db: &str) {
    let addr = free_addr();
    let child = Command::new(env!("CARGO_BIN_EXE_rapport"))
        .env("RAPPORT_DATABASE_URL", db)
        .env("RAPPORT_LOG", "warn")
        .args(["serve", "--addr", &addr, "--demo", "--demo-contacts", "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let mut healthy = false;
    for _ in 0..100 {
        if let Ok(r) = client.get(format!("http://{addr}/healthz")).send().await {
            healthy = r.status().is_success();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(healthy, "server did not come up");
    // A browser asks for a page; an API client for JSON.
    let graphiql = client
        .get(format!("http://{addr}/graphql"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(graphiql.to_lowercase().contains("graphiql"));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "exit after SIGTERM: {:?}", out.status);
    let key = String::from_utf8(out.stdout).unwrap();
    assert!(
        key.trim().starts_with("rk_"),
        "serve --demo prints the key: {key}"
    );
}

fn temp_file(name: &str, contents: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("rapport_t_cli_{name}_{}", std::process::id()));
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn evaluate_clv_on_cdnow_prints_the_papers_parameters() {
    let csv = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/cdnow/cdnow_customers_summary.csv"
    );
    let out = rapport(
        "sqlite::memory:",
        &["model", "evaluate", "--kind", "clv", "--csv", csv, "--json"],
    );
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    for (key, expected) in [("r", 0.243), ("alpha", 4.414), ("a", 0.793), ("b", 2.426)] {
        let got = report[key].as_f64().unwrap();
        assert!((got - expected).abs() / expected < 5e-3, "{key} = {got}");
    }
}

#[test]
fn evaluate_classifier_reports_quality_and_names_bad_input() {
    // Conversion follows `visits`; `plan` is text; every 10th visits cell is empty.
    let mut csv = String::from("lead,visits,plan,part,won\n");
    for i in 0..400 {
        let visits = (i * 37) % 50;
        let won = if (visits + i % 7) > 30 { "Won" } else { "Lost" };
        let cell = if i % 10 == 0 {
            String::new()
        } else {
            visits.to_string()
        };
        let plan = ["free", "pro", "team"][i % 3];
        let part = if i % 5 == 0 { "test" } else { "train" };
        csv.push_str(&format!("{i},{cell},{plan},{part},{won}\n"));
    }
    let path = temp_file("leads.csv", &csv);
    let path = path.to_str().unwrap();
    let args = [
        "model",
        "evaluate",
        "--kind",
        "classifier",
        "--csv",
        path,
        "--label",
        "won",
        "--positive",
        "Won",
        "--id",
        "lead",
        "--json",
    ];
    let report: serde_json::Value =
        serde_json::from_str(&stdout(&rapport("sqlite::memory:", &args))).unwrap();
    assert_eq!(report["rows_train"], 320);
    assert_eq!(report["rows_test"], 80);
    assert_eq!(report["imputed"], 40);
    assert!(report["auc"].as_f64().unwrap() > 0.8, "{report}");
    assert!(report["log_loss"].as_f64().unwrap() < 0.6, "{report}");
    assert!(report["fit_seconds"].is_number() && report["positives_train"].is_number());

    let mut split_args = args.to_vec();
    split_args.extend(["--split", "part"]);
    let split: serde_json::Value =
        serde_json::from_str(&stdout(&rapport("sqlite::memory:", &split_args))).unwrap();
    assert_eq!(split["rows_test"], 80);

    let missing = rapport(
        "sqlite::memory:",
        &[
            "model",
            "evaluate",
            "--kind",
            "classifier",
            "--csv",
            path,
            "--label",
            "converted",
        ],
    );
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no column 'converted'"));
    let one_class = rapport(
        "sqlite::memory:",
        &[
            "model",
            "evaluate",
            "--kind",
            "classifier",
            "--csv",
            path,
            "--label",
            "won",
        ],
    );
    assert!(String::from_utf8_lossy(&one_class.stderr).contains("one class only"));
}

/// The directory `scripts/test` builds the guest components into.
fn components() -> std::path::PathBuf {
    match std::env::var("RAPPORT_TEST_PLUGINS") {
        Ok(dir) => dir.into(),
        Err(_) => std::path::Path::new(&target_dir()).join("wasm32-wasip2/release"),
    }
}

fn target_dir() -> String {
    std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").to_string())
}

fn write_temp(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("rapport_t_cli_{name}_{}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

const ENGAGED: &str = r#"{"contact": {"id": "7", "email": "a@b.co", "phone": null, "lifecycleStage": "LEAD", "tags": [],
  "activities": {"edges": [{"node": {"kind": "MEETING", "direction": "OUTBOUND", "occurredAt": "2026-11-28T10:00:00Z"}}]}}}"#;

#[test]
fn plugin_test_prints_the_answer_fuel_and_time() {
    let input = write_temp("input.json", ENGAGED);
    let wasm = components().join("engagement_score.wasm");
    let cache = std::env::temp_dir().join("rapport-test-plugin-cache");
    let run = |file: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "plugin",
            "test",
            file.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--as-of",
            "2026-11-30T12:00:00Z",
            "--plugin-cache",
            cache.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out: serde_json::Value =
            serde_json::from_str(&stdout(&rapport("unused", &args))).unwrap();
        out
    };
    let out = run(&wasm, &[]);
    assert_eq!(out["plugin"], "engagement-score");
    let score = out["score"]["score"].as_f64().unwrap();
    // 12 points, two days and two hours old at a 21-day half-life, on a scale of 30.
    let expected = 100.0 * (1.0 - (-12.0 * 0.5f64.powf((2.0 + 2.0 / 24.0) / 21.0) / 30.0).exp());
    assert!((score - expected).abs() < 1e-9, "{out}");
    assert!(out["score"]["fuelUsed"].as_u64().unwrap() > 1000);
    assert!(out["score"]["microseconds"].as_u64().is_some());
    assert!(
        out["nextBestActions"].is_null(),
        "not implemented, so not called"
    );

    let hostile = run(
        &components().join("hostile.wasm"),
        &[
            "--config",
            r#"{"mode": "loop", "always": true}"#,
            "--limits",
            r#"{"fuel": 1000000}"#,
        ],
    );
    assert!(
        hostile["score"]["error"]
            .as_str()
            .unwrap()
            .contains("exceeded its fuel limit (1000000 units)"),
        "{hostile}"
    );
    // Blocking WASI calls (a sleep, reading stdin) answer instead of panicking the CLI.
    for mode in ["sleep", "stdin"] {
        let config = format!(r#"{{"mode": "{mode}", "always": true}}"#);
        let out = run(&components().join("hostile.wasm"), &["--config", &config]);
        assert!(
            out["score"]["score"].is_number() || out["score"]["error"].is_string(),
            "{mode}: {out}"
        );
    }
    let bad = rapport(
        "unused",
        &[
            "plugin",
            "test",
            wasm.to_str().unwrap(),
            "--input",
            "/nonexistent.json",
        ],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/nonexistent.json"));
}

fn plugin_install(db: &str) {
    let key = stdout(&rapport(db, &["demo", "--contacts", "30"]));
    assert!(key.trim().starts_with("rk_"));
    let wasm = components().join("engagement_score.wasm");
    let query = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../plugins/examples/engagement-score/query.graphql"
    );
    let cache = std::env::temp_dir().join("rapport-test-plugin-cache");
    let install = |extra: &[&str]| {
        let mut args = vec![
            "plugin",
            "install",
            wasm.to_str().unwrap(),
            "--name",
            "engagement",
            "--query",
            query,
            "--workspace",
            "1",
            "--plugin-cache",
            cache.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        rapport(db, &args)
    };
    let first: serde_json::Value = serde_json::from_str(&stdout(&install(&[]))).unwrap();
    assert_eq!(first["plugin"], "engagement");
    assert_eq!(first["version"], 1);
    assert_eq!(first["score"], true);
    let second: serde_json::Value =
        serde_json::from_str(&stdout(&install(&["--config", r#"{"meeting": 20}"#]))).unwrap();
    assert_eq!(second["version"], 2);
    assert_eq!(second["sha256"], first["sha256"]);
    let ran: serde_json::Value = serde_json::from_str(&stdout(&rapport(
        db,
        &[
            "plugin",
            "run",
            "--workspace",
            "1",
            "--plugin-cache",
            cache.to_str().unwrap(),
        ],
    )))
    .unwrap();
    assert_eq!(ran["contacts"], 30, "{ran}");
    assert_eq!(ran["scored"], 30, "{ran}");
    assert_eq!(ran["failures"], 0, "{ran}");
    let refused = install(&["--config", "[1, 2]"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("config: must be a JSON object"));
}

#[test]
fn plugin_install_on_sqlite() {
    plugin_install(&temp_db("plugins"));
}

#[tokio::test]
async fn plugin_install_on_postgres() {
    let db = postgres_db("plugins").await;
    tokio::task::spawn_blocking(move || plugin_install(&db))
        .await
        .unwrap();
}

#[test]
fn plugin_new_scaffolds_a_plugin_that_builds_and_scores() {
    let dir = std::env::temp_dir().join(format!("rapport_t_cli_scaffold_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let made = Command::new(env!("CARGO_BIN_EXE_rapport"))
        .current_dir(&dir)
        .args(["plugin", "new", "my-score"])
        .output()
        .unwrap();
    stdout(&made);
    let again = Command::new(env!("CARGO_BIN_EXE_rapport"))
        .current_dir(&dir)
        .args(["plugin", "new", "my-score"])
        .output()
        .unwrap();
    assert!(
        !again.status.success(),
        "an existing directory is not overwritten"
    );
    let project = dir.join("my-score");
    // The input's types were generated from the query, as `plugin types` prints them.
    let types = Command::new(env!("CARGO_BIN_EXE_rapport"))
        .current_dir(&project)
        .args(["plugin", "types", "query.graphql"])
        .output()
        .unwrap();
    let generated = std::fs::read_to_string(project.join("src/input.rs")).unwrap();
    assert_eq!(stdout(&types), generated);
    assert!(generated.contains("pub total_count: i64,"), "{generated}");
    let build = Command::new(env!("CARGO"))
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", target_dir())
        .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let wasm = std::path::Path::new(&target_dir()).join("wasm32-wasip2/release/my_score.wasm");
    let input = write_temp(
        "scaffold-input.json",
        r#"{"contact": {"activities": {"totalCount": 3}}}"#,
    );
    let out: serde_json::Value = serde_json::from_str(&stdout(&rapport(
        "unused",
        &[
            "plugin",
            "test",
            wasm.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
        ],
    )))
    .unwrap();
    assert_eq!(out["plugin"], "my-score");
    assert_eq!(out["score"]["score"], 30.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A scripted plugin project (`--lang python|js`) made by `rapport plugin new` in a fresh
/// directory, checked to hold `files`; returns the directory and the project.
fn scaffold(name: &str, lang: &str, files: &[&str]) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "rapport_t_cli_scaffold_{lang}_{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let made = Command::new(env!("CARGO_BIN_EXE_rapport"))
        .current_dir(&dir)
        .args(["plugin", "new", name, "--lang", lang])
        .output()
        .unwrap();
    stdout(&made);
    let project = dir.join(name);
    for file in files {
        assert!(project.join(file).is_file(), "{file} was not written");
    }
    (dir, project)
}

/// `rapport plugin test` of `wasm` on the input `data`, with the limits an interpreter
/// inside the component needs (more than a Rust plugin does).
fn test_scripted(wasm: &std::path::Path, name: &str, data: &str) -> serde_json::Value {
    let input = write_temp(name, data);
    serde_json::from_str(&stdout(&rapport(
        "unused",
        &[
            "plugin",
            "test",
            wasm.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--limits",
            r#"{"fuel": 5000000000, "memoryBytes": 268435456, "timeMs": 20000}"#,
        ],
    )))
    .unwrap()
}

#[test]
fn plugin_new_python_scaffolds_a_plugin_that_builds_and_scores() {
    let (dir, project) = scaffold(
        "py-score",
        "python",
        &[
            "app.py",
            "build.sh",
            "README.md",
            "query.graphql",
            "wit/plugin.wit",
        ],
    );
    // componentize-py is installed by scripts/test, as the Python example needs it.
    let build = Command::new(project.join("build.sh")).output().unwrap();
    assert!(
        build.status.success(),
        "build.sh failed (is componentize-py installed?): {}",
        String::from_utf8_lossy(&build.stderr)
    );
    let out = test_scripted(
        &project.join("py_score.wasm"),
        "scaffold-py-input.json",
        r#"{"contact": {"activities": {"totalCount": 4}}}"#,
    );
    assert_eq!(out["plugin"], "py-score");
    assert_eq!(out["score"]["score"], 40.0);
    assert_eq!(out["score"]["reasons"][0]["feature"], "activities");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An example's generated input types are what `plugin types` makes of its query today:
/// a schema change that would break them shows here.
#[test]
fn example_input_types_match_their_queries() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/examples");
    let out = Command::new(env!("CARGO_BIN_EXE_rapport"))
        .args(["plugin", "types"])
        .arg(root.join("deal-risk/query.graphql"))
        .output()
        .unwrap();
    let committed = std::fs::read_to_string(root.join("deal-risk/src/input.rs")).unwrap();
    assert_eq!(
        stdout(&out),
        committed,
        "regenerate: rapport plugin types plugins/examples/deal-risk/query.graphql > plugins/examples/deal-risk/src/input.rs"
    );
}

#[test]
fn plugin_new_js_scaffolds_a_plugin_that_builds_and_scores() {
    let (dir, project) = scaffold(
        "js-score",
        "js",
        &[
            "app.js",
            "package.json",
            "build.sh",
            "README.md",
            "query.graphql",
            "wit/plugin.wit",
        ],
    );
    // scripts/test installs componentize-js once (RAPPORT_TEST_COMPONENTIZE_JS, its
    // node_modules); without it, build.sh runs npm install itself.
    if let Ok(modules) = std::env::var("RAPPORT_TEST_COMPONENTIZE_JS") {
        std::os::unix::fs::symlink(modules, project.join("node_modules")).unwrap();
    }
    let build = Command::new(project.join("build.sh")).output().unwrap();
    assert!(
        build.status.success(),
        "build.sh failed: {}{}",
        String::from_utf8_lossy(&build.stdout),
        String::from_utf8_lossy(&build.stderr)
    );
    let wasm = project.join("js_score.wasm");
    let out = test_scripted(
        &wasm,
        "scaffold-js-input.json",
        r#"{"contact": {"activities": {"totalCount": 4}}}"#,
    );
    assert_eq!(out["plugin"], "js-score", "{out}");
    assert_eq!(out["score"]["score"], 40.0, "{out}");
    assert_eq!(out["score"]["reasons"][0]["feature"], "activities");
    // A thrown {code, message} is the plugin's error, as the contract says.
    let out = test_scripted(&wasm, "scaffold-js-bad.json", r#"{"contact": null}"#);
    assert!(
        out["score"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("the input has no contact")),
        "{out}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The README's table of settings says what `--help` says: every flag with its variable
/// and default, and no setting `serve` or `worker` has is missing from it.
#[test]
fn readme_settings_table_matches_help() {
    let help = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_rapport"))
            .args(args)
            .env_clear()
            .output()
            .expect("run rapport --help");
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let help = help(&["serve", "--help"]) + &help(&["worker", "--help"]);
    // One entry per flag: `--flag <VALUE>  doc… [env: RAPPORT_X=] [default: v]`, over
    // several lines when the doc is long.
    let mut entries: Vec<(String, String)> = Vec::new();
    for line in help.lines() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("--") {
            let flag = format!("--{}", rest.split([' ', '=']).next().unwrap_or_default());
            entries.push((flag, String::new()));
        } else if let Some((_, text)) = entries.last_mut() {
            text.push(' ');
            text.push_str(trimmed);
        }
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let rows: Vec<Vec<String>> = readme
        .lines()
        .filter(|l| l.starts_with("| `--"))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().trim_matches('`').to_string())
                .collect()
        })
        .collect();
    assert!(rows.len() > 20, "the README's settings table was not found");
    for row in &rows {
        let (flag, env, default) = (&row[0], &row[1], &row[2]);
        let Some((_, text)) = entries.iter().find(|(f, _)| f == flag) else {
            // Global flags show on every command; `serve --help` lists them too.
            panic!("README lists {flag}, which `serve --help` and `worker --help` do not have");
        };
        // A secret's variable is shown without its value (`[env: NAME]`).
        assert!(
            text.contains(&format!("[env: {env}=")) || text.contains(&format!("[env: {env}]")),
            "{flag}: README says {env}; --help says {text}"
        );
        if let Some(at) = text.find("[default: ") {
            let shown = &text[at + "[default: ".len()..];
            let shown = &shown[..shown.find(']').unwrap_or(shown.len())];
            assert_eq!(
                default, shown,
                "{flag}: README's default differs from --help"
            );
        }
    }
    for (flag, text) in &entries {
        if text.contains("[env: RAPPORT_") {
            assert!(
                rows.iter().any(|r| &r[0] == flag),
                "{flag} is missing from the README's settings table"
            );
        }
    }
}

/// `rapport demo --plugin` installs the example next-best-action component and runs it
/// over the demo's contacts; stdout still ends with the key alone.
#[test]
fn demo_installs_the_example_plugin() {
    let db = temp_db("demo_plugin");
    let wasm = components().join("next_best_action.wasm");
    let cache = std::env::temp_dir().join("rapport-test-plugin-cache");
    let out = rapport(
        &db,
        &[
            "demo",
            "--contacts",
            "40",
            "--plugin",
            wasm.to_str().unwrap(),
            "--plugin-cache",
            cache.to_str().unwrap(),
        ],
    );
    let printed = stdout(&out);
    assert_eq!(
        printed.lines().count(),
        1,
        "only the key on stdout: {printed}"
    );
    assert!(printed.trim().starts_with("rk_"));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("plugin next-best-action installed: 40 contacts"),
        "{log}"
    );
    // It is there to run again.
    let ran: serde_json::Value = serde_json::from_str(&stdout(&rapport(
        &db,
        &[
            "plugin",
            "run",
            "--workspace",
            "1",
            "--plugin",
            "next-best-action",
            "--plugin-cache",
            cache.to_str().unwrap(),
        ],
    )))
    .unwrap();
    assert_eq!(ran["contacts"], 40);
    assert_eq!(ran["failures"], 0);
}

/// `rapport user create` prints a one-time link; the password set through it signs in;
/// and with every log line on (debug), neither the password, its hash, the link's token
/// nor the session token ever reaches the server's log.
#[tokio::test]
async fn user_create_links_to_a_password_and_secrets_stay_out_of_the_log() {
    let db = temp_db("user");
    let addr = free_addr();
    let created = rapport(
        &db,
        &[
            "user",
            "create",
            "--email",
            "first@example.com",
            "--role",
            "admin",
            "--public-url",
            &format!("http://{addr}"),
        ],
    );
    let link = stdout(&created).trim().to_string();
    assert!(
        link.starts_with(&format!("http://{addr}/#/set-password?token=rl_")),
        "{link}"
    );
    let token = link.split("token=").nth(1).unwrap().to_string();
    let bad_role = rapport(
        &db,
        &[
            "user",
            "create",
            "--email",
            "x@example.com",
            "--role",
            "root",
        ],
    );
    assert!(!bad_role.status.success());
    assert!(String::from_utf8_lossy(&bad_role.stderr).contains("--role"));

    let child = Command::new(env!("CARGO_BIN_EXE_rapport"))
        .env("RAPPORT_DATABASE_URL", &db)
        .env("RAPPORT_LOG", "debug")
        .args(["serve", "--addr", &addr, "--no-workers", "--no-scheduler"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    up(&client, &addr).await;
    let password = "first admin's passphrase";
    let set = client
        .post(format!("http://{addr}/auth/set-password"))
        .json(&serde_json::json!({"token": token, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status().as_u16(), 200);
    let signed_in = client
        .post(format!("http://{addr}/auth/sign-in"))
        .json(&serde_json::json!({"email": "first@example.com", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status().as_u16(), 200);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    let session = cookie.split(';').next().unwrap().to_string();
    let body: serde_json::Value = signed_in.json().await.unwrap();
    let me: serde_json::Value = client
        .post(format!("http://{addr}/graphql"))
        .header("cookie", &session)
        .header("x-csrf-token", body["csrfToken"].as_str().unwrap())
        .json(&serde_json::json!({"query": "{ viewer { scopes user { email role } } }"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        me["data"]["viewer"],
        serde_json::json!({"scopes": ["ADMIN"], "user": {"email": "first@example.com", "role": "ADMIN"}})
    );
    // A wrong password, logged as a refusal and nothing more.
    client
        .post(format!("http://{addr}/auth/sign-in"))
        .json(&serde_json::json!({"email": "first@example.com", "password": "a wrong passphrase"}))
        .send()
        .await
        .unwrap();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("/auth/sign-in"),
        "the log shows the requests: {log}"
    );
    let session_token = session.trim_start_matches("rapport_session=");
    for secret in [
        password,
        "a wrong passphrase",
        "$argon2",
        token.as_str(),
        session_token,
    ] {
        assert!(!log.contains(secret), "{secret:?} is in the log");
    }
}

/// `--log-format json`: one JSON object a line, each naming the request that caused it;
/// the same id comes back in `X-Request-Id` and in an error's `extensions.requestId`. A
/// client's id is taken when it is a short plain token, replaced otherwise (it goes into
/// every log line).
#[tokio::test]
async fn json_logs_and_answers_name_each_request() {
    let db = temp_db("json_logs");
    let addr = free_addr();
    let child = Command::new(env!("CARGO_BIN_EXE_rapport"))
        .env("RAPPORT_DATABASE_URL", &db)
        .env("RAPPORT_LOG", "info,tower_http=debug")
        .args(["serve", "--addr", &addr, "--no-workers", "--no-scheduler"])
        .args(["--log-format", "json"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    up(&client, &addr).await;
    let refused = client
        .post(format!("http://{addr}/graphql"))
        .header("x-request-id", "trace-me-42")
        .json(&serde_json::json!({"query": "{ viewer { scopes } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    assert_eq!(refused.headers()["x-request-id"], "trace-me-42");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["requestId"], "trace-me-42",
        "{body}"
    );
    let replaced = client
        .get(format!("http://{addr}/healthz"))
        .header("x-request-id", "not\ta plain token")
        .send()
        .await
        .unwrap();
    let id = replaced.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "a new id: {id}"
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["spans"]
            .as_array()
            .is_some_and(|spans| spans.iter().any(|s| s["request_id"] == "trace-me-42"))),
        "a line names the request: {log}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["timestamp"].is_string())
    );
}

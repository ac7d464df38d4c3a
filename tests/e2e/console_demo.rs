//! What the console's browser tests stand on: a real server with a mailer (a real SMTP
//! server) and the demo's data, whose admin signs in with [`PASSWORD`], and the runtime
//! the scenarios run on.

use rapport_tests::browser;
use rapport_tests::{Backend, SmtpServer, TestApp, plugin_cache};

/// The demo admin's password.
pub const PASSWORD: &str = "demo password 42";
/// Where the test server says it is reached (links in mail point there).
pub const PUBLIC: &str = "http://console.test";

/// A server with a mailer and the demo's data.
pub struct Demo {
    pub app: TestApp,
    pub smtp: SmtpServer,
    pub key: String,
    pub admin_email: String,
}

/// The demo with `contacts` contacts (and, with `showcase`, its segments, templates,
/// campaign and sequence); `None` where there is no Chromium outside CI.
pub async fn demo(backend: Backend, contacts: u64, showcase: bool) -> Option<Demo> {
    if !browser::available() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "Chromium and chromedriver are missing: scripts/test installs them (apt-get install chromium chromium-driver)"
        );
        eprintln!("skipped: no Chromium here (scripts/test installs it)");
        return None;
    }
    let smtp = SmtpServer::start();
    let outbox = std::env::temp_dir().join("rapport-console-outbox");
    let config = rapport_api::server::Config {
        plugin_cache: Some(plugin_cache()),
        trusted_proxies: vec![std::net::Ipv4Addr::LOCALHOST.into()],
        public_url: PUBLIC.into(),
        mail: Some(rapport_api::graphql::Mail {
            mailer: rapport_engine::platform::email::Mailer::configure(Some(&smtp.url), outbox)
                .unwrap(),
            from: rapport_engine::values::EmailAddress::parse("from", "crm@rapport.example")
                .unwrap(),
        }),
        ..Default::default()
    };
    let app = TestApp::spawn_with(backend, config).await;
    let size = rapport_engine::demo::DemoSize::for_contacts(contacts);
    let created = rapport_engine::demo::seed(&app.db, "Demo", &size, &|_| {})
        .await
        .expect("demo");
    let ws = created.workspace.id;
    if showcase {
        rapport_engine::demo::showcase::build(&app.db, ws)
            .await
            .expect("showcase");
    }
    let admin = {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
        rapport_schema::user::Entity::find()
            .filter(rapport_schema::user::Column::WorkspaceId.eq(ws))
            .filter(rapport_schema::user::Column::Role.eq("admin"))
            .order_by_asc(rapport_schema::user::Column::Id)
            .one(&app.db)
            .await
            .unwrap()
            .unwrap()
    };
    let pw = rapport_engine::platform::accounts::Password::parse("password", PASSWORD).unwrap();
    rapport_engine::platform::accounts::set_password(&app.db, admin.id, &pw)
        .await
        .unwrap();
    Some(Demo {
        app,
        smtp,
        key: created.key.key,
        admin_email: admin.email,
    })
}

/// The database's name, for screenshot file names.
pub fn db_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// Runs a scenario on a runtime whose threads have the stack the `rapport` binary gives
/// its own (the console's larger documents nest deeper futures than a debug build's
/// default 2 MiB stack holds).
pub fn run(scenario: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(16 * 1024 * 1024)
        .enable_all()
        .build()
        .unwrap()
        .block_on(scenario);
}

//! Settings `serve` and `worker` share: request limits, mail, job workers. Each flag reads
//! a `RAPPORT_*` variable too; where the library has a default, the flag's default is it.

use anyhow::Context as _;
use rapport_api::workers;
use rapport_engine::engagement::sequences::runner::Ticking;
use rapport_engine::integrations::webhooks::Settings as WebhookSettings;
use rapport_engine::platform::queue;

/// What one request may ask of `serve`.
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct LimitArgs {
    /// Bytes of a JSON request body (GraphQL, webhooks); larger ones get 413 unread.
    #[arg(long, env = "RAPPORT_MAX_BODY_BYTES", default_value_t = rapport_api::server::DEFAULT_LIMITS.json_body_bytes)]
    pub(crate) max_body_bytes: usize,
    /// Bytes of a multipart GraphQL request (a plugin upload).
    #[arg(long, env = "RAPPORT_MAX_UPLOAD_BYTES", default_value_t = rapport_api::server::DEFAULT_LIMITS.upload_bytes)]
    pub(crate) max_upload_bytes: usize,
    /// Seconds a request may run before it is answered with a timeout.
    #[arg(long, env = "RAPPORT_REQUEST_TIMEOUT_SECONDS", default_value_t = rapport_api::server::DEFAULT_LIMITS.request_timeout.as_secs())]
    pub(crate) request_timeout_seconds: u64,
    /// Seconds a multipart request (a plugin upload, compiled before it is answered) may run.
    #[arg(long, env = "RAPPORT_UPLOAD_TIMEOUT_SECONDS", default_value_t = rapport_api::server::DEFAULT_LIMITS.upload_timeout.as_secs())]
    pub(crate) upload_timeout_seconds: u64,
    /// Query complexity one API key may spend per second (a request costs at most 100,000).
    #[arg(long, env = "RAPPORT_KEY_COST_PER_SECOND", default_value_t = rapport_api::server::DEFAULT_LIMITS.key_cost_per_second)]
    pub(crate) key_cost_per_second: u64,
    /// Requests one API key or console session may make per minute; past it, 429 with
    /// Retry-After.
    #[arg(long, env = "RAPPORT_REQUESTS_PER_MINUTE", default_value_t = rapport_api::server::DEFAULT_LIMITS.requests_per_minute)]
    pub(crate) requests_per_minute: u32,
    /// Inbound webhook calls (bounce reports) one API key may make per minute, apart from
    /// --requests-per-minute; past it, 429 with Retry-After.
    #[arg(long, env = "RAPPORT_INBOUND_WEBHOOKS_PER_MINUTE", default_value_t = rapport_api::server::DEFAULT_LIMITS.inbound_webhooks_per_minute)]
    pub(crate) inbound_webhooks_per_minute: u32,
    /// A bearer token for `GET /metrics` (Prometheus text format, every workspace's
    /// numbers); without it the endpoint is off.
    #[arg(long, env = "RAPPORT_METRICS_TOKEN", hide_env_values = true)]
    pub(crate) metrics_token: Option<String>,
    /// Do not serve GraphiQL to browsers at `GET /graphql`.
    #[arg(long, env = "RAPPORT_NO_GRAPHIQL")]
    pub(crate) no_graphiql: bool,
    /// Addresses of reverse proxies whose `X-Forwarded-For` names the client (comma
    /// separated); from anyone else the header is ignored.
    #[arg(long, env = "RAPPORT_TRUSTED_PROXIES", value_delimiter = ',')]
    pub(crate) trusted_proxies: Vec<std::net::IpAddr>,
    /// Who may introspect the schema: every key, no key, or admin keys only.
    #[arg(long, env = "RAPPORT_INTROSPECTION", value_enum, default_value_t = rapport_api::server::Introspection::On)]
    pub(crate) introspection: rapport_api::server::Introspection,
    /// Run only the GraphQL documents listed in this JSON file (`{"<sha256 hex>":
    /// "<document>"}`, as GraphQL Codegen writes persisted documents); others are refused.
    /// Without it, clients may register documents by hash (automatic persisted queries).
    #[arg(long, env = "RAPPORT_TRUSTED_DOCUMENTS")]
    pub(crate) trusted_documents: Option<std::path::PathBuf>,
    /// Web origins whose pages may call `/graphql` from a browser (CORS), comma separated,
    /// such as `https://app.example.com`; none by default. Lead capture's origins are set
    /// per ingest key instead.
    #[arg(long, env = "RAPPORT_CORS_ORIGINS", value_delimiter = ',')]
    pub(crate) cors_origins: Vec<String>,
    /// Lead-capture requests (hosted forms and `/capture`) one client address may make a
    /// minute.
    #[arg(long, env = "RAPPORT_CAPTURE_PER_IP_PER_MINUTE", default_value_t = rapport_api::capture::DEFAULT_CAPTURE_LIMITS.per_ip_per_minute)]
    pub(crate) capture_per_ip_per_minute: u32,
    /// Lead-capture requests one ingest key may take a minute, from everywhere.
    #[arg(long, env = "RAPPORT_CAPTURE_PER_KEY_PER_MINUTE", default_value_t = rapport_api::capture::DEFAULT_CAPTURE_LIMITS.per_key_per_minute)]
    pub(crate) capture_per_key_per_minute: u32,
    /// Hours a console session lasts after sign-in.
    #[arg(long, env = "RAPPORT_SESSION_HOURS", default_value_t = rapport_api::sessions::DEFAULT_SESSION_SETTINGS.ttl.as_secs() / 3600)]
    pub(crate) session_hours: u64,
    /// Console sign-in, password and reset requests one client address may make a minute.
    #[arg(long, env = "RAPPORT_SIGN_IN_PER_IP_PER_MINUTE", default_value_t = rapport_api::sessions::DEFAULT_SESSION_SETTINGS.per_ip_per_minute)]
    pub(crate) sign_in_per_ip_per_minute: u32,
}

impl LimitArgs {
    /// The persisted documents `serve` runs with: the trusted list, or automatic ones.
    pub(crate) fn documents(&self) -> anyhow::Result<rapport_api::graphql_http::Documents> {
        let Some(path) = &self.trusted_documents else {
            return Ok(rapport_api::graphql_http::Documents::automatic());
        };
        let raw = std::fs::read_to_string(path)
            .with_context(|| format!("reading the trusted documents {}", path.display()))?;
        let list: std::collections::HashMap<String, String> = serde_json::from_str(&raw)
            .with_context(|| {
                format!("{} is not a JSON object of hash → document", path.display())
            })?;
        rapport_api::graphql_http::Documents::trusted(list).map_err(anyhow::Error::msg)
    }

    /// The CORS origins, each checked.
    pub(crate) fn cors_origins(
        &self,
    ) -> anyhow::Result<Vec<rapport_engine::engagement::capture::keys::WebOrigin>> {
        self.cors_origins
            .iter()
            .map(|o| {
                rapport_engine::engagement::capture::keys::WebOrigin::parse("--cors-origins", o)
                    .map_err(anyhow::Error::from)
            })
            .collect()
    }

    /// Lead capture's budgets.
    pub(crate) fn sessions(&self) -> rapport_api::sessions::SessionSettings {
        rapport_api::sessions::SessionSettings {
            ttl: std::time::Duration::from_secs(self.session_hours.clamp(1, 24 * 90) * 3600),
            per_ip_per_minute: self.sign_in_per_ip_per_minute,
        }
    }

    pub(crate) fn capture(&self) -> rapport_api::capture::CaptureLimits {
        rapport_api::capture::CaptureLimits {
            per_ip_per_minute: self.capture_per_ip_per_minute,
            per_key_per_minute: self.capture_per_key_per_minute,
        }
    }

    pub(crate) fn limits(&self) -> rapport_api::server::Limits {
        rapport_api::server::Limits {
            json_body_bytes: self.max_body_bytes,
            upload_bytes: self.max_upload_bytes,
            request_timeout: std::time::Duration::from_secs(self.request_timeout_seconds.max(1)),
            upload_timeout: std::time::Duration::from_secs(self.upload_timeout_seconds.max(1)),
            key_cost_per_second: self.key_cost_per_second,
            requests_per_minute: self.requests_per_minute.max(1),
            inbound_webhooks_per_minute: self.inbound_webhooks_per_minute.max(1),
        }
    }
}

/// Where mail goes and where its links point.
#[derive(clap::Args)]
pub(crate) struct MailArgs {
    /// The address people reach the API at, for unsubscribe, confirmation and tracking
    /// links (default: http:// + the serve address).
    #[arg(long, env = "RAPPORT_PUBLIC_URL")]
    pub(crate) public_url: Option<String>,
    /// SMTP server for outgoing mail (`smtp://user:pass@host:587`, `smtps://…`);
    /// without it, mail is written as .eml files to --outbox.
    #[arg(long, env = "RAPPORT_SMTP_URL")]
    pub(crate) smtp_url: Option<String>,
    /// Where mail goes when no SMTP server is configured.
    #[arg(long, env = "RAPPORT_OUTBOX", default_value = "outbox")]
    pub(crate) outbox: std::path::PathBuf,
    /// The sender address of Rapport's own emails.
    #[arg(
        long,
        env = "RAPPORT_MAIL_FROM",
        default_value = "no-reply@rapport.localhost"
    )]
    pub(crate) mail_from: String,
    /// A DKIM private key to sign outgoing mail with: RSA in PKCS#1 PEM, or an Ed25519
    /// seed in base64.
    #[arg(long, env = "RAPPORT_DKIM_KEY_FILE", requires = "dkim_selector")]
    pub(crate) dkim_key_file: Option<std::path::PathBuf>,
    /// The DKIM selector published in DNS (`<selector>._domainkey.<domain>`).
    #[arg(long, env = "RAPPORT_DKIM_SELECTOR")]
    pub(crate) dkim_selector: Option<String>,
    /// The DKIM signing domain (default: the domain of --mail-from).
    #[arg(long, env = "RAPPORT_DKIM_DOMAIN")]
    pub(crate) dkim_domain: Option<String>,
}

impl MailArgs {
    pub(crate) fn mailer(&self) -> anyhow::Result<rapport_engine::platform::email::Mailer> {
        let mailer = rapport_engine::platform::email::Mailer::configure(
            self.smtp_url.as_deref(),
            self.outbox.clone(),
        )?;
        let Some(file) = &self.dkim_key_file else {
            return Ok(mailer);
        };
        let private_key = std::fs::read_to_string(file)
            .with_context(|| format!("reading the DKIM key {}", file.display()))?;
        let from = rapport_engine::values::EmailAddress::parse("--mail-from", &self.mail_from)?;
        let key = rapport_engine::platform::email::DkimKey {
            selector: self.dkim_selector.clone().unwrap_or_default(),
            domain: self
                .dkim_domain
                .clone()
                .unwrap_or_else(|| from.domain().to_string()),
            private_key,
        };
        Ok(mailer.with_dkim(&key)?)
    }
}

/// How job workers run.
#[derive(clap::Args)]
pub(crate) struct WorkerArgs {
    /// Jobs this process runs at once.
    #[arg(long, env = "RAPPORT_WORKER_CONCURRENCY", default_value_t = queue::DEFAULT_CONCURRENCY)]
    pub(crate) worker_concurrency: usize,
    /// Seconds between worker heartbeats; a worker silent for three is presumed dead and
    /// its jobs are taken over.
    #[arg(long, env = "RAPPORT_WORKER_HEARTBEAT_SECONDS", default_value_t = queue::DEFAULT_HEARTBEAT.as_secs())]
    pub(crate) worker_heartbeat_seconds: u64,
    /// Seconds before a message claimed by a worker that never answered counts as
    /// interrupted (it is then marked failed, never sent twice).
    #[arg(long, env = "RAPPORT_CLAIM_TIMEOUT_SECONDS", default_value_t = workers::DEFAULT_CLAIM_TIMEOUT.as_secs())]
    pub(crate) claim_timeout_seconds: u64,
    /// Consecutive failed sends after which a campaign pauses itself.
    #[arg(long, env = "RAPPORT_SEND_FAILURE_LIMIT", default_value_t = workers::DEFAULT_FAILURE_LIMIT)]
    pub(crate) send_failure_limit: i32,
    /// Seconds before a campaign that paused itself (the mail server kept failing) first
    /// checks whether the server is back; the wait doubles up to ten minutes.
    #[arg(long, env = "RAPPORT_MAIL_PROBE_SECONDS", default_value_t = workers::DEFAULT_PROBE_DELAY.as_secs())]
    pub(crate) mail_probe_seconds: u64,
    /// Seconds before the first retry of a failed job (doubling each time).
    #[arg(long, env = "RAPPORT_RETRY_DELAY_SECONDS", default_value_t = queue::DEFAULT_RETRY_DELAY.as_secs())]
    pub(crate) retry_delay_seconds: u64,
    /// Milliseconds between looks for due drip-sequence steps and new trigger rows.
    #[arg(long, env = "RAPPORT_SEQUENCE_TICK_MS", default_value_t = Ticking::DEFAULT.every.as_millis() as u64)]
    pub(crate) sequence_tick_ms: u64,
    /// Seconds between evaluations of segment and date-attribute triggers.
    #[arg(long, env = "RAPPORT_SEQUENCE_SLOW_TICK_SECONDS", default_value_t = Ticking::DEFAULT.slow_every.as_secs())]
    pub(crate) sequence_slow_tick_seconds: u64,
    /// Seconds a worker may hold a sequence enrollment before another takes it over (a
    /// worker that died holding it).
    #[arg(long, env = "RAPPORT_SEQUENCE_LEASE_SECONDS", default_value_t = Ticking::DEFAULT.lease.as_secs())]
    pub(crate) sequence_lease_seconds: u64,
    /// Allow webhook endpoints on private, loopback and link-local addresses (closed
    /// networks and tests); without it they are refused, after DNS and at every redirect.
    #[arg(long, env = "RAPPORT_ALLOW_PRIVATE_WEBHOOKS")]
    pub(crate) allow_private_webhooks: bool,
    /// Seconds one webhook delivery attempt may take.
    #[arg(long, env = "RAPPORT_WEBHOOK_TIMEOUT_SECONDS", default_value_t = WebhookSettings::new().timeout.as_secs())]
    pub(crate) webhook_timeout_seconds: u64,
    /// Milliseconds before a failed webhook delivery's first retry; later retries wait up
    /// to 5760 times this (about 30 hours in all with the default).
    #[arg(long, env = "RAPPORT_WEBHOOK_RETRY_MS", default_value_t = WebhookSettings::new().retry_base.as_millis() as u64)]
    pub(crate) webhook_retry_ms: u64,
    /// Hours a webhook endpoint may fail without one success before it is disabled and
    /// its admins are told.
    #[arg(long, env = "RAPPORT_WEBHOOK_DISABLE_AFTER_HOURS", default_value_t = WebhookSettings::new().disable_after.num_hours() as u64)]
    pub(crate) webhook_disable_after_hours: u64,
    /// Days webhook events and their delivery log are kept once nothing is owed for them.
    #[arg(long, env = "RAPPORT_WEBHOOK_RETENTION_DAYS", default_value_t = WebhookSettings::new().retention.num_days() as u64)]
    pub(crate) webhook_retention_days: u64,
    /// Days the audit log keeps its rows.
    #[arg(long, env = "RAPPORT_AUDIT_RETENTION_DAYS", default_value_t = rapport_engine::platform::audit::DEFAULT_RETENTION_DAYS)]
    pub(crate) audit_retention_days: u32,
}

impl WorkerArgs {
    /// How webhooks are checked and delivered, for the API and the workers alike.
    pub(crate) fn webhooks(&self, mail: &MailArgs) -> anyhow::Result<WebhookSettings> {
        let mut settings = WebhookSettings::new();
        settings.allow_private = self.allow_private_webhooks;
        settings.timeout = std::time::Duration::from_secs(self.webhook_timeout_seconds.max(1));
        settings.retry_base = std::time::Duration::from_millis(self.webhook_retry_ms.max(1));
        settings.disable_after =
            chrono::Duration::hours(self.webhook_disable_after_hours.max(1) as i64);
        settings.retention = chrono::Duration::days(self.webhook_retention_days.max(1) as i64);
        settings.notify_from = Some(rapport_engine::values::EmailAddress::parse(
            "--mail-from",
            &mail.mail_from,
        )?);
        Ok(settings)
    }

    pub(crate) fn config(
        &self,
        mail: &MailArgs,
        public_url: String,
    ) -> anyhow::Result<rapport_api::workers::WorkerConfig> {
        let mailer = mail.mailer()?;
        let mut config = rapport_api::workers::WorkerConfig::new(mailer, public_url);
        config.failure_limit = self.send_failure_limit.max(1);
        config.probe_delay = std::time::Duration::from_secs(self.mail_probe_seconds.max(1));
        config.claim_timeout = std::time::Duration::from_secs(self.claim_timeout_seconds.max(1));
        config.options.concurrency = self.worker_concurrency.max(1);
        config.options.heartbeat =
            std::time::Duration::from_secs(self.worker_heartbeat_seconds.max(1));
        config.options.retry_delay = std::time::Duration::from_secs(self.retry_delay_seconds);
        config.ticking = rapport_engine::engagement::sequences::runner::Ticking {
            every: std::time::Duration::from_millis(self.sequence_tick_ms.max(10)),
            slow_every: std::time::Duration::from_secs(self.sequence_slow_tick_seconds.max(1)),
            lease: std::time::Duration::from_secs(self.sequence_lease_seconds.max(1)),
        };
        config.webhooks = self.webhooks(mail)?;
        config.audit_retention = chrono::Duration::days(self.audit_retention_days.max(1) as i64);
        Ok(config)
    }
}

//! Sending email: lettre over a pooled SMTP transport (`smtp://`, `smtps://`, STARTTLS
//! and auth by URL, as lettre reads `RAPPORT_SMTP_URL`), or, with no SMTP configured,
//! `.eml` files in an outbox directory so a demo works offline.
//!
//! Every message has an HTML and a plain-text part and a deterministic `Message-ID`, so
//! the same logical email sent twice is recognisably the same message. Marketing messages
//! carry `List-Unsubscribe` and `List-Unsubscribe-Post: List-Unsubscribe=One-Click`
//! (RFC 8058).

use std::path::PathBuf;
use std::sync::Arc;

use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sha2::{Digest, Sha256};

use crate::error::{EngineError, Result};
use crate::values::{EmailAddress, Text};

/// SMTP connections kept open per process.
pub const SMTP_CONNECTIONS: u32 = 32;

/// Where mail goes, and the DKIM key it is signed with, if any.
#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    dkim: Option<Arc<DkimConfig>>,
}

#[derive(Clone)]
enum Transport {
    /// A real SMTP server.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// `.eml` files in a directory.
    Outbox(AsyncFileTransport<Tokio1Executor>, PathBuf),
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.transport {
            Transport::Smtp(_) => f.write_str("Mailer::Smtp")?,
            Transport::Outbox(_, dir) => write!(f, "Mailer::Outbox({})", dir.display())?,
        }
        if self.dkim.is_some() {
            f.write_str(" (DKIM)")?;
        }
        Ok(())
    }
}

/// A DKIM signing key as configured: the selector and domain published in DNS and the
/// private key (RSA in PKCS#1 PEM, or Ed25519 as base64 of the 32-byte seed).
#[derive(Clone, Debug)]
pub struct DkimKey {
    /// The DNS selector (`<selector>._domainkey.<domain>`).
    pub selector: String,
    /// The signing domain (`d=`).
    pub domain: String,
    /// The private key.
    pub private_key: String,
}

impl Mailer {
    /// SMTP when `url` is given (`smtp://user:pass@host:587?tls=required`, `smtps://…`),
    /// else an outbox directory.
    pub fn configure(url: Option<&str>, outbox: PathBuf) -> Result<Mailer> {
        let transport = match url {
            Some(url) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| EngineError::invalid("RAPPORT_SMTP_URL", e.to_string()))?
                    // Campaign batches send many messages at once; each needs a connection.
                    .pool_config(PoolConfig::new().max_size(SMTP_CONNECTIONS))
                    .build(),
            ),
            None => {
                std::fs::create_dir_all(&outbox).map_err(|e| {
                    EngineError::invalid(
                        "outbox",
                        format!("cannot create {}: {e}", outbox.display()),
                    )
                })?;
                Transport::Outbox(AsyncFileTransport::new(&outbox), outbox)
            }
        };
        Ok(Mailer {
            transport,
            dkim: None,
        })
    }

    /// Signs every message with `key` from now on. An RSA key is recognised by its PEM
    /// armour; anything else is read as an Ed25519 seed.
    pub fn with_dkim(mut self, key: &DkimKey) -> Result<Mailer> {
        let algorithm = if key.private_key.contains("-----BEGIN") {
            DkimSigningAlgorithm::Rsa
        } else {
            DkimSigningAlgorithm::Ed25519
        };
        let signing = DkimSigningKey::new(key.private_key.trim(), algorithm).map_err(|_| {
            EngineError::invalid(
                "RAPPORT_DKIM_KEY_FILE",
                "not an RSA private key in PKCS#1 PEM (BEGIN RSA PRIVATE KEY) or a base64 Ed25519 seed",
            )
        })?;
        let mut headers: Vec<HeaderName> = [
            "From",
            "Subject",
            "To",
            "Date",
            "Message-ID",
            "List-Unsubscribe",
            "List-Unsubscribe-Post",
        ]
        .into_iter()
        .map(HeaderName::new_from_ascii_str)
        .collect();
        headers.dedup();
        self.dkim = Some(Arc::new(DkimConfig::new(
            Text::parse("RAPPORT_DKIM_SELECTOR", &key.selector, 63)?.into_string(),
            Text::parse("RAPPORT_DKIM_DOMAIN", &key.domain, 253)?.into_string(),
            signing,
            headers,
            DkimCanonicalization {
                header: DkimCanonicalizationType::Relaxed,
                body: DkimCanonicalizationType::Relaxed,
            },
        )));
        Ok(self)
    }

    fn prepare(&self, mut message: Message) -> Message {
        if let Some(dkim) = &self.dkim {
            message.sign(dkim);
        }
        message
    }

    /// Sends one message and says how it went, telling a refusal that may pass later
    /// (4xx, no connection) from a final one (5xx), and both from an unknown outcome (a
    /// timeout after the message may have been accepted), which must not be retried.
    pub async fn deliver(&self, message: Message) -> Delivery {
        let delivery = self.hand_over(message).await;
        let outcome = match &delivery {
            Delivery::Sent => "sent",
            Delivery::Rejected(..) => "rejected",
            Delivery::Deferred(_) => "deferred",
            Delivery::Unknown(_) => "unknown",
        };
        crate::platform::metrics::EMAILS.inc(&[outcome]);
        delivery
    }

    async fn hand_over(&self, message: Message) -> Delivery {
        match &self.transport {
            Transport::Smtp(t) => match t.send(self.prepare(message)).await {
                Ok(_) => Delivery::Sent,
                Err(e) if e.is_permanent() => {
                    Delivery::Rejected(smtp_reason(&e), e.status().map(u16::from))
                }
                Err(e) if e.is_timeout() => Delivery::Unknown(smtp_reason(&e)),
                Err(e) => Delivery::Deferred(smtp_reason(&e)),
            },
            Transport::Outbox(t, _) => match t.send(self.prepare(message)).await {
                Ok(_) => Delivery::Sent,
                Err(e) => Delivery::Deferred(format!("outbox: {e}")),
            },
        }
    }

    /// Whether messages go out over SMTP (rather than into an outbox folder).
    pub fn is_smtp(&self) -> bool {
        matches!(self.transport, Transport::Smtp(_))
    }

    /// Whether messages are signed with DKIM.
    pub fn signs(&self) -> bool {
        self.dkim.is_some()
    }

    /// Whether the mail server answers now (an outbox always does).
    pub async fn reachable(&self) -> bool {
        match &self.transport {
            Transport::Smtp(t) => t.test_connection().await.unwrap_or(false),
            Transport::Outbox(..) => true,
        }
    }

    /// Sends one message.
    pub async fn send(&self, message: Message) -> Result<()> {
        let message = self.prepare(message);
        match &self.transport {
            // The server's words go to the log, not to the client: they can name hosts.
            Transport::Smtp(t) => t.send(message).await.map(|_| ()).map_err(|e| {
                tracing::warn!(error = %e, "sending email failed");
                EngineError::Conflict(
                    "the email could not be sent; the mail server refused it".into(),
                )
            }),
            // Writing to our own outbox folder failing is our side failing.
            Transport::Outbox(t, _) => t
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| EngineError::internal_from("writing to the outbox folder", e)),
        }
    }
}

/// What became of one message handed to the mail server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Accepted.
    Sent,
    /// Refused for now (4xx, connection trouble): safe to try again later.
    Deferred(String),
    /// Refused for good (5xx), with the reply code when there was one.
    Rejected(String, Option<u16>),
    /// No answer in time: it may have been accepted, so it is not sent again.
    Unknown(String),
}

/// The server's status code and first words, for the message row: short, and without
/// the transport's own details (hosts, paths).
fn smtp_reason(e: &lettre::transport::smtp::Error) -> String {
    let code = e.status().map(|c| format!("{c} ")).unwrap_or_default();
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_permanent() {
        "permanent SMTP error"
    } else if e.is_transient() {
        "transient SMTP error"
    } else {
        "SMTP connection error"
    };
    tracing::warn!(error = %e, "SMTP delivery");
    format!("{code}{kind}")
}

/// One email to one person.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// Sender.
    pub from: EmailAddress,
    /// Sender's display name.
    pub from_name: Option<String>,
    /// Recipient.
    pub to: EmailAddress,
    /// Subject line.
    pub subject: String,
    /// HTML part.
    pub html: String,
    /// Plain-text part.
    pub text: String,
    /// What makes this message unique, e.g. `consent-confirm/12/345/marketing`; the
    /// Message-ID is derived from it.
    pub key: String,
    /// The one-click unsubscribe URL, for marketing mail.
    pub unsubscribe_url: Option<String>,
}

/// The Message-ID of a logical message: a hash of its key at the sender's domain.
pub fn message_id(key: &str, from: &EmailAddress) -> String {
    let digest: String = Sha256::digest(key.as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("<{digest}@{}>", from.domain())
}

/// Text made safe to put in an HTML body or attribute.
pub fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Builds the MIME message.
pub fn build(mail: &Outgoing) -> Result<Message> {
    // Names are refused with control characters on save; one stored before that rule
    // must still not reach lettre, which panics on a line break in a header.
    let from_name = mail
        .from_name
        .as_deref()
        .map(|n| n.chars().filter(|c| !c.is_control()).collect::<String>());
    let from = Mailbox::new(
        from_name,
        mail.from
            .as_str()
            .parse()
            .map_err(|_| EngineError::invalid("from", "not a usable sender address"))?,
    );
    let to: Mailbox = mail
        .to
        .as_str()
        .parse()
        .map_err(|_| EngineError::invalid("to", "not a usable recipient address"))?;
    let mut builder = Message::builder()
        .from(from)
        .to(to)
        .subject(mail.subject.clone())
        .message_id(Some(message_id(&mail.key, &mail.from)));
    if let Some(url) = &mail.unsubscribe_url {
        builder = builder
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{url}>"),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".into(),
            ));
    }
    builder
        .multipart(MultiPart::alternative_plain_html(
            mail.text.clone(),
            mail.html.clone(),
        ))
        .map_err(|e| EngineError::invalid("email", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(unsubscribe: Option<&str>) -> Outgoing {
        Outgoing {
            from: EmailAddress::parse("from", "news@rapport.example").unwrap(),
            from_name: Some("Rapport".into()),
            to: EmailAddress::parse("to", "ada@example.com").unwrap(),
            subject: "Hello Ada".into(),
            html: "<p>Hi</p>".into(),
            text: "Hi".into(),
            key: "campaign/1/7".into(),
            unsubscribe_url: unsubscribe.map(String::from),
        }
    }

    #[test]
    fn dkim_signs_with_an_ed25519_seed_and_refuses_garbage() {
        let key = DkimKey {
            selector: "rapport".into(),
            domain: "rapport.example".into(),
            // base64 of 32 bytes.
            private_key: "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=".into(),
        };
        let mailer = Mailer::configure(None, std::env::temp_dir().join("rapport-dkim-test"))
            .unwrap()
            .with_dkim(&key)
            .unwrap();
        let signed = mailer.prepare(build(&mail(Some("https://r.example/u?token=a.b"))).unwrap());
        let raw = String::from_utf8(signed.formatted()).unwrap();
        assert!(raw.contains("\nDKIM-Signature: v=1;"), "{raw}");
        assert!(raw.contains("d=rapport.example") && raw.contains("s=rapport"));
        assert!(raw.contains("a=ed25519-sha256"));
        let bad = DkimKey {
            private_key: "not a key".into(),
            ..key
        };
        assert!(
            Mailer::configure(None, std::env::temp_dir())
                .unwrap()
                .with_dkim(&bad)
                .is_err()
        );
    }

    #[test]
    fn message_ids_are_deterministic_per_key() {
        let from = EmailAddress::parse("from", "news@rapport.example").unwrap();
        assert_eq!(message_id("a", &from), message_id("a", &from));
        assert_ne!(message_id("a", &from), message_id("b", &from));
        assert!(message_id("a", &from).ends_with("@rapport.example>"));
    }

    #[test]
    fn marketing_mail_carries_one_click_headers_and_both_parts() {
        let raw = String::from_utf8(
            build(&mail(Some("https://r.example/unsubscribe?token=a.b")))
                .unwrap()
                .formatted(),
        )
        .unwrap();
        assert!(
            raw.contains("List-Unsubscribe: <https://r.example/unsubscribe?token=a.b>"),
            "{raw}"
        );
        assert!(raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
        assert!(raw.contains("text/plain") && raw.contains("text/html"));
        let plain = String::from_utf8(build(&mail(None)).unwrap().formatted()).unwrap();
        assert!(!plain.contains("List-Unsubscribe"));
    }
}

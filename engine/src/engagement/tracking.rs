//! What campaigns and drip sequences share about the email they send: the signed links
//! every message carries (unsubscribe, open pixel, click redirects), the rewriting of a
//! body's links into tracked ones, and how first opens and clicks are written on a
//! contact's timeline.
//!
//! Recording what a link reports is each sender's own ([`super::campaigns::track`],
//! [`super::sequences::track`]), since each keeps its own messages; [`super::track`]
//! sends a verified link to the right one.

use crate::values::ConsentPurpose;

use crate::platform::links::{Action, Claim, Signer};
use crate::platform::outbox;

/// How the activity recording a campaign email's first open begins; such inbound email
/// activities are not replies.
pub const OPENED_SUBJECT: &str = "Opened campaign email: ";
/// How the activity recording a campaign email's first click begins.
pub const CLICKED_SUBJECT: &str = "Clicked in campaign email: ";

/// Tells webhooks what happened to an email a contact was sent — `message.sent`,
/// `.opened` (the first open), `.clicked` (every click, with the URL), `.bounced`,
/// `.unsubscribed` — with the message as the API names it (`typename`: `CampaignMessage`,
/// `SequenceMessage`, `TransactionalEmail`), ordered with the contact's other events.
pub async fn tell(
    db: &impl sea_orm::ConnectionTrait,
    workspace_id: i64,
    contact_id: i64,
    event: crate::values::WebhookEventType,
    typename: &'static str,
    message: &impl serde::Serialize,
    url: Option<&str>,
) -> crate::error::Result<()> {
    let mut data = serde_json::json!({ "object": outbox::object(typename, message) });
    if let Some(url) = url {
        data["url"] = serde_json::Value::String(url.to_string());
    }
    let subject = outbox::Subject::contact(contact_id);
    outbox::emit(db, workspace_id, event, subject, data).await
}

/// Adds tracking to an HTML body: `http(s)` links become signed click redirects (the
/// unsubscribe link stays as it is) and an open pixel goes before `</body>`.
pub fn track_html(html: &str, click: impl Fn(&str) -> String, pixel: &str, keep: &str) -> String {
    let mut out = String::with_capacity(html.len() + 256);
    let mut rest = html;
    while let Some(at) = rest.find("href=\"") {
        let (head, tail) = rest.split_at(at + 6);
        out.push_str(head);
        let end = tail.find('"').unwrap_or(tail.len());
        let url = &tail[..end];
        let raw = unescape_attribute(url);
        if (raw.starts_with("http://") || raw.starts_with("https://")) && raw != keep {
            out.push_str(&click(&raw).replace('&', "&amp;"));
        } else {
            out.push_str(url);
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    let img =
        format!("<img src=\"{pixel}\" width=\"1\" height=\"1\" alt=\"\" style=\"display:none\">");
    match out.rfind("</body>") {
        Some(at) => out.insert_str(at, &img),
        None => out.push_str(&img),
    }
    out
}

/// An attribute's text as the browser reads it, for the character references that HTML
/// escaping writes (a templated link comes out as `https:&#x2f;&#x2f;shop.example`).
fn unescape_attribute(value: &str) -> String {
    if !value.contains('&') {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let known = [
            ("&amp;", '&'),
            ("&#x2f;", '/'),
            ("&#x2F;", '/'),
            ("&#47;", '/'),
            ("&#x27;", '\''),
            ("&#39;", '\''),
            ("&quot;", '"'),
            ("&lt;", '<'),
            ("&gt;", '>'),
        ]
        .into_iter()
        .find(|(entity, _)| tail.starts_with(entity));
        match known {
            Some((entity, c)) => {
                out.push(c);
                rest = &tail[entity.len()..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The signed links of marketing email: unsubscribe, open pixel, click redirects.
pub struct Links<'a> {
    /// The workspace's link signer.
    pub signer: &'a Signer,
    /// This Rapport's public URL, without a trailing slash.
    pub base: &'a str,
    /// The workspace the links belong to.
    pub workspace_id: i64,
    /// Which table the message ids name.
    pub messages: MessageKind,
}

/// The kinds of message that carry tracking links, each with its own table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    /// `campaign_messages`.
    Campaign,
    /// `sequence_messages`.
    Sequence,
    /// `transactional_messages`.
    Transactional,
}

impl Links<'_> {
    fn claim(&self, contact: i64, id: i64, action: Action, url: Option<String>) -> String {
        let (mut msg, mut seq, mut tx) = (None, None, None);
        match self.messages {
            MessageKind::Campaign => msg = Some(id),
            MessageKind::Sequence => seq = Some(id),
            MessageKind::Transactional => tx = Some(id),
        }
        self.signer.sign(&Claim {
            ws: self.workspace_id,
            contact,
            action,
            purpose: ConsentPurpose::Marketing.as_str().into(),
            exp: None,
            msg,
            seq,
            tx,
            url,
            req: None,
        })
    }
    pub fn unsubscribe(&self, contact: i64, msg: i64) -> String {
        format!(
            "{}/unsubscribe?token={}",
            self.base,
            self.claim(contact, msg, Action::Unsubscribe, None)
        )
    }
    /// The contact's preference page (topics, or unsubscribe from all).
    pub fn preferences(&self, contact: i64) -> String {
        format!(
            "{}/preferences?token={}",
            self.base,
            super::topics::page_token_with(self.signer, self.workspace_id, contact)
        )
    }
    pub fn open(&self, contact: i64, msg: i64) -> String {
        format!(
            "{}/t/o/{}",
            self.base,
            self.claim(contact, msg, Action::Open, None)
        )
    }
    pub fn click(&self, contact: i64, msg: i64, url: &str) -> String {
        format!(
            "{}/t/c/{}",
            self.base,
            self.claim(contact, msg, Action::Click, Some(url.into()))
        )
    }
}

/// SMTP replies that mean the recipient's mailbox does not exist or is not accepted:
/// mailbox unavailable, user not local, mailbox name not allowed.
pub const MAILBOX_GONE: [u16; 3] = [550, 551, 553];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracking_rewrites_web_links_but_not_unsubscribe_or_mailto() {
        let html = r#"<html><body><a href="https://shop.example/a?x=1&amp;y=2">A</a> <a href="mailto:x@y.z">M</a> <a href="https://r.example/unsubscribe?token=t">U</a></body></html>"#;
        let out = track_html(
            html,
            |u| format!("https://r.example/t/c/[{u}]"),
            "https://r.example/t/o/p",
            "https://r.example/unsubscribe?token=t",
        );
        assert!(
            out.contains(r#"href="https://r.example/t/c/[https://shop.example/a?x=1&amp;y=2]""#),
            "{out}"
        );
        assert!(out.contains(r#"href="mailto:x@y.z""#));
        assert!(out.contains(r#"href="https://r.example/unsubscribe?token=t""#));
        assert!(out.contains(r#"<img src="https://r.example/t/o/p""#));
        assert!(out.ends_with("</body></html>"));
    }

    #[test]
    fn escaped_links_are_tracked_and_the_unsubscribe_link_kept() {
        // What `href="{{ url }}"` renders to in an HTML template.
        let html = r#"<a href="https:&#x2f;&#x2f;shop.example&#x2f;p?a=1&amp;b=2">P</a> <a href="https:&#x2f;&#x2f;r.example&#x2f;unsubscribe?token=t">U</a>"#;
        let out = track_html(
            html,
            |u| format!("https://r.example/t/c/[{u}]"),
            "https://r.example/t/o/p",
            "https://r.example/unsubscribe?token=t",
        );
        assert!(
            out.contains(r#"href="https://r.example/t/c/[https://shop.example/p?a=1&amp;b=2]""#),
            "{out}"
        );
        assert!(out.contains(r#"href="https:&#x2f;&#x2f;r.example&#x2f;unsubscribe?token=t""#));
        assert_eq!(unescape_attribute("a&b&#x27;&zz;"), "a&b'&zz;");
    }
}

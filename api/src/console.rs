//! The console: a single-page app at `/`, whose files are compiled into the binary (so
//! `rapport serve` needs nothing beside it). It is plain JavaScript modules and CSS, with
//! no build step, and talks only to the public GraphQL API and the sign-in routes.
//!
//! Its pages run under a strict content security policy: scripts only from this server,
//! no inline script, requests only to this server, no frame that loads a URL. Email
//! previews are `srcdoc` frames sandboxed without scripts; they inherit this policy, so it
//! lets inline styles through (email HTML is styled inline) but not remote images: as in
//! a mail client, opening a preview must not tell a template's image host who looked.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::http::ApiContext;

/// The console's policy: no script but its own, no request but to this server.
const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     font-src 'self'; frame-src 'none'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'self'";

macro_rules! assets {
    ($($name:literal => $kind:literal),+ $(,)?) => {
        /// Every file of the console but its page: name, content type, bytes.
        const ASSETS: &[(&str, &str, &str)] = &[
            $(($name, $kind, include_str!(concat!("../../console/", $name))),)+
        ];
    };
}

assets! {
    "style.css" => "text/css; charset=utf-8",
    "js/app.js" => "text/javascript; charset=utf-8",
    "js/api.js" => "text/javascript; charset=utf-8",
    "js/ui.js" => "text/javascript; charset=utf-8",
    "js/pages/auth.js" => "text/javascript; charset=utf-8",
    "js/pages/home.js" => "text/javascript; charset=utf-8",
    "js/pages/contacts.js" => "text/javascript; charset=utf-8",
    "js/pages/contact.js" => "text/javascript; charset=utf-8",
    "js/pages/board.js" => "text/javascript; charset=utf-8",
    "js/pages/settings.js" => "text/javascript; charset=utf-8",
    "js/pages/campaigns.js" => "text/javascript; charset=utf-8",
    "js/pages/sequences.js" => "text/javascript; charset=utf-8",
    "js/pages/segments.js" => "text/javascript; charset=utf-8",
    "js/pages/templates.js" => "text/javascript; charset=utf-8",
    "js/pages/plugins.js" => "text/javascript; charset=utf-8",
}

const INDEX: &str = include_str!("../../console/index.html");

/// `/` and `/console/<file>`.
pub fn router() -> axum::Router<ApiContext> {
    axum::Router::new()
        .route("/", get(index))
        .route("/console/{*file}", get(asset))
}

async fn index() -> Response {
    (
        [
            (header::CONTENT_SECURITY_POLICY, CONSOLE_CSP),
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX,
    )
        .into_response()
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, text)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CONTENT_SECURITY_POLICY, CONSOLE_CSP),
                // Revalidated: a new binary serves new files at the same names.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *text,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_console_imports_is_served() {
        let served: Vec<&str> = ASSETS.iter().map(|(n, _, _)| *n).collect();
        for (name, _, text) in ASSETS {
            for line in text
                .lines()
                .filter(|l| l.trim_start().starts_with("import "))
            {
                let Some(spec) = line.split(['"', '\'']).nth(1) else {
                    continue;
                };
                let dir = std::path::Path::new(name).parent().unwrap();
                let mut parts: Vec<&str> = dir
                    .to_str()
                    .unwrap()
                    .split('/')
                    .filter(|p| !p.is_empty())
                    .collect();
                for seg in spec.split('/') {
                    match seg {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        s => parts.push(s),
                    }
                }
                let resolved = parts.join("/");
                assert!(
                    served.contains(&resolved.as_str()),
                    "{name} imports {spec}, which is not served"
                );
            }
        }
    }
}

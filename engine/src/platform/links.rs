//! Signed links a contact can follow without logging in: one-click unsubscribe and
//! double opt-in confirmation.
//!
//! A token is `base64url(claim JSON) "." base64url(HMAC-SHA256)`. The claim names its
//! workspace, whose secret signs it; secrets are random, created on first use and kept in
//! the database, so every process sharing the database accepts every other's links and
//! nothing has to be configured. The claim is readable, not secret: it carries ids only.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use rapport_schema::workspace_secret;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock;
use crate::error::{EngineError, Result};
use crate::values::ConsentPurpose;

/// What a link lets its holder do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Withdraw consent for the purpose.
    Unsubscribe,
    /// Grant consent for the purpose (double opt-in).
    Confirm,
    /// Record that a campaign or sequence message was opened (the tracking pixel).
    Open,
    /// Record a click in a campaign or sequence message and go on to `url`.
    Click,
    /// Open the contact's preference page: choose topics, or unsubscribe from all.
    Preferences,
}

/// The signed content of a link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// Workspace.
    pub ws: i64,
    /// Contact.
    pub contact: i64,
    /// What it does.
    pub action: Action,
    /// For which purpose (`marketing`, `transactional`).
    pub purpose: String,
    /// Unix time after which it is refused; `None` never expires (unsubscribe links must
    /// keep working in old emails).
    pub exp: Option<i64>,
    /// The campaign message the link was sent in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg: Option<i64>,
    /// The sequence message the link was sent in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// The transactional message the link was sent in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx: Option<i64>,
    /// Where a click link leads; signed, so the link cannot be turned into an open
    /// redirect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The `pending` consent event a confirmation link answers: the link confirms that
    /// request and nothing else, once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<i64>,
}

impl Claim {
    /// The purpose, parsed.
    pub fn purpose(&self) -> ConsentPurpose {
        ConsentPurpose::from_db(&self.purpose)
    }
}

/// How long a confirmation link stays valid.
pub const CONFIRM_VALID_DAYS: i64 = 7;

const BLOCK: usize = 64;

/// HMAC-SHA256 (RFC 2104), written out because the `hmac` crate in the tree pairs with a
/// newer `sha2` than ours. Webhook signatures use it too.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| k.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Compares without an early exit, so timing says nothing about how much matched.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn secret(db: &impl ConnectionTrait, workspace_id: i64) -> Result<Vec<u8>> {
    let mut fresh = [0u8; 32];
    rand::rng().fill_bytes(&mut fresh);
    // Two processes may race to create it; the first insert wins and both read it back.
    workspace_secret::Entity::insert(workspace_secret::ActiveModel {
        workspace_id: Set(workspace_id),
        secret: Set(URL_SAFE_NO_PAD.encode(fresh)),
        created_at: Set(clock::now()),
    })
    .on_conflict(
        OnConflict::column(workspace_secret::Column::WorkspaceId)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    let row = workspace_secret::Entity::find()
        .filter(workspace_secret::Column::WorkspaceId.eq(workspace_id))
        .one(db)
        .await?
        .ok_or_else(|| EngineError::not_found("Workspace", workspace_id))?;
    URL_SAFE_NO_PAD
        .decode(row.secret)
        .map_err(|_| EngineError::internal("the workspace's link secret is damaged"))
}

/// Signs a claim.
pub async fn sign(db: &impl ConnectionTrait, claim: &Claim) -> Result<String> {
    Ok(signer(db, claim.ws).await?.sign(claim))
}

/// Signs many claims of one workspace with one read of its secret (a campaign signs
/// several links per message).
#[derive(Clone)]
pub struct Signer {
    ws: i64,
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.ws)
    }
}

/// The signer of a workspace's links.
pub async fn signer(db: &impl ConnectionTrait, workspace_id: i64) -> Result<Signer> {
    Ok(Signer {
        ws: workspace_id,
        key: secret(db, workspace_id).await?,
    })
}

impl Signer {
    /// Signs a claim of this signer's workspace.
    pub fn sign(&self, claim: &Claim) -> String {
        debug_assert_eq!(claim.ws, self.ws);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claim).expect("a claim serialises"));
        let mac = URL_SAFE_NO_PAD.encode(hmac_sha256(&self.key, body.as_bytes()));
        format!("{body}.{mac}")
    }
}

/// Tokens longer than this are refused before any work: a real one is a few hundred bytes
/// (a click link's destination is its longest part).
pub const MAX_TOKEN_BYTES: usize = 4096;

/// Checks a token's signature and expiry and that it is a link of kind `action` (each
/// route accepts only its own kind), and returns its claim.
///
/// Nothing is written: the workspace's secret is only read, and a token naming a
/// workspace without one (or none at all) is simply not valid.
pub async fn verify(db: &impl ConnectionTrait, token: &str, action: Action) -> Result<Claim> {
    let bad = || EngineError::invalid("token", "the link is not valid (altered or incomplete)");
    let token = token.trim();
    if token.len() > MAX_TOKEN_BYTES {
        return Err(bad());
    }
    let (body, mac) = token.split_once('.').ok_or_else(bad)?;
    let claim: Claim = URL_SAFE_NO_PAD
        .decode(body)
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok())
        .ok_or_else(bad)?;
    let given = URL_SAFE_NO_PAD.decode(mac).map_err(|_| bad())?;
    if given.len() != 32 {
        return Err(bad());
    }
    let key = existing_secret(db, claim.ws).await?.ok_or_else(bad)?;
    if !same(&hmac_sha256(&key, body.as_bytes()), &given) {
        return Err(bad());
    }
    if claim.action != action {
        return Err(EngineError::invalid(
            "token",
            match action {
                Action::Unsubscribe => "this is not an unsubscribe link",
                Action::Confirm => "this is not a confirmation link",
                Action::Open | Action::Click => "this is not a tracking link",
                Action::Preferences => "this is not a preference page link",
            },
        ));
    }
    if claim.exp.is_some_and(|exp| clock::now().timestamp() > exp) {
        return Err(EngineError::invalid("token", "the link has expired"));
    }
    Ok(claim)
}

/// The workspace's secret if it has one, without creating it.
async fn existing_secret(db: &impl ConnectionTrait, workspace_id: i64) -> Result<Option<Vec<u8>>> {
    let Some(row) = workspace_secret::Entity::find()
        .filter(workspace_secret::Column::WorkspaceId.eq(workspace_id))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    URL_SAFE_NO_PAD
        .decode(row.secret)
        .map(Some)
        .map_err(|_| EngineError::internal("the workspace's link secret is damaged"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block.
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn comparison_needs_equal_bytes() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}

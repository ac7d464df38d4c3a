//! Console accounts: people sign in with an email and a password, hold a session, and set
//! their password through a one-time link (an invitation or a reset).
//!
//! - Passwords are hashed with argon2id (RustCrypto `argon2`, its default parameters) and
//!   never leave this module: the user row's `Debug` hides the hash and GraphQL has no field
//!   for it.
//! - Repeated failures lock an account with a back-off ([`lock_for`]); the lock holds even
//!   against the right password, so guessing stops paying. Every attempt is recorded in
//!   `sign_in_attempts`.
//! - A session is a random 256-bit token in a cookie; only its SHA-256 is stored, so a
//!   database leak holds no usable session. The CSRF token is derived from the session
//!   token ([`csrf_token`]): a page of another site can send the cookie but cannot read it,
//!   so it cannot compute the header.
//! - One-time links hold a random token whose hash is stored; redeeming marks it used in the
//!   same statement that checks it, so a link works once even under concurrent clicks.

use crate::clock;
use crate::error::{EngineError, Result};
use crate::platform::audit;
use crate::platform::auth::{self, Principal};
use crate::values::{EmailAddress, Scope, Text, UserRole};
use chrono::{DateTime, Duration, Utc};
use rapport_schema::{sign_in_attempt, user, user_session, user_token};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

/// Failures in a row before an account locks.
pub const FAILURES_BEFORE_LOCK: i32 = 5;
/// How long an invitation link stays valid.
pub const INVITATION_TTL: Duration = Duration::hours(72);
/// How long a password-reset link stays valid.
pub const RESET_TTL: Duration = Duration::hours(2);
/// Shortest and longest password accepted (the longest bounds the hashing work).
pub const PASSWORD_CHARS: (usize, usize) = (10, 128);

/// A password as a person chose it: 10 to 128 characters.
pub struct Password(String);

impl Password {
    /// Parses a new password; `field` names the input.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        let n = raw.chars().count();
        if n < PASSWORD_CHARS.0 {
            return Err(EngineError::invalid(
                field,
                format!("use at least {} characters", PASSWORD_CHARS.0),
            ));
        }
        if n > PASSWORD_CHARS.1 {
            return Err(EngineError::invalid(
                field,
                format!("use at most {} characters", PASSWORD_CHARS.1),
            ));
        }
        if raw.trim().is_empty() {
            return Err(EngineError::invalid(field, "must not be only spaces"));
        }
        Ok(Self(raw.to_string()))
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Password hashes computed at once, at most: each takes ~19 MiB and a core for tens of
/// milliseconds, so a flood of sign-ins queues here instead of exhausting memory.
static HASHING: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    tokio::sync::Semaphore::new(
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
    )
});

/// The argon2id hash of a password, as a PHC string (runs on a blocking thread: it takes
/// tens of milliseconds by design).
pub async fn hash_password(password: &Password) -> Result<String> {
    let plain = password.0.clone();
    let _turn = HASHING
        .acquire()
        .await
        .map_err(|e| EngineError::internal_from("the hashing queue closed", e))?;
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
        let salt = SaltString::generate(&mut OsRng);
        argon2::Argon2::default()
            .hash_password(plain.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| EngineError::internal(format!("hashing a password failed: {e}")))
    })
    .await
    .map_err(|e| EngineError::internal_from("the password hashing task failed", e))?
}

/// Whether `presented` is the password hashed in `stored`; a hash that does not parse
/// matches nothing.
async fn verify_password(presented: &str, stored: String) -> bool {
    if presented.len() > PASSWORD_CHARS.1 * 4 {
        return false;
    }
    let presented = presented.to_string();
    let Ok(_turn) = HASHING.acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        PasswordHash::new(&stored).is_ok_and(|h| {
            argon2::Argon2::default()
                .verify_password(presented.as_bytes(), &h)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

/// A hash of a password nobody has, verified when the email is unknown so that an unknown
/// address takes as long to refuse as a wrong password.
static DECOY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(auth::random_hex(16).as_bytes(), &salt)
        .map(|h| h.to_string())
        .unwrap_or_default()
});

/// The lock after `failures` failed sign-ins in a row: none below
/// [`FAILURES_BEFORE_LOCK`], then 30 s doubling with each further failure, at most an hour.
pub fn lock_for(failures: i32) -> Option<Duration> {
    if failures < FAILURES_BEFORE_LOCK {
        return None;
    }
    let doublings = (failures - FAILURES_BEFORE_LOCK).min(7) as u32;
    Some(Duration::seconds((30i64 << doublings).min(3600)))
}

/// What a person may do, from their role: a viewer reads, a member writes (only records
/// they own or nobody owns), a manager writes, an admin administers.
pub fn principal_of(u: &user::Model) -> Principal {
    let role = UserRole::parse("role", &u.role).unwrap_or(UserRole::Viewer);
    let (scope, owner_bound) = match role {
        UserRole::Admin => (Scope::Admin, false),
        UserRole::Manager => (Scope::Write, false),
        UserRole::Member => (Scope::Write, true),
        UserRole::Viewer => (Scope::Read, false),
    };
    Principal {
        workspace_id: u.workspace_id,
        key_id: None,
        user_id: Some(u.id),
        scopes: vec![scope],
        owner_bound,
    }
}

/// A session just opened: the cookie token and the CSRF token, each shown only now.
pub struct OpenedSession {
    /// The row (token stored only as its hash).
    pub session: user_session::Model,
    /// The person signed in.
    pub user: user::Model,
    /// The cookie's value.
    pub token: String,
    /// The value the browser sends back in the CSRF header.
    pub csrf: String,
}

/// Why a sign-in was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Wrong password.
    WrongCredentials,
    /// No account signs in with this email. Callers answer it exactly as
    /// [`Refusal::WrongCredentials`] (and lock it out alike), so sign-in tells nobody
    /// which addresses have accounts.
    UnknownEmail,
    /// Too many failures in a row: refused until then, whatever the password.
    Locked(DateTime<Utc>),
}

/// Who is signing in from where.
pub struct Attempt<'a> {
    /// The email typed.
    pub email: &'a str,
    /// The password typed.
    pub password: &'a str,
    /// The client's address, recorded.
    pub ip: Option<&'a str>,
    /// The browser, recorded with the session.
    pub user_agent: Option<&'a str>,
    /// How long the session lasts.
    pub ttl: Duration,
}

/// Signs a person in: the session, or why not. At most a handful of accounts share an
/// email (one per workspace); the password picks the one it belongs to.
pub async fn sign_in(
    db: &sea_orm::DatabaseConnection,
    attempt: Attempt<'_>,
) -> Result<std::result::Result<OpenedSession, Refusal>> {
    let Ok(email) = EmailAddress::parse("email", attempt.email) else {
        verify_password(attempt.password, DECOY_HASH.clone()).await;
        record_attempt(db, None, &attempt, "unknown_email").await?;
        return Ok(Err(Refusal::UnknownEmail));
    };
    let now = clock::now();
    let candidates = user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .filter(user::Column::DeletedAt.is_null())
        .filter(user::Column::PasswordHash.is_not_null())
        .order_by_asc(user::Column::Id)
        .limit(5)
        .all(db)
        .await?;
    if candidates.is_empty() {
        verify_password(attempt.password, DECOY_HASH.clone()).await;
        record_attempt(db, None, &attempt, "unknown_email").await?;
        return Ok(Err(Refusal::UnknownEmail));
    }
    if let Some(until) = candidates
        .iter()
        .filter_map(|u| u.locked_until)
        .filter(|t| *t > now)
        .min()
        && candidates
            .iter()
            .all(|u| u.locked_until.is_some_and(|t| t > now))
    {
        for u in &candidates {
            record_attempt(db, Some(u), &attempt, "locked").await?;
        }
        return Ok(Err(Refusal::Locked(until)));
    }
    let mut matched = None;
    for u in &candidates {
        if u.locked_until.is_some_and(|t| t > now) {
            continue;
        }
        let stored = u.password_hash.clone().unwrap_or_default();
        if verify_password(attempt.password, stored).await {
            matched = Some(u.clone());
            break;
        }
    }
    let Some(u) = matched else {
        let mut locked = None;
        for u in &candidates {
            // Counted in SQL: concurrent wrong guesses each count (a count read before the
            // hash and written back after it would let a burst count as one).
            user::Entity::update_many()
                .col_expr(
                    user::Column::FailedSignIns,
                    sea_orm::ExprTrait::add(Expr::col(user::Column::FailedSignIns), 1),
                )
                .filter(user::Column::Id.eq(u.id))
                .exec(db)
                .await?;
            let failures = user::Entity::find_by_id(u.id)
                .select_only()
                .column(user::Column::FailedSignIns)
                .into_tuple::<i32>()
                .one(db)
                .await?
                .unwrap_or(u.failed_sign_ins + 1);
            let until = lock_for(failures).map(|d| now + d);
            if until.is_some() {
                user::Entity::update_many()
                    .col_expr(user::Column::LockedUntil, Expr::value(until))
                    .filter(user::Column::Id.eq(u.id))
                    .exec(db)
                    .await?;
            }
            record_attempt(db, Some(u), &attempt, "wrong_password").await?;
            if let Some(t) = until {
                locked = Some(locked.map_or(t, |l: DateTime<Utc>| l.min(t)));
            }
        }
        return Ok(Err(
            locked.map_or(Refusal::WrongCredentials, Refusal::Locked)
        ));
    };
    user::Entity::update_many()
        .col_expr(user::Column::FailedSignIns, Expr::value(0))
        .col_expr(
            user::Column::LockedUntil,
            Expr::value(None::<DateTime<Utc>>),
        )
        .filter(user::Column::Id.eq(u.id))
        .exec(db)
        .await?;
    record_attempt(db, Some(&u), &attempt, "signed_in").await?;
    let opened = open_session(db, &u, attempt.ip, attempt.user_agent, attempt.ttl).await?;
    Ok(Ok(opened))
}

/// Keeps a sign-in attempt: in the attempts the console shows, and — for a known
/// account — in its workspace's audit log.
async fn record_attempt(
    db: &impl ConnectionTrait,
    u: Option<&user::Model>,
    attempt: &Attempt<'_>,
    outcome: &str,
) -> Result<()> {
    let ip = attempt.ip;
    if let Some(u) = u {
        let actor = audit::Actor {
            user_id: Some(u.id),
            ..audit::Actor::from_request(ip.map(str::to_string), attempt.user_agent)
        };
        let entry = audit::Entry {
            operation: "signIn".into(),
            object_type: Some("User".into()),
            object_id: Some(u.id.to_string()),
            outcome: outcome.into(),
            ..Default::default()
        };
        audit::record(db, u.workspace_id, &actor, entry).await?;
    }
    sign_in_attempt::ActiveModel {
        workspace_id: Set(u.map(|u| u.workspace_id)),
        user_id: Set(u.map(|u| u.id)),
        ip: Set(ip.map(|s| s.chars().take(64).collect())),
        outcome: Set(outcome.to_string()),
        at: Set(clock::now()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

/// Opens a session for `u` lasting `ttl`.
pub async fn open_session(
    db: &impl ConnectionTrait,
    u: &user::Model,
    ip: Option<&str>,
    user_agent: Option<&str>,
    ttl: Duration,
) -> Result<OpenedSession> {
    let token = format!("rs_{}", auth::random_hex(32));
    let now = clock::now();
    let session = user_session::ActiveModel {
        workspace_id: Set(u.workspace_id),
        user_id: Set(u.id),
        token_hash: Set(auth::secret_hash(&token)),
        created_at: Set(now),
        expires_at: Set(now + ttl),
        ip: Set(ip.map(|s| s.chars().take(64).collect())),
        user_agent: Set(user_agent.map(|s| s.chars().take(300).collect())),
        ..Default::default()
    }
    .insert(db)
    .await?;
    let csrf = csrf_token(&token);
    Ok(OpenedSession {
        session,
        user: u.clone(),
        token,
        csrf,
    })
}

/// The CSRF token of a session: derived from its cookie token, so it is never stored and
/// a page that cannot read the cookie cannot know it.
pub fn csrf_token(session_token: &str) -> String {
    auth::secret_hash(&format!("csrf\u{0}{session_token}"))
}

/// Whether a presented CSRF header belongs to the session token, in constant time.
pub fn csrf_matches(session_token: &str, presented: &str) -> bool {
    auth::constant_time_eq(csrf_token(session_token).as_bytes(), presented.as_bytes())
}

/// A session that checked out, with its person.
#[derive(Clone, Debug)]
pub struct LiveSession {
    /// The session row.
    pub session: user_session::Model,
    /// The person (live, with a password).
    pub user: user::Model,
}

/// The live session of a presented cookie token: unexpired, not signed out, of a person
/// not deleted. Only reads.
pub async fn session(db: &impl ConnectionTrait, token: &str) -> Result<Option<LiveSession>> {
    if !token.starts_with("rs_") || token.len() > 100 {
        return Ok(None);
    }
    let Some(s) = user_session::Entity::find()
        .filter(user_session::Column::TokenHash.eq(auth::secret_hash(token)))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    if s.revoked_at.is_some() || s.expires_at <= clock::now() {
        return Ok(None);
    }
    let Some(u) = user::Entity::find_by_id(s.user_id)
        .filter(user::Column::DeletedAt.is_null())
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(LiveSession {
        session: s,
        user: u,
    }))
}

/// Ends one session.
pub async fn sign_out(db: &impl ConnectionTrait, token: &str) -> Result<()> {
    user_session::Entity::update_many()
        .col_expr(user_session::Column::RevokedAt, Expr::value(clock::now()))
        .filter(user_session::Column::TokenHash.eq(auth::secret_hash(token)))
        .filter(user_session::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Ends every session of a person (sign out everywhere; a password set; a person removed).
pub async fn sign_out_everywhere(db: &impl ConnectionTrait, user_id: i64) -> Result<u64> {
    Ok(user_session::Entity::update_many()
        .col_expr(user_session::Column::RevokedAt, Expr::value(clock::now()))
        .filter(user_session::Column::UserId.eq(user_id))
        .filter(user_session::Column::RevokedAt.is_null())
        .exec(db)
        .await?
        .rows_affected)
}

/// What a one-time link is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkPurpose {
    /// A new person sets their first password.
    Invite,
    /// A person who forgot their password sets a new one.
    Reset,
}

impl LinkPurpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::Invite => "invite",
            Self::Reset => "reset",
        }
    }
    fn ttl(self) -> Duration {
        match self {
            Self::Invite => INVITATION_TTL,
            Self::Reset => RESET_TTL,
        }
    }
}

/// A one-time link's token, shown once, and its row.
pub struct IssuedLink {
    /// The row (token stored as its hash).
    pub record: user_token::Model,
    /// The token to put in the link.
    pub token: String,
}

/// Issues a one-time link for `user_id`; earlier unused links of the same purpose stop
/// working.
pub async fn issue_link(
    db: &impl ConnectionTrait,
    u: &user::Model,
    purpose: LinkPurpose,
    created_by: Option<i64>,
) -> Result<IssuedLink> {
    let now = clock::now();
    user_token::Entity::update_many()
        .col_expr(user_token::Column::UsedAt, Expr::value(now))
        .filter(user_token::Column::UserId.eq(u.id))
        .filter(user_token::Column::Purpose.eq(purpose.as_str()))
        .filter(user_token::Column::UsedAt.is_null())
        .exec(db)
        .await?;
    let token = format!("rl_{}", auth::random_hex(32));
    let record = user_token::ActiveModel {
        workspace_id: Set(u.workspace_id),
        user_id: Set(u.id),
        purpose: Set(purpose.as_str().to_string()),
        token_hash: Set(auth::secret_hash(&token)),
        created_at: Set(now),
        expires_at: Set(now + purpose.ttl()),
        created_by: Set(created_by),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(IssuedLink { record, token })
}

/// Sets a password through a one-time link: the link is spent, every session of the person
/// ends, the lock-out is cleared. An unknown, spent or expired link is one error.
pub async fn redeem_link(
    db: &sea_orm::DatabaseConnection,
    token: &str,
    password: &Password,
) -> Result<user::Model> {
    let expired = || EngineError::invalid("token", "this link is unknown, used or expired");
    if !token.starts_with("rl_") || token.len() > 100 {
        return Err(expired());
    }
    // A cheap look first: an unknown or spent link costs no password hash.
    let live = user_token::Entity::find()
        .filter(user_token::Column::TokenHash.eq(auth::secret_hash(token)))
        .filter(user_token::Column::UsedAt.is_null())
        .filter(user_token::Column::ExpiresAt.gt(clock::now()))
        .one(db)
        .await?;
    if live.is_none() {
        return Err(expired());
    }
    // Hashed before the transaction: it takes tens of milliseconds.
    let hash = hash_password(password).await?;
    let now = clock::now();
    let tx = crate::platform::db::write(db).await?;
    let Some(link) = user_token::Entity::find()
        .filter(user_token::Column::TokenHash.eq(auth::secret_hash(token)))
        .one(&tx)
        .await?
    else {
        return Err(expired());
    };
    let spent = user_token::Entity::update_many()
        .col_expr(user_token::Column::UsedAt, Expr::value(now))
        .filter(user_token::Column::Id.eq(link.id))
        .filter(user_token::Column::UsedAt.is_null())
        .filter(user_token::Column::ExpiresAt.gt(now))
        .exec(&tx)
        .await?;
    if spent.rows_affected != 1 {
        return Err(expired());
    }
    let Some(u) = user::Entity::find_by_id(link.user_id)
        .filter(user::Column::DeletedAt.is_null())
        .one(&tx)
        .await?
    else {
        return Err(expired());
    };
    let mut am: user::ActiveModel = u.into();
    am.password_hash = Set(Some(hash));
    am.failed_sign_ins = Set(0);
    am.locked_until = Set(None);
    am.updated_at = Set(now);
    let u = am.update(&tx).await?;
    sign_out_everywhere(&tx, u.id).await?;
    tx.commit().await?;
    Ok(u)
}

/// Sets a person's password directly (the command line, the demo).
pub async fn set_password(
    db: &impl ConnectionTrait,
    user_id: i64,
    password: &Password,
) -> Result<()> {
    let hash = hash_password(password).await?;
    user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(Some(hash)))
        .col_expr(user::Column::FailedSignIns, Expr::value(0))
        .col_expr(
            user::Column::LockedUntil,
            Expr::value(None::<DateTime<Utc>>),
        )
        .filter(user::Column::Id.eq(user_id))
        .exec(db)
        .await?;
    sign_out_everywhere(db, user_id).await?;
    Ok(())
}

/// The people a password reset is for: live accounts of that email that already sign in
/// (the caller answers the same either way). At most one reset link per account per five
/// minutes.
pub async fn reset_candidates(db: &impl ConnectionTrait, email: &str) -> Result<Vec<user::Model>> {
    let Ok(email) = EmailAddress::parse("email", email) else {
        return Ok(Vec::new());
    };
    // Only people who already sign in: an account that never set a password got its first
    // one from an invitation an admin made, which an admin may have withdrawn.
    let users = user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .filter(user::Column::DeletedAt.is_null())
        .filter(user::Column::PasswordHash.is_not_null())
        .limit(5)
        .all(db)
        .await?;
    let since = clock::now() - Duration::minutes(5);
    let mut out = Vec::new();
    for u in users {
        let recent = user_token::Entity::find()
            .filter(user_token::Column::UserId.eq(u.id))
            .filter(user_token::Column::Purpose.eq(LinkPurpose::Reset.as_str()))
            .filter(user_token::Column::CreatedAt.gt(since))
            .one(db)
            .await?;
        if recent.is_none() {
            out.push(u);
        }
    }
    Ok(out)
}

/// An invitation waiting to be accepted.
#[derive(Clone, Debug)]
pub struct Invitation {
    /// The link's row.
    pub link: user_token::Model,
    /// The person invited.
    pub user: user::Model,
}

/// Invites a person: a new account without a password (or an existing one that never set
/// one) and a one-time link, valid [`INVITATION_TTL`]. Admins only.
pub async fn invite(
    db: &sea_orm::DatabaseConnection,
    who: &Principal,
    email: &str,
    name: &str,
    role: UserRole,
) -> Result<(Invitation, String)> {
    who.require(Scope::Admin)?;
    let email = EmailAddress::parse("email", email)?;
    let name = Text::parse("name", name, 200)?.into_string();
    let tx = crate::platform::db::write(db).await?;
    let existing = user::Entity::find()
        .filter(user::Column::WorkspaceId.eq(who.workspace_id))
        .filter(user::Column::Email.eq(email.as_str()))
        .filter(user::Column::DeletedAt.is_null())
        .one(&tx)
        .await?;
    let now = clock::now();
    let u = match existing {
        Some(u) if u.password_hash.is_some() => {
            return Err(EngineError::Conflict(format!(
                "{email} already signs in to this workspace"
            )));
        }
        Some(u) => {
            let mut am: user::ActiveModel = u.into();
            am.role = Set(role.as_str().to_string());
            am.updated_at = Set(now);
            am.update(&tx).await?
        }
        None => {
            user::ActiveModel {
                workspace_id: Set(who.workspace_id),
                name: Set(name),
                email: Set(email.as_str().to_string()),
                role: Set(role.as_str().to_string()),
                created_at: Set(now),
                updated_at: Set(now),
                failed_sign_ins: Set(0),
                ..Default::default()
            }
            .insert(&tx)
            .await?
        }
    };
    let issued = issue_link(&tx, &u, LinkPurpose::Invite, who.user_id).await?;
    tx.commit().await?;
    Ok((
        Invitation {
            link: issued.record,
            user: u,
        },
        issued.token,
    ))
}

/// Invitations of the workspace not yet accepted, expired ones included, newest first.
pub async fn invitations(db: &impl ConnectionTrait, who: &Principal) -> Result<Vec<Invitation>> {
    who.require(Scope::Admin)?;
    let links = user_token::Entity::find()
        .filter(user_token::Column::WorkspaceId.eq(who.workspace_id))
        .filter(user_token::Column::Purpose.eq(LinkPurpose::Invite.as_str()))
        .filter(user_token::Column::UsedAt.is_null())
        .order_by_desc(user_token::Column::Id)
        .limit(200)
        .all(db)
        .await?;
    let ids: Vec<i64> = links.iter().map(|l| l.user_id).collect();
    let users: std::collections::HashMap<i64, user::Model> = user::Entity::find()
        .filter(user::Column::Id.is_in(ids))
        .filter(user::Column::DeletedAt.is_null())
        .all(db)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    Ok(links
        .into_iter()
        .filter_map(|link| {
            let user = users.get(&link.user_id)?.clone();
            Some(Invitation { link, user })
        })
        .collect())
}

/// Withdraws an invitation: its link stops working.
pub async fn revoke_invitation(db: &impl ConnectionTrait, who: &Principal, id: i64) -> Result<()> {
    who.require(Scope::Admin)?;
    let res = user_token::Entity::update_many()
        .col_expr(user_token::Column::UsedAt, Expr::value(clock::now()))
        .filter(user_token::Column::Id.eq(id))
        .filter(user_token::Column::WorkspaceId.eq(who.workspace_id))
        .filter(user_token::Column::Purpose.eq(LinkPurpose::Invite.as_str()))
        .filter(user_token::Column::UsedAt.is_null())
        .exec(db)
        .await?;
    if res.rows_affected == 0 {
        return Err(EngineError::not_found("Invitation", id));
    }
    Ok(())
}

/// Recent sign-in attempts of the workspace's people, newest first.
pub async fn recent_attempts(
    db: &impl ConnectionTrait,
    who: &Principal,
    limit: u64,
) -> Result<Vec<sign_in_attempt::Model>> {
    who.require(Scope::Admin)?;
    Ok(sign_in_attempt::Entity::find()
        .filter(sign_in_attempt::Column::WorkspaceId.eq(who.workspace_id))
        .order_by_desc(sign_in_attempt::Column::Id)
        .limit(limit.min(200))
        .all(db)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_back_off_and_stop_at_an_hour() {
        assert_eq!(lock_for(4), None);
        assert_eq!(lock_for(5), Some(Duration::seconds(30)));
        assert_eq!(lock_for(6), Some(Duration::seconds(60)));
        assert_eq!(lock_for(50), Some(Duration::seconds(3600)));
    }

    #[test]
    fn passwords_have_bounds_and_hide_in_logs() {
        assert!(Password::parse("password", "short").is_err());
        assert!(Password::parse("password", &"x".repeat(129)).is_err());
        assert!(Password::parse("password", "           ").is_err());
        let p = Password::parse("password", "correct horse").unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let p = Password::parse("password", "correct horse battery").unwrap();
        let h = hash_password(&p).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", h.clone()).await);
        assert!(!verify_password("correct horse batterY", h.clone()).await);
        assert!(!verify_password("x", "not a hash".into()).await);
    }

    #[test]
    fn csrf_tokens_belong_to_their_session() {
        let a = csrf_token("rs_a");
        assert!(csrf_matches("rs_a", &a));
        assert!(!csrf_matches("rs_b", &a));
    }
}

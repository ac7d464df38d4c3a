//! The workspace's people as the console manages them: invitations, sign-in attempts, and
//! whether the workspace's mail works. Admins only; passwords and session tokens have no
//! field here or anywhere.

use crate::error::OrGraphql;
use crate::graphql::context::{Mail, PublicUrl, principal};
use crate::graphql::enums::UserRole;
use crate::graphql::ids::{parse_id, to_id};
use crate::graphql::types::User;
use async_graphql::{Context, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use rapport_engine::platform::accounts::{self, LinkPurpose};
use rapport_engine::values::Scope;
use sea_orm::DatabaseConnection;

/// Reads about people.
#[derive(Default)]
pub struct PeopleQuery;

/// Changes to people.
#[derive(Default)]
pub struct PeopleMutation;

/// An invitation not yet accepted.
pub struct Invitation(accounts::Invitation);

#[Object]
impl Invitation {
    async fn id(&self) -> ID {
        to_id(self.0.link.id)
    }
    /// The person invited (an account without a password yet).
    async fn user(&self) -> User {
        User(self.0.user.clone())
    }
    async fn email(&self) -> &str {
        &self.0.user.email
    }
    async fn role(&self) -> UserRole {
        UserRole::from_db(&self.0.user.role)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.link.created_at
    }
    /// After this, the link no longer works; invite again.
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.link.expires_at
    }
    async fn expired(&self) -> bool {
        self.0.link.expires_at <= rapport_engine::clock::now()
    }
}

/// An invitation just made.
#[derive(SimpleObject)]
pub struct InvitationResult {
    pub invitation: Invitation,
    /// Whether the link went out by email.
    pub emailed: bool,
    /// The one-time link, only when it could not be emailed (no mailer, or the mail server
    /// refused): hand it to the person yourself. Shown once.
    pub link: Option<String>,
    /// Why it was not emailed.
    pub email_error: Option<String>,
}

/// One sign-in attempt on an account of the workspace.
#[derive(SimpleObject)]
pub struct SignInAttempt {
    pub id: ID,
    pub user: Option<User>,
    /// SIGNED_IN, WRONG_PASSWORD, LOCKED.
    pub outcome: String,
    pub ip: Option<String>,
    pub at: DateTime<Utc>,
}

/// Whether the workspace's email works.
#[derive(SimpleObject)]
pub struct MailStatus {
    /// A mailer is configured (SMTP, or an outbox folder).
    pub configured: bool,
    /// It sends through SMTP (rather than into an outbox folder).
    pub smtp: bool,
    /// The SMTP server answered just now (an outbox always does).
    pub reachable: bool,
    /// Messages are signed with DKIM.
    pub dkim: bool,
    /// The sender address.
    pub from: Option<String>,
}

fn db<'a>(ctx: &Context<'a>) -> &'a DatabaseConnection {
    ctx.data_unchecked::<DatabaseConnection>()
}

#[Object]
impl PeopleQuery {
    /// Invitations not yet accepted, expired ones included. Admins only.
    async fn invitations(&self, ctx: &Context<'_>) -> Result<Vec<Invitation>> {
        let who = principal(ctx)?;
        Ok(accounts::invitations(db(ctx), who)
            .await
            .gql()?
            .into_iter()
            .map(Invitation)
            .collect())
    }

    /// The latest sign-in attempts on the workspace's accounts (at most 200). Admins only.
    async fn sign_in_attempts(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: i32,
    ) -> Result<Vec<SignInAttempt>> {
        let who = principal(ctx)?;
        let rows = accounts::recent_attempts(db(ctx), who, first.clamp(1, 200) as u64)
            .await
            .gql()?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let user =
                crate::graphql::context::load::<rapport_schema::user::Entity>(ctx, r.user_id)
                    .await?
                    .map(User);
            out.push(SignInAttempt {
                id: to_id(r.id),
                user,
                outcome: r.outcome.to_uppercase(),
                ip: r.ip,
                at: r.at,
            });
        }
        Ok(out)
    }

    /// Whether email works: configured, reachable, signed. Admins only (it connects to the
    /// mail server).
    async fn mail_status(&self, ctx: &Context<'_>) -> Result<MailStatus> {
        principal(ctx)?.require(Scope::Admin).gql()?;
        let Some(mail) = ctx.data_unchecked::<Option<Mail>>() else {
            return Ok(MailStatus {
                configured: false,
                smtp: false,
                reachable: false,
                dkim: false,
                from: None,
            });
        };
        let reachable =
            tokio::time::timeout(std::time::Duration::from_secs(5), mail.mailer.reachable())
                .await
                .unwrap_or(false);
        Ok(MailStatus {
            configured: true,
            smtp: mail.mailer.is_smtp(),
            reachable,
            dkim: mail.mailer.signs(),
            from: Some(mail.from.to_string()),
        })
    }
}

#[Object]
impl PeopleMutation {
    /// Invites a person by email: an account with `role` and a one-time link (72 hours) to
    /// set their password, sent through the workspace's mailer. Admins only.
    async fn invite_user(
        &self,
        ctx: &Context<'_>,
        email: String,
        name: String,
        #[graphql(default_with = "UserRole::Member")] role: UserRole,
    ) -> Result<InvitationResult> {
        let who = principal(ctx)?;
        let (invitation, token) = accounts::invite(db(ctx), who, &email, &name, role.into())
            .await
            .gql()?;
        let url = crate::sessions::password_link(&ctx.data_unchecked::<PublicUrl>().0, &token);
        let (emailed, email_error) = match ctx.data_unchecked::<Option<Mail>>() {
            None => (
                false,
                Some("this server has no mailer configured".to_string()),
            ),
            Some(mail) => match crate::sessions::send_link_email(
                mail,
                &invitation.user,
                LinkPurpose::Invite,
                &url,
                invitation.link.id,
            )
            .await
            {
                Ok(()) => (true, None),
                Err(e) => {
                    tracing::warn!(error = %e, "sending an invitation failed");
                    (false, Some(e.to_string()))
                }
            },
        };
        Ok(InvitationResult {
            invitation: Invitation(invitation),
            link: (!emailed).then_some(url),
            emailed,
            email_error,
        })
    }

    /// Withdraws an invitation: its link stops working. Admins only.
    async fn revoke_invitation(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let who = principal(ctx)?;
        accounts::revoke_invitation(db(ctx), who, parse_id("id", &id)?)
            .await
            .gql()?;
        Ok(id)
    }
}

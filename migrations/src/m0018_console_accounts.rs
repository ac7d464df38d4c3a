//! People sign in to the console: users gain a password (argon2id) and a lock-out count,
//! sessions live server-side as hashes of their cookie tokens, one-time links (invitations
//! and password resets) likewise, and every sign-in attempt is recorded. Job roles (rep,
//! marketer) become the access role `member`. An API key remembers the person who made it,
//! so removing the person revokes their keys.
crate::script_migration!("m0018_console_accounts");

const UP: &str = r#"
ALTER TABLE users ADD COLUMN password_hash {text};
ALTER TABLE users ADD COLUMN failed_sign_ins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_until {ts};
UPDATE users SET role = 'member' WHERE role IN ('rep', 'marketer');
CREATE INDEX users_email ON users (email);
ALTER TABLE api_keys ADD COLUMN created_by_user_id BIGINT;

CREATE TABLE user_sessions (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash {text} NOT NULL,
    created_at {ts} NOT NULL,
    expires_at {ts} NOT NULL,
    revoked_at {ts},
    ip {text},
    user_agent {text}
);
CREATE UNIQUE INDEX user_sessions_token ON user_sessions (token_hash);
CREATE INDEX user_sessions_user ON user_sessions (user_id);

CREATE TABLE user_tokens (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose {text} NOT NULL,
    token_hash {text} NOT NULL,
    created_at {ts} NOT NULL,
    expires_at {ts} NOT NULL,
    used_at {ts},
    created_by BIGINT REFERENCES users(id) ON DELETE SET NULL
);
CREATE UNIQUE INDEX user_tokens_token ON user_tokens (token_hash);
CREATE INDEX user_tokens_user ON user_tokens (user_id, purpose);

CREATE TABLE sign_in_attempts (
    id {pk},
    workspace_id BIGINT REFERENCES workspaces(id) ON DELETE CASCADE,
    user_id BIGINT REFERENCES users(id) ON DELETE CASCADE,
    ip {text},
    outcome {text} NOT NULL,
    at {ts} NOT NULL
);
CREATE INDEX sign_in_attempts_user ON sign_in_attempts (user_id, at)
"#;

const DOWN: &str = r#"
DROP TABLE sign_in_attempts;
DROP TABLE user_tokens;
DROP TABLE user_sessions;
DROP INDEX users_email;
ALTER TABLE api_keys DROP COLUMN created_by_user_id;
UPDATE users SET role = 'rep' WHERE role IN ('member', 'viewer');
ALTER TABLE users DROP COLUMN locked_until;
ALTER TABLE users DROP COLUMN failed_sign_ins;
ALTER TABLE users DROP COLUMN password_hash
"#;

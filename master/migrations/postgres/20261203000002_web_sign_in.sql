-- The web dashboard's sign-in: users with a role and an Argon2 password hash (set with
-- `dockflare-master ui set-password`), and signed-in sessions, stored by the SHA-256 of their
-- cookie (the cookie itself is never stored), with the CSRF token every write must carry.
CREATE TABLE ui_users (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE ui_sessions (
    id_hash     TEXT PRIMARY KEY,
    user_name   TEXT NOT NULL,
    role        TEXT NOT NULL,
    csrf_token  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX ui_sessions_expires_at ON ui_sessions (expires_at);
CREATE INDEX ui_sessions_user_name ON ui_sessions (user_name);

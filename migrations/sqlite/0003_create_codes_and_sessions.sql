-- The authorization-code flow (RFC 6749 §4.1, RFC 7636, OIDC Core §3.1): single-use codes
-- and browser sessions. Codes and session cookies are stored only as SHA-256 digests.

create table authorization_codes (
    hash                text primary key not null,
    client_id           text not null,
    user_id             text not null,
    redirect_uri        text not null,
    scopes              text not null,
    nonce               text,
    code_challenge      text,                               -- S256 (RFC 7636 §4.2)
    auth_time           integer not null,
    family_id           text not null,                      -- the session its tokens belong to
    created_at          integer not null,
    expires_at          integer not null,
    used_at             integer
);
create index authorization_codes_expires on authorization_codes (expires_at);

create table sessions (
    hash                text primary key not null,          -- of the cookie value
    user_id             text not null,
    auth_time           integer not null,
    created_at          integer not null,
    expires_at          integer not null
);
create index sessions_user on sessions (user_id);
create index sessions_expires on sessions (expires_at);

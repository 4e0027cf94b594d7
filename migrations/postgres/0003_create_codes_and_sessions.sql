-- The authorization-code flow: the same tables as migrations/sqlite/0003, in PostgreSQL types.

create table authorization_codes (
    hash                text primary key not null,
    client_id           text not null,
    user_id             text not null,
    redirect_uri        text not null,
    scopes              text not null,
    nonce               text,
    code_challenge      text,                               -- S256 (RFC 7636 §4.2)
    auth_time           bigint not null,
    family_id           text not null,                      -- the session its tokens belong to
    created_at          bigint not null,
    expires_at          bigint not null,
    used_at             bigint
);
create index authorization_codes_expires on authorization_codes (expires_at);

create table sessions (
    hash                text primary key not null,          -- of the cookie value
    user_id             text not null,
    auth_time           bigint not null,
    created_at          bigint not null,
    expires_at          bigint not null
);
create index sessions_user on sessions (user_id);
create index sessions_expires on sessions (expires_at);

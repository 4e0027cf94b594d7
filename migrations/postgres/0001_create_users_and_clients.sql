-- Users and clients: the same tables as migrations/sqlite/0001, in PostgreSQL types.
-- Times are unix seconds (bigint), ids are text, so one SQL text serves both engines.
-- Applied migrations are never edited: add a new file.

create table users (
    id                  text primary key not null,          -- UUID; the `sub`, never reused
    username            text not null unique,
    password_hash       text not null,                      -- PHC argon2id, or imported bcrypt
    name                text,
    email               text,
    email_verified      boolean not null default false,
    scopes              text not null default '',           -- space-delimited (RFC 6749 §3.3)
    disabled            boolean not null default false,
    created_at          bigint not null,
    updated_at          bigint not null
);

create table clients (
    id                  text primary key not null,
    secret_hash         text,                               -- hex SHA-256; null = public client
    grant_types         text not null,                      -- space-delimited
    scopes              text not null default '',           -- space-delimited
    redirect_uris       text not null default '[]',         -- JSON array
    audiences           text not null default '[]',         -- JSON array
    created_at          bigint not null
);

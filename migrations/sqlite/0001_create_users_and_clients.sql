-- Users and clients. Times are unix seconds (INTEGER), ids are TEXT, so the same SQL text
-- runs on every engine ferrid supports. Applied migrations are never edited: add a new file.

create table users (
    id                  text primary key not null,          -- UUID; the `sub`, never reused
    username            text not null unique,
    password_hash       text not null,                      -- PHC argon2id, or imported bcrypt
    name                text,
    email               text,
    email_verified      integer not null default 0,
    scopes              text not null default '',           -- space-delimited (RFC 6749 §3.3)
    disabled            integer not null default 0,
    created_at          integer not null,
    updated_at          integer not null
);

create table clients (
    id                  text primary key not null,
    secret_hash         text,                               -- hex SHA-256; null = public client
    grant_types         text not null,                      -- space-delimited
    scopes              text not null default '',           -- space-delimited
    redirect_uris       text not null default '[]',         -- JSON array
    audiences           text not null default '[]',         -- JSON array
    created_at          integer not null
);

-- Refresh tokens (RFC 6749 §6, RFC 9700 §4.14) and access-token revocations (RFC 7009):
-- the same tables as migrations/sqlite/0002, in PostgreSQL types.

create table refresh_families (
    id                  text primary key not null,
    client_id           text not null,
    user_id             text not null,
    scopes              text not null,                      -- as originally granted
    auth_time           bigint not null,
    created_at          bigint not null,
    expires_at          bigint not null,                    -- absolute: --refresh-token-ttl
    revoked_at          bigint
);
create index refresh_families_user on refresh_families (user_id);
create index refresh_families_client on refresh_families (client_id);
create index refresh_families_expires on refresh_families (expires_at);

create table refresh_tokens (
    hash                text primary key not null,          -- hex SHA-256 of the token
    family_id           text not null references refresh_families (id) on delete cascade,
    issued_at           bigint not null,
    used_at             bigint                              -- set once, when rotated
);
create index refresh_tokens_family on refresh_tokens (family_id);

create table revoked_access_tokens (
    jti                 text primary key not null,
    expires_at          bigint not null                     -- the token's exp: purge after
);
create index revoked_access_tokens_expires on revoked_access_tokens (expires_at);

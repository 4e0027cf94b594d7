-- Refresh tokens (RFC 6749 §6, RFC 9700 §4.14) and access-token revocations (RFC 7009).
-- A family is one login: every rotation adds a token to it; revoking it kills them all.

create table refresh_families (
    id                  text primary key not null,
    client_id           text not null,
    user_id             text not null,
    scopes              text not null,                      -- as originally granted
    auth_time           integer not null,
    created_at          integer not null,
    expires_at          integer not null,                   -- absolute: --refresh-token-ttl
    revoked_at          integer
);
create index refresh_families_user on refresh_families (user_id);
create index refresh_families_client on refresh_families (client_id);
create index refresh_families_expires on refresh_families (expires_at);

create table refresh_tokens (
    hash                text primary key not null,          -- hex SHA-256 of the token
    family_id           text not null references refresh_families (id) on delete cascade,
    issued_at           integer not null,
    used_at             integer                             -- set once, when rotated
);
create index refresh_tokens_family on refresh_tokens (family_id);

create table revoked_access_tokens (
    jti                 text primary key not null,
    expires_at          integer not null                    -- the token's exp: purge after
);
create index revoked_access_tokens_expires on revoked_access_tokens (expires_at);

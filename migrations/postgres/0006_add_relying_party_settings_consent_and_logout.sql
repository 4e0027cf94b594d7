-- The same as migrations/sqlite/0006, in PostgreSQL types.
-- What relying parties need beyond the token core (OIDC Core §3.1.2.4 consent, RP-Initiated
-- Logout 1.0 §3.1, Back-Channel Logout 1.0):
-- - clients get a display name, whether they must ask for consent, their own post-logout
--   redirect URIs (until now the redirect URIs served for both: existing clients keep them,
--   so logouts that worked keep working; `client update --post-logout-redirect-uri` narrows
--   them) and a back-channel logout URI;
-- - a browser session gets a public id, carried by the codes issued in it and the families
--   (`sid`) made from them, so that ending the session finds every relying party it signed in;
-- - `consents` remembers what a user allowed a client;
-- - `logout_notifications` is the outbox of back-channel logout: written in the transaction
--   that ends the sessions (by the server or a command), delivered by the servers.

alter table clients add column name text;
alter table clients add column consent boolean not null default false;
alter table clients add column post_logout_redirect_uris text not null default '[]';
alter table clients add column backchannel_logout_uri text;
update clients set post_logout_redirect_uris = redirect_uris;

alter table sessions add column id text;
alter table authorization_codes add column session_id text;
create index authorization_codes_session on authorization_codes (session_id);
alter table refresh_families add column session_id text;
create index refresh_families_session on refresh_families (session_id);

create table consents (
    user_id             text not null,
    client_id           text not null,
    scopes              text not null,                      -- space-delimited, as allowed
    updated_at          bigint not null,
    primary key (user_id, client_id)
);
create index consents_client on consents (client_id);

create table logout_notifications (
    id                  text primary key not null,
    client_id           text not null,
    user_id             text not null,                      -- the logout token's `sub`
    sid                 text not null,                      -- the family: the ID tokens' `sid`
    created_at          bigint not null,
    attempts            bigint not null default 0,
    next_attempt_at     bigint not null,
    claimed_until       bigint not null default 0          -- a server is delivering it
);
create index logout_notifications_due on logout_notifications (next_attempt_at);

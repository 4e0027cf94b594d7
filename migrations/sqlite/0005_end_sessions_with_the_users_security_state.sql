-- A user's security state is one number: every password change and disable moves
-- `users.security_version` on (a removal deletes the user). Every login record — a
-- refresh-token family (the `sid` of every user token), a browser session, an authorization
-- code — keeps the version it was created under, and is dead once the user's differs. So
-- nothing made with an old password outlives its change, however the change and the login
-- interleave (src/store/users.rs).
-- `security_changed_at` is when the version last moved: user tokens without a `sid` (minted
-- before this migration) are refused if issued at or before it.
-- `login_failures` shares the brute-force throttle's failure counts between replicas on
-- PostgreSQL (src/oauth/throttle.rs); SQLite has one server process and keeps them in memory.

alter table users add column security_version integer not null default 0;
alter table users add column security_changed_at integer not null default 0;
alter table refresh_families add column security_version integer not null default 0;
alter table sessions add column security_version integer not null default 0;
alter table authorization_codes add column security_version integer not null default 0;

create table login_failures (
    key                 text primary key not null,          -- keyed hash of the counter's key
    failures            integer not null,
    last_failure        integer not null
);
create index login_failures_last on login_failures (last_failure);

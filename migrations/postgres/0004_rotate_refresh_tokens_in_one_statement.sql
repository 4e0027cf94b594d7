-- A rotation is one atomic UPDATE: setting a token's successor_hash (with its used_at) stores
-- the successor as a new token of the same family in the same statement, by this trigger:
-- the same as migrations/sqlite/0004, in PL/pgSQL.

alter table refresh_tokens add column successor_hash text;

create function refresh_tokens_store_successor() returns trigger language plpgsql as $$
begin
    insert into refresh_tokens (hash, family_id, issued_at)
    values (new.successor_hash, new.family_id, new.used_at);
    return null;
end
$$;

create trigger refresh_tokens_store_successor
after update of successor_hash on refresh_tokens
for each row when (old.successor_hash is null and new.successor_hash is not null)
execute function refresh_tokens_store_successor();

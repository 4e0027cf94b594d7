-- A rotation is one atomic UPDATE: setting a token's successor_hash (with its used_at) stores
-- the successor as a new token of the same family in the same statement, by this trigger.
-- (src/store/refresh_tokens.rs, Store::rotate_refresh_token.) One statement instead of a
-- four-step transaction keeps the single writer's lock short.

alter table refresh_tokens add column successor_hash text;

create trigger refresh_tokens_store_successor
after update of successor_hash on refresh_tokens
when old.successor_hash is null and new.successor_hash is not null
begin
    insert into refresh_tokens (hash, family_id, issued_at)
    values (new.successor_hash, new.family_id, new.used_at);
end;

-- Retry-safe refresh (`--refresh-retry-window`): when a token is rotated, its successor is kept
-- sealed (AES-256-GCM under a key derived from the presented token, which is stored only as
-- a digest), so that a client whose answer was lost can present the same token again within
-- the window and get the same successor back. Nothing readable is stored: only a holder of the
-- rotated token can open it. Cleared when claimed, so it is handed back once at most. NULL
-- when the window is 0 (the default), as before. On a token not yet used, the value
-- 'no retry' marks a successor that was handed out twice (by a retry): its own rotation keeps
-- nothing to retry for, so whoever of its two holders presents it second is a replay.

alter table refresh_tokens add column successor_sealed text;

-- The purge clears sealed successors once the window (at most 60 s) is over; this index keeps
-- that from reading the whole table.
create index refresh_tokens_sealed on refresh_tokens (used_at) where successor_sealed is not null;

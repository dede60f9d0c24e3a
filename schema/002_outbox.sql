-- 002_outbox.sql: what the sender needs beyond 001's outbox table.
--
-- The sender claims a handful of due rows with one UPDATE that stamps a fresh
-- claim_token, then reads back exactly the rows it owns by that token: the
-- index keeps that read (and every result write, which checks the token) from
-- scanning the table.
ALTER TABLE outbox ADD KEY ix_outbox_claim_token (claim_token);

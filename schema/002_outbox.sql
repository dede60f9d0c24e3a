-- 002_outbox.sql: what the sender needs beyond 001's outbox table.
--
-- Several senders share the table (replies and file fetches here, campaign
-- batches later), each claiming only its own kinds. Claims look up due rows
-- by (kind, status, time), so a hundred thousand queued campaign messages
-- are never scanned, or locked, by the reply sender's claim.
ALTER TABLE outbox
    ADD KEY ix_outbox_kind_status_next (kind, status, next_attempt_at),
    ADD KEY ix_outbox_kind_status_claimed (kind, status, claimed_until),
    -- The sender reads back exactly the rows it claimed by their token, and
    -- every result write checks the token.
    ADD KEY ix_outbox_claim_token (claim_token);

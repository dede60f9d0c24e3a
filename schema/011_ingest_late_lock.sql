-- 011_ingest_late_lock.sql: interactions no longer declare foreign keys to their
-- client and conversation.
--
-- Why: InnoDB checks a child row's foreign key by taking a shared lock on the parent
-- row until commit. Every message of a person references the same client and
-- conversation rows, which ingest must also update (unread, last activity). With the
-- shared locks, two batches of one person could only be ordered by taking the
-- exclusive lock first and holding it across the whole transaction (the interactions
-- insert, the events, the commit): about nine tenths of it, so that at 1,000 active
-- clients four DB workers spent ~44% of their time waiting on each other
-- (docs/benchmarks.md, bench/ingest). Without the shared locks, ingest writes the
-- interactions and events first and locks the client and conversation rows only for
-- the few statements that update them (src/ingest.c, "Locks").
--
-- What keeps the references sound instead: the only writers of interactions.client_id
-- and interactions.conversation_id are ingest (which verifies under the lock that
-- every conversation it used still stands), the reply and note paths (which read the
-- conversation in the same transaction) and the merge (which moves whole clients).
-- No code deletes a client or a conversation; a merge keeps a tombstone. The indexes
-- stay: they serve the timelines.
ALTER TABLE interactions
    DROP FOREIGN KEY fk_interactions_client,
    DROP FOREIGN KEY fk_interactions_conversation;

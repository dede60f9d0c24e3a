-- Inbox search and counts (issue 7).
--
-- The first three words of every client's name, for searching by name with
-- an index. A `name LIKE '%q%'` has to read every client (80 ms at 100,000),
-- and InnoDB's FULLTEXT has no usable cost estimate: `+Иван* +Петров*` costs
-- as much as the commonest word in it, and MariaDB has no ngram parser. Each
-- word is a generated column with a B-tree index, so `name_w1 LIKE 'петр%'` is
-- a range whose size the optimiser knows, and the search (an OR over the
-- three columns per query word, src/api_conversations.c) is an index merge
-- that starts from the rarest word.
--
-- Words are split at runs of white space and of , . ; : - ( ) " ' / (the
-- search splits its query the same way); a name of fewer words has NULL in
-- the rest. Case-insensitive by the collation (no LOWER() needed). STORED:
-- computed and indexed only when a row is inserted or its name changes, so
-- ingest's `last_activity_at` update of every client on every message costs
-- nothing here. VIRTUAL would not: an update that moves an indexed column
-- (last_activity_at) makes InnoDB compute every indexed virtual column for
-- its undo log, which made 20,000 such updates 2-3 times slower. (The first
-- version kept a table of every word by triggers: 0.25-0.5 ms per new client
-- and ~40 us per client update; docs/benchmarks.md.)
ALTER TABLE clients
    ADD COLUMN name_w1 VARCHAR(64) AS (NULLIF(LEFT(SUBSTRING_INDEX(CONCAT(TRIM(REGEXP_REPLACE(name, '[[:space:],.;:()"''/-]+', ' ')), '  '), ' ', 1), 64), '')) STORED,
    ADD COLUMN name_w2 VARCHAR(64) AS (NULLIF(LEFT(SUBSTRING_INDEX(SUBSTRING_INDEX(CONCAT(TRIM(REGEXP_REPLACE(name, '[[:space:],.;:()"''/-]+', ' ')), '  '), ' ', 2), ' ', -1), 64), '')) STORED,
    ADD COLUMN name_w3 VARCHAR(64) AS (NULLIF(LEFT(SUBSTRING_INDEX(SUBSTRING_INDEX(CONCAT(TRIM(REGEXP_REPLACE(name, '[[:space:],.;:()"''/-]+', ' ')), '  '), ' ', 3), ' ', -1), 64), '')) STORED,
    ADD KEY ix_clients_name_w1 (name_w1),
    ADD KEY ix_clients_name_w2 (name_w2),
    ADD KEY ix_clients_name_w3 (name_w3);

-- The unfiltered inbox (an admin's "all"): walked in this order, the first
-- page reads 40 entries instead of sorting every conversation (65 ms at
-- 100,000 in bench/inbox).
ALTER TABLE conversations ADD KEY ix_conversations_activity (last_activity_at);

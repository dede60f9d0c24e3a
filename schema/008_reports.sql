-- 008_reports.sql: indexes for the reports page (GET /api/v1/reports).
--
-- The report reads conversations by when they were created (per day of the
-- range) and by when they were resolved. Without these, each is a full scan
-- of conversations: 100,000 rows for every day of the range. With them, a day
-- is an index range. See docs/benchmarks.md (bench/reports).
ALTER TABLE conversations
    ADD KEY ix_conversations_created (created_at),
    ADD KEY ix_conversations_resolved (resolved_at);

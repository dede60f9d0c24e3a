-- 008_reports.sql: indexes for the reports page (GET /api/v1/reports, src/api_reports.c).
--
-- The report reads conversations by when they were created (per day of the
-- range, per channel, filtered by the agent visibility rule) and by when they
-- were resolved. Without these, each is a scan of every conversation. The
-- created index carries channel, assignee and team so the per-day counts are
-- answered from the index alone. docs/benchmarks.md (bench/reports) has the
-- figures.
ALTER TABLE conversations
    ADD KEY ix_conversations_created (created_at, channel_id, assignee_id, team_id),
    ADD KEY ix_conversations_resolved (resolved_at);

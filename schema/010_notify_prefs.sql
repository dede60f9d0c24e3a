-- 010_notify_prefs.sql: notifications for assignments and inbound messages, and each
-- user's choice of them (docs/api.md PATCH /api/v1/me "notify"). A separate file because
-- 005 is already applied where it was merged (migrate.c checks checksums).
--
-- Both kinds are on by default: a conversation handed to an agent, or a client writing
-- into one of theirs, is what they are there for.
ALTER TABLE users
    ADD COLUMN notify_assigned TINYINT(1) NOT NULL DEFAULT 1,
    ADD COLUMN notify_message  TINYINT(1) NOT NULL DEFAULT 1;

-- At most one unread 'message' notification per user and conversation: unread_message is
-- the conversation while such a row is unread, NULL otherwise (NULLs do not collide), so
-- ingest refreshes the row with INSERT … ON DUPLICATE KEY UPDATE instead of piling rows up.
-- Reading the row frees the slot for the next message.
ALTER TABLE notifications
    ADD COLUMN unread_message BIGINT UNSIGNED
        AS (IF(kind = 'message' AND read_at IS NULL, conversation_id, NULL)) VIRTUAL,
    ADD UNIQUE KEY uq_notifications_unread_message (user_id, unread_message);

-- 005_agent_tools.sql: canned responses, @mention notifications (docs/web.md, docs/api.md).
--
-- Saved replies agents insert by typing "/short_code" in the composer. body is a
-- template (src/template.c, canned scope: {{client.name}}, {{client.first_name}},
-- {{agent.name}}, {{conversation.id}}, ... with "|fallback"), checked when saved.
-- short_code is compared case-insensitively (unicode_ci), so "Hello" and "hello"
-- cannot both exist.
CREATE TABLE canned_responses (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    short_code  VARCHAR(64) NOT NULL,
    title       VARCHAR(255) NOT NULL,
    body        TEXT NOT NULL,
    created_by  BIGINT UNSIGNED NULL,
    created_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY uq_canned_short_code (short_code),
    CONSTRAINT fk_canned_user FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row per thing a user is told about (kind 'mention': a colleague named them in a
-- note). The (user_id, read_at, id) key answers "my unread, newest first" and the
-- unread count without touching other users' rows. Rows go with the user, the
-- conversation or the note they point at.
CREATE TABLE notifications (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    user_id          BIGINT UNSIGNED NOT NULL,
    kind             VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    conversation_id  BIGINT UNSIGNED NULL,
    interaction_id   BIGINT UNSIGNED NULL,
    actor_user_id    BIGINT UNSIGNED NULL,
    created_at       DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    read_at          DATETIME(6) NULL,
    PRIMARY KEY (id),
    KEY ix_notifications_user_unread (user_id, read_at, id),
    KEY ix_notifications_conversation (conversation_id),
    KEY ix_notifications_interaction (interaction_id),
    KEY ix_notifications_actor (actor_user_id),
    CONSTRAINT fk_notifications_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT fk_notifications_conversation FOREIGN KEY (conversation_id) REFERENCES conversations (id) ON DELETE CASCADE,
    CONSTRAINT fk_notifications_interaction FOREIGN KEY (interaction_id) REFERENCES interactions (id) ON DELETE CASCADE,
    CONSTRAINT fk_notifications_actor FOREIGN KEY (actor_user_id) REFERENCES users (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- 003_mail.sql: the e-mail channel's own state.
--
-- Addresses campaigns must not mail. One row per normalised address (lower-cased,
-- byte-compared). Hard bounces, complaints, unsubscribes and manual entries
-- suppress at once; soft bounces are counted and suppress once soft_count reaches
-- the threshold (3). A stronger reason is never downgraded by a weaker one.
-- source_interaction_id is the report or request that caused the latest change.
CREATE TABLE suppressions (
    id                     BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    email                  VARCHAR(320) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    reason                 ENUM('unsubscribe','hard_bounce','soft_bounce','complaint','manual') NOT NULL,
    suppressed             TINYINT(1) NOT NULL DEFAULT 1,
    soft_count             INT UNSIGNED NOT NULL DEFAULT 0,
    last_status            VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL,
    source_interaction_id  BIGINT UNSIGNED NULL,
    created_at             DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at             DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY uq_suppressions_email (email),
    KEY ix_suppressions_reason (reason, suppressed),
    CONSTRAINT fk_suppressions_source FOREIGN KEY (source_interaction_id) REFERENCES interactions (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- 004_campaigns.sql: e-mail campaigns (docs/campaigns.md).
--
-- Saved client filters. filter is the JSON the marketer posted (segment.c reads
-- it into bound parameters of one constant query; it is never pasted into SQL).
CREATE TABLE segments (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    name        VARCHAR(255) NOT NULL,
    filter      JSON NOT NULL DEFAULT '{}',
    created_by  BIGINT UNSIGNED NULL,
    created_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    CONSTRAINT fk_segments_user FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE templates (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    name        VARCHAR(255) NOT NULL,
    subject     VARCHAR(998) NOT NULL,
    html        MEDIUMTEXT NULL,
    text        MEDIUMTEXT NULL,
    created_by  BIGINT UNSIGNED NULL,
    created_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    CONSTRAINT fk_templates_user FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- A campaign keeps its own copy of the template (subject, html, text) from the
-- moment it starts: editing a template never changes mail already on its way.
-- mid_salt makes the recipients' Message-IDs unguessable yet derivable, so a
-- message re-sent after a crash carries the same Message-ID as the first try.
CREATE TABLE campaigns (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    name             VARCHAR(255) NOT NULL,
    segment_id       BIGINT UNSIGNED NOT NULL,
    template_id      BIGINT UNSIGNED NOT NULL,
    channel_id       BIGINT UNSIGNED NOT NULL,
    status           ENUM('draft','scheduled','running','paused','finished','cancelled') NOT NULL DEFAULT 'draft',
    send_at          DATETIME(6) NULL,
    rate_per_second  INT UNSIGNED NOT NULL DEFAULT 0,
    subject          VARCHAR(998) NULL,
    html             MEDIUMTEXT NULL,
    text             MEDIUMTEXT NULL,
    mid_salt         CHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    recipients       INT UNSIGNED NOT NULL DEFAULT 0,
    created_by       BIGINT UNSIGNED NULL,
    started_at       DATETIME(6) NULL,
    finished_at      DATETIME(6) NULL,
    created_at       DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at       DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    KEY ix_campaigns_status (status, send_at),
    CONSTRAINT fk_campaigns_segment FOREIGN KEY (segment_id) REFERENCES segments (id) ON DELETE RESTRICT,
    CONSTRAINT fk_campaigns_template FOREIGN KEY (template_id) REFERENCES templates (id) ON DELETE RESTRICT,
    CONSTRAINT fk_campaigns_channel FOREIGN KEY (channel_id) REFERENCES channels (id) ON DELETE RESTRICT,
    CONSTRAINT fk_campaigns_user FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row per (campaign, client), materialised when the campaign starts. The
-- row is the send job: queued -> sending (claim_token + claimed_until) -> sent,
-- every result written only WHERE claim_token still matches (as the outbox).
-- bounce is set later from the IMAP poller's bounce reports, matched on
-- message_id. email is the address at materialisation (byte-compared).
CREATE TABLE campaign_recipients (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    campaign_id      BIGINT UNSIGNED NOT NULL,
    client_id        BIGINT UNSIGNED NOT NULL,
    email            VARCHAR(320) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    status           ENUM('queued','sending','sent','failed','skipped','cancelled') NOT NULL DEFAULT 'queued',
    attempts         INT UNSIGNED NOT NULL DEFAULT 0,
    next_attempt_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    claim_token      BINARY(16) NULL,
    claimed_until    DATETIME(6) NULL,
    message_id       VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
    interaction_id   BIGINT UNSIGNED NULL,
    last_error       VARCHAR(512) NULL,
    sent_at          DATETIME(6) NULL,
    bounce           ENUM('hard','soft','complaint') NULL,
    opened_at        DATETIME(6) NULL,
    clicked_at       DATETIME(6) NULL,
    unsubscribed_at  DATETIME(6) NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_campaign_recipients (campaign_id, client_id),
    KEY ix_campaign_recipients_due (campaign_id, status, next_attempt_at),
    KEY ix_campaign_recipients_message_id (message_id),
    CONSTRAINT fk_campaign_recipients_campaign FOREIGN KEY (campaign_id) REFERENCES campaigns (id) ON DELETE CASCADE,
    CONSTRAINT fk_campaign_recipients_client FOREIGN KEY (client_id) REFERENCES clients (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Opens, clicks and unsubscribes as they happen (the per-hour charts read
-- this); the first of each kind is also stamped on the recipient row.
CREATE TABLE tracking (
    id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    campaign_id   BIGINT UNSIGNED NOT NULL,
    recipient_id  BIGINT UNSIGNED NOT NULL,
    kind          ENUM('open','click','unsubscribe') NOT NULL,
    url           TEXT NULL,
    created_at    DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    KEY ix_tracking_campaign (campaign_id, kind, created_at),
    CONSTRAINT fk_tracking_recipient FOREIGN KEY (recipient_id) REFERENCES campaign_recipients (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- 001_init.sql: the foundation schema (MariaDB 10.11, InnoDB, utf8mb4).
--
-- Applied once by `switchboard migrate`, which runs this file as one multi-statement
-- script and records it in schema_migrations itself. DDL only: named queries live
-- with their modules. docs/data-model.md explains every table and its invariants.
--
-- Conventions:
--   * ids are BIGINT UNSIGNED AUTO_INCREMENT. Timestamps are DATETIME(6) in UTC:
--     DEFAULT CURRENT_TIMESTAMP(6) uses the session time zone, so every connection
--     runs SET time_zone = '+00:00' first and queries use UTC_TIMESTAMP(6).
--   * text is utf8mb4_unicode_ci for what people search and sort (names, subjects).
--     Machine identifiers that must compare byte for byte (provider ids, normalised
--     identities, tokens, IMAP folders) are utf8mb4_bin or ascii_bin.
--   * history is never deleted by accident: channels are disabled, not deleted
--     (RESTRICT). Erasing a client cascades to everything that is about them.
--   * JSON columns are the MariaDB JSON alias (LONGTEXT + CHECK JSON_VALID).

-- Staff accounts. The C code reads these exact column names. email is the login
-- name (case-insensitive unique). password_hash is the libsodium Argon2id string.
CREATE TABLE users (
    id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    email          VARCHAR(254) NOT NULL,
    name           VARCHAR(255) NOT NULL DEFAULT '',
    role           ENUM('admin','agent','marketer') NOT NULL DEFAULT 'agent',
    password_hash  VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    locale         VARCHAR(16) NULL,
    disabled       TINYINT(1) NOT NULL DEFAULT 0,
    created_at     DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at     DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    last_login_at  DATETIME(6) NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_users_email (email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Groups of agents: an agent sees the conversations routed to any of their teams.
CREATE TABLE teams (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    name        VARCHAR(100) NOT NULL,
    created_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY uq_teams_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Membership is a pure pair. The reverse index answers "which teams is this user in".
CREATE TABLE team_members (
    team_id     BIGINT UNSIGNED NOT NULL,
    user_id     BIGINT UNSIGNED NOT NULL,
    created_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (team_id, user_id),
    KEY ix_team_members_user (user_id),
    CONSTRAINT fk_team_members_team FOREIGN KEY (team_id) REFERENCES teams (id) ON DELETE CASCADE,
    CONSTRAINT fk_team_members_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Browser sessions. Only sha256(cookie token) is stored, so a leaked table cannot
-- be replayed. The hash is the key every request looks up. expires_at is indexed
-- for the pruning sweep, user_id for "sign out everywhere".
CREATE TABLE sessions (
    token_hash    BINARY(32) NOT NULL,
    user_id       BIGINT UNSIGNED NOT NULL,
    created_at    DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    expires_at    DATETIME(6) NOT NULL,
    last_seen_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    ip            VARCHAR(45) CHARACTER SET ascii COLLATE ascii_bin NULL,
    user_agent    VARCHAR(255) NULL,
    PRIMARY KEY (token_hash),
    KEY ix_sessions_expires (expires_at),
    KEY ix_sessions_user (user_id),
    CONSTRAINT fk_sessions_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Bearer tokens for scripts. Like sessions, only sha256(token) is stored (unique:
-- it is the lookup key). Revocation keeps the row so the audit trail stays readable.
CREATE TABLE api_tokens (
    id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    user_id       BIGINT UNSIGNED NOT NULL,
    name          VARCHAR(100) NOT NULL,
    token_hash    BINARY(32) NOT NULL,
    created_at    DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    last_used_at  DATETIME(6) NULL,
    revoked_at    DATETIME(6) NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_api_tokens_hash (token_hash),
    KEY ix_api_tokens_user (user_id),
    CONSTRAINT fk_api_tokens_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Content-addressed bytes (raw mail, attachments): the sha256 is the key, so the
-- same file arriving twice is stored once. Rows are referenced with RESTRICT, so
-- garbage collection can only remove blobs nothing points at.
CREATE TABLE blobs (
    sha256      BINARY(32) NOT NULL,
    size        BIGINT UNSIGNED NOT NULL,
    data        LONGBLOB NOT NULL,
    created_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (sha256)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The people behind interactions. A merged-away client stays as a tombstone with
-- merged_into set (old links and ids keep resolving). merged_into always points at
-- a live client, so deleting the survivor may cascade to its tombstones.
CREATE TABLE clients (
    id                BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    name              VARCHAR(255) NULL,
    company           VARCHAR(255) NULL,
    custom_fields     JSON NOT NULL DEFAULT '{}',
    merged_into       BIGINT UNSIGNED NULL,
    created_at        DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at        DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    last_activity_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    KEY ix_clients_merged_into (merged_into),
    KEY ix_clients_name (name),
    KEY ix_clients_last_activity (last_activity_at),
    CONSTRAINT fk_clients_merged_into FOREIGN KEY (merged_into) REFERENCES clients (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Tags as rows rather than a JSON array, so segment queries ("tag = vip") use an
-- index. Case-insensitive: "VIP" and "vip" are the same tag.
CREATE TABLE client_tags (
    client_id   BIGINT UNSIGNED NOT NULL,
    tag         VARCHAR(100) NOT NULL,
    created_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (client_id, tag),
    KEY ix_client_tags_tag (tag),
    CONSTRAINT fk_client_tags_client FOREIGN KEY (client_id) REFERENCES clients (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Ways to reach a client. value is the normalised form (lower-cased email, E.164
-- phone, messenger user id) and is byte-compared (utf8mb4_bin: Viber ids are
-- case-sensitive). Only verified (normalisable, trusted) identities carry a value:
-- unverified ones have value NULL, which UNIQUE(kind, value) lets coexist, and keep
-- their input in raw. Matching therefore only ever uses verified identities.
CREATE TABLE client_identities (
    id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    client_id     BIGINT UNSIGNED NOT NULL,
    kind          ENUM('email','phone','telegram','whatsapp','viber','other') NOT NULL,
    value         VARCHAR(320) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    raw           VARCHAR(512) NOT NULL,
    verified      TINYINT(1) NOT NULL DEFAULT 0,
    display_name  VARCHAR(255) NULL,
    created_at    DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY uq_client_identities_kind_value (kind, value),
    KEY ix_client_identities_client (client_id, kind),
    CONSTRAINT fk_client_identities_client FOREIGN KEY (client_id) REFERENCES clients (id) ON DELETE CASCADE,
    CONSTRAINT ck_client_identities_verified CHECK ((verified = 1 AND value IS NOT NULL)
                                                 OR (verified = 0 AND value IS NULL))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Configured inboxes/outboxes of every kind. Kind-specific settings live in config
-- (secrets inside encrypted by the app). public_key names the channel in public
-- URLs (/forms/{public_key}) and is case-sensitive. Channels that carry history are
-- disabled, not deleted: history tables reference them with RESTRICT.
CREATE TABLE channels (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    kind             VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    name             VARCHAR(100) NOT NULL,
    config           JSON NOT NULL DEFAULT '{}',
    public_key       VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
    enabled          TINYINT(1) NOT NULL DEFAULT 1,
    last_success_at  DATETIME(6) NULL,
    last_error_at    DATETIME(6) NULL,
    last_error       TEXT NULL,
    created_at       DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at       DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY uq_channels_public_key (public_key),
    KEY ix_channels_kind (kind, enabled)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- IMAP position per mailbox folder, moved in the same transaction as the ingest of
-- the message it passes. Folder names are byte-compared ("Archive" <> "archive").
CREATE TABLE channel_cursors (
    channel_id   BIGINT UNSIGNED NOT NULL,
    folder       VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    uidvalidity  BIGINT UNSIGNED NOT NULL,
    last_uid     BIGINT UNSIGNED NOT NULL DEFAULT 0,
    updated_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (channel_id, folder),
    CONSTRAINT fk_channel_cursors_channel FOREIGN KEY (channel_id) REFERENCES channels (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Time-limited ownership of a named job ("imap:12", "campaign:7:batch:3") across
-- nodes. Times come from the database clock only. generation grows on every change
-- of owner so a node that lost its lease can tell (fencing).
CREATE TABLE leases (
    name         VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    owner        VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    generation   BIGINT UNSIGNED NOT NULL DEFAULT 1,
    acquired_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    expires_at   DATETIME(6) NOT NULL,
    PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One thread of exchanges with a client on one channel. The indexes serve the
-- inbox lists (by status / assignee / team / channel, newest activity first: InnoDB
-- appends id, which gives stable cursor paging), the messenger lookup "open
-- conversation of this client on this channel", and the snooze wake-up sweep.
CREATE TABLE conversations (
    id                 BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    client_id          BIGINT UNSIGNED NOT NULL,
    channel_id         BIGINT UNSIGNED NOT NULL,
    status             ENUM('open','pending','resolved','snoozed') NOT NULL DEFAULT 'open',
    snoozed_until      DATETIME(6) NULL,
    assignee_id        BIGINT UNSIGNED NULL,
    team_id            BIGINT UNSIGNED NULL,
    subject            VARCHAR(998) NULL,
    last_activity_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    unread             INT UNSIGNED NOT NULL DEFAULT 0,
    first_response_at  DATETIME(6) NULL,
    resolved_at        DATETIME(6) NULL,
    created_at         DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at         DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    KEY ix_conversations_status_activity (status, last_activity_at),
    KEY ix_conversations_assignee_status (assignee_id, status, last_activity_at),
    KEY ix_conversations_team_status (team_id, status, last_activity_at),
    KEY ix_conversations_channel_status (channel_id, status, last_activity_at),
    KEY ix_conversations_client_channel_status (client_id, channel_id, status, last_activity_at),
    KEY ix_conversations_snoozed_until (snoozed_until),
    CONSTRAINT fk_conversations_client FOREIGN KEY (client_id) REFERENCES clients (id) ON DELETE CASCADE,
    CONSTRAINT fk_conversations_channel FOREIGN KEY (channel_id) REFERENCES channels (id) ON DELETE RESTRICT,
    CONSTRAINT fk_conversations_assignee FOREIGN KEY (assignee_id) REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT fk_conversations_team FOREIGN KEY (team_id) REFERENCES teams (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Every message, form post, call and note, normalised. UNIQUE(channel_id,
-- external_id) makes ingest idempotent (external_id is byte-compared and NULL for
-- notes and not-yet-sent replies). message_id_hash is computed by the server from
-- message_id so threading looks up a fixed 32-byte key instead of a 998-char
-- header. conversation_id/client_id are NULL only for input that belongs to no
-- client (bounces of campaign mail). flags as integer: auto_reply=1, bounce=2,
-- parse_error=4, edited=8. FULLTEXT(subject, text) backs the search box.
CREATE TABLE interactions (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    conversation_id  BIGINT UNSIGNED NULL,
    client_id        BIGINT UNSIGNED NULL,
    channel_id       BIGINT UNSIGNED NOT NULL,
    direction        ENUM('in','out','note') NOT NULL,
    kind             ENUM('email','message','form','call','note') NOT NULL,
    external_id      VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    message_id       VARCHAR(998) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    message_id_hash  BINARY(32) AS (UNHEX(SHA2(message_id, 256))) STORED,
    in_reply_to      VARCHAR(998) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    sender           VARCHAR(512) NULL,
    subject          VARCHAR(998) NULL,
    text             MEDIUMTEXT NULL,
    html             MEDIUMTEXT NULL,
    meta             JSON NULL,
    delivery_status  ENUM('none','queued','sent','delivered','read','failed') NOT NULL DEFAULT 'none',
    flags            SET('auto_reply','bounce','parse_error','edited') NOT NULL DEFAULT '',
    parse_error      TEXT NULL,
    raw_sha256       BINARY(32) NULL,
    author_user_id   BIGINT UNSIGNED NULL,
    occurred_at      DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    created_at       DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY uq_interactions_channel_external (channel_id, external_id),
    KEY ix_interactions_conversation (conversation_id, occurred_at),
    KEY ix_interactions_client (client_id, occurred_at),
    KEY ix_interactions_message_id_hash (message_id_hash),
    KEY ix_interactions_raw (raw_sha256),
    KEY ix_interactions_author (author_user_id),
    FULLTEXT KEY ft_interactions_subject_text (subject, text),
    CONSTRAINT fk_interactions_conversation FOREIGN KEY (conversation_id) REFERENCES conversations (id) ON DELETE CASCADE,
    CONSTRAINT fk_interactions_client FOREIGN KEY (client_id) REFERENCES clients (id) ON DELETE CASCADE,
    CONSTRAINT fk_interactions_channel FOREIGN KEY (channel_id) REFERENCES channels (id) ON DELETE RESTRICT,
    CONSTRAINT fk_interactions_raw FOREIGN KEY (raw_sha256) REFERENCES blobs (sha256) ON DELETE RESTRICT,
    CONSTRAINT fk_interactions_author FOREIGN KEY (author_user_id) REFERENCES users (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- File metadata per interaction: the bytes are a blob keyed by sha256. sha256 is
-- NULL while the content is still to be fetched from the provider (provider_ref,
-- e.g. a Telegram file_id, says where from).
CREATE TABLE attachments (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    interaction_id  BIGINT UNSIGNED NOT NULL,
    filename        VARCHAR(255) NULL,
    content_type    VARCHAR(255) NOT NULL DEFAULT 'application/octet-stream',
    size            BIGINT UNSIGNED NULL,
    sha256          BINARY(32) NULL,
    content_id      VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    disposition     ENUM('attachment','inline') NOT NULL DEFAULT 'attachment',
    provider_ref    VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    created_at      DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    KEY ix_attachments_interaction (interaction_id),
    KEY ix_attachments_sha256 (sha256),
    CONSTRAINT fk_attachments_interaction FOREIGN KEY (interaction_id) REFERENCES interactions (id) ON DELETE CASCADE,
    CONSTRAINT fk_attachments_blob FOREIGN KEY (sha256) REFERENCES blobs (sha256) ON DELETE RESTRICT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Append-only change log written in the same transaction as the change. The WS
-- layer tails it by id. No foreign keys on purpose: an event must be able to
-- describe a deletion, and inserts stay cheap on the hottest path. Pruned by age.
CREATE TABLE events (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    type             VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    conversation_id  BIGINT UNSIGNED NULL,
    client_id        BIGINT UNSIGNED NULL,
    user_id          BIGINT UNSIGNED NULL,
    team_id          BIGINT UNSIGNED NULL,
    data             JSON NOT NULL DEFAULT '{}',
    created_at       DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    KEY ix_events_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Durable send jobs. A sender claims due rows (status, next_attempt_at) with FOR
-- UPDATE SKIP LOCKED, stamps its claim_token, and records results only WHERE
-- claim_token matches. idempotency_key stops a retried enqueue from doubling a job.
-- Damaged jobs are quarantined, never deleted.
CREATE TABLE outbox (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    kind             VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    channel_id       BIGINT UNSIGNED NOT NULL,
    interaction_id   BIGINT UNSIGNED NULL,
    payload          JSON NOT NULL DEFAULT '{}',
    status           ENUM('queued','sending','sent','failed','quarantined') NOT NULL DEFAULT 'queued',
    attempts         INT UNSIGNED NOT NULL DEFAULT 0,
    next_attempt_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    claim_token      BINARY(16) NULL,
    claimed_until    DATETIME(6) NULL,
    last_error       TEXT NULL,
    idempotency_key  VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    sent_at          DATETIME(6) NULL,
    created_at       DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at       DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY uq_outbox_idempotency_key (idempotency_key),
    KEY ix_outbox_status_next (status, next_attempt_at),
    KEY ix_outbox_status_claimed (status, claimed_until),
    KEY ix_outbox_channel (channel_id),
    KEY ix_outbox_interaction (interaction_id),
    CONSTRAINT fk_outbox_channel FOREIGN KEY (channel_id) REFERENCES channels (id) ON DELETE RESTRICT,
    CONSTRAINT fk_outbox_interaction FOREIGN KEY (interaction_id) REFERENCES interactions (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Possible duplicates found by ingest (one identity matched several clients). The
-- pair is unique in either order (pair_lo/pair_hi are computed), so (a,b) and (b,a)
-- cannot both be suggested. client_id is the suggested survivor (the oldest).
CREATE TABLE merge_suggestions (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    client_id        BIGINT UNSIGNED NOT NULL,
    other_client_id  BIGINT UNSIGNED NOT NULL,
    pair_lo          BIGINT UNSIGNED AS (LEAST(client_id, other_client_id)) STORED,
    pair_hi          BIGINT UNSIGNED AS (GREATEST(client_id, other_client_id)) STORED,
    reason           VARCHAR(255) NOT NULL DEFAULT '',
    status           ENUM('open','accepted','dismissed') NOT NULL DEFAULT 'open',
    created_at       DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    decided_by       BIGINT UNSIGNED NULL,
    decided_at       DATETIME(6) NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_merge_suggestions_pair (pair_lo, pair_hi),
    KEY ix_merge_suggestions_client (client_id),
    KEY ix_merge_suggestions_other (other_client_id),
    KEY ix_merge_suggestions_status (status, created_at),
    CONSTRAINT fk_merge_suggestions_client FOREIGN KEY (client_id) REFERENCES clients (id) ON DELETE CASCADE,
    CONSTRAINT fk_merge_suggestions_other FOREIGN KEY (other_client_id) REFERENCES clients (id) ON DELETE CASCADE,
    CONSTRAINT fk_merge_suggestions_decided_by FOREIGN KEY (decided_by) REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT ck_merge_suggestions_distinct CHECK (client_id <> other_client_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Who did what, append-only. user_id has no foreign key so the record outlives the
-- account. target_id is text so any kind of target (ids, channel names) fits.
CREATE TABLE audit_log (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    user_id      BIGINT UNSIGNED NULL,
    action       VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    target_type  VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
    target_id    VARCHAR(64) NULL,
    detail       JSON NULL,
    ip           VARCHAR(45) CHARACTER SET ascii COLLATE ascii_bin NULL,
    created_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    KEY ix_audit_log_created (created_at),
    KEY ix_audit_log_user (user_id, created_at),
    KEY ix_audit_log_target (target_type, target_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Quarantine: input no adapter could turn into an interaction, kept byte for byte
-- with its error so nothing is dropped and an admin can inspect or replay it.
-- Survives the deletion of its channel (SET NULL).
CREATE TABLE raw_inbound (
    id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    channel_id    BIGINT UNSIGNED NULL,
    source        VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    error         TEXT NOT NULL,
    content_type  VARCHAR(255) NULL,
    body          LONGBLOB NOT NULL,
    created_at    DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    resolved_at   DATETIME(6) NULL,
    resolved_by   BIGINT UNSIGNED NULL,
    PRIMARY KEY (id),
    KEY ix_raw_inbound_unresolved (resolved_at, created_at),
    KEY ix_raw_inbound_channel (channel_id),
    CONSTRAINT fk_raw_inbound_channel FOREIGN KEY (channel_id) REFERENCES channels (id) ON DELETE SET NULL,
    CONSTRAINT fk_raw_inbound_resolved_by FOREIGN KEY (resolved_by) REFERENCES users (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

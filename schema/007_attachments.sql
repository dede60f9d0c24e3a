-- 007_attachments.sql: files agents upload for their replies (docs/api.md,
-- "Attachments").
--
-- An upload is a blob the agent has not sent yet: POST /api/v1/uploads stores
-- the bytes and this row; a reply naming it in "attachment_ids" turns it into
-- an attachments row of the outbound interaction and deletes it here, in the
-- reply's transaction. Only the uploader may use it. Rows older than a day
-- were never sent and are pruned (the blob too, when nothing else uses it).
CREATE TABLE uploads (
    id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    user_id       BIGINT UNSIGNED NOT NULL,
    filename      VARCHAR(255) NOT NULL,
    content_type  VARCHAR(255) NOT NULL,
    size          BIGINT UNSIGNED NOT NULL,
    sha256        BINARY(32) NOT NULL,
    created_at    DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    KEY ix_uploads_user (user_id),
    KEY ix_uploads_created (created_at),
    KEY ix_uploads_sha256 (sha256),
    CONSTRAINT fk_uploads_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT fk_uploads_blob FOREIGN KEY (sha256) REFERENCES blobs (sha256) ON DELETE RESTRICT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Inbox search and counts (issue 7).
--
-- The words of every client's name, for searching by name with an index. A
-- `name LIKE '%q%'` has to read every client (80 ms at 100,000), and InnoDB's
-- FULLTEXT has no usable cost estimate: `+Иван* +Петров*` costs as much as
-- the commonest word in it, and MariaDB has no ngram parser. Here each word
-- is a B-tree row, so `word LIKE 'петр%'` is a range whose size the optimiser
-- knows, and a name of several words is a join that starts from the rarest.
-- Words are split at spaces and at , . ; : - ( ) " ' / (the search splits its
-- query the same way, src/api_conversations.c) and compared case-insensitively
-- by the collation. Kept by the triggers below, so every writer of
-- clients.name (ingest, import, the client card, merge) keeps it true.
CREATE TABLE client_name_words (
    word       VARCHAR(64) NOT NULL,
    client_id  BIGINT UNSIGNED NOT NULL,
    PRIMARY KEY (word, client_id),
    KEY ix_client_name_words_client (client_id, word),
    CONSTRAINT fk_client_name_words_client FOREIGN KEY (client_id) REFERENCES clients (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TRIGGER tr_clients_name_words_insert AFTER INSERT ON clients FOR EACH ROW
BEGIN
    DECLARE s VARCHAR(1024) DEFAULT TRIM(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(
        REPLACE(REPLACE(REPLACE(COALESCE(NEW.name, ''), CHAR(9), ' '), ',', ' '), '.', ' '), ';', ' '),
        ':', ' '), '-', ' '), '(', ' '), ')', ' '), '"', ' '), '''', ' '), '/', ' '));
    DECLARE w VARCHAR(1024);
    WHILE s <> '' DO
        SET w = SUBSTRING_INDEX(s, ' ', 1);
        SET s = TRIM(SUBSTRING(s, CHAR_LENGTH(w) + 2));
        IF w <> '' THEN
            INSERT IGNORE INTO client_name_words (word, client_id) VALUES (LEFT(w, 64), NEW.id);
        END IF;
    END WHILE;
END;

-- Fires for every update of a client (ingest moves last_activity_at with each message), so
-- it only compares the names unless the name changed.
CREATE TRIGGER tr_clients_name_words_update AFTER UPDATE ON clients FOR EACH ROW
BEGIN
    DECLARE s VARCHAR(1024);
    DECLARE w VARCHAR(1024);
    IF NOT (NEW.name <=> OLD.name) THEN
        SET s = TRIM(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(
            REPLACE(REPLACE(REPLACE(COALESCE(NEW.name, ''), CHAR(9), ' '), ',', ' '), '.', ' '), ';', ' '),
            ':', ' '), '-', ' '), '(', ' '), ')', ' '), '"', ' '), '''', ' '), '/', ' '));
        DELETE FROM client_name_words WHERE client_id = NEW.id;
        WHILE s <> '' DO
            SET w = SUBSTRING_INDEX(s, ' ', 1);
            SET s = TRIM(SUBSTRING(s, CHAR_LENGTH(w) + 2));
            IF w <> '' THEN
                INSERT IGNORE INTO client_name_words (word, client_id) VALUES (LEFT(w, 64), NEW.id);
            END IF;
        END WHILE;
    END IF;
END;

-- Clients stored before this migration: their first 16 words. (A recursive
-- CTE lost a word now and then under INSERT IGNORE on MariaDB 10.11.)
INSERT IGNORE INTO client_name_words (word, client_id)
SELECT LEFT(SUBSTRING_INDEX(SUBSTRING_INDEX(c.n, ' ', k.k), ' ', -1), 64), c.id
FROM (SELECT id, CONCAT(TRIM(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(
          REPLACE(REPLACE(name, CHAR(9), ' '), ',', ' '), '.', ' '), ';', ' '), ':', ' '), '-', ' '),
          '(', ' '), ')', ' '), '"', ' '), '''', ' '), '/', ' ')), ' ') AS n
      FROM clients WHERE name IS NOT NULL) c
JOIN (SELECT 1 AS k UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9 UNION ALL SELECT 10 UNION ALL SELECT 11 UNION ALL SELECT 12 UNION ALL SELECT 13 UNION ALL SELECT 14 UNION ALL SELECT 15 UNION ALL SELECT 16) k
  ON k.k <= CHAR_LENGTH(c.n) - CHAR_LENGTH(REPLACE(c.n, ' ', ''))
WHERE SUBSTRING_INDEX(SUBSTRING_INDEX(c.n, ' ', k.k), ' ', -1) <> '';

-- The unfiltered inbox (an admin's "all"): walked in this order, the first
-- page reads 40 entries instead of sorting every conversation (65 ms at
-- 100,000 in bench/inbox).
ALTER TABLE conversations ADD KEY ix_conversations_activity (last_activity_at);

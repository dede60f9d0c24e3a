-- 008_reports.sql: what the reports page (GET /api/v1/reports,
-- src/api_reports.c) reads, kept on each conversation so that a report over
-- a year reads index entries of conversations instead of their interactions.
--
-- "Inbound" here means from a person: auto-replies and bounces aside (bounces
-- never reach a conversation). Notes count as nothing. Maintained in the
-- statements that already write the conversation: ingest's conversation
-- insert and touch (src/ingest.c), the reply (src/api_conversations.c) and
-- a campaign's sent message (src/campaign_send.c).
--   first_inbound_at    the first inbound message
--   last_inbound_at     the latest inbound message
--   last_outbound_at    the latest outbound one (an agent's, a campaign's or
--                       one ingest saw leave, e.g. a call we placed)
--   waiting_since       the first inbound after the latest outbound: the
--                       client waits for an answer since then, NULL = answered
--   first_response_at   (001) the first reply an agent wrote after the first
--   first_responder_id  inbound, and who wrote it, NULL until then
-- docs/data-model.md has the details, docs/benchmarks.md (bench/reports)
-- the figures.
ALTER TABLE conversations
    ADD COLUMN first_inbound_at DATETIME(6) NULL AFTER first_response_at,
    ADD COLUMN last_inbound_at DATETIME(6) NULL AFTER first_inbound_at,
    ADD COLUMN last_outbound_at DATETIME(6) NULL AFTER last_inbound_at,
    ADD COLUMN waiting_since DATETIME(6) NULL AFTER last_outbound_at,
    ADD COLUMN first_responder_id BIGINT UNSIGNED NULL AFTER waiting_since,
    ADD CONSTRAINT fk_conversations_first_responder FOREIGN KEY (first_responder_id)
        REFERENCES users (id) ON DELETE SET NULL;

-- Backfill from the interactions. Before this migration first_response_at
-- was set by any first reply, even one before the client wrote: it is
-- recomputed with the definition above.
UPDATE conversations c
  JOIN (SELECT conversation_id,
               MIN(IF(direction = 'in', occurred_at, NULL)) fi,
               MAX(IF(direction = 'in', occurred_at, NULL)) li,
               MAX(IF(direction = 'out', occurred_at, NULL)) lo
          FROM interactions
         WHERE direction = 'out' OR (direction = 'in' AND NOT FIND_IN_SET('auto_reply', flags)
               AND NOT FIND_IN_SET('bounce', flags))
         GROUP BY conversation_id) a ON a.conversation_id = c.id
   SET c.first_inbound_at = a.fi, c.last_inbound_at = a.li, c.last_outbound_at = a.lo;

UPDATE conversations c
  JOIN (SELECT i.conversation_id, MIN(i.occurred_at) w
          FROM conversations v JOIN interactions i ON i.conversation_id = v.id
         WHERE v.last_inbound_at > COALESCE(v.last_outbound_at, '1000-01-01')
           AND i.direction = 'in' AND NOT FIND_IN_SET('auto_reply', i.flags)
           AND NOT FIND_IN_SET('bounce', i.flags)
           AND i.occurred_at > COALESCE(v.last_outbound_at, '1000-01-01')
         GROUP BY i.conversation_id) a ON a.conversation_id = c.id
   SET c.waiting_since = a.w;

-- The first answer's author rides along with its time as MIN("time id"):
-- the time is fixed-width, so the smallest string is the earliest answer.
UPDATE conversations c
  LEFT JOIN (SELECT v.id, MIN(CONCAT(o.occurred_at, ' ', o.author_user_id)) r
               FROM conversations v JOIN interactions o ON o.conversation_id = v.id
              WHERE v.first_inbound_at IS NOT NULL AND o.direction = 'out'
                AND o.author_user_id IS NOT NULL AND o.occurred_at >= v.first_inbound_at
              GROUP BY v.id) a ON a.id = c.id
   SET c.first_response_at = LEFT(a.r, 26),
       c.first_responder_id = CAST(SUBSTRING_INDEX(a.r, ' ', -1) AS UNSIGNED);

-- Days of a range are ranges on created_at (with what is counted and
-- filtered: channel, the visibility rule's assignee and team, and the first
-- response), resolutions ranges on resolved_at, and the clients waiting now
-- two ranges on (status, waiting_since): each read from the index alone.
ALTER TABLE conversations
    ADD KEY ix_conversations_created (created_at, channel_id, assignee_id, team_id,
        first_inbound_at, first_response_at, first_responder_id),
    ADD KEY ix_conversations_resolved (resolved_at, status, assignee_id, team_id, created_at),
    ADD KEY ix_conversations_waiting (status, waiting_since, assignee_id, team_id);

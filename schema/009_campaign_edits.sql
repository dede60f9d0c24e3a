-- 009_campaign_edits.sql: segments and templates can be deleted once no live
-- campaign needs them (docs/campaigns.md, "Editing and deleting").
--
-- A finished or cancelled campaign keeps its recipients, its counters and its
-- own copy of the template; it no longer needs the segment or the template
-- row, so deleting one of those leaves the campaign with NULL there. The API
-- refuses (409) while a draft, scheduled, running or paused campaign uses it.
ALTER TABLE campaigns DROP FOREIGN KEY fk_campaigns_segment;
ALTER TABLE campaigns DROP FOREIGN KEY fk_campaigns_template;
ALTER TABLE campaigns
    MODIFY segment_id  BIGINT UNSIGNED NULL,
    MODIFY template_id BIGINT UNSIGNED NULL;
ALTER TABLE campaigns
    ADD CONSTRAINT fk_campaigns_segment_null FOREIGN KEY (segment_id) REFERENCES segments (id) ON DELETE SET NULL,
    ADD CONSTRAINT fk_campaigns_template_null FOREIGN KEY (template_id) REFERENCES templates (id) ON DELETE SET NULL;

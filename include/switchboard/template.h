/* Campaign templates: merge fields rendered per recipient.
 *
 * Syntax: {{client.name}}, {{client.first_name}} (the name's first word),
 * {{client.email}}, {{custom.KEY}}, {{unsubscribe_url}}, {{view_url}}; canned
 * responses (SB_TPL_CANNED) also know {{client.phone}}, {{agent.name}} and
 * {{conversation.id}} and not the campaign links. A fallback after a bar, {{client.name|there}},
 * used when the value is missing or empty. In an HTML part values are HTML-escaped unless written
 * with three braces, {{{custom.snippet}}}; subject and text parts are never escaped. An unknown
 * field or an unclosed {{ is refused when the template is saved (sb_tpl_check), so rendering itself
 * cannot fail on syntax.
 *
 * Links: after rendering an HTML part, every href="http(s)://…" is passed to
 * the caller's `link` function (campaigns rewrite it to a signed /t/c/ click
 * URL); our own unsubscribe and view URLs are left alone.
 *
 * Pure: no I/O, no globals; any thread. */
#ifndef SB_TEMPLATE_H
#define SB_TEMPLATE_H

#include <jansson.h>
#include <stddef.h>

struct sb_tpl_vars {
    const char *name, *email;
    const json_t *custom; /* the client's custom_fields object, or NULL */
    const char *unsubscribe_url, *view_url;
    /* Canned responses only (zero for campaigns). */
    const char *phone, *agent_name;
    long long conversation_id;
};

/* Which fields a template may name: campaigns know no agent or conversation,
 * a saved reply has no unsubscribe link. */
enum sb_tpl_scope { SB_TPL_CAMPAIGN, SB_TPL_CANNED };

/* Rewrite one link target (`url`, entity-decoded, NUL-terminated): a
 * malloc'd replacement, or NULL to keep it. */
typedef char *(*sb_tpl_link_fn)(const char *url, void *arg);

/* SB_ERR_INVALID with the field and position in err when `tpl` has an
 * unknown field or an unclosed tag. */
int sb_tpl_check(const char *tpl, char *err, size_t errlen);
/* The same for another scope (sb_tpl_check is SB_TPL_CAMPAIGN). */
int sb_tpl_check_scope(const char *tpl, enum sb_tpl_scope scope, char *err, size_t errlen);

/* Render `tpl`; `html` selects escaping and link rewriting (`link` may be
 * NULL). *out is malloc'd and NUL-terminated, owned by the caller. */
int sb_tpl_render(const char *tpl, int html, const struct sb_tpl_vars *v, sb_tpl_link_fn link,
                  void *arg, char **out, size_t *len_r, char *err, size_t errlen);

#endif

/* HTML to plain text, for the places that need readable text from an HTML
 * body: the text (and the preview) of an HTML-only e-mail, and the
 * text/plain alternative of an HTML campaign.
 *
 * Not an HTML parser: a single linear pass that drops <head>, <script>,
 * <style> and comments, turns block elements and <br> into line breaks and
 * list items into "- " lines, keeps a link's address after its text when it
 * differs ("Pay (https://…)"), decodes character references (named ones
 * common in mail, and every numeric one) and collapses white space as a
 * browser would. Pure; safe on any thread. */
#ifndef SB_HTMLTEXT_H
#define SB_HTMLTEXT_H

#include <stddef.h>

/* Render `n` bytes of UTF-8 HTML as text in a new malloc'd, NUL-terminated
 * string (*out, length *outlen may be NULL). SB_ERR_NOMEM is the only
 * failure. */
int sb_html_to_text(const char *html, size_t n, char **out, size_t *outlen);

#endif

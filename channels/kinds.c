/* The channel kind table (cf. curl's protocol table): one row per kind; a
 * new channel is one file in channels/ and one line here. */
#include "switchboard/channel.h"

#include <string.h>

extern const struct sb_channel_kind sb_channel_telegram;
extern const struct sb_channel_kind sb_channel_whatsapp;
extern const struct sb_channel_kind sb_channel_viber;
extern const struct sb_channel_kind sb_channel_pbx;
extern const struct sb_channel_kind sb_channel_webform;
extern const struct sb_channel_kind sb_channel_email;

const struct sb_channel_kind *const sb_channel_kinds[] = {
    &sb_channel_telegram,
    &sb_channel_whatsapp,
    &sb_channel_viber,
    &sb_channel_pbx,
    &sb_channel_webform,
    &sb_channel_email,
    NULL,
};

const struct sb_channel_kind *sb_channel_kind_find(const char *name)
{
    for (const struct sb_channel_kind *const *k = sb_channel_kinds; name && *k; k++)
        if (!strcmp((*k)->name, name))
            return *k;
    return NULL;
}

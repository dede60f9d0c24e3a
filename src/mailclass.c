/* Automatic-mail classifier (see mailclass.h). */
#include "switchboard/mailclass.h"
#include "switchboard/err.h"

#include <string.h>

const char *sb_mailclass_name(enum sb_mailclass c)
{
    switch (c) {
    case SB_MAIL_AUTO_REPLY:
        return "auto_reply";
    case SB_MAIL_BOUNCE:
        return "bounce";
    case SB_MAIL_COMPLAINT:
        return "complaint";
    default:
        return "ordinary";
    }
}

int sb_mailclass_classify(const struct sb_mailclass_input *mi, json_t *meta,
                          enum sb_mailclass *class_r)
{
    (void)mi;
    *class_r = SB_MAIL_ORDINARY;
    if (json_object_set_new(meta, "classification", json_string(sb_mailclass_name(*class_r))))
        return SB_ERR_NOMEM;
    return SB_OK;
}

/* Delivery status of our outbound messages, as providers report it. Statuses
 * arrive out of order (a "read" can overtake "delivered"), so a status only
 * moves forward: none < queued < sent < delivered < read; "failed" wins over
 * anything but "read". Each change appends an interaction.updated event. */
#ifndef SB_DELIVERY_H
#define SB_DELIVERY_H

#include "switchboard/channel.h"

#include <stddef.h>
#include <stdint.h>

struct sb_db;

const char *sb_delivery_name(enum sb_delivery d);

/* Apply one update; *changed_r says whether a stored message moved. An
 * unknown message id is not an error (it may be one we never sent). */
int sb_delivery_update(struct sb_db *db, int64_t channel_id, const struct sb_status_update *st,
                       int *changed_r, char *err, size_t errlen);

#endif

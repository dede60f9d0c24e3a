/* Who may see which live event (sb_ws_may_see): the REST visibility rule
 * for conversations, and the rules for events about no conversation. */
#include "switchboard/ws.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

static const struct sb_ws_viewer admin = {.user_id = 1, .role = SB_ROLE_ADMIN};
static const struct sb_ws_viewer anna = {
    .user_id = 2, .role = SB_ROLE_AGENT, .teams = {7, 9}, .nteams = 2};
static const struct sb_ws_viewer mark = {.user_id = 3, .role = SB_ROLE_MARKETER};

static int sees(const struct sb_ws_viewer *v, const char *type, int64_t conv, int64_t assignee,
                int64_t team, int64_t user)
{
    struct sb_ws_scope e = {.type = type,
                            .conversation_id = conv,
                            .assignee_id = assignee,
                            .team_id = team,
                            .user_id = user};
    return sb_ws_may_see(v, &e);
}

static void conversations_follow_the_rest_rule(void **state)
{
    (void)state;
    /* unassigned: every agent */
    assert_true(sees(&anna, "interaction.created", 10, 0, 0, 0));
    assert_true(sees(&anna, "interaction.created", 10, 0, 5, 0));
    /* her own, and her teams' */
    assert_true(sees(&anna, "interaction.created", 10, 2, 0, 0));
    assert_true(sees(&anna, "conversation.updated", 10, 4, 9, 0));
    /* someone else's outside her teams: no */
    assert_false(sees(&anna, "interaction.created", 10, 4, 0, 0));
    assert_false(sees(&anna, "interaction.created", 10, 4, 8, 0));
    /* admins see everything; marketers no conversations */
    assert_true(sees(&admin, "interaction.created", 10, 4, 8, 0));
    assert_false(sees(&mark, "interaction.created", 10, 0, 0, 0));
}

static void events_about_no_conversation(void **state)
{
    (void)state;
    assert_true(sees(&anna, "client.created", 0, 0, 0, 0));
    assert_true(sees(&anna, "agent.online", 0, 0, 0, 1));
    assert_false(sees(&anna, "channel.failing", 0, 0, 0, 0));
    assert_true(sees(&admin, "channel.failing", 0, 0, 0, 0));
    assert_true(sees(&mark, "campaign.updated", 0, 0, 0, 0));
    assert_true(sees(&mark, "client.updated", 0, 0, 0, 0));
    assert_false(sees(&mark, "agent.online", 0, 0, 0, 0));
    assert_false(sees(&anna, "campaign.updated", 0, 0, 0, 0));
    /* a notification is its user's alone, admins included */
    assert_true(sees(&anna, "notification.mention", 10, 4, 8, 2));
    assert_false(sees(&admin, "notification.mention", 10, 4, 8, 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(conversations_follow_the_rest_rule),
        cmocka_unit_test(events_about_no_conversation),
    };
    return cmocka_run_group_tests_name("ws", tests, NULL, NULL);
}

/* `switchboard channel add|list|test`: channel management from a shell,
 * the same operations as /api/v1/channels. */
#include "switchboard/channel_store.h"
#include "switchboard/cli.h"
#include "switchboard/config.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/secrets.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void)
{
    fprintf(stderr, "usage: switchboard channel add KIND --name N [--set key=value ...]\n"
                    "       switchboard channel list\n"
                    "       switchboard channel test ID\n"
                    "       switchboard channel webhook ID --url https://HOST/hooks/KIND/ID\n");
    return 2;
}

static int open_db(const struct sb_config *cfg, struct sb_db **db)
{
    struct sb_db_params p;
    char err[512] = "";
    int rc = sb_db_params_parse(cfg->db_url, &p, err, sizeof err);
    if (rc == SB_OK) {
        rc = sb_db_open(&p, 0, db, err, sizeof err);
        sb_db_params_free(&p);
    }
    if (rc != SB_OK) {
        sb_db_close(db);
        fprintf(stderr, "switchboard: %s\n", err);
        return 1;
    }
    return 0;
}

static void print_json(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII * 0);
    printf("%s\n", s ? s : "{}");
    free(s);
}

/* The key when one is configured; NULL otherwise (creating a channel with
 * secrets then fails with a message saying how to set one). */
static const unsigned char *secret_key(const struct sb_config *cfg, unsigned char key[32], int *bad)
{
    char err[256] = "";
    *bad = 0;
    if (!cfg->secret_key || !*cfg->secret_key)
        return NULL;
    if (sb_secret_key_parse(cfg->secret_key, key, err, sizeof err) != SB_OK) {
        fprintf(stderr, "switchboard: %s\n", err);
        *bad = 1;
        return NULL;
    }
    return key;
}

static int cmd_add(int argc, char **argv, const struct sb_config *cfg)
{
    if (argc < 2)
        return usage();
    const char *kind = argv[1], *name = NULL;
    json_t *config = json_object();
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--name") && i + 1 < argc) {
            name = argv[++i];
        } else if (!strcmp(argv[i], "--set") && i + 1 < argc) {
            const char *kv = argv[++i], *eq = strchr(kv, '=');
            if (!eq || eq == kv) {
                json_decref(config);
                fprintf(stderr, "switchboard: --set needs key=value, got '%s'\n", kv);
                return 2;
            }
            char key[128];
            snprintf(key, sizeof key, "%.*s", (int)(eq - kv), kv);
            json_object_set_new(config, key, json_string(eq + 1));
        } else {
            json_decref(config);
            fprintf(stderr, "switchboard: unknown argument '%s'\n", argv[i]);
            return usage();
        }
    }
    if (!name) {
        json_decref(config);
        return usage();
    }
    unsigned char keybuf[32];
    int bad;
    const unsigned char *key = secret_key(cfg, keybuf, &bad);
    struct sb_db *db = NULL;
    if (bad || open_db(cfg, &db)) {
        json_decref(config);
        return 1;
    }
    json_t *out;
    char err[512] = "";
    int rc = sb_channel_create(db, key, kind, name, config, &out, err, sizeof err);
    json_decref(config);
    sb_db_close(&db);
    sodium_memzero(keybuf, sizeof keybuf);
    if (rc != SB_OK) {
        fprintf(stderr, "switchboard: %s\n", err);
        return 1;
    }
    print_json(out);
    json_decref(out);
    return 0;
}

static int cmd_list(const struct sb_config *cfg)
{
    struct sb_db *db = NULL;
    if (open_db(cfg, &db))
        return 1;
    json_t *arr;
    char err[512] = "";
    int rc = sb_channel_list(db, &arr, err, sizeof err);
    sb_db_close(&db);
    if (rc != SB_OK) {
        fprintf(stderr, "switchboard: %s\n", err);
        return 1;
    }
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) print_json(v);
    json_decref(arr);
    return 0;
}

/* Load channel argv[1] with its secrets; 0 on success, else the exit code. */
static int load_channel(char **argv, const struct sb_config *cfg, struct sb_channel **ch_r)
{
    char *end;
    long long id = strtoll(argv[1], &end, 10);
    if (*end || id <= 0)
        return usage();
    unsigned char keybuf[32];
    int bad;
    const unsigned char *key = secret_key(cfg, keybuf, &bad);
    struct sb_db *db = NULL;
    if (bad || open_db(cfg, &db))
        return 1;
    char err[512] = "";
    int rc = sb_channel_load(db, key, id, NULL, ch_r, err, sizeof err);
    sb_db_close(&db);
    sodium_memzero(keybuf, sizeof keybuf);
    if (rc != SB_OK) {
        fprintf(stderr, "switchboard: channel %lld: %s\n", id, err);
        return 1;
    }
    return 0;
}

static int cmd_webhook(int argc, char **argv, const struct sb_config *cfg)
{
    if (argc != 4 || strcmp(argv[2], "--url") != 0 ||
        (strncmp(argv[3], "https://", 8) && strncmp(argv[3], "http://", 7)))
        return usage();
    struct sb_channel *ch;
    int rc = load_channel(argv, cfg, &ch);
    if (rc)
        return rc;
    if (!ch->kind->set_webhook) {
        fprintf(stderr, "switchboard: %s channels have no webhook to register\n", ch->kind->name);
        sb_channel_free(&ch);
        return 1;
    }
    char msg[512] = "";
    rc = ch->kind->set_webhook(ch, argv[3], msg, sizeof msg);
    sb_channel_free(&ch);
    if (rc != SB_OK) {
        fprintf(stderr, "switchboard: %s\n", msg);
        return 1;
    }
    printf("%s\n", msg);
    return 0;
}

static int cmd_test(int argc, char **argv, const struct sb_config *cfg)
{
    if (argc != 2)
        return usage();
    char *end;
    long long id = strtoll(argv[1], &end, 10);
    if (*end || id <= 0)
        return usage();
    unsigned char keybuf[32];
    int bad;
    const unsigned char *key = secret_key(cfg, keybuf, &bad);
    struct sb_db *db = NULL;
    if (bad || open_db(cfg, &db))
        return 1;
    struct sb_channel *ch;
    char err[512] = "";
    int rc = sb_channel_load(db, key, id, NULL, &ch, err, sizeof err);
    sb_db_close(&db);
    sodium_memzero(keybuf, sizeof keybuf);
    if (rc != SB_OK) {
        fprintf(stderr, "switchboard: channel %lld: %s\n", id, err);
        return 1;
    }
    if (!ch->kind->test) {
        printf("channel %lld (%s) has nothing to test\n", id, ch->kind->name);
        sb_channel_free(&ch);
        return 0;
    }
    char msg[512] = "";
    rc = ch->kind->test(ch, msg, sizeof msg);
    sb_channel_free(&ch);
    if (rc != SB_OK) {
        fprintf(stderr, "switchboard: channel %lld: %s\n", id, msg);
        return 1;
    }
    printf("%s\n", msg);
    return 0;
}

int sb_cli_channel(int argc, char **argv, const struct sb_config *cfg)
{
    if (argc < 1)
        return usage();
    if (!strcmp(argv[0], "add"))
        return cmd_add(argc, argv, cfg);
    if (!strcmp(argv[0], "list") && argc == 1)
        return cmd_list(cfg);
    if (!strcmp(argv[0], "test"))
        return cmd_test(argc, argv, cfg);
    if (!strcmp(argv[0], "webhook"))
        return cmd_webhook(argc, argv, cfg);
    return usage();
}

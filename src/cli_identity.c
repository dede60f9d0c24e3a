/* `switchboard identity normalize`: the identity module from the command
 * line, so that an operator can see what ingest will make of a number or an
 * address before importing thousands of them. It goes through exactly the
 * functions ingest uses (identity.h), so the answer here is the answer there.
 * No database, no configuration beyond the default region. */
#include "switchboard/cli.h"
#include "switchboard/err.h"
#include "switchboard/identity.h"

#include <ctype.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static const char usage_line[] =
    "usage: switchboard identity normalize [--region RR] "
    "(--phone VALUE | --email VALUE | --kind email|phone|telegram|whatsapp|viber|other "
    "--value VALUE)\n";

static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("switchboard: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (code == 2)
        fputs(usage_line, stderr);
    return code;
}

/* Options, each at most once; NULL when absent. */
struct opts {
    const char *region, *phone, *email, *kind, *value;
};

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct {
        const char *name;
        size_t off;
    } table[] = {
        {"--region", offsetof(struct opts, region)}, {"--phone", offsetof(struct opts, phone)},
        {"--email", offsetof(struct opts, email)},   {"--kind", offsetof(struct opts, kind)},
        {"--value", offsetof(struct opts, value)},
    };
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        size_t k = 0;
        while (k < sizeof table / sizeof table[0] && strcmp(argv[i], table[k].name))
            k++;
        if (k == sizeof table / sizeof table[0])
            return fail(2, "unknown argument '%s'", argv[i]);
        if (i + 1 >= argc)
            return fail(2, "%s needs a value", argv[i]);
        const char **slot = (const char **)((char *)o + table[k].off);
        if (*slot)
            return fail(2, "%s given twice", argv[i]);
        *slot = argv[++i];
    }
    return 0;
}

int sb_cli_identity(int argc, char **argv, const char *default_region)
{
    if (argc < 1 || strcmp(argv[0], "normalize")) {
        if (argc >= 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
            fputs(usage_line, stdout);
            return 0;
        }
        return fail(2, "unknown command 'identity %s'", argc >= 1 ? argv[0] : "");
    }
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_line, stdout);
            return 0;
        }
    struct opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc)
        return rc;

    enum sb_identity_kind kind;
    const char *value;
    int given = (o.phone != NULL) + (o.email != NULL) + (o.kind != NULL || o.value != NULL);
    if (given != 1)
        return fail(2, "give exactly one of --phone, --email or --kind with --value");
    if (o.phone) {
        kind = SB_ID_PHONE, value = o.phone;
    } else if (o.email) {
        kind = SB_ID_EMAIL, value = o.email;
    } else {
        if (!o.kind || !o.value)
            return fail(2, "--kind and --value go together");
        if (sb_identity_kind_parse(o.kind, &kind) != SB_OK)
            return fail(2,
                        "unknown identity kind '%s': use email, phone, telegram, whatsapp, viber "
                        "or other",
                        o.kind);
        value = o.value;
    }
    const char *region = o.region ? o.region : default_region;
    if (o.region && !(strlen(o.region) == 2 && isalpha((unsigned char)o.region[0]) &&
                      isalpha((unsigned char)o.region[1])))
        return fail(2, "--region takes a two-letter country code such as RU, not '%s'", o.region);

    char err[512] = "";
    if (kind == SB_ID_PHONE) {
        struct sb_phone p;
        if (sb_phone_normalize(value, region, &p, err, sizeof err) != SB_OK)
            return fail(1, "%s", err);
        printf("%s\n", p.e164);
        if (p.extension[0])
            printf("extension: %s\n", p.extension);
    } else if (kind == SB_ID_EMAIL) {
        char addr[SB_EMAIL_MAX + 1], name[8192];
        if (sb_email_normalize(value, addr, sizeof addr, name, sizeof name, err, sizeof err) !=
            SB_OK)
            return fail(1, "%s", err);
        printf("%s\n", addr);
        if (name[0])
            printf("name: %s\n", name);
    } else {
        char out[SB_EMAIL_MAX + 1];
        if (sb_identity_normalize(kind, value, region, out, sizeof out, err, sizeof err) != SB_OK)
            return fail(1, "%s", err);
        printf("%s\n", out);
    }
    return fflush(stdout) == 0 ? 0 : fail(1, "cannot write the result: standard output failed");
}

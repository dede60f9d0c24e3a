/* Every row of ../shared/fixtures/phones.tsv through sb_phone_normalize, the
 * path ingest and `switchboard identity normalize` use. The table is the
 * contract shared with the other issues, so this test reads it rather than a
 * copy; test_identity.c pins the tricky rows inline for checkouts without it.
 *
 * Each raw input is copied into a buffer of exactly strlen + 1 bytes so that
 * ASan reports a read past its end. All mismatches are printed, with their
 * line numbers, before the test fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "switchboard/err.h"
#include "switchboard/identity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The fixture holds 111 cases today; fewer means it was cut or misread. */
#define MIN_ROWS 110

static FILE *open_fixture(char *path, size_t pathlen)
{
    const char *root = getenv("SB_ROOT");
    if (root && *root) {
        snprintf(path, pathlen, "%s/../shared/fixtures/phones.tsv", root);
        FILE *f = fopen(path, "r");
        if (f)
            return f;
    }
    snprintf(path, pathlen, "../shared/fixtures/phones.tsv");
    return fopen(path, "r");
}

static char *dup_exact(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    assert_non_null(d);
    memcpy(d, s, n + 1);
    return d;
}

struct row {
    int lineno;
    char *region, *raw, *expected;
};

struct fixture {
    char path[4096];
    struct row *rows;
    int nrows, malformed;
};

static int free_rows(void **state)
{
    struct fixture *fx = *state;
    for (int i = 0; fx && i < fx->nrows; i++) {
        free(fx->rows[i].region);
        free(fx->rows[i].raw);
        free(fx->rows[i].expected);
    }
    if (fx)
        free(fx->rows);
    free(fx);
    return 0;
}

/* Read the whole table once for both tests. */
static int load_rows(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    FILE *f = open_fixture(fx->path, sizeof fx->path);
    if (!f) {
        print_error("cannot open phones.tsv (tried $SB_ROOT/../shared/fixtures and %s)\n",
                    fx->path);
        free(fx);
        return -1;
    }
    char line[1024];
    int lineno = 0, cap = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        /* region TAB raw TAB expected; raw may be empty or hold spaces. */
        char *tab1 = strchr(line, '\t');
        char *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
        if (!tab1 || !tab2 || strchr(tab2 + 1, '\t')) {
            print_error("phones.tsv:%d: not three tab-separated fields\n", lineno);
            fx->malformed++;
            continue;
        }
        *tab1 = *tab2 = '\0';
        if (fx->nrows == cap) {
            cap = cap ? cap * 2 : 128;
            struct row *r = realloc(fx->rows, (size_t)cap * sizeof *r);
            if (!r) {
                fclose(f);
                void *p = fx;
                free_rows(&p);
                return -1;
            }
            fx->rows = r;
        }
        struct row *r = &fx->rows[fx->nrows++];
        r->lineno = lineno;
        r->region = strdup(line);
        r->raw = strdup(tab1 + 1);
        r->expected = strdup(tab2 + 1);
        if (!r->region || !r->raw || !r->expected) {
            fclose(f);
            void *p = fx;
            free_rows(&p);
            return -1;
        }
    }
    fclose(f);
    *state = fx;
    return 0;
}

static void test_every_row(void **state)
{
    struct fixture *fx = *state;
    int bad = fx->malformed;
    for (int i = 0; i < fx->nrows; i++) {
        const struct row *r = &fx->rows[i];
        char *raw = dup_exact(r->raw);
        struct sb_phone p;
        char err[256] = "";
        int rc = sb_phone_normalize(raw, r->region, &p, err, sizeof err);
        const char *got = rc == SB_OK ? p.e164 : "INVALID";
        if (strcmp(got, r->expected) != 0) {
            print_error("phones.tsv:%d: %s \"%s\": expected %s, got %s%s%s\n", r->lineno, r->region,
                        raw, r->expected, got, rc == SB_OK ? "" : " — ", rc == SB_OK ? "" : err);
            bad++;
        } else if (rc != SB_OK && (rc != SB_ERR_INVALID || !err[0])) {
            /* An invalid number is SB_ERR_INVALID with a message for a person. */
            print_error("phones.tsv:%d: %s \"%s\": rc %d, message '%s'\n", r->lineno, r->region,
                        raw, rc, err);
            bad++;
        }
        free(raw);
    }
    print_message("phones.tsv: %d rows, %d mismatched (%s)\n", fx->nrows, bad, fx->path);
    assert_int_equal(bad, 0);
}

static void test_row_count(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(fx->malformed, 0);
    assert_true(fx->nrows >= MIN_ROWS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_row),
        cmocka_unit_test(test_row_count),
    };
    return cmocka_run_group_tests_name("phones", tests, load_rows, free_rows);
}

/* static.h: URL path to file under a temporary web root, content types,
 * cache policy and ETags. The tree is built by the group setup and removed
 * by the group teardown. URL paths and file names are copied into
 * exact-size buffers so ASan reports a read past their NUL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "switchboard/err.h"
#include "switchboard/static.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[] = "/tmp/sb-static-XXXXXX";

static char *dup_exact(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    assert_non_null(d);
    memcpy(d, s, n + 1);
    return d;
}

static int put(const char *rel, const char *text)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static int mkdir_in(const char *rel)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    return mkdir(path, 0755);
}

static int group_setup(void **state)
{
    (void)state;
    if (!mkdtemp(root))
        return -1;
    if (mkdir_in("assets") || mkdir_in("sub") || mkdir_in("empty") || mkdir_in("v1.2") ||
        mkdir_in("sub/deeper"))
        return -1;
    if (put("index.html", "<!doctype html><title>root</title>\n") ||
        put("assets/app.js", "console.log(1);\n") || put("assets/style.css", "body{}\n") ||
        put("assets/LOGO.PNG", "\x89PNG") || put("sub/index.html", "<p>sub</p>\n") ||
        put("sub/deeper/page.htm", "<p>deeper</p>\n") || put(".hidden", "secret\n") ||
        put("LICENSE", "MIT\n") || put("v1.2/index.html", "<p>v</p>\n") ||
        put("data.tar.gz", "gz") || put("file.", "dot"))
        return -1;
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int group_teardown(void **state)
{
    (void)state;
    return nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char immutable[] = "public, max-age=31536000, immutable";

static const struct resolve_case {
    const char *url;
    int rc;
    const char *file; /* relative to the root */
    const char *type;
    const char *cache;
} cases[] = {
    {"/", SB_OK, "index.html", "text/html; charset=utf-8", "no-cache"},
    {"/index.html", SB_OK, "index.html", "text/html; charset=utf-8", "no-cache"},
    {"/sub", SB_OK, "sub/index.html", "text/html; charset=utf-8", "no-cache"},
    {"/sub/", SB_OK, "sub/index.html", "text/html; charset=utf-8", "no-cache"},
    {"/sub/index.html", SB_OK, "sub/index.html", "text/html; charset=utf-8", "no-cache"},
    {"/sub/deeper/page.htm", SB_OK, "sub/deeper/page.htm", "text/html; charset=utf-8", "no-cache"},
    {"/v1.2/", SB_OK, "v1.2/index.html", "text/html; charset=utf-8", "no-cache"},
    {"/assets/app.js", SB_OK, "assets/app.js", "text/javascript; charset=utf-8", immutable},
    {"/assets/style.css", SB_OK, "assets/style.css", "text/css; charset=utf-8", immutable},
    {"/assets/LOGO.PNG", SB_OK, "assets/LOGO.PNG", "image/png", immutable},
    {"/LICENSE", SB_OK, "LICENSE", "application/octet-stream", "no-cache"},
    {"/data.tar.gz", SB_OK, "data.tar.gz", "application/octet-stream", "no-cache"},
    {"/file.", SB_OK, "file.", "application/octet-stream", "no-cache"},
    /* Outside the root, hidden, or otherwise refused. */
    {"/../etc/passwd", SB_ERR_NOT_FOUND, NULL, NULL, NULL},
    {"/..", SB_ERR_NOT_FOUND, NULL, NULL, NULL},
    {"/sub/..", SB_ERR_NOT_FOUND, NULL, NULL, NULL},
    {"/sub/../index.html", SB_ERR_NOT_FOUND, NULL, NULL, NULL},
    {"/assets/../index.html", SB_ERR_NOT_FOUND, NULL, NULL, NULL},
    {"/assets/../../etc/passwd", SB_ERR_NOT_FOUND, NULL, NULL, NULL},
    {"/.hidden", SB_ERR_NOT_FOUND, NULL, NULL, NULL},
    {"/./index.html", SB_ERR_NOT_FOUND, NULL, NULL, NULL},
    {"/sub/.", SB_ERR_NOT_FOUND, NULL, NULL, NULL},
    {"/.", SB_ERR_NOT_FOUND, NULL, NULL, NULL},
    {"/assets\\app.js", SB_ERR_NOT_FOUND, NULL, NULL, NULL},
    {"/..\\..\\etc\\passwd", SB_ERR_NOT_FOUND, NULL, NULL, NULL},
    {"\\index.html", SB_ERR_NOT_FOUND, NULL, NULL, NULL},
    {"index.html", SB_ERR_NOT_FOUND, NULL, NULL, NULL}, /* no leading '/' */
    {"", SB_ERR_NOT_FOUND, NULL, NULL, NULL},
    {"//etc/passwd", SB_ERR_NOT_FOUND, NULL, NULL, NULL},
    /* Missing. */
    {"/missing.html", SB_ERR_NOT_FOUND, NULL, NULL, NULL},
    {"/assets/missing.js", SB_ERR_NOT_FOUND, NULL, NULL, NULL},
    {"/index.html/", SB_ERR_NOT_FOUND, NULL, NULL, NULL},
    {"/index.html/x", SB_ERR_NOT_FOUND, NULL, NULL, NULL},
    {"/Index.html", SB_ERR_NOT_FOUND, NULL, NULL, NULL},
    /* Directories without an index.html. */
    {"/empty", SB_ERR_NOT_FOUND, NULL, NULL, NULL},
    {"/empty/", SB_ERR_NOT_FOUND, NULL, NULL, NULL},
    {"/assets", SB_ERR_NOT_FOUND, NULL, NULL, NULL},
    {"/assets/", SB_ERR_NOT_FOUND, NULL, NULL, NULL},
    {"/sub/deeper", SB_ERR_NOT_FOUND, NULL, NULL, NULL},
};

static void test_resolve_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct resolve_case *c = &cases[i];
        char *url = dup_exact(c->url);
        struct sb_static_file f;
        memset(&f, 0x5a, sizeof f);
        int rc = sb_static_resolve(root, url, &f);
        if (rc != c->rc)
            fail_msg("'%s': rc %d, expected %d", c->url, rc, c->rc);
        if (rc == SB_OK) {
            char want[PATH_MAX];
            snprintf(want, sizeof want, "%s/%s", root, c->file);
            struct stat st;
            assert_int_equal(stat(want, &st), 0);
            /* The same file, whichever spelling of the path is used. */
            struct stat got;
            if (stat(f.path, &got) != 0 || got.st_ino != st.st_ino)
                fail_msg("'%s' resolved to %s, expected %s", c->url, f.path, want);
            assert_string_equal(f.content_type, c->type);
            assert_string_equal(f.cache_control, c->cache);
            assert_int_equal(f.size, st.st_size);
            assert_true(strlen(f.etag) > 2);
            assert_int_equal(f.etag[0], '"');
            assert_int_equal(f.etag[strlen(f.etag) - 1], '"');
        }
        free(url);
    }
}

/* A path long enough to overflow PATH_MAX once joined to the root. */
static void test_resolve_long_path(void **state)
{
    (void)state;
    size_t n = PATH_MAX + 100;
    char *url = malloc(n + 1);
    assert_non_null(url);
    url[0] = '/';
    memset(url + 1, 'a', n - 1);
    url[n] = '\0';
    struct sb_static_file f;
    assert_int_equal(sb_static_resolve(root, url, &f), SB_ERR_NOT_FOUND);
    /* Exactly at the limit: root + url of PATH_MAX - 1 bytes in all. */
    size_t rl = strlen(root);
    url[PATH_MAX - 1 - rl] = '\0';
    assert_int_equal(sb_static_resolve(root, url, &f), SB_ERR_NOT_FOUND);
    free(url);
}

/* The ETag names a version of the file: stable while the file is, changed
 * by a new mtime or new content. */
static void test_etag_changes(void **state)
{
    (void)state;
    assert_int_equal(put("etag.txt", "version one\n"), 0);
    struct sb_static_file f1, f2;
    assert_int_equal(sb_static_resolve(root, "/etag.txt", &f1), SB_OK);
    assert_string_equal(f1.content_type, "text/plain; charset=utf-8");
    assert_int_equal(sb_static_resolve(root, "/etag.txt", &f2), SB_OK);
    assert_string_equal(f1.etag, f2.etag);

    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/etag.txt", root);
    /* Same content and size, another mtime. */
    struct timespec ts[2] = {{1600000000, 0}, {1600000000, 0}};
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
    assert_int_equal(sb_static_resolve(root, "/etag.txt", &f2), SB_OK);
    assert_string_not_equal(f1.etag, f2.etag);
    /* Only the nanoseconds differ. */
    struct sb_static_file f3;
    ts[1].tv_nsec = 500;
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
    assert_int_equal(sb_static_resolve(root, "/etag.txt", &f3), SB_OK);
    assert_string_not_equal(f2.etag, f3.etag);
    /* New content of another size with the mtime set back as it was. */
    assert_int_equal(put("etag.txt", "version two, longer\n"), 0);
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
    struct sb_static_file f4;
    assert_int_equal(sb_static_resolve(root, "/etag.txt", &f4), SB_OK);
    assert_string_not_equal(f3.etag, f4.etag);
    assert_int_equal(f4.size, strlen("version two, longer\n"));
    /* Two different files have different tags. */
    assert_int_equal(sb_static_resolve(root, "/LICENSE", &f2), SB_OK);
    assert_int_equal(sb_static_resolve(root, "/index.html", &f3), SB_OK);
    assert_string_not_equal(f2.etag, f3.etag);
    unlink(path);
    assert_int_equal(sb_static_resolve(root, "/etag.txt", &f1), SB_ERR_NOT_FOUND);
}

/* A web root that does not exist serves nothing. */
static void test_missing_root(void **state)
{
    (void)state;
    struct sb_static_file f;
    assert_int_equal(sb_static_resolve("/tmp/sb-static-no-such-root", "/", &f), SB_ERR_NOT_FOUND);
    assert_int_equal(sb_static_resolve("/tmp/sb-static-no-such-root", "/index.html", &f),
                     SB_ERR_NOT_FOUND);
}

static const struct {
    const char *path;
    const char *type;
} types[] = {
    {"index.html", "text/html; charset=utf-8"},
    {"INDEX.HTML", "text/html; charset=utf-8"},
    {"page.htm", "text/html; charset=utf-8"},
    {"app.js", "text/javascript; charset=utf-8"},
    {"APP.JS", "text/javascript; charset=utf-8"},
    {"app.Js", "text/javascript; charset=utf-8"},
    {"mod.mjs", "text/javascript; charset=utf-8"},
    {"s.css", "text/css; charset=utf-8"},
    {"d.json", "application/json"},
    {"app.js.map", "application/json"},
    {"site.webmanifest", "application/manifest+json"},
    {"robots.txt", "text/plain; charset=utf-8"},
    {"i.svg", "image/svg+xml"},
    {"i.png", "image/png"},
    {"i.jpg", "image/jpeg"},
    {"i.JPEG", "image/jpeg"},
    {"i.gif", "image/gif"},
    {"i.webp", "image/webp"},
    {"favicon.ico", "image/x-icon"},
    {"f.woff", "font/woff"},
    {"f.woff2", "font/woff2"},
    {"m.wasm", "application/wasm"},
    {"/srv/web/assets/app-3f2a.js", "text/javascript; charset=utf-8"},
    /* Unknown or no extension. */
    {"LICENSE", "application/octet-stream"},
    {"a.exe", "application/octet-stream"},
    {"a.tar.gz", "application/octet-stream"},
    {"a.js.bak", "application/octet-stream"},
    {"a.jss", "application/octet-stream"},
    {"a.j", "application/octet-stream"},
    {"a.", "application/octet-stream"},
    {"", "application/octet-stream"},
    {"/", "application/octet-stream"},
    /* A dot in a directory name is not an extension. */
    {"/srv/v1.html/README", "application/octet-stream"},
    {"dir.js/file", "application/octet-stream"},
};

static void test_content_types(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        char *p = dup_exact(types[i].path);
        const char *t = sb_static_content_type(p);
        assert_non_null(t);
        if (strcmp(t, types[i].type) != 0)
            fail_msg("'%s': '%s', expected '%s'", types[i].path, t, types[i].type);
        free(p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolve_table), cmocka_unit_test(test_resolve_long_path),
        cmocka_unit_test(test_etag_changes),  cmocka_unit_test(test_missing_root),
        cmocka_unit_test(test_content_types),
    };
    return cmocka_run_group_tests_name("static", tests, group_setup, group_teardown);
}

/* Static file resolution (see static.h).
 *
 * Caching: files under /assets/ carry a content hash in their names (the
 * front-end build puts it there), so browsers keep them for a year;
 * everything else, index.html above all, is revalidated on every use with
 * its ETag, so a new release shows up on the next reload. */
#include "switchboard/static.h"
#include "switchboard/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static const struct {
    const char *ext;
    const char *type;
} mime_types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"webmanifest", "application/manifest+json"},
    {"txt", "text/plain; charset=utf-8"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"ico", "image/x-icon"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"wasm", "application/wasm"},
};

const char *sb_static_content_type(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (dot)
        for (size_t i = 0; i < sizeof mime_types / sizeof mime_types[0]; i++)
            if (!strcasecmp(dot + 1, mime_types[i].ext))
                return mime_types[i].type;
    return "application/octet-stream";
}

/* Refuse dot segments ("..", ".git", ".env") and backslashes outright rather
 * than normalising them: no legitimate asset needs them. */
static int path_is_safe(const char *p)
{
    if (p[0] != '/' || strchr(p, '\\'))
        return 0;
    for (const char *s = p; (s = strchr(s, '/')); s++)
        if (s[1] == '.')
            return 0;
    return 1;
}

int sb_static_resolve(const char *web_root, const char *url_path, struct sb_static_file *f)
{
    memset(f, 0, sizeof *f);
    if (!path_is_safe(url_path))
        return SB_ERR_NOT_FOUND;
    struct stat st;
    int n = snprintf(f->path, sizeof f->path, "%s%s", web_root, url_path);
    if (n < 0 || (size_t)n >= sizeof f->path)
        return SB_ERR_NOT_FOUND;
    if (stat(f->path, &st) == 0 && S_ISDIR(st.st_mode)) {
        const char *sep = url_path[strlen(url_path) - 1] == '/' ? "" : "/";
        n = snprintf(f->path, sizeof f->path, "%s%s%sindex.html", web_root, url_path, sep);
        if (n < 0 || (size_t)n >= sizeof f->path || stat(f->path, &st) != 0)
            return SB_ERR_NOT_FOUND;
    } else if (stat(f->path, &st) != 0) {
        return SB_ERR_NOT_FOUND;
    }
    if (!S_ISREG(st.st_mode))
        return SB_ERR_NOT_FOUND;
    /* A symlink inside the web root must not lead outside it. */
    char real_root[PATH_MAX], real_file[PATH_MAX];
    if (!realpath(web_root, real_root) || !realpath(f->path, real_file))
        return SB_ERR_NOT_FOUND;
    size_t rl = strlen(real_root);
    if (strncmp(real_file, real_root, rl) != 0 || real_file[rl] != '/')
        return SB_ERR_NOT_FOUND;
    f->content_type = sb_static_content_type(f->path);
    f->cache_control =
        !strncmp(url_path, "/assets/", 8) ? "public, max-age=31536000, immutable" : "no-cache";
    f->size = (long long)st.st_size;
    snprintf(f->etag, sizeof f->etag, "\"%llx-%llx-%lx\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec, (unsigned long)st.st_mtim.tv_nsec);
    return SB_OK;
}

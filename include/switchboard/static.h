/* Static files of the web view: which file a URL path means, its content
 * type, its validator and how long browsers may cache it. Serving the bytes
 * is the server's job (lws_serve_http_file); this module only decides. */
#ifndef SB_STATIC_H
#define SB_STATIC_H

#include <limits.h>
#include <stddef.h>

struct sb_static_file {
    char path[PATH_MAX];
    const char *content_type;
    const char *cache_control;
    char etag[64];
    long long size;
};

/* Map `url_path` under `web_root` to a regular file. SB_ERR_NOT_FOUND for
 * anything missing, hidden (a segment starting with '.') or outside the
 * root; "/" and directories map to their index.html. */
int sb_static_resolve(const char *web_root, const char *url_path, struct sb_static_file *f);

const char *sb_static_content_type(const char *path);

#endif

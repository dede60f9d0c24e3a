/* The send journal (send_journal.h).
 *
 * DESIGN
 *   A journal is a list of files, newest first; only the newest takes new
 *   lines. Each file counts its H entries not yet settled; a file that is
 *   not the newest and has none left is unlinked at once. Every append is
 *   one write(2) of one line on an O_APPEND descriptor, under j->lock (the
 *   count and the rotation need it anyway; a line is ~60 bytes, the write a
 *   couple of microseconds).
 *
 *   Recovery lists DIR, and for each send-journal.* (and each hidden
 *   temporary file left by a crash during creation) tries flock(LOCK_EX |
 *   LOCK_NB) on a fresh descriptor. flock locks belong to the open file
 *   description, so a file held by a live process — this one included —
 *   refuses, and is skipped. */
#include "switchboard/send_journal.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PREFIX       "send-journal."
#define TMP_PFX      ".send-journal."
#define MAGIC        "switchboard-send-journal 1 "
#define LINE_MAX_LEN 128

struct jfile {
    unsigned seq;
    int fd;
    size_t bytes;
    unsigned long long open_entries; /* H lines not yet settled */
    char path[PATH_MAX];
    struct jfile *next;
};

#define DIR_MAX (PATH_MAX - 64) /* room for the file names */

struct sb_journal {
    pthread_mutex_t lock;
    char dir[DIR_MAX];
    char tag[SB_JOURNAL_TAG_MAX];
    size_t rotate;
    unsigned next_seq;
    struct jfile *files; /* newest first */
    unsigned long long entries;
};

void sb_journal_tag(const struct sb_db_params *p, char *out, size_t outlen)
{
    if (p->socket && *p->socket)
        snprintf(out, outlen, "mariadb://localhost/%s?socket=%s", p->database ? p->database : "",
                 p->socket);
    else
        snprintf(out, outlen, "mariadb://%s:%u/%s", p->host ? p->host : "localhost",
                 p->port ? p->port : 3306, p->database ? p->database : "");
    /* The header is one line. */
    for (char *c = out; *c; c++)
        if ((unsigned char)*c < 0x20)
            *c = '?';
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int mkdirs(const char *dir)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return -1;
    for (char *s = path + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return -1;
        *s = '/';
    }
    return mkdir(path, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

/* A new locked file with its header, under its real name. */
static int file_new(struct sb_journal *j, struct jfile **f_r, char *err, size_t errlen)
{
    *f_r = NULL;
    struct jfile *f = calloc(1, sizeof *f);
    if (!f)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    char tmp[PATH_MAX];
    for (int tries = 0; tries < 1000; tries++) {
        unsigned seq = ++j->next_seq;
        snprintf(tmp, sizeof tmp, "%s/" TMP_PFX "%ld.%u", j->dir, (long)getpid(), seq);
        snprintf(f->path, sizeof f->path, "%s/" PREFIX "%ld.%u", j->dir, (long)getpid(), seq);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0 && errno == EEXIST)
            continue; /* a dead process with our pid left it: recovery's */
        if (fd < 0)
            break;
        char head[sizeof MAGIC + SB_JOURNAL_TAG_MAX + 2];
        int hn = snprintf(head, sizeof head, MAGIC "%s\n", j->tag);
        /* Locked before it has its real name: recovery never sees it unlocked. */
        if (flock(fd, LOCK_EX | LOCK_NB) != 0 || write_all(fd, head, (size_t)hn) != 0) {
            int e = errno;
            unlink(tmp);
            close(fd);
            free(f);
            return sb_fail(err, errlen, SB_ERR_IO, "%s: %s", tmp, strerror(e));
        }
        if (link(tmp, f->path) != 0) {
            int e = errno;
            unlink(tmp);
            close(fd);
            if (e == EEXIST)
                continue;
            free(f);
            return sb_fail(err, errlen, SB_ERR_IO, "%s: %s", f->path, strerror(e));
        }
        unlink(tmp);
        f->fd = fd;
        f->seq = seq;
        f->bytes = (size_t)hn;
        *f_r = f;
        return SB_OK;
    }
    int e = errno;
    free(f);
    return sb_fail(err, errlen, SB_ERR_IO, "%s: %s", tmp, strerror(e));
}

static void file_drop(struct jfile *f, int remove)
{
    if (remove && unlink(f->path) != 0 && errno != ENOENT)
        sb_warn("campaigns", "send journal %s: cannot remove: %s", f->path, strerror(errno));
    close(f->fd);
    free(f);
}

int sb_journal_open(const char *dir, const char *tag, size_t rotate_bytes, struct sb_journal **j_r,
                    char *err, size_t errlen)
{
    *j_r = NULL;
    if (!dir || !*dir)
        return sb_fail(err, errlen, SB_ERR_CONFIG, "no journal directory");
    if (strlen(dir) >= DIR_MAX)
        return sb_fail(err, errlen, SB_ERR_CONFIG, "journal directory name too long");
    if (mkdirs(dir) != 0)
        return sb_fail(err, errlen, SB_ERR_IO, "%s: %s", dir, strerror(errno));
    struct sb_journal *j = calloc(1, sizeof *j);
    if (!j)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&j->lock, NULL);
    snprintf(j->dir, sizeof j->dir, "%s", dir);
    snprintf(j->tag, sizeof j->tag, "%s", tag ? tag : "");
    j->rotate = rotate_bytes ? rotate_bytes : SB_JOURNAL_ROTATE_BYTES;
    int rc = file_new(j, &j->files, err, errlen);
    if (rc != SB_OK) {
        pthread_mutex_destroy(&j->lock);
        free(j);
        return rc;
    }
    *j_r = j;
    return SB_OK;
}

static int line(char *buf, size_t len, char kind, int64_t cid, int64_t rid,
                const unsigned char *token)
{
    int n = snprintf(buf, len, "%c %" PRId64 " %" PRId64 " ", kind, cid, rid);
    for (int i = 0; i < SB_JOURNAL_TOKEN_LEN; i++)
        n += snprintf(buf + n, len - (size_t)n, "%02x", token[i]);
    n += snprintf(buf + n, len - (size_t)n, "\n");
    return n;
}

int sb_journal_handed(struct sb_journal *j, int64_t campaign_id, int64_t recipient_id,
                      const unsigned char *token, unsigned *file_r, char *err, size_t errlen)
{
    *file_r = 0;
    char buf[LINE_MAX_LEN];
    int n = line(buf, sizeof buf, 'H', campaign_id, recipient_id, token);
    int rc = SB_OK;
    pthread_mutex_lock(&j->lock);
    struct jfile *cur = j->files;
    if (cur->bytes >= j->rotate) {
        struct jfile *f;
        /* A file that cannot be created keeps us on the current one. */
        if (file_new(j, &f, err, errlen) == SB_OK) {
            f->next = j->files;
            j->files = f;
            if (!cur->open_entries) {
                f->next = cur->next;
                file_drop(cur, 1);
            }
            cur = f;
        } else {
            sb_warn("campaigns", "send journal: cannot start a new file: %s", err);
            err[0] = '\0';
        }
    }
    if (write_all(cur->fd, buf, (size_t)n) != 0) {
        rc = sb_fail(err, errlen, SB_ERR_IO, "%s: %s", cur->path, strerror(errno));
    } else {
        cur->bytes += (size_t)n;
        cur->open_entries++;
        j->entries++;
        *file_r = cur->seq;
    }
    pthread_mutex_unlock(&j->lock);
    return rc;
}

int sb_journal_refused(struct sb_journal *j, unsigned file, int64_t campaign_id,
                       int64_t recipient_id, const unsigned char *token, char *err, size_t errlen)
{
    char buf[LINE_MAX_LEN];
    int n = line(buf, sizeof buf, 'N', campaign_id, recipient_id, token);
    int rc = SB_OK;
    pthread_mutex_lock(&j->lock);
    struct jfile *f = j->files;
    while (f && f->seq != file)
        f = f->next;
    if (!f)
        rc = sb_fail(err, errlen, SB_ERR_INTERNAL, "send journal: no file %u", file);
    else if (write_all(f->fd, buf, (size_t)n) != 0)
        rc = sb_fail(err, errlen, SB_ERR_IO, "%s: %s", f->path, strerror(errno));
    else
        f->bytes += (size_t)n;
    pthread_mutex_unlock(&j->lock);
    return rc;
}

void sb_journal_settled(struct sb_journal *j, unsigned file)
{
    if (!j || !file)
        return;
    pthread_mutex_lock(&j->lock);
    for (struct jfile **p = &j->files; *p; p = &(*p)->next) {
        struct jfile *f = *p;
        if (f->seq != file)
            continue;
        if (f->open_entries)
            f->open_entries--;
        if (!f->open_entries && f != j->files) {
            *p = f->next;
            file_drop(f, 1);
        }
        break;
    }
    pthread_mutex_unlock(&j->lock);
}

void sb_journal_stats(struct sb_journal *j, struct sb_journal_stats *st)
{
    memset(st, 0, sizeof *st);
    pthread_mutex_lock(&j->lock);
    for (struct jfile *f = j->files; f; f = f->next) {
        st->files++;
        st->unsettled += f->open_entries;
    }
    st->entries = j->entries;
    pthread_mutex_unlock(&j->lock);
}

void sb_journal_close(struct sb_journal **jp)
{
    struct sb_journal *j = *jp;
    if (!j)
        return;
    while (j->files) {
        struct jfile *f = j->files;
        j->files = f->next;
        if (f->open_entries)
            sb_warn("campaigns", "send journal %s kept: %llu results not recorded", f->path,
                    f->open_entries);
        file_drop(f, !f->open_entries);
    }
    pthread_mutex_destroy(&j->lock);
    free(j);
    *jp = NULL;
}

/* -- Recovery -------------------------------------------------------------- */

static int parse_line(const char *s, size_t n, char *kind, struct sb_journal_entry *e)
{
    char buf[LINE_MAX_LEN], hex[2 * SB_JOURNAL_TOKEN_LEN + 2];
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    long long cid, rid;
    int used = 0;
    if (sscanf(buf, "%c %lld %lld %33s%n", kind, &cid, &rid, hex, &used) != 4 ||
        (size_t)used != n || (*kind != 'H' && *kind != 'N') || cid <= 0 || rid <= 0 ||
        strlen(hex) != 2 * SB_JOURNAL_TOKEN_LEN)
        return -1;
    for (int i = 0; i < SB_JOURNAL_TOKEN_LEN; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1 || !strchr("0123456789abcdef", hex[2 * i]) ||
            !strchr("0123456789abcdef", hex[2 * i + 1]))
            return -1;
        e->token[i] = (unsigned char)v;
    }
    e->campaign_id = cid;
    e->recipient_id = rid;
    return 0;
}

static int same(const struct sb_journal_entry *a, const struct sb_journal_entry *b)
{
    return a->campaign_id == b->campaign_id && a->recipient_id == b->recipient_id &&
           !memcmp(a->token, b->token, sizeof a->token);
}

struct elist {
    struct sb_journal_entry *v;
    size_t n, cap;
};

static int elist_add(struct elist *l, const struct sb_journal_entry *e)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct sb_journal_entry *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *e;
    return 0;
}

static int cmp_entry(const void *a, const void *b)
{
    const struct sb_journal_entry *x = a, *y = b;
    if (x->campaign_id != y->campaign_id)
        return x->campaign_id < y->campaign_id ? -1 : 1;
    if (x->recipient_id != y->recipient_id)
        return x->recipient_id < y->recipient_id ? -1 : 1;
    return memcmp(x->token, y->token, sizeof x->token);
}

/* Read one locked file: its entries into h and n; *ours = 0 for another
 * tag; returns the number of malformed lines. */
static size_t read_file(int fd, const char *tag, struct elist *h, struct elist *no, int *ours,
                        int *nomem)
{
    *ours = 0;
    struct stat st;
    if (fstat(fd, &st) != 0)
        return 1;
    if (st.st_size > SB_JOURNAL_READ_MAX)
        return 1;
    size_t len = (size_t)st.st_size;
    char *buf = malloc(len + 1);
    if (!buf) {
        *nomem = 1;
        return 0;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, buf + got, len - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    buf[got] = '\0';
    size_t bad = 0;
    const char *p = buf, *end = buf + got;
    const char *eol = memchr(p, '\n', got);
    size_t ml = strlen(MAGIC), tl = strlen(tag);
    /* A file gets its real name only after its header is written: no
     * header is not ours to touch; another database's is not ours to
     * read — but a dead one with nothing after its header (a server
     * killed before it sent anything: tests do that a lot) holds nothing
     * for anyone, and goes, so such files do not pile up. */
    if (!eol || memcmp(p, MAGIC, (size_t)(eol - p) < ml ? (size_t)(eol - p) : ml) ||
        (size_t)(eol - p) < ml) {
        free(buf);
        return 0;
    }
    if ((size_t)(eol - p) != ml + tl || memcmp(p + ml, tag, tl)) {
        *ours = eol + 1 == end;
        free(buf);
        return 0;
    }
    *ours = 1;
    for (p = eol + 1; p < end; p = eol + 1) {
        eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            break; /* the torn last line: its write never completed */
        char kind;
        struct sb_journal_entry e;
        memset(&e, 0, sizeof e);
        if (parse_line(p, (size_t)(eol - p), &kind, &e) != 0) {
            bad++;
            continue;
        }
        if (elist_add(kind == 'H' ? h : no, &e) != 0)
            *nomem = 1;
    }
    free(buf);
    return bad;
}

static int is_journal_name(const char *name)
{
    return !strncmp(name, PREFIX, strlen(PREFIX)) || !strncmp(name, TMP_PFX, strlen(TMP_PFX));
}

int sb_journal_recover(const char *dir, const char *tag, struct sb_journal_recovered *r, char *err,
                       size_t errlen)
{
    memset(r, 0, sizeof *r);
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return SB_OK;
        return sb_fail(err, errlen, SB_ERR_IO, "%s: %s", dir, strerror(errno));
    }
    struct elist h = {0}, no = {0};
    size_t cap = 0;
    int nomem = 0, rc = SB_OK;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!is_journal_name(de->d_name))
            continue;
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path)
            continue;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue; /* gone meanwhile: another process recovered it */
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            r->busy += de->d_name[0] != '.';
            close(fd);
            continue;
        }
        /* Unlinked while we waited for the lock: somebody recovered it. */
        struct stat a, b;
        if (fstat(fd, &a) != 0 || stat(path, &b) != 0 || a.st_ino != b.st_ino) {
            close(fd);
            continue;
        }
        /* A temporary file never had its real name, so no entry was ever
         * written to it: debris of a crash during creation, whoever's —
         * once it is old enough not to be one being created right now
         * (created, not yet locked). */
        int ours = de->d_name[0] == '.';
        if (ours && a.st_mtime > time(NULL) - 10) {
            close(fd);
            continue;
        }
        size_t bad = ours ? 0 : read_file(fd, tag, &h, &no, &ours, &nomem);
        if (!ours) {
            r->other++;
            close(fd);
            continue;
        }
        if (r->files == cap) {
            cap = cap ? cap * 2 : 8;
            int *fds = realloc(r->fds, cap * sizeof *fds);
            int *badv = fds ? realloc(r->bad, cap * sizeof *badv) : NULL;
            char **paths = badv ? realloc(r->paths, cap * sizeof *paths) : NULL;
            if (fds)
                r->fds = fds;
            if (badv)
                r->bad = badv;
            if (paths)
                r->paths = paths;
            if (!paths) {
                close(fd);
                nomem = 1;
                break;
            }
        }
        r->paths[r->files] = strdup(path);
        if (!r->paths[r->files]) {
            close(fd);
            nomem = 1;
            break;
        }
        r->fds[r->files] = fd;
        r->bad[r->files] = bad > 0;
        r->files++;
        r->damaged += bad;
    }
    closedir(d);
    if (nomem)
        rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory reading the send journal");
    /* H entries, each once, without those an N line withdrew. */
    if (rc == SB_OK && h.n) {
        qsort(h.v, h.n, sizeof *h.v, cmp_entry);
        if (no.n)
            qsort(no.v, no.n, sizeof *no.v, cmp_entry);
        size_t w = 0;
        for (size_t i = 0; i < h.n; i++) {
            if (w && same(&h.v[w - 1], &h.v[i]))
                continue;
            if (no.n && bsearch(&h.v[i], no.v, no.n, sizeof *no.v, cmp_entry))
                continue;
            h.v[w++] = h.v[i];
        }
        h.n = w;
    }
    free(no.v);
    if (rc != SB_OK) {
        free(h.v);
        sb_journal_recover_finish(r, 0);
        return rc;
    }
    r->entries = h.v;
    r->nentries = h.n;
    return SB_OK;
}

void sb_journal_recover_finish(struct sb_journal_recovered *r, int applied)
{
    for (size_t i = 0; i < r->files; i++) {
        if (applied && r->bad[i]) {
            /* Quarantined, not deleted: someone may want to read it. */
            char to[PATH_MAX + 16];
            const char *slash = strrchr(r->paths[i], '/');
            size_t dl = slash ? (size_t)(slash - r->paths[i]) + 1 : 0;
            snprintf(to, sizeof to, "%.*sdamaged-%s", (int)dl, r->paths[i],
                     r->paths[i] + dl + (r->paths[i][dl] == '.'));
            if (rename(r->paths[i], to) == 0)
                sb_warn("campaigns", "send journal with malformed lines kept as %s", to);
        } else if (applied && unlink(r->paths[i]) != 0 && errno != ENOENT) {
            sb_warn("campaigns", "send journal %s: cannot remove: %s", r->paths[i],
                    strerror(errno));
        }
        close(r->fds[i]);
        free(r->paths[i]);
    }
    free(r->fds);
    free(r->paths);
    free(r->bad);
    free(r->entries);
    memset(r, 0, sizeof *r);
}

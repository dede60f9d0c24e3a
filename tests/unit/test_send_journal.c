/* send_journal.h: append, read back, withdrawn entries, rotation and removal
 * of settled files, locks of live owners, other databases' files, torn and
 * malformed lines, debris of a crash during creation, and a writer killed
 * with SIGKILL. Each case works in its own scratch directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/send_journal.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

#define TAG "mariadb://127.0.0.1:3306/switchboard"

static char dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/sb-test-journal-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (e->d_name[0] != '.' || (e->d_name[1] && e->d_name[1] != '.'))
            unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(dir);
    return 0;
}

/* Files in dir whose name starts with prefix. */
static int files(const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += !strncmp(e->d_name, prefix, strlen(prefix));
    closedir(d);
    return n;
}

static void token(unsigned char *t, int v)
{
    memset(t, v, SB_JOURNAL_TOKEN_LEN);
}

static unsigned hand(struct sb_journal *j, int64_t cid, int64_t rid, int tok)
{
    unsigned char t[SB_JOURNAL_TOKEN_LEN];
    token(t, tok);
    unsigned f = 0;
    char err[256] = "";
    assert_int_equal(sb_journal_handed(j, cid, rid, t, &f, err, sizeof err), SB_OK);
    assert_true(f > 0);
    return f;
}

static void put(const char *name, const char *text)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void recover(struct sb_journal_recovered *r)
{
    char err[256] = "";
    assert_int_equal(sb_journal_recover(dir, TAG, r, err, sizeof err), SB_OK);
}

static void test_append_and_read_back(void **state)
{
    (void)state;
    struct sb_journal *j;
    char err[256] = "";
    assert_int_equal(sb_journal_open(dir, TAG, 0, &j, err, sizeof err), SB_OK);
    assert_int_equal(files("send-journal."), 1);
    hand(j, 7, 30, 0xab);
    hand(j, 7, 10, 0x01);
    unsigned f = hand(j, 8, 20, 0x02);
    hand(j, 7, 10, 0x01); /* the same line twice is one entry */
    unsigned char t[SB_JOURNAL_TOKEN_LEN];
    token(t, 0x02);
    assert_int_equal(sb_journal_refused(j, f, 8, 20, t, err, sizeof err), SB_OK);
    struct sb_journal_stats st;
    sb_journal_stats(j, &st);
    assert_int_equal(st.files, 1);
    assert_int_equal(st.entries, 4);
    assert_int_equal(st.unsettled, 4);
    /* Nothing settled: the file outlives its journal. */
    sb_journal_close(&j);
    assert_null(j);
    assert_int_equal(files("send-journal."), 1);

    struct sb_journal_recovered r;
    recover(&r);
    assert_int_equal(r.files, 1);
    assert_int_equal(r.busy, 0);
    assert_int_equal(r.damaged, 0);
    /* H without N, each once, in (campaign, recipient) order. */
    assert_int_equal(r.nentries, 2);
    assert_int_equal(r.entries[0].campaign_id, 7);
    assert_int_equal(r.entries[0].recipient_id, 10);
    assert_int_equal(r.entries[0].token[0], 0x01);
    assert_int_equal(r.entries[0].token[15], 0x01);
    assert_int_equal(r.entries[1].recipient_id, 30);
    assert_int_equal(r.entries[1].token[7], 0xab);
    /* Not applied (the database failed): the file stays for the next try. */
    sb_journal_recover_finish(&r, 0);
    assert_int_equal(files("send-journal."), 1);
    recover(&r);
    assert_int_equal(r.nentries, 2);
    sb_journal_recover_finish(&r, 1);
    assert_int_equal(files("send-journal."), 0);
    recover(&r);
    assert_int_equal(r.files, 0);
    assert_int_equal(r.nentries, 0);
    sb_journal_recover_finish(&r, 1);
}

static void test_settled_files_go(void **state)
{
    (void)state;
    struct sb_journal *j;
    char err[256] = "";
    assert_int_equal(sb_journal_open(dir, TAG, 0, &j, err, sizeof err), SB_OK);
    unsigned f = hand(j, 1, 1, 1);
    sb_journal_settled(j, f);
    sb_journal_settled(j, 0); /* no entry: nothing */
    /* The current file stays while open, even empty of entries... */
    assert_int_equal(files("send-journal."), 1);
    /* ...and goes at close when everything is settled. */
    sb_journal_close(&j);
    assert_int_equal(files("send-journal."), 0);
    assert_int_equal(files(".send-journal."), 0);
}

static void test_rotation(void **state)
{
    (void)state;
    struct sb_journal *j;
    char err[256] = "";
    /* ~60 bytes a line, 200 bytes a file: a new file every few lines. */
    assert_int_equal(sb_journal_open(dir, TAG, 200, &j, err, sizeof err), SB_OK);
    unsigned f[20];
    for (int i = 0; i < 20; i++)
        f[i] = hand(j, 3, 100 + i, i);
    struct sb_journal_stats st;
    sb_journal_stats(j, &st);
    assert_true(st.files >= 5);
    assert_int_equal((int)st.files, files("send-journal."));
    assert_true(f[19] > f[0]);
    /* Settling every entry of the old files removes them; the current one
     * stays. */
    for (int i = 0; i < 20; i++)
        sb_journal_settled(j, f[i]);
    assert_int_equal(files("send-journal."), 1);
    sb_journal_stats(j, &st);
    assert_int_equal(st.files, 1);
    assert_int_equal(st.unsettled, 0);
    /* Unsettled entries keep their file: settle all but one of a file. */
    unsigned g[6];
    for (int i = 0; i < 6; i++)
        g[i] = hand(j, 4, 200 + i, i);
    for (int i = 1; i < 6; i++)
        sb_journal_settled(j, g[i]);
    hand(j, 4, 300, 9); /* so that g[0]'s file is surely not the current one */
    hand(j, 4, 301, 9);
    hand(j, 4, 302, 9);
    sb_journal_close(&j);
    /* What survives holds g[0] (and the three above, never settled); a
     * settled line that shares a file with them comes back too, and is
     * told apart by its row (no longer leased under that token). */
    struct sb_journal_recovered r;
    recover(&r);
    int found = 0;
    for (size_t i = 0; i < r.nentries; i++)
        found += r.entries[i].recipient_id == 200;
    assert_int_equal(found, 1);
    assert_true(r.nentries >= 4);
    sb_journal_recover_finish(&r, 1);
    assert_int_equal(files("send-journal."), 0);
}

static void test_live_owner_and_other_database(void **state)
{
    (void)state;
    struct sb_journal *j;
    char err[256] = "";
    assert_int_equal(sb_journal_open(dir, TAG, 0, &j, err, sizeof err), SB_OK);
    hand(j, 5, 50, 5);
    put("send-journal.424242.1", "switchboard-send-journal 1 mariadb://elsewhere:3306/x\n"
                                 "H 5 51 05050505050505050505050505050505\n");
    struct sb_journal_recovered r;
    recover(&r);
    /* Our own file is locked (by us: flock holds per open file), the
     * other is another database's: neither is touched. */
    assert_int_equal(r.files, 0);
    assert_int_equal(r.busy, 1);
    assert_int_equal(r.other, 1);
    assert_int_equal(r.nentries, 0);
    sb_journal_recover_finish(&r, 1);
    assert_int_equal(files("send-journal."), 2);
    /* Another database's with nothing after its header holds nothing for
     * anyone: it goes, so killed servers' files do not pile up. */
    put("send-journal.424242.2", "switchboard-send-journal 1 mariadb://elsewhere:3306/y\n");
    recover(&r);
    assert_int_equal(r.files, 1);
    assert_int_equal(r.nentries, 0);
    sb_journal_recover_finish(&r, 1);
    assert_int_equal(files("send-journal.424242.2"), 0);
    sb_journal_close(&j); /* its owner is gone: now it is recovered */
    recover(&r);
    assert_int_equal(r.files, 1);
    assert_int_equal(r.nentries, 1);
    assert_int_equal(r.entries[0].recipient_id, 50);
    sb_journal_recover_finish(&r, 1);
    assert_int_equal(files("send-journal."), 1);
}

static void test_torn_and_malformed_lines(void **state)
{
    (void)state;
    /* A torn last line (no newline) is a write that never completed. */
    put("send-journal.1.1", "switchboard-send-journal 1 " TAG "\n"
                            "H 9 1 0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f\n"
                            "H 9 2 0f0f0f0f0f0f");
    struct sb_journal_recovered r;
    recover(&r);
    assert_int_equal(r.files, 1);
    assert_int_equal(r.nentries, 1);
    assert_int_equal(r.entries[0].recipient_id, 1);
    assert_int_equal(r.damaged, 0);
    sb_journal_recover_finish(&r, 1);
    assert_int_equal(files("send-journal."), 0);
    /* Malformed lines in the middle: the good ones count, the file is
     * kept aside as damaged, not deleted. */
    put("send-journal.1.2", "switchboard-send-journal 1 " TAG "\n"
                            "H 9 3 0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f\n"
                            "X 9 4 0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f\n"
                            "H 9 5 0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F\n"
                            "H -1 6 0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f\n"
                            "H 9 7 0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f trailing\n"
                            "H 9 8 0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f\n");
    recover(&r);
    assert_int_equal(r.nentries, 2);
    assert_int_equal(r.entries[0].recipient_id, 3);
    assert_int_equal(r.entries[1].recipient_id, 8);
    assert_int_equal(r.damaged, 4);
    sb_journal_recover_finish(&r, 1);
    assert_int_equal(files("send-journal."), 0);
    assert_int_equal(files("damaged-send-journal.1.2"), 1);
    /* A file with our name but no header is not ours to touch. */
    put("send-journal.1.3", "H 9 9 0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f\n");
    recover(&r);
    assert_int_equal(r.files, 0);
    assert_int_equal(r.other, 1);
    sb_journal_recover_finish(&r, 1);
    assert_int_equal(files("send-journal.1.3"), 1);
}

static void test_creation_debris(void **state)
{
    (void)state;
    /* A temporary file is left by a crash between create and link; a
     * fresh one may be another process's being created right now. */
    put(".send-journal.77.1", "switchboard-send-journal 1 " TAG "\n");
    struct sb_journal_recovered r;
    recover(&r);
    assert_int_equal(r.files, 0);
    sb_journal_recover_finish(&r, 1);
    assert_int_equal(files(".send-journal.77.1"), 1);
    char p[600];
    snprintf(p, sizeof p, "%s/.send-journal.77.1", dir);
    struct utimbuf old = {time(NULL) - 60, time(NULL) - 60};
    assert_int_equal(utime(p, &old), 0);
    recover(&r);
    assert_int_equal(r.files, 1);
    assert_int_equal(r.nentries, 0);
    sb_journal_recover_finish(&r, 1);
    assert_int_equal(files(".send-journal.77.1"), 0);
}

static void test_missing_directory(void **state)
{
    (void)state;
    struct sb_journal_recovered r;
    char err[256] = "", sub[300];
    snprintf(sub, sizeof sub, "%s/nope", dir);
    assert_int_equal(sb_journal_recover(sub, TAG, &r, err, sizeof err), SB_OK);
    assert_int_equal(r.files, 0);
    sb_journal_recover_finish(&r, 1);
    /* open creates it, nested. */
    snprintf(sub, sizeof sub, "%s/a/b", dir);
    struct sb_journal *j;
    assert_int_equal(sb_journal_open(sub, TAG, 0, &j, err, sizeof err), SB_OK);
    sb_journal_close(&j);
    snprintf(sub, sizeof sub, "%s/a/b", dir);
    assert_int_equal(rmdir(sub), 0); /* empty: the settled file went */
    snprintf(sub, sizeof sub, "%s/a", dir);
    assert_int_equal(rmdir(sub), 0);
}

/* What write(2) put in the page cache survives SIGKILL, and the lock goes
 * with the process. */
static void test_killed_writer(void **state)
{
    (void)state;
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct sb_journal *j;
        char err[256] = "";
        if (sb_journal_open(dir, TAG, 0, &j, err, sizeof err) != SB_OK)
            _exit(1);
        unsigned char t[SB_JOURNAL_TOKEN_LEN];
        token(t, 0x5a);
        unsigned f;
        for (int i = 1; i <= 100; i++)
            if (sb_journal_handed(j, 11, i, t, &f, err, sizeof err) != SB_OK)
                _exit(1);
        if (write(ready[1], "x", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    close(ready[1]);
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    /* Alive: its file is busy. */
    struct sb_journal_recovered r;
    recover(&r);
    assert_int_equal(r.busy, 1);
    assert_int_equal(r.nentries, 0);
    sb_journal_recover_finish(&r, 1);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    recover(&r);
    assert_int_equal(r.files, 1);
    assert_int_equal(r.nentries, 100);
    assert_int_equal(r.entries[99].recipient_id, 100);
    assert_int_equal(r.entries[0].token[3], 0x5a);
    sb_journal_recover_finish(&r, 1);
    assert_int_equal(files("send-journal."), 0);
}

static void test_tag(void **state)
{
    (void)state;
    struct sb_db_params p = {
        .user = "u", .password = "secret", .host = "db.example", .port = 3307, .database = "sb"};
    char tag[SB_JOURNAL_TAG_MAX];
    sb_journal_tag(&p, tag, sizeof tag);
    assert_string_equal(tag, "mariadb://db.example:3307/sb"); /* no credentials */
    p.socket = "/run/mysqld/mysqld.sock";
    sb_journal_tag(&p, tag, sizeof tag);
    assert_string_equal(tag, "mariadb://localhost/sb?socket=/run/mysqld/mysqld.sock");
    p.socket = NULL;
    p.database = "a\nb";
    sb_journal_tag(&p, tag, sizeof tag);
    assert_string_equal(tag, "mariadb://db.example:3307/a?b"); /* one line */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_and_read_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settled_files_go, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_owner_and_other_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_and_malformed_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_creation_debris, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_writer, setup, teardown),
        cmocka_unit_test(test_tag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

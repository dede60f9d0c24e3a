/* ingest() against the real MariaDB: client recognition across channels,
 * idempotency, edits, threading, reopening, bounces, auto-replies, merge
 * suggestions and concurrent creation of one new person. */
#include "harness.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/inbound.h"
#include "switchboard/ingest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct sb_db *db;
static int64_t ch_telegram, ch_whatsapp, ch_email, ch_form;
static const struct sb_ingest_options opt = {"RU", 7 * 24 * 3600};

static int64_t query_int(const char *sql, int64_t arg)
{
    struct sb_db_val a[] = {SB_INT(arg)};
    struct sb_db_rows r;
    char err[512] = "";
    int rc = sb_db_exec(db, sql, a, strstr(sql, "?") ? 1 : 0, &r, err, sizeof err);
    if (rc != SB_OK)
        fprintf(stderr, "%s: %s\n", sql, err);
    assert_int_equal(rc, SB_OK);
    int64_t v = r.nrows ? sb_db_cell_int(&r, 0, 0) : -1;
    sb_db_rows_free(&r);
    return v;
}

static int64_t add_channel(const char *kind, const char *name)
{
    static const char q[] = "INSERT INTO channels (kind, name) VALUES (?, ?)";
    struct sb_db_val a[] = {SB_TEXT(kind), SB_TEXT(name)};
    struct sb_db_rows r;
    char err[256] = "";
    assert_int_equal(sb_db_exec(db, q, a, 2, &r, err, sizeof err), SB_OK);
    return (int64_t)r.insert_id;
}

static int setup(void **state)
{
    (void)state;
    th_db_setup();
    db = th_db_connect();
    ch_telegram = add_channel("telegram", "Telegram bot");
    ch_whatsapp = add_channel("whatsapp", "WhatsApp");
    ch_email = add_channel("email", "Sales mailbox");
    ch_form = add_channel("webform", "Site form");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sb_db_close(&db);
    th_db_teardown();
    return 0;
}

static struct sb_inbound *message(int64_t channel, const char *external_id, const char *name,
                                  const char *text)
{
    struct sb_inbound *in = sb_inbound_new();
    assert_non_null(in);
    in->channel_id = channel;
    in->external_id = sb_inbound_strdup(in, external_id);
    in->kind = SB_IK_MESSAGE;
    in->display_name = sb_inbound_strdup(in, name);
    in->text = sb_inbound_strdup(in, text);
    return in;
}

static struct sb_ingest_result ingest_ok(struct sb_inbound *in)
{
    struct sb_ingest_result res;
    char err[512] = "";
    int rc = sb_ingest(db, &opt, in, &res, err, sizeof err);
    if (rc != SB_OK)
        fprintf(stderr, "ingest: %s\n", err);
    assert_int_equal(rc, SB_OK);
    return res;
}

static const char *identity_value(int64_t client, const char *kind, char *buf, size_t len)
{
    static const char q[] =
        "SELECT value FROM client_identities WHERE client_id = ? AND kind = ? AND verified = 1";
    struct sb_db_val a[] = {SB_INT(client), SB_TEXT(kind)};
    struct sb_db_rows r;
    char err[256] = "";
    assert_int_equal(sb_db_exec(db, q, a, 2, &r, err, sizeof err), SB_OK);
    snprintf(buf, len, "%s", r.nrows == 1 ? sb_db_cell(&r, 0, 0) : "(none or several)");
    sb_db_rows_free(&r);
    return buf;
}

/* The three channels' fixtures for Анна Смирнова: Telegram text, Telegram
 * contact share, WhatsApp text. One client at the end. */
static void anna_is_one_client_across_channels(void **state)
{
    (void)state;
    struct sb_inbound *tg = message(ch_telegram, "523901177:4412", "Анна Смирнова",
                                    "Здравствуйте! Хочу заказать кухонный гарнитур, перезвоните "
                                    "мне: 8 (916) 000-11-22");
    sb_inbound_add_identity(tg, SB_ID_TELEGRAM, "523901177");
    struct sb_ingest_result r1 = ingest_ok(tg);
    assert_true(r1.client_created);
    assert_true(r1.conversation_created);

    struct sb_inbound *contact = message(ch_telegram, "523901177:4413", "Анна Смирнова", NULL);
    sb_inbound_add_identity(contact, SB_ID_TELEGRAM, "523901177");
    sb_inbound_add_identity(contact, SB_ID_PHONE, "+79160001122");
    struct sb_ingest_result r2 = ingest_ok(contact);
    assert_int_equal(r2.client_id, r1.client_id);
    assert_false(r2.client_created);
    assert_int_equal(r2.conversation_id, r1.conversation_id); /* same chat, same conversation */

    struct sb_inbound *wa = message(ch_whatsapp, "wamid.HBgLNzkxNjAwMDExMjIVAgASGBQzQTc", "Анна",
                                    "Добрый день, это Анна, писала в Telegram");
    sb_inbound_add_identity(wa, SB_ID_WHATSAPP, "79160001122");
    sb_inbound_add_identity(wa, SB_ID_PHONE, "+79160001122");
    struct sb_ingest_result r3 = ingest_ok(wa);
    assert_int_equal(r3.client_id, r1.client_id);
    assert_true(r3.conversation_created); /* another channel, another conversation */

    char buf[64];
    assert_string_equal(identity_value(r1.client_id, "telegram", buf, sizeof buf), "523901177");
    assert_string_equal(identity_value(r1.client_id, "phone", buf, sizeof buf), "+79160001122");
    assert_string_equal(identity_value(r1.client_id, "whatsapp", buf, sizeof buf), "79160001122");
    assert_int_equal(query_int("SELECT COUNT(*) FROM clients WHERE id >= ?", r1.client_id), 1);
    assert_int_equal(
        query_int("SELECT COUNT(*) FROM interactions WHERE client_id = ?", r1.client_id), 3);
    /* Events were written with the data. */
    assert_int_equal(
        query_int("SELECT COUNT(*) FROM events WHERE type = 'client.created' AND client_id = ?",
                  r1.client_id),
        1);
    assert_int_equal(
        query_int(
            "SELECT COUNT(*) FROM events WHERE type = 'interaction.created' AND client_id = ?",
            r1.client_id),
        3);

    /* Re-ingesting any of them changes nothing. */
    int64_t events = query_int("SELECT COUNT(*) FROM events", 0);
    int64_t rows = query_int("SELECT COUNT(*) FROM interactions", 0);
    struct sb_ingest_result again = ingest_ok(wa);
    assert_true(again.duplicate);
    assert_int_equal(again.interaction_id, r3.interaction_id);
    again = ingest_ok(tg);
    assert_true(again.duplicate);
    assert_int_equal(again.client_id, r1.client_id);
    assert_int_equal(query_int("SELECT COUNT(*) FROM events", 0), events);
    assert_int_equal(query_int("SELECT COUNT(*) FROM interactions", 0), rows);
    sb_inbound_free(&tg);
    sb_inbound_free(&contact);
    sb_inbound_free(&wa);
}

static void an_edit_keeps_the_original(void **state)
{
    (void)state;
    struct sb_inbound *in = message(ch_telegram, "600:1", "Пётр", "первый текст");
    sb_inbound_add_identity(in, SB_ID_TELEGRAM, "600");
    struct sb_ingest_result r = ingest_ok(in);
    struct sb_inbound *ed = message(ch_telegram, "600:1", "Пётр", "исправленный текст");
    sb_inbound_add_identity(ed, SB_ID_TELEGRAM, "600");
    ed->flags |= SB_IN_EDITED;
    struct sb_ingest_result e = ingest_ok(ed);
    assert_true(e.duplicate);
    assert_int_equal(e.interaction_id, r.interaction_id);
    static const char q[] =
        "SELECT text, JSON_UNQUOTE(JSON_EXTRACT(meta, '$.edits[0].text')), flags + 0 "
        "FROM interactions WHERE id = ?";
    struct sb_db_val a[] = {SB_INT(r.interaction_id)};
    struct sb_db_rows rows;
    char err[256] = "";
    assert_int_equal(sb_db_exec(db, q, a, 1, &rows, err, sizeof err), SB_OK);
    assert_string_equal(sb_db_cell(&rows, 0, 0), "исправленный текст");
    assert_string_equal(sb_db_cell(&rows, 0, 1), "первый текст");
    assert_int_equal(sb_db_cell_int(&rows, 0, 2) & SB_IN_EDITED, SB_IN_EDITED);
    sb_db_rows_free(&rows);
    assert_int_equal(query_int("SELECT COUNT(*) FROM events WHERE type = 'interaction.updated' "
                               "AND JSON_VALUE(data, '$.id') = ?",
                               r.interaction_id),
                     1);
    sb_inbound_free(&in);
    sb_inbound_free(&ed);
}

static struct sb_inbound *mail(const char *msgid, const char *in_reply_to, const char *from,
                               const char *subject)
{
    struct sb_inbound *in = message(ch_email, msgid, NULL, "body");
    in->kind = SB_IK_EMAIL;
    in->message_id = sb_inbound_strdup(in, msgid);
    in->in_reply_to = sb_inbound_strdup(in, in_reply_to);
    in->subject = sb_inbound_strdup(in, subject);
    sb_inbound_add_identity(in, SB_ID_EMAIL, from);
    return in;
}

static void email_threads_by_in_reply_to_and_references(void **state)
{
    (void)state;
    struct sb_inbound *a = mail("a1@client.example", NULL, "Ivan.Petrov@Example.RU", "Кухня");
    struct sb_ingest_result ra = ingest_ok(a);
    struct sb_inbound *b =
        mail("b1@client.example", "a1@client.example", "ivan.petrov@example.ru", "Re: Кухня");
    struct sb_ingest_result rb = ingest_ok(b);
    assert_int_equal(rb.conversation_id, ra.conversation_id);
    assert_int_equal(rb.client_id, ra.client_id);
    /* Only References, newest last, the first unknown. */
    struct sb_inbound *c =
        mail("c1@client.example", "unknown@elsewhere", "ivan.petrov@example.ru", "Re: Re: Кухня");
    sb_inbound_add_reference(c, "a1@client.example");
    sb_inbound_add_reference(c, "nothing@here");
    struct sb_ingest_result rc = ingest_ok(c);
    assert_int_equal(rc.conversation_id, ra.conversation_id);
    /* A new subject without references is a new conversation of the same client. */
    struct sb_inbound *d = mail("d1@client.example", NULL, "IVAN.PETROV@example.ru", "Шкаф");
    struct sb_ingest_result rd = ingest_ok(d);
    assert_int_not_equal(rd.conversation_id, ra.conversation_id);
    assert_int_equal(rd.client_id, ra.client_id);
    assert_int_equal(query_int("SELECT unread FROM conversations WHERE id = ?", ra.conversation_id),
                     3);
    sb_inbound_free(&a);
    sb_inbound_free(&b);
    sb_inbound_free(&c);
    sb_inbound_free(&d);
}

static void resolved_reopens_within_window_else_new(void **state)
{
    (void)state;
    struct sb_inbound *m1 = message(ch_telegram, "700:1", "Ольга", "привет");
    sb_inbound_add_identity(m1, SB_ID_TELEGRAM, "700");
    struct sb_ingest_result r1 = ingest_ok(m1);
    static const char resolve[] =
        "UPDATE conversations SET status = 'resolved', resolved_at = NOW(6) WHERE id = ?";
    struct sb_db_val a[] = {SB_INT(r1.conversation_id)};
    char err[256] = "";
    assert_int_equal(sb_db_exec(db, resolve, a, 1, NULL, err, sizeof err), SB_OK);

    struct sb_inbound *m2 = message(ch_telegram, "700:2", "Ольга", "ещё вопрос");
    sb_inbound_add_identity(m2, SB_ID_TELEGRAM, "700");
    struct sb_ingest_result r2 = ingest_ok(m2);
    assert_int_equal(r2.conversation_id, r1.conversation_id);
    assert_int_equal(
        query_int("SELECT status = 'open' FROM conversations WHERE id = ?", r1.conversation_id), 1);

    /* Resolved long ago: a new conversation. */
    static const char age[] = "UPDATE conversations SET status = 'resolved', "
                              "last_activity_at = NOW(6) - INTERVAL 30 DAY WHERE id = ?";
    assert_int_equal(sb_db_exec(db, age, a, 1, NULL, err, sizeof err), SB_OK);
    struct sb_inbound *m3 = message(ch_telegram, "700:3", "Ольга", "снова я");
    sb_inbound_add_identity(m3, SB_ID_TELEGRAM, "700");
    struct sb_ingest_result r3 = ingest_ok(m3);
    assert_int_not_equal(r3.conversation_id, r1.conversation_id);
    assert_true(r3.conversation_created);
    sb_inbound_free(&m1);
    sb_inbound_free(&m2);
    sb_inbound_free(&m3);
}

static void auto_replies_do_not_reopen_and_bounces_have_no_client(void **state)
{
    (void)state;
    struct sb_inbound *a = mail("q1@shop.example", NULL, "buyer@shop.example", "Заказ");
    struct sb_ingest_result ra = ingest_ok(a);
    static const char resolve[] = "UPDATE conversations SET status = 'resolved' WHERE id = ?";
    struct sb_db_val arg[] = {SB_INT(ra.conversation_id)};
    char err[256] = "";
    assert_int_equal(sb_db_exec(db, resolve, arg, 1, NULL, err, sizeof err), SB_OK);
    struct sb_inbound *ar =
        mail("q2@shop.example", "q1@shop.example", "buyer@shop.example", "Автоответ: Заказ");
    ar->flags |= SB_IN_AUTO_REPLY;
    struct sb_ingest_result rar = ingest_ok(ar);
    assert_int_equal(rar.conversation_id, ra.conversation_id);
    assert_int_equal(
        query_int("SELECT status = 'resolved' FROM conversations WHERE id = ?", ra.conversation_id),
        1);

    int64_t clients = query_int("SELECT COUNT(*) FROM clients", 0);
    struct sb_inbound *bounce = mail("bounce1@mx.example", NULL, "mailer-daemon@mx.example",
                                     "Undelivered Mail Returned to Sender");
    bounce->flags |= SB_IN_BOUNCE;
    struct sb_ingest_result rb = ingest_ok(bounce);
    assert_int_equal(rb.client_id, 0);
    assert_int_equal(rb.conversation_id, 0);
    assert_true(rb.interaction_id > 0);
    assert_int_equal(query_int("SELECT COUNT(*) FROM clients", 0), clients);
    sb_inbound_free(&a);
    sb_inbound_free(&ar);
    sb_inbound_free(&bounce);
}

static void several_clients_oldest_wins_and_merge_is_suggested(void **state)
{
    (void)state;
    struct sb_inbound *x = message(ch_form, "form:1", "Мария", "лид 1");
    sb_inbound_add_identity(x, SB_ID_EMAIL, "maria@example.com");
    struct sb_ingest_result rx = ingest_ok(x);
    struct sb_inbound *y = message(ch_form, "form:2", "Мария К.", "лид 2");
    sb_inbound_add_identity(y, SB_ID_PHONE, "8 (903) 111-22-33");
    struct sb_ingest_result ry = ingest_ok(y);
    assert_int_not_equal(rx.client_id, ry.client_id);
    /* Both identities in one lead: the older client takes it. */
    struct sb_inbound *z = message(ch_form, "form:3", "Мария", "лид 3");
    sb_inbound_add_identity(z, SB_ID_EMAIL, "MARIA@example.com");
    sb_inbound_add_identity(z, SB_ID_PHONE, "+7 903 111 22 33");
    struct sb_ingest_result rz = ingest_ok(z);
    assert_int_equal(rz.client_id, rx.client_id);
    assert_int_equal(query_int("SELECT COUNT(*) FROM merge_suggestions WHERE status = 'open' AND "
                               "pair_lo = ?",
                               rx.client_id),
                     1);
    /* The phone stays with its owner until a person merges them. */
    char buf[64];
    assert_string_equal(identity_value(ry.client_id, "phone", buf, sizeof buf), "+79031112233");
    sb_inbound_free(&x);
    sb_inbound_free(&y);
    sb_inbound_free(&z);
}

static void invalid_phone_is_kept_raw_and_never_matched(void **state)
{
    (void)state;
    struct sb_inbound *a = message(ch_form, "form:bad1", "Аноним", "x");
    sb_inbound_add_identity(a, SB_ID_PHONE, "12345");
    struct sb_ingest_result ra = ingest_ok(a);
    struct sb_inbound *b = message(ch_form, "form:bad2", "Аноним", "y");
    sb_inbound_add_identity(b, SB_ID_PHONE, "12345");
    struct sb_ingest_result rb = ingest_ok(b);
    assert_int_not_equal(ra.client_id, rb.client_id);
    assert_int_equal(query_int("SELECT COUNT(*) FROM client_identities WHERE client_id = ? AND "
                               "verified = 0 AND value IS NULL AND raw = '12345'",
                               ra.client_id),
                     1);
    sb_inbound_free(&a);
    sb_inbound_free(&b);
}

struct racer {
    int n;
    int rc;
    struct sb_ingest_result res;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    struct sb_db_params p;
    char err[512] = "";
    sb_db_params_parse(th_db_url(), &p, err, sizeof err);
    struct sb_db *mine = NULL;
    r->rc = sb_db_open(&p, 0, &mine, err, sizeof err);
    sb_db_params_free(&p);
    if (r->rc == SB_OK) {
        struct sb_inbound *in = sb_inbound_new();
        char ext[32];
        snprintf(ext, sizeof ext, "race:%d", r->n);
        in->channel_id = ch_whatsapp;
        in->external_id = sb_inbound_strdup(in, ext);
        in->kind = SB_IK_MESSAGE;
        in->text = "одновременно";
        sb_inbound_add_identity(in, SB_ID_WHATSAPP, "79265550000");
        sb_inbound_add_identity(in, SB_ID_PHONE, "+79265550000");
        r->rc = sb_ingest(mine, &opt, in, &r->res, err, sizeof err);
        if (r->rc != SB_OK)
            fprintf(stderr, "racer %d: %s\n", r->n, err);
        sb_inbound_free(&in);
    }
    sb_db_close(&mine);
    return NULL;
}

static void eight_threads_create_one_client(void **state)
{
    (void)state;
    pthread_t t[8];
    struct racer r[8];
    for (int i = 0; i < 8; i++) {
        r[i] = (struct racer){.n = i};
        pthread_create(&t[i], NULL, race, &r[i]);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(r[i].rc, SB_OK);
        assert_int_equal(r[i].res.client_id, r[0].res.client_id);
        assert_int_equal(r[i].res.conversation_id, r[0].res.conversation_id);
    }
    assert_int_equal(query_int("SELECT COUNT(DISTINCT client_id) FROM client_identities WHERE "
                               "value IN ('+79265550000', '79265550000')",
                               0),
                     1);
    assert_int_equal(
        query_int("SELECT COUNT(*) FROM interactions WHERE client_id = ?", r[0].res.client_id), 8);
    assert_int_equal(
        query_int("SELECT COUNT(*) FROM conversations WHERE client_id = ?", r[0].res.client_id), 1);
}

/* ---- batches: later inbounds see what earlier ones of the same batch did */

static void ingest_batch_ok(struct sb_inbound **in, size_t n, struct sb_ingest_result *res)
{
    char err[512] = "";
    int rc =
        sb_ingest_batch(db, &opt, (const struct sb_inbound *const *)in, n, res, err, sizeof err);
    if (rc != SB_OK)
        fprintf(stderr, "ingest batch: %s\n", err);
    assert_int_equal(rc, SB_OK);
}

/* The types of the events after `after`, in id order, comma-separated. */
static const char *event_types(int64_t after, char *buf, size_t len)
{
    static const char q[] = "SELECT type FROM events WHERE id > ? ORDER BY id";
    struct sb_db_val a[] = {SB_INT(after)};
    struct sb_db_rows r;
    char err[256] = "";
    assert_int_equal(sb_db_exec(db, q, a, 1, &r, err, sizeof err), SB_OK);
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < r.nrows && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? "," : "", sb_db_cell(&r, i, 0));
    sb_db_rows_free(&r);
    return buf;
}

static void one_new_person_twice_in_a_batch_is_one_client(void **state)
{
    (void)state;
    int64_t last_event = query_int("SELECT COALESCE(MAX(id), 0) FROM events", 0);
    struct sb_inbound *in[3];
    in[0] = message(ch_telegram, "900:1", "Вера", "первое");
    sb_inbound_add_identity(in[0], SB_ID_TELEGRAM, "900");
    in[1] = message(ch_telegram, "900:2", "Вера", "второе");
    sb_inbound_add_identity(in[1], SB_ID_TELEGRAM, "900");
    sb_inbound_add_identity(in[1], SB_ID_PHONE, "8 (926) 900-00-00");
    /* Another channel: the same client, another conversation. */
    in[2] = message(ch_whatsapp, "wamid.900", "Вера", "третье");
    sb_inbound_add_identity(in[2], SB_ID_PHONE, "+7 926 900 00 00");
    struct sb_ingest_result r[3];
    ingest_batch_ok(in, 3, r);
    assert_true(r[0].client_created);
    assert_false(r[1].client_created);
    assert_false(r[2].client_created);
    assert_int_equal(r[1].client_id, r[0].client_id);
    assert_int_equal(r[2].client_id, r[0].client_id);
    /* Message 2 joins the conversation message 1 opened. */
    assert_true(r[0].conversation_created);
    assert_false(r[1].conversation_created);
    assert_int_equal(r[1].conversation_id, r[0].conversation_id);
    assert_true(r[2].conversation_created);
    assert_int_not_equal(r[2].conversation_id, r[0].conversation_id);
    assert_true(r[0].interaction_id < r[1].interaction_id);
    assert_true(r[1].interaction_id < r[2].interaction_id);
    assert_int_equal(
        query_int("SELECT unread FROM conversations WHERE id = ?", r[0].conversation_id), 2);
    char buf[64];
    assert_string_equal(identity_value(r[0].client_id, "phone", buf, sizeof buf), "+79269000000");
    assert_int_equal(
        query_int("SELECT COUNT(*) FROM client_identities WHERE client_id = ?", r[0].client_id), 2);
    /* Events in the order of the changes, as if stored one by one; the
     * second message joins an open conversation, so no conversation.updated. */
    char types[512];
    assert_string_equal(event_types(last_event, types, sizeof types),
                        "client.created,conversation.created,interaction.created,"
                        "interaction.created,"
                        "conversation.created,interaction.created");
    for (int i = 0; i < 3; i++)
        sb_inbound_free(&in[i]);
}

static void a_message_and_its_edit_in_one_batch(void **state)
{
    (void)state;
    int64_t last_event = query_int("SELECT COALESCE(MAX(id), 0) FROM events", 0);
    struct sb_inbound *in[3];
    in[0] = message(ch_telegram, "901:1", "Глеб", "черновик");
    sb_inbound_add_identity(in[0], SB_ID_TELEGRAM, "901");
    in[1] = message(ch_telegram, "901:1", "Глеб", "черновик"); /* redelivered */
    sb_inbound_add_identity(in[1], SB_ID_TELEGRAM, "901");
    in[2] = message(ch_telegram, "901:1", "Глеб", "чистовик");
    sb_inbound_add_identity(in[2], SB_ID_TELEGRAM, "901");
    in[2]->flags |= SB_IN_EDITED;
    struct sb_ingest_result r[3];
    ingest_batch_ok(in, 3, r);
    assert_false(r[0].duplicate);
    for (int i = 1; i < 3; i++) {
        assert_true(r[i].duplicate);
        assert_int_equal(r[i].interaction_id, r[0].interaction_id);
        assert_int_equal(r[i].conversation_id, r[0].conversation_id);
        assert_int_equal(r[i].client_id, r[0].client_id);
    }
    static const char q[] =
        "SELECT text, JSON_UNQUOTE(JSON_EXTRACT(meta, '$.edits[0].text')), flags + 0 "
        "FROM interactions WHERE id = ?";
    struct sb_db_val a[] = {SB_INT(r[0].interaction_id)};
    struct sb_db_rows rows;
    char err[256] = "";
    assert_int_equal(sb_db_exec(db, q, a, 1, &rows, err, sizeof err), SB_OK);
    assert_string_equal(sb_db_cell(&rows, 0, 0), "чистовик");
    assert_string_equal(sb_db_cell(&rows, 0, 1), "черновик");
    assert_int_equal(sb_db_cell_int(&rows, 0, 2) & SB_IN_EDITED, SB_IN_EDITED);
    sb_db_rows_free(&rows);
    assert_int_equal(query_int("SELECT COUNT(*) FROM interactions WHERE external_id = '901:1'", 0),
                     1);
    char types[512];
    assert_string_equal(event_types(last_event, types, sizeof types),
                        "client.created,conversation.created,interaction.created,"
                        "interaction.updated");
    for (int i = 0; i < 3; i++)
        sb_inbound_free(&in[i]);
}

static void a_reply_threads_to_a_mail_earlier_in_the_batch(void **state)
{
    (void)state;
    struct sb_inbound *in[3];
    in[0] = mail("batch-a@client.example", NULL, "lena@client.example", "Диван");
    in[1] = mail("batch-b@client.example", "batch-a@client.example", "lena@client.example",
                 "Re: Диван");
    /* Only References, and from another address: still the thread. */
    in[2] =
        mail("batch-c@client.example", "unknown@elsewhere", "boss@client.example", "Re: Re: Диван");
    sb_inbound_add_reference(in[2], "batch-b@client.example");
    struct sb_ingest_result r[3];
    ingest_batch_ok(in, 3, r);
    assert_true(r[0].conversation_created);
    assert_int_equal(r[1].conversation_id, r[0].conversation_id);
    assert_int_equal(r[1].client_id, r[0].client_id);
    assert_false(r[1].client_created);
    assert_int_equal(r[2].conversation_id, r[0].conversation_id);
    assert_true(r[2].client_created);
    assert_int_equal(
        query_int("SELECT unread FROM conversations WHERE id = ?", r[0].conversation_id), 3);
    for (int i = 0; i < 3; i++)
        sb_inbound_free(&in[i]);
}

static void a_batch_joins_the_conversation_it_opens(void **state)
{
    (void)state;
    /* A known client whose last conversation was resolved long ago: the
     * first message opens a new one, the second joins it. */
    struct sb_inbound *m0 = message(ch_telegram, "902:0", "Лев", "давно");
    sb_inbound_add_identity(m0, SB_ID_TELEGRAM, "902");
    struct sb_ingest_result r0 = ingest_ok(m0);
    static const char age[] = "UPDATE conversations SET status = 'resolved', "
                              "last_activity_at = NOW(6) - INTERVAL 30 DAY WHERE id = ?";
    struct sb_db_val a[] = {SB_INT(r0.conversation_id)};
    char err[256] = "";
    assert_int_equal(sb_db_exec(db, age, a, 1, NULL, err, sizeof err), SB_OK);
    struct sb_inbound *in[2];
    in[0] = message(ch_telegram, "902:1", "Лев", "снова");
    sb_inbound_add_identity(in[0], SB_ID_TELEGRAM, "902");
    in[1] = message(ch_telegram, "902:2", "Лев", "и ещё");
    sb_inbound_add_identity(in[1], SB_ID_TELEGRAM, "902");
    struct sb_ingest_result r[2];
    ingest_batch_ok(in, 2, r);
    assert_int_equal(r[0].client_id, r0.client_id);
    assert_true(r[0].conversation_created);
    assert_int_not_equal(r[0].conversation_id, r0.conversation_id);
    assert_false(r[1].conversation_created);
    assert_int_equal(r[1].conversation_id, r[0].conversation_id);
    assert_int_equal(
        query_int("SELECT status = 'resolved' FROM conversations WHERE id = ?", r0.conversation_id),
        1);
    sb_inbound_free(&m0);
    for (int i = 0; i < 2; i++)
        sb_inbound_free(&in[i]);
}

/* A known client without a conversation on a channel writes there from
 * eight workers at once: such a batch locks the client before it decides
 * (its first message on a channel), and the locked read sees the
 * conversation the first one opened. */
struct opener {
    int n;
    pthread_barrier_t *go;
    int rc;
    struct sb_ingest_result res;
};

static void *open_race(void *arg)
{
    struct opener *o = arg;
    struct sb_db_params p;
    char err[512] = "";
    sb_db_params_parse(th_db_url(), &p, err, sizeof err);
    struct sb_db *mine = NULL;
    o->rc = sb_db_open(&p, 0, &mine, err, sizeof err);
    sb_db_params_free(&p);
    struct sb_inbound *in[2];
    for (int i = 0; i < 2; i++) {
        char ext[32];
        snprintf(ext, sizeof ext, "903:%d:%d", o->n, i);
        in[i] = message(ch_telegram, ext, "Нина", "одновременно");
        sb_inbound_add_identity(in[i], SB_ID_TELEGRAM, "903");
    }
    struct sb_ingest_result res[2];
    pthread_barrier_wait(o->go);
    if (o->rc == SB_OK)
        o->rc = sb_ingest_batch(mine, &opt, (const struct sb_inbound *const *)in, 2, res, err,
                                sizeof err);
    if (o->rc != SB_OK)
        fprintf(stderr, "opener %d: %s\n", o->n, err);
    o->res = res[1];
    for (int i = 0; i < 2; i++)
        sb_inbound_free(&in[i]);
    sb_db_close(&mine);
    return NULL;
}

static void concurrent_batches_open_one_conversation(void **state)
{
    (void)state;
    struct sb_inbound *first = message(ch_form, "form:903", "Нина", "заявка");
    sb_inbound_add_identity(first, SB_ID_TELEGRAM, "903");
    struct sb_ingest_result r0 = ingest_ok(first);
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 8);
    pthread_t t[8];
    struct opener o[8];
    for (int i = 0; i < 8; i++) {
        o[i] = (struct opener){.n = i, .go = &go};
        pthread_create(&t[i], NULL, open_race, &o[i]);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&go);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(o[i].rc, SB_OK);
        assert_int_equal(o[i].res.client_id, r0.client_id);
        assert_int_equal(o[i].res.conversation_id, o[0].res.conversation_id);
    }
    assert_int_equal(query_int("SELECT COUNT(*) FROM conversations WHERE client_id = ? AND "
                               "channel_id = (SELECT id FROM channels WHERE kind = 'telegram')",
                               r0.client_id),
                     1);
    assert_int_equal(
        query_int("SELECT unread FROM conversations WHERE id = ?", o[0].res.conversation_id), 16);
    sb_inbound_free(&first);
}

/* A batch decides on an unlocked read and locks the client and the
 * conversations it touches at its end. The tests below change a
 * conversation in another transaction while a batch is stored (after the
 * batch has read, before it locks) and check that the batch acts as if it
 * had come after that change. */
struct late_writer {
    struct sb_inbound *in;
    int rc;
    struct sb_ingest_result res;
};

static void *late_write(void *arg)
{
    struct late_writer *w = arg;
    struct sb_db *mine = th_db_connect();
    char err[512] = "";
    w->rc = sb_ingest(mine, &opt, w->in, &w->res, err, sizeof err);
    if (w->rc != SB_OK)
        fprintf(stderr, "late writer: %s\n", err);
    sb_db_close(&mine);
    return NULL;
}

/* Run `w` in a thread while `db` holds an uncommitted change; commit that
 * once the writer has stored its interaction (seen before its commit), so
 * it read the state before the change, and is stuck on a lock. */
static void race_the_writer(struct late_writer *w)
{
    char err[512] = "";
    pthread_t t;
    pthread_create(&t, NULL, late_write, w);
    struct sb_db *probe = th_db_connect();
    /* No assertion until the writer is joined: a failure would leave it
     * running on the caller's stack. */
    int ok = sb_db_exec_text(probe, "SET SESSION TRANSACTION ISOLATION LEVEL READ UNCOMMITTED", err,
                             sizeof err) == SB_OK;
    if (!ok)
        fprintf(stderr, "probe: %s\n", err);
    int waiting = 0, written = 0;
    for (int i = 0; ok && i < 1000 && !(waiting && written); i++) {
        struct sb_db_rows r;
        struct sb_db_val a[] = {SB_TEXT(w->in->external_id)};
        /* The writer's statement, stuck on a lock (`db` runs none). Our
         * own threads are visible without the PROCESS privilege. */
        static const char q_busy[] = "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                                     "WHERE ID <> CONNECTION_ID() AND INFO IS NOT NULL";
        static const char q_written[] = "SELECT COUNT(*) FROM interactions WHERE external_id = ?";
        int rc = sb_db_exec(probe, q_busy, NULL, 0, &r, err, sizeof err);
        if (rc == SB_OK) {
            waiting = sb_db_cell_int(&r, 0, 0) > 0;
            sb_db_rows_free(&r);
            rc = sb_db_exec(probe, q_written, a, 1, &r, err, sizeof err);
        }
        if (rc != SB_OK) {
            fprintf(stderr, "probe: %s\n", err);
            break;
        }
        written = sb_db_cell_int(&r, 0, 0) > 0;
        sb_db_rows_free(&r);
        if (!(waiting && written))
            usleep(10000);
    }
    sb_db_close(&probe);
    /* Committed whatever the probe saw, so the writer always ends. */
    int committed = sb_db_commit(db, err, sizeof err);
    pthread_join(t, NULL);
    assert_int_equal(committed, SB_OK);
    assert_true(waiting);
    assert_true(written);
    assert_int_equal(w->rc, SB_OK);
}

/* Resolved meanwhile: the client's message reopens it. */
static void a_conversation_resolved_meanwhile_is_reopened(void **state)
{
    (void)state;
    struct sb_inbound *first = message(ch_telegram, "905:1", "Олег", "здравствуйте");
    sb_inbound_add_identity(first, SB_ID_TELEGRAM, "905");
    struct sb_ingest_result r0 = ingest_ok(first);
    int64_t last_event = query_int("SELECT COALESCE(MAX(id), 0) FROM events", 0);
    /* Another transaction holds the client (as a merge does) and resolves
     * the conversation. */
    char err[512] = "";
    assert_int_equal(sb_db_begin(db, err, sizeof err), SB_OK);
    query_int("SELECT id FROM clients WHERE id = ? FOR UPDATE", r0.client_id);
    struct sb_db_val a[] = {SB_INT(r0.conversation_id)};
    assert_int_equal(sb_db_exec(db,
                                "UPDATE conversations SET status = 'resolved', "
                                "resolved_at = NOW(6) WHERE id = ?",
                                a, 1, NULL, err, sizeof err),
                     SB_OK);
    struct late_writer w = {.in = message(ch_telegram, "905:2", "Олег", "ещё вопрос")};
    sb_inbound_add_identity(w.in, SB_ID_TELEGRAM, "905");
    race_the_writer(&w);
    assert_int_equal(w.res.conversation_id, r0.conversation_id);
    assert_false(w.res.conversation_created);
    char status[32];
    struct sb_db_rows r;
    assert_int_equal(sb_db_exec(db,
                                "SELECT status, unread, resolved_at IS NULL FROM "
                                "conversations WHERE id = ?",
                                a, 1, &r, err, sizeof err),
                     SB_OK);
    snprintf(status, sizeof status, "%s", sb_db_cell(&r, 0, 0));
    assert_string_equal(status, "open");
    assert_int_equal(sb_db_cell_int(&r, 0, 1), 2);
    assert_int_equal(sb_db_cell_int(&r, 0, 2), 1);
    sb_db_rows_free(&r);
    char types[256];
    assert_string_equal(event_types(last_event, types, sizeof types),
                        "conversation.updated,interaction.created");
    assert_int_equal(query_int("SELECT JSON_EXTRACT(data, '$.reopened') = 'true' FROM events "
                               "WHERE id > ? AND type = 'conversation.updated'",
                               last_event),
                     1);
    sb_inbound_free(&w.in);
    sb_inbound_free(&first);
}

/* An e-mail thread (not under the client's lock: found by its message id)
 * resolved meanwhile: the copy of our own reply from the Sent folder does
 * not reopen it. */
static void a_thread_resolved_meanwhile_stays_resolved(void **state)
{
    (void)state;
    struct sb_inbound *first = mail("t1@client.example", NULL, "olga@example.ru", "Заказ 905");
    struct sb_ingest_result r0 = ingest_ok(first);
    char err[512] = "";
    assert_int_equal(sb_db_begin(db, err, sizeof err), SB_OK);
    struct sb_db_val a[] = {SB_INT(r0.conversation_id)};
    assert_int_equal(sb_db_exec(db,
                                "UPDATE conversations SET status = 'resolved', "
                                "resolved_at = NOW(6) WHERE id = ?",
                                a, 1, NULL, err, sizeof err),
                     SB_OK);
    struct late_writer w = {
        .in = mail("t2@shop.example", "t1@client.example", "olga@example.ru", "Re: Заказ 905")};
    w.in->direction = SB_DIR_OUT;
    race_the_writer(&w);
    assert_int_equal(w.res.conversation_id, r0.conversation_id);
    struct sb_db_rows r;
    assert_int_equal(sb_db_exec(db,
                                "SELECT status, resolved_at IS NOT NULL FROM conversations "
                                "WHERE id = ?",
                                a, 1, &r, err, sizeof err),
                     SB_OK);
    char status[32];
    snprintf(status, sizeof status, "%s", sb_db_cell(&r, 0, 0));
    int resolved_at = (int)sb_db_cell_int(&r, 0, 1);
    sb_db_rows_free(&r);
    assert_string_equal(status, "resolved");
    assert_int_equal(resolved_at, 1);
    sb_inbound_free(&w.in);
    sb_inbound_free(&first);
}

/* The client merged into another meanwhile (the merge's statements, as
 * clients.c runs them, in one transaction): the reply lands with the kept
 * client, not with the tombstone. */
static void a_client_merged_meanwhile_gets_the_message(void **state)
{
    (void)state;
    struct sb_inbound *older = message(ch_telegram, "906:1", "Пётр", "привет");
    sb_inbound_add_identity(older, SB_ID_TELEGRAM, "906");
    struct sb_ingest_result keep = ingest_ok(older);
    struct sb_inbound *first = mail("p1@client.example", NULL, "petr@example.ru", "Шкаф");
    struct sb_ingest_result gone = ingest_ok(first);
    assert_int_not_equal(gone.client_id, keep.client_id);
    char err[512] = "";
    assert_int_equal(sb_db_begin(db, err, sizeof err), SB_OK);
    struct sb_db_val ab[] = {SB_INT(keep.client_id), SB_INT(gone.client_id)};
    static const char *const merge[] = {
        "SELECT COUNT(*) FROM clients WHERE id IN (?, ?) ORDER BY id FOR UPDATE",
        "UPDATE client_identities SET client_id = ? WHERE client_id = ?",
        "UPDATE conversations SET client_id = ? WHERE client_id = ?",
        "UPDATE interactions SET client_id = ? WHERE client_id = ?",
        "UPDATE clients SET merged_into = ? WHERE id = ?",
    };
    for (size_t i = 0; i < sizeof merge / sizeof merge[0]; i++) {
        struct sb_db_rows r;
        int rc = sb_db_exec(db, merge[i], ab, 2, &r, err, sizeof err);
        if (rc != SB_OK)
            fprintf(stderr, "%s: %s\n", merge[i], err);
        assert_int_equal(rc, SB_OK);
        sb_db_rows_free(&r);
    }
    struct late_writer w = {
        .in = mail("p2@client.example", "p1@client.example", "petr@example.ru", "Re: Шкаф")};
    race_the_writer(&w);
    assert_int_equal(w.res.client_id, keep.client_id);
    assert_int_equal(w.res.conversation_id, gone.conversation_id);
    assert_int_equal(query_int("SELECT client_id FROM interactions WHERE external_id = "
                               "'p2@client.example' AND ? > 0",
                               1),
                     keep.client_id);
    sb_inbound_free(&w.in);
    sb_inbound_free(&first);
    sb_inbound_free(&older);
}

/* Batches reach the server as JSON, which carries only UTF-8: text that a
 * utf8mb4 column refuses is refused as before, and nothing is stored. */
static void text_that_is_not_utf8_is_refused(void **state)
{
    (void)state;
    struct sb_inbound *in[2];
    in[0] = message(ch_telegram, "904:1", "Ян", "хорошо");
    sb_inbound_add_identity(in[0], SB_ID_TELEGRAM, "904");
    in[1] = message(ch_telegram, "904:2", "Ян", "plain \xD0 broken");
    sb_inbound_add_identity(in[1], SB_ID_TELEGRAM, "904");
    struct sb_ingest_result r[2];
    char err[256] = "";
    assert_int_equal(
        sb_ingest_batch(db, &opt, (const struct sb_inbound *const *)in, 2, r, err, sizeof err),
        SB_ERR_INVALID);
    assert_int_equal(
        query_int("SELECT COUNT(*) FROM interactions WHERE external_id LIKE '904:%'", 0), 0);
    assert_int_equal(query_int("SELECT COUNT(*) FROM client_identities WHERE value = '904'", 0), 0);
    for (int i = 0; i < 2; i++)
        sb_inbound_free(&in[i]);
}

static void bad_inbound_is_refused_clearly(void **state)
{
    (void)state;
    struct sb_inbound *in = sb_inbound_new();
    in->channel_id = ch_form;
    in->kind = SB_IK_FORM;
    struct sb_ingest_result res;
    char err[256] = "";
    assert_int_equal(sb_ingest(db, &opt, in, &res, err, sizeof err), SB_ERR_INVALID);
    assert_non_null(strstr(err, "external id"));
    sb_inbound_free(&in);
}

/* A client's last activity moves by the minute (CLIENT_TOUCH_SLACK_US in
 * ingest.c): a message seconds after the last one leaves the row alone, one
 * more than a minute later moves it; the conversation keeps exact times. */
static void client_activity_moves_by_the_minute(void **state)
{
    (void)state;
    static const char q_client_la[] =
        "SELECT UNIX_TIMESTAMP(last_activity_at) FROM clients WHERE id = ?";
    static const char q_conv_la[] =
        "SELECT UNIX_TIMESTAMP(last_activity_at) FROM conversations WHERE id = ?";
    int64_t t0 = (int64_t)time(NULL) - 3600;
    struct sb_inbound *in = message(ch_telegram, "880001:1", "Минутный Клиент", "первое");
    sb_inbound_add_identity(in, SB_ID_TELEGRAM, "880001");
    in->occurred_at_us = t0 * 1000000;
    struct sb_ingest_result r = ingest_ok(in);
    sb_inbound_free(&in);
    assert_int_equal(query_int(q_client_la, r.client_id), t0);

    in = message(ch_telegram, "880001:2", "Минутный Клиент", "через 20 секунд");
    sb_inbound_add_identity(in, SB_ID_TELEGRAM, "880001");
    in->occurred_at_us = (t0 + 20) * 1000000;
    struct sb_ingest_result r2 = ingest_ok(in);
    sb_inbound_free(&in);
    assert_int_equal(r2.client_id, r.client_id);
    assert_int_equal(query_int(q_client_la, r.client_id), t0);
    assert_int_equal(query_int(q_conv_la, r2.conversation_id), t0 + 20);

    in = message(ch_telegram, "880001:3", "Минутный Клиент", "через две минуты");
    sb_inbound_add_identity(in, SB_ID_TELEGRAM, "880001");
    in->occurred_at_us = (t0 + 120) * 1000000;
    ingest_ok(in);
    sb_inbound_free(&in);
    assert_int_equal(query_int(q_client_la, r.client_id), t0 + 120);
}

/* `n` Telegram messages "<ext>:<i>" from user uid + i % users. */
static void telegram_batch(struct sb_inbound **ins, int n, long long ext, long long uid, int users,
                           const char *name, const char *text)
{
    for (int i = 0; i < n; i++) {
        char e[48], u[32];
        snprintf(e, sizeof e, "%lld:%d", ext, i);
        snprintf(u, sizeof u, "%lld", uid + i % users);
        ins[i] = message(ch_telegram, e, name, text);
        sb_inbound_add_identity(ins[i], SB_ID_TELEGRAM, u);
    }
}

/* Raw bodies go in multi-row statements (ingest.c, store_raw): 70 messages
 * in one batch cross the 64-row chunk, sizes differ, two messages carry the
 * same bytes (stored once). Every interaction points at its own bytes. */
static void raw_bodies_are_stored_in_chunks(void **state)
{
    (void)state;
    enum { N = 70 };
    static char bodies[N][64];
    struct sb_inbound *ins[N];
    struct sb_ingest_result res[N];
    int64_t before = query_int("SELECT COUNT(*) FROM blobs", 0);
    telegram_batch(ins, N, 990001, 990000, 7, "Сырой Текст", "raw");
    for (int i = 0; i < N; i++) {
        /* messages 0 and 1 carry the same bytes */
        snprintf(bodies[i], sizeof bodies[i], "{\"update\":%d,\"pad\":\"%.*s\"}", i ? i : 1,
                 (i ? i : 1) % 23, "xxxxxxxxxxxxxxxxxxxxxxx");
        ins[i]->raw = (const unsigned char *)bodies[i];
        ins[i]->raw_len = strlen(bodies[i]);
    }
    ingest_batch_ok(ins, N, res);
    char err[256] = "";
    /* N bodies, two of them the same */
    assert_int_equal(query_int("SELECT COUNT(*) FROM blobs", 0), before + N - 1);
    for (int i = 0; i < N; i++) {
        static const char q[] = "SELECT b.data FROM interactions i JOIN blobs b "
                                "ON b.sha256 = i.raw_sha256 AND b.size = LENGTH(b.data) "
                                "WHERE i.id = ?";
        struct sb_db_val a[] = {SB_INT(res[i].interaction_id)};
        struct sb_db_rows r;
        assert_int_equal(sb_db_exec(db, q, a, 1, &r, err, sizeof err), SB_OK);
        assert_int_equal(r.nrows, 1);
        assert_string_equal(sb_db_cell(&r, 0, 0), bodies[i]);
        sb_db_rows_free(&r);
        sb_inbound_free(&ins[i]);
    }
}

/* A batch's events take consecutive ids (VALUES rows, ingest.c): the
 * events tailer (ws.c) takes a hole for a transaction still running and
 * keeps looking for it. 70 new people: 210 events, across the 64-row
 * statements. */
static void a_batch_leaves_no_holes_in_event_ids(void **state)
{
    (void)state;
    enum { N = 70 };
    struct sb_inbound *ins[N];
    struct sb_ingest_result res[N];
    int64_t before = query_int("SELECT COALESCE(MAX(id), 0) FROM events", 0);
    telegram_batch(ins, N, 991001, 991000, N, "Без Дыр", "hello");
    ingest_batch_ok(ins, N, res);
    for (int i = 0; i < N; i++)
        sb_inbound_free(&ins[i]);
    static const char q_n[] = "SELECT COUNT(*) FROM events WHERE id > ?";
    static const char q_span[] = "SELECT MAX(id) - MIN(id) + 1 FROM events WHERE id > ?";
    assert_int_equal(query_int(q_n, before), 3 * N);
    assert_int_equal(query_int(q_span, before), 3 * N);
    static const char q_types[] =
        "SELECT COUNT(*) FROM events WHERE id > ? AND type = 'interaction.created' "
        "AND JSON_VALUE(data, '$.preview') = 'hello'";
    assert_int_equal(query_int(q_types, before), N);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(anna_is_one_client_across_channels),
        cmocka_unit_test(client_activity_moves_by_the_minute),
        cmocka_unit_test(raw_bodies_are_stored_in_chunks),
        cmocka_unit_test(a_batch_leaves_no_holes_in_event_ids),
        cmocka_unit_test(an_edit_keeps_the_original),
        cmocka_unit_test(email_threads_by_in_reply_to_and_references),
        cmocka_unit_test(resolved_reopens_within_window_else_new),
        cmocka_unit_test(auto_replies_do_not_reopen_and_bounces_have_no_client),
        cmocka_unit_test(several_clients_oldest_wins_and_merge_is_suggested),
        cmocka_unit_test(invalid_phone_is_kept_raw_and_never_matched),
        cmocka_unit_test(eight_threads_create_one_client),
        cmocka_unit_test(one_new_person_twice_in_a_batch_is_one_client),
        cmocka_unit_test(a_message_and_its_edit_in_one_batch),
        cmocka_unit_test(a_reply_threads_to_a_mail_earlier_in_the_batch),
        cmocka_unit_test(a_batch_joins_the_conversation_it_opens),
        cmocka_unit_test(concurrent_batches_open_one_conversation),
        cmocka_unit_test(a_conversation_resolved_meanwhile_is_reopened),
        cmocka_unit_test(a_thread_resolved_meanwhile_stays_resolved),
        cmocka_unit_test(a_client_merged_meanwhile_gets_the_message),
        cmocka_unit_test(text_that_is_not_utf8_is_refused),
        cmocka_unit_test(bad_inbound_is_refused_clearly),
    };
    return cmocka_run_group_tests_name("ingest", tests, setup, teardown);
}

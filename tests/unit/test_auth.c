/* auth.h and users.h, the parts that need no database: password hashing,
 * tokens, e-mail normalisation, roles and generated passwords.
 *
 * Argon2id is slow on purpose (more so under ASan), so the suite hashes
 * twice and verifies twice in all. Inputs are copied into exact-size
 * buffers and outputs written into exact-size buffers, so ASan reports a
 * byte read or written past the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "switchboard/auth.h"
#include "switchboard/err.h"
#include "switchboard/users.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_exact(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    assert_non_null(d);
    memcpy(d, s, n + 1);
    return d;
}

static int group_setup(void **state)
{
    (void)state;
    char err[128] = "";
    return sb_auth_init(err, sizeof err) == SB_OK ? 0 : -1;
}

static void test_auth_init(void **state)
{
    (void)state;
    char err[128] = "";
    /* Idempotent: a second call (already initialised) is fine too. */
    assert_int_equal(sb_auth_init(err, sizeof err), SB_OK);
    assert_int_equal(sb_auth_init(NULL, 0), SB_OK);
    assert_string_equal(err, "");
}

/* -- Passwords ----------------------------------------------------------- */

static void test_password_hash_verify(void **state)
{
    (void)state;
    const char *pw = "correct horse battery staple";
    /* The output buffer at exactly crypto_pwhash_STRBYTES. */
    char *hash = calloc(1, crypto_pwhash_STRBYTES);
    assert_non_null(hash);
    char err[128] = "";
    char *pwc = dup_exact(pw);
    assert_int_equal(sb_password_hash(pwc, hash, crypto_pwhash_STRBYTES, err, sizeof err), SB_OK);
    assert_string_equal(err, "");
    assert_true(strlen(hash) < crypto_pwhash_STRBYTES);
    assert_memory_equal(hash, "$argon2id$", 10);
    /* The plain password appears nowhere in the hash. */
    assert_null(strstr(hash, pw));
    assert_int_equal(sb_password_verify(hash, pwc), 0);
    char *wrong = dup_exact("correct horse battery stapl");
    assert_int_equal(sb_password_verify(hash, wrong), -1);
    free(wrong);
    /* Same password again: a fresh salt, so a different string. */
    char *hash2 = calloc(1, crypto_pwhash_STRBYTES);
    assert_non_null(hash2);
    assert_int_equal(sb_password_hash(pwc, hash2, crypto_pwhash_STRBYTES, err, sizeof err), SB_OK);
    assert_memory_equal(hash2, "$argon2id$", 10);
    assert_string_not_equal(hash, hash2);
    free(hash2);
    free(hash);
    free(pwc);
}

static void test_password_hash_small_buffer(void **state)
{
    (void)state;
    /* One byte short: refused before any hashing. */
    char *hash = calloc(1, crypto_pwhash_STRBYTES - 1);
    assert_non_null(hash);
    char err[128] = "";
    assert_int_equal(
        sb_password_hash("secret123", hash, crypto_pwhash_STRBYTES - 1, err, sizeof err),
        SB_ERR_INTERNAL);
    assert_true(strlen(err) > 0);
    free(hash);
    assert_int_equal(sb_password_hash("secret123", NULL, 0, NULL, 0), SB_ERR_INTERNAL);
}

/* Malformed hashes are refused without hashing (each is rejected while
 * parsing, so this costs no Argon2 time). */
static void test_password_verify_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "x",
        "not a hash at all",
        "$argon2id$",
        "$argon2id$v=19$",
        "$argon2id$v=19$m=65536,t=2,p=1$",
        "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ",                   /* salt, no hash */
        "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$",                  /* empty hash */
        "$argon2id$v=19$m=65536,t=2,p=1$!!!!$!!!!",                     /* not base64 */
        "$argon2id$v=99$m=65536,t=2,p=1$c29tZXNhbHQ$aGFzaA",            /* unknown version */
        "$2b$12$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234", /* bcrypt */
        "$argon2xyz$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$aGFzaA",
        "5f4dcc3b5aa765d61d8327deb882cf99", /* MD5 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *h = dup_exact(bad[i]);
        if (sb_password_verify(h, "password") != -1)
            fail_msg("'%s' accepted", bad[i]);
        free(h);
    }
}

/* -- Tokens -------------------------------------------------------------- */

static int is_base64url(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_'))
            return 0;
    return 1;
}

/* 32 random bytes in unpadded base64url are 43 characters. */
#define TOKEN_BODY 43

static void test_token_new(void **state)
{
    (void)state;
    const size_t len = 4 + TOKEN_BODY + 1; /* "sbt_" + body + NUL: the exact fit */
    char *t1 = malloc(len);
    char *t2 = malloc(len);
    assert_non_null(t1);
    assert_non_null(t2);
    unsigned char h1[32], h2[32], check[32];
    sb_token_new("sbt_", t1, len, h1);
    sb_token_new("sbt_", t2, len, h2);
    assert_int_equal(strlen(t1), len - 1);
    assert_memory_equal(t1, "sbt_", 4);
    assert_true(is_base64url(t1 + 4));
    assert_string_not_equal(t1, t2);
    assert_memory_not_equal(h1, h2, 32);
    /* The hash returned is the hash of the text handed out. */
    sb_token_hash(t1, check);
    assert_memory_equal(check, h1, 32);
    sb_token_hash(t2, check);
    assert_memory_equal(check, h2, 32);
    free(t1);
    free(t2);
    /* No prefix (session cookies), in the SB_TOKEN_MAX buffer callers use. */
    char t3[SB_TOKEN_MAX];
    unsigned char h3[32];
    sb_token_new("", t3, sizeof t3, h3);
    assert_int_equal(strlen(t3), TOKEN_BODY);
    assert_true(is_base64url(t3));
    sb_token_hash(t3, check);
    assert_memory_equal(check, h3, 32);
}

static void test_token_hash_vectors(void **state)
{
    (void)state;
    /* SHA-256 test vectors (FIPS 180-2). */
    static const struct {
        const char *in;
        const char *hex;
    } vec[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    };
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        char *in = dup_exact(vec[i].in);
        unsigned char h[32];
        sb_token_hash(in, h);
        char hex[65];
        sodium_bin2hex(hex, sizeof hex, h, sizeof h);
        assert_string_equal(hex, vec[i].hex);
        free(in);
    }
}

/* -- E-mail addresses ---------------------------------------------------- */

static const struct email_case {
    const char *in;
    int rc;
    const char *out;
} email_cases[] = {
    {"alice@example.com", SB_OK, "alice@example.com"},
    {"  Alice@Example.COM \t", SB_OK, "alice@example.com"},
    {"\n\tBOB@EXAMPLE.ORG\r\n", SB_OK, "bob@example.org"},
    {"a@b", SB_OK, "a@b"},
    {"first.last+tag@sub.example.co.uk", SB_OK, "first.last+tag@sub.example.co.uk"},
    {"x@localhost", SB_OK, "x@localhost"},
    {"\xc3\x9c@b.de", SB_OK, "\xc3\x9c@b.de"}, /* UTF-8 bytes are kept as they are */
    /* Broken. */
    {"", SB_ERR_INVALID, NULL},
    {"   ", SB_ERR_INVALID, NULL},
    {"no-at-sign", SB_ERR_INVALID, NULL},
    {"example.com", SB_ERR_INVALID, NULL},
    {"a@b@c", SB_ERR_INVALID, NULL},
    {"a@@b", SB_ERR_INVALID, NULL},
    {"a b@c.d", SB_ERR_INVALID, NULL},
    {"a@c .d", SB_ERR_INVALID, NULL},
    {"a\t@c.d", SB_ERR_INVALID, NULL},
    {"@example.com", SB_ERR_INVALID, NULL},
    {"  @example.com", SB_ERR_INVALID, NULL},
    {"a@", SB_ERR_INVALID, NULL},
    {"a@  ", SB_ERR_INVALID, NULL},
    {"@", SB_ERR_INVALID, NULL},
    {"a@.example.com", SB_ERR_INVALID, NULL},
    {"a@example.com.", SB_ERR_INVALID, NULL},
    {"a@.", SB_ERR_INVALID, NULL},
    {"<a@b.c>", SB_ERR_INVALID, NULL},
    {"a@b.c,d@e.f", SB_ERR_INVALID, NULL},
    {"a@b\x7f", SB_ERR_INVALID, NULL},
    {"a@b\x01", SB_ERR_INVALID, NULL},
};

static void test_email_normalize(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof email_cases / sizeof email_cases[0]; i++) {
        const struct email_case *c = &email_cases[i];
        char *in = dup_exact(c->in);
        char out[256];
        char err[512] = "";
        int rc = sb_user_email_normalize(in, out, sizeof out, err, sizeof err);
        if (rc != c->rc)
            fail_msg("case %zu '%s': rc %d, expected %d", i, c->in, rc, c->rc);
        if (rc == SB_OK) {
            assert_string_equal(out, c->out);
            assert_string_equal(err, "");
        } else {
            assert_true(strlen(err) > 0);
        }
        free(in);
    }
    char err[128] = "";
    char out[64];
    assert_int_equal(sb_user_email_normalize(NULL, out, sizeof out, err, sizeof err),
                     SB_ERR_INVALID);
    assert_true(strlen(err) > 0);
}

/* An address of `n` characters: 'a's, then "@example.com". */
static char *address_of(size_t n)
{
    const char *domain = "@example.com";
    size_t dl = strlen(domain);
    assert_true(n > dl);
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, 'A', n - dl);
    memcpy(s + n - dl, domain, dl + 1);
    return s;
}

static void test_email_length(void **state)
{
    (void)state;
    static const struct {
        size_t len;
        int rc;
    } cases[] = {{253, SB_OK},
                 {254, SB_OK},
                 {255, SB_ERR_INVALID},
                 {300, SB_ERR_INVALID},
                 {5000, SB_ERR_INVALID}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *in = address_of(cases[i].len);
        char out[256];
        char err[128] = "";
        int rc = sb_user_email_normalize(in, out, sizeof out, err, sizeof err);
        if (rc != cases[i].rc)
            fail_msg("%zu characters: rc %d, expected %d", cases[i].len, rc, cases[i].rc);
        if (rc == SB_OK) {
            assert_int_equal(strlen(out), cases[i].len);
            assert_true(out[0] == 'a'); /* lower-cased */
        }
        free(in);
    }
}

/* The output buffer: exact fit and one byte short, with surrounding
 * whitespace that trimming must remove before the length is checked. */
static void test_email_out_buffer(void **state)
{
    (void)state;
    char *in = dup_exact("  User@Example.com  "); /* 16 characters once trimmed */
    static const struct {
        size_t outlen;
        int rc;
    } cases[] = {{17, SB_OK}, {18, SB_OK}, {16, SB_ERR_INVALID}, {1, SB_ERR_INVALID}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = malloc(cases[i].outlen);
        assert_non_null(out);
        int rc = sb_user_email_normalize(in, out, cases[i].outlen, NULL, 0);
        if (rc != cases[i].rc)
            fail_msg("outlen %zu: rc %d, expected %d", cases[i].outlen, rc, cases[i].rc);
        if (rc == SB_OK)
            assert_string_equal(out, "user@example.com");
        free(out);
    }
    free(in);
}

/* -- Roles --------------------------------------------------------------- */

static void test_roles(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        enum sb_role role;
    } good[] = {{"admin", SB_ROLE_ADMIN}, {"agent", SB_ROLE_AGENT}, {"marketer", SB_ROLE_MARKETER}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char *n = dup_exact(good[i].name);
        enum sb_role r = 0;
        assert_int_equal(sb_role_parse(n, &r), SB_OK);
        assert_int_equal(r, good[i].role);
        assert_string_equal(sb_role_name(r), good[i].name);
        free(n);
    }
    static const char *const bad[] = {"",       "Admin", "ADMIN", "admin ", "adm",
                                      "admins", "root",  "none",  "agentx"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *n = dup_exact(bad[i]);
        enum sb_role r = SB_ROLE_AGENT;
        if (sb_role_parse(n, &r) != SB_ERR_INVALID)
            fail_msg("'%s' accepted as a role", bad[i]);
        assert_int_equal(r, SB_ROLE_AGENT); /* untouched */
        free(n);
    }
    enum sb_role r = SB_ROLE_AGENT;
    assert_int_equal(sb_role_parse(NULL, &r), SB_ERR_INVALID);
    assert_string_equal(sb_role_name(0), "none");
    assert_string_equal(sb_role_name(SB_ROLE_ADMIN | SB_ROLE_AGENT), "none");
    assert_string_equal(sb_role_name(SB_ROLE_ANY), "none");
    assert_string_equal(sb_role_name((enum sb_role)(1 << 5)), "none");
}

/* -- Generated passwords ------------------------------------------------- */

static const char alphabet[] = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

static void test_password_generate(void **state)
{
    (void)state;
    char *pw = malloc(21); /* exact fit for 20 characters */
    assert_non_null(pw);
    sb_password_generate(pw, 21);
    assert_int_equal(strlen(pw), 20);
    assert_int_equal(strspn(pw, alphabet), 20);
    assert_null(strpbrk(pw, "0O1lI"));
    char prev[21];
    memcpy(prev, pw, 21);
    sb_password_generate(pw, 21);
    assert_string_not_equal(pw, prev);
    free(pw);
    /* A larger buffer still gets 20 characters. */
    char big[64];
    memset(big, 'Z', sizeof big);
    sb_password_generate(big, sizeof big);
    assert_int_equal(strlen(big), 20);
    /* Smaller buffers are filled and terminated, never overrun. */
    static const size_t small[] = {1, 2, 8, 20};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
        char *b = malloc(small[i]);
        assert_non_null(b);
        sb_password_generate(b, small[i]);
        assert_int_equal(strlen(b), small[i] - 1);
        assert_int_equal(strspn(b, alphabet), small[i] - 1);
        free(b);
    }
}

/* Every character of the alphabet shows up and nothing else does: 200
 * passwords are 4000 draws from 57 symbols, ~70 of each expected. */
static void test_password_generate_alphabet(void **state)
{
    (void)state;
    int seen[256] = {0};
    for (int i = 0; i < 200; i++) {
        char pw[21];
        sb_password_generate(pw, sizeof pw);
        for (int j = 0; j < 20; j++)
            seen[(unsigned char)pw[j]]++;
    }
    for (int c = 0; c < 256; c++) {
        int in_alphabet = c && strchr(alphabet, c) != NULL;
        if (in_alphabet && seen[c] == 0)
            fail_msg("'%c' never generated", c);
        if (!in_alphabet && seen[c] != 0)
            fail_msg("character %d generated", c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_init),
        cmocka_unit_test(test_password_hash_verify),
        cmocka_unit_test(test_password_hash_small_buffer),
        cmocka_unit_test(test_password_verify_malformed),
        cmocka_unit_test(test_token_new),
        cmocka_unit_test(test_token_hash_vectors),
        cmocka_unit_test(test_email_normalize),
        cmocka_unit_test(test_email_length),
        cmocka_unit_test(test_email_out_buffer),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_password_generate),
        cmocka_unit_test(test_password_generate_alphabet),
    };
    return cmocka_run_group_tests_name("auth", tests, group_setup, NULL);
}

/* bench/imap_gen MAILDIR N: write N realistic messages into MAILDIR/new for
 * bench/imap. Sizes of a business inbox: plain text of 1-6 KB, a fifth
 * multipart/alternative with HTML, one in twenty with a small base64
 * attachment; 2,000 different senders; every Message-ID unique; one in ten
 * a reply to an earlier message. Deterministic (fixed seed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long long rng = 88172645463325252ULL;

static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static const char *const words[] = {
    "order",    "invoice", "delivery", "price",   "contract", "please",   "thank",    "you",
    "the",      "a",       "we",       "would",   "like",     "to",       "confirm",  "schedule",
    "meeting",  "next",    "week",     "payment", "received", "shipment", "status",   "update",
    "question", "about",   "product",  "support", "request",  "quote",    "discount", "volume",
};

static void text(FILE *f, size_t bytes)
{
    size_t n = 0, col = 0;
    while (n < bytes) {
        const char *w = words[rnd(sizeof words / sizeof *words)];
        size_t l = strlen(w) + 1;
        fprintf(f, "%s ", w);
        n += l;
        col += l;
        if (col > 68) {
            fputs("\r\n", f);
            n += 2;
            col = 0;
        }
    }
    fputs("\r\n", f);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: imap_gen MAILDIR N\n");
        return 2;
    }
    long n = atol(argv[2]);
    char path[4096];
    for (long i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/new/%ld.M%ldP1.bench", argv[1], 1700000000L + i, i);
        FILE *f = fopen(path, "wb");
        if (!f) {
            perror(path);
            return 1;
        }
        unsigned who = rnd(2000);
        long day = 1 + i % 28;
        fprintf(f,
                "Return-Path: <client%u@example.com>\r\n"
                "Received: from mx.example.com (mx.example.com [192.0.2.1])\r\n"
                "\tby mail.shop.example with ESMTPS id %lx\r\n"
                "\tfor <sales@shop.example>; Mon, %ld Oct 2026 10:%02ld:00 +0000\r\n"
                "From: Client %u <client%u@example.com>\r\n"
                "To: Sales <sales@shop.example>\r\n"
                "Subject: Request %ld about order %u\r\n"
                "Date: Mon, %ld Oct 2026 10:%02ld:00 +0000\r\n"
                "Message-ID: <bench-%ld@example.com>\r\n",
                who, (unsigned long)i, day, i % 60, who, who, i, rnd(100000), day, i % 60, i);
        if (i > 0 && rnd(10) == 0) {
            long to = rnd((unsigned)i);
            fprintf(
                f,
                "In-Reply-To: <bench-%ld@example.com>\r\nReferences: <bench-%ld@example.com>\r\n",
                to, to);
        }
        fputs("MIME-Version: 1.0\r\n", f);
        size_t body = 1000 + rnd(5000);
        unsigned kind = rnd(20);
        if (kind < 15) {
            fputs("Content-Type: text/plain; charset=utf-8\r\n\r\n", f);
            text(f, body);
        } else if (kind < 19) {
            fputs("Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n--alt\r\n"
                  "Content-Type: text/plain; charset=utf-8\r\n\r\n",
                  f);
            text(f, body / 2);
            fputs("--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>", f);
            text(f, body / 2);
            fputs("</p></body></html>\r\n--alt--\r\n", f);
        } else {
            fputs("Content-Type: multipart/mixed; boundary=\"mix\"\r\n\r\n--mix\r\n"
                  "Content-Type: text/plain; charset=utf-8\r\n\r\n",
                  f);
            text(f, body);
            fputs("--mix\r\nContent-Type: application/pdf; name=\"quote.pdf\"\r\n"
                  "Content-Disposition: attachment; filename=\"quote.pdf\"\r\n"
                  "Content-Transfer-Encoding: base64\r\n\r\n",
                  f);
            static const char b64[] =
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            for (int line = 0; line < 120; line++) {
                for (int c = 0; c < 76; c++)
                    fputc(b64[rnd(64)], f);
                fputs("\r\n", f);
            }
            fputs("--mix--\r\n", f);
        }
        if (fclose(f)) {
            perror(path);
            return 1;
        }
    }
    return 0;
}

/* Logging to stderr, one line per event. Text for people at a terminal, JSON
 * for log shippers. Lines are assembled in a stack buffer and written with
 * one write(2), so lines from several threads never interleave. */
#include "switchboard/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Set once at start-up before threads exist; read-only afterwards. */
static enum sb_log_level log_min = SB_LOG_INFO;
static enum sb_log_format log_format = SB_LOG_TEXT;

static const char *const level_names[] = {"debug", "info", "warn", "error", "fatal"};

void sb_log_setup(enum sb_log_level min, enum sb_log_format format)
{
    log_min = min;
    log_format = format;
}

int sb_log_level_parse(const char *s, enum sb_log_level *level_r)
{
    for (int i = SB_LOG_DEBUG; i <= SB_LOG_FATAL; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *level_r = (enum sb_log_level)i;
            return 0;
        }
    }
    if (strcmp(s, "warning") == 0) {
        *level_r = SB_LOG_WARN;
        return 0;
    }
    return -1;
}

int sb_log_format_parse(const char *s, enum sb_log_format *format_r)
{
    if (strcmp(s, "text") == 0)
        *format_r = SB_LOG_TEXT;
    else if (strcmp(s, "json") == 0)
        *format_r = SB_LOG_JSON;
    else
        return -1;
    return 0;
}

/* Append `s` JSON-escaped; control characters from provider text would
 * otherwise break the one-line-per-event promise. */
static size_t append_escaped(char *out, size_t pos, size_t cap, const char *s, int json)
{
    for (; *s && pos + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (json && (c == '"' || c == '\\')) {
            out[pos++] = '\\';
            out[pos++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            pos += (size_t)snprintf(out + pos, cap - pos, json ? "\\u%04x" : "\\x%02x", c);
        } else {
            out[pos++] = (char)c;
        }
    }
    return pos;
}

void sb_log(enum sb_log_level level, const char *module, const char *fmt, ...)
{
    if (level < log_min)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[64];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (long)(ts.tv_nsec / 1000000) % 1000);

    char line[4096];
    size_t cap = sizeof line - 2, pos;
    int json = log_format == SB_LOG_JSON;
    if (json) {
        pos = (size_t)snprintf(line, cap, "{\"ts\":\"%s\",\"level\":\"%s\",\"module\":\"", when,
                               level_names[level]);
        pos = append_escaped(line, pos, cap, module, 1);
        pos += (size_t)snprintf(line + pos, cap - pos, "\",\"msg\":\"");
        pos = append_escaped(line, pos, cap, msg, 1);
        if (pos < cap)
            line[pos++] = '"';
        if (pos < cap)
            line[pos++] = '}';
    } else {
        pos = (size_t)snprintf(line, cap, "%s %-5s %s: ", when, level_names[level], module);
        pos = append_escaped(line, pos, cap, msg, 0);
    }
    line[pos++] = '\n';
    ssize_t n = write(STDERR_FILENO, line, pos);
    (void)n;
}

/* Logging: one line per event on stderr, as text or as JSON.
 *
 * Levels keep fixed meanings (cf. Postfix msg.c): debug for developers, info for
 * normal operation, warn for something odd that was handled, error for a
 * failed operation the program survives, fatal for one it does not. Safe to
 * call from any thread: each line is built in a local buffer and written with
 * a single write(2). */
#ifndef SB_LOG_H
#define SB_LOG_H

enum sb_log_level { SB_LOG_DEBUG, SB_LOG_INFO, SB_LOG_WARN, SB_LOG_ERROR, SB_LOG_FATAL };
enum sb_log_format { SB_LOG_TEXT, SB_LOG_JSON };

void sb_log_setup(enum sb_log_level min, enum sb_log_format format);

/* Parse "debug|info|warn|error" / "text|json"; return 0 or -1 when unknown. */
int sb_log_level_parse(const char *s, enum sb_log_level *level_r);
int sb_log_format_parse(const char *s, enum sb_log_format *format_r);

/* `module` names the part of the program speaking ("http", "db", "migrate"). */
void sb_log(enum sb_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define sb_debug(mod, ...) sb_log(SB_LOG_DEBUG, mod, __VA_ARGS__)
#define sb_info(mod, ...)  sb_log(SB_LOG_INFO, mod, __VA_ARGS__)
#define sb_warn(mod, ...)  sb_log(SB_LOG_WARN, mod, __VA_ARGS__)
#define sb_error(mod, ...) sb_log(SB_LOG_ERROR, mod, __VA_ARGS__)

#endif

#ifndef HR_BASE_LOG_H
#define HR_BASE_LOG_H

/* Leveled logging to stderr, one line per event. */
typedef enum hr_log_level {
    HR_LOG_ERROR = 0,
    HR_LOG_WARN,
    HR_LOG_INFO,
    HR_LOG_DEBUG,
} hr_log_level_t;

typedef enum hr_log_format {
    HR_LOG_TEXT = 0, /* 2026-11-26T20:00:00.000Z info message */
    HR_LOG_LOGFMT,   /* time=... level=info msg="message" */
    HR_LOG_JSON,     /* {"time":"...","level":"info","msg":"message"} */
} hr_log_format_t;

void hr_log_set_level(hr_log_level_t level);
/* Sets the line format; 0, or HR_EINVAL for an unknown name ("text", "logfmt", "json"). */
int hr_log_set_format_name(const char *name);
hr_log_level_t hr_log_get_level(void);
void hr_log(hr_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define hr_log_error(...) hr_log(HR_LOG_ERROR, __VA_ARGS__)
#define hr_log_warn(...) hr_log(HR_LOG_WARN, __VA_ARGS__)
#define hr_log_info(...) hr_log(HR_LOG_INFO, __VA_ARGS__)
#define hr_log_debug(...)                                                                          \
    do {                                                                                           \
        if (hr_log_get_level() >= HR_LOG_DEBUG)                                                    \
            hr_log(HR_LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)

#endif

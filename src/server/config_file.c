/* The config file: INI read by libinih, every key an option of the table (config.c) set
 * through the same hr_config_set, so the file, the command line and --help cannot
 * disagree.
 *
 * libinih's handler is not told the line number in Debian's build, reports only the
 * first syntax error, and reads through a 200-byte line buffer. So the file is fed to
 * ini_parse_stream by our own reader, one line per call: it counts lines, strips
 * comments and leading blanks (an indented line is then never taken for a multi-line
 * continuation), remembers the whole line (the handler takes the value from it, so a
 * long allowed-origins list or a quoted value is never cut), and reports any line inih
 * did not hand to the handler and that is neither blank nor a [section]. Every error is
 * reported with its line; the caller decides what errors mean (nothing is applied). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "base/alloc.h"
#include "herald/error.h"
#include "server/config_file.h"

typedef struct parse_state {
    hr_config_t *cfg;
    const char *file; /* for messages */
    FILE *f;          /* the file, or */
    const char *text; /* the rest of the text */
    char *line;       /* the current line, comments and outer blanks removed */
    size_t cap;
    int lineno;
    bool handled;              /* the handler ran for the current line */
    int section_line;          /* line of the last [section] header */
    int reported_section_line; /* the unknown section already reported */
    int *set_on;               /* per option: the line that set it, 0 if none */
    int errors;
    hr_config_error_fn on_error;
    void *data;
} parse_state_t;

static void report(parse_state_t *st, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report(parse_state_t *st, int line, const char *fmt, ...)
{
    char msg[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    st->errors++;
    if (st->on_error)
        st->on_error(st->data, st->file, line, msg);
}

static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

static bool reserve(parse_state_t *st, size_t need)
{
    if (need <= st->cap)
        return true;
    size_t cap = st->cap ? st->cap : 256;
    while (cap < need)
        cap *= 2;
    char *b = hr_realloc(st->line, cap);
    if (!b)
        return false;
    st->line = b;
    st->cap = cap;
    return true;
}

/* Reads the next raw line into st->line (without its newline). False at the end (or out
 * of memory, reported). */
static bool read_line(parse_state_t *st)
{
    size_t n = 0;
    if (st->f) {
        for (;;) {
            if (!reserve(st, n + 256))
                goto nomem;
            if (!fgets(st->line + n, (int)(st->cap - n), st->f))
                break;
            n += strlen(st->line + n);
            if (n && st->line[n - 1] == '\n')
                break;
        }
        if (n == 0)
            return false;
        if (st->line[n - 1] == '\n')
            n--;
    } else {
        if (!st->text || !*st->text)
            return false;
        const char *nl = strchr(st->text, '\n');
        n = nl ? (size_t)(nl - st->text) : strlen(st->text);
        if (!reserve(st, n + 1))
            goto nomem;
        memcpy(st->line, st->text, n);
        st->text += nl ? n + 1 : n;
    }
    st->line[n] = 0;
    return true;
nomem:
    report(st, st->lineno + 1, "out of memory");
    return false;
}

/* Removes the newline, a UTF-8 byte-order mark, leading and trailing blanks, and
 * comments: a line starting with # or ;, or from a # or ; that follows a blank and is
 * outside double quotes. */
static void normalise(parse_state_t *st)
{
    char *l = st->line;
    size_t start = 0;
    if (st->lineno == 1 && strncmp(l, "\xEF\xBB\xBF", 3) == 0)
        start = 3;
    while (blank(l[start]))
        start++;
    memmove(l, l + start, strlen(l + start) + 1);
    if (l[0] == '#' || l[0] == ';')
        l[0] = 0;
    bool quoted = false;
    for (size_t i = 0; l[i]; i++) {
        if (l[i] == '"')
            quoted = !quoted;
        else if (!quoted && (l[i] == '#' || l[i] == ';') && i > 0 && blank(l[i - 1])) {
            l[i] = 0;
            break;
        }
    }
    size_t n = strlen(l);
    while (n && blank(l[n - 1]))
        l[--n] = 0;
}

/* A line inih took without calling the handler: blank, a section, or a syntax error. */
static void check_unhandled(parse_state_t *st)
{
    const char *l = st->line;
    if (st->lineno == 0 || st->handled || !l || !*l)
        return;
    st->handled = true; /* checked once */
    if (l[0] == '[') {
        const char *close = strchr(l, ']');
        st->section_line = st->lineno;
        if (!close)
            report(st, st->lineno, "expected ']' at the end of the section name");
        else if (close[1])
            report(st, st->lineno, "unexpected text after ']'");
        return;
    }
    report(st, st->lineno, "expected KEY = VALUE or [section], not '%.60s%s'", l,
           strlen(l) > 60 ? "..." : "");
}

/* inih's reader (fgets-like): one line per call; num is inih's buffer size. */
static char *next_line(char *str, int num, void *stream)
{
    parse_state_t *st = stream;
    check_unhandled(st);
    if (!read_line(st))
        return NULL;
    st->lineno++;
    st->handled = false;
    normalise(st);
    /* inih sees at most num - 2 bytes; the handler reads the value from st->line. */
    size_t n = strlen(st->line), room = num > 2 ? (size_t)num - 2 : 0;
    if (n > room)
        n = room;
    memcpy(str, st->line, n);
    str[n] = '\n';
    str[n + 1] = 0;
    return str;
}

/* The value of the current line: after the first '=' or ':' (inih's split), without
 * outer blanks, and without one pair of enclosing double quotes. */
static const char *line_value(parse_state_t *st)
{
    char *v = st->line + strcspn(st->line, "=:");
    if (*v)
        v++;
    while (blank(*v))
        v++;
    size_t n = strlen(v);
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
        v[n - 1] = 0;
        v++;
    }
    return v;
}

static int on_pair(void *user, const char *section, const char *name, const char *ivalue)
{
    (void)ivalue;
    parse_state_t *st = user;
    st->handled = true;
    char key[80];
    if (!*name) {
        report(st, st->lineno, "missing key before '='");
        return 1;
    }
    if (strcmp(section, "routes") == 0) {
        static const char *const routes[] = {"echo", "broadcast", "pubsub", "stomp"};
        size_t i = 0;
        while (i < 4 && strcmp(name, routes[i]) != 0)
            i++;
        if (i == 4) {
            report(st, st->lineno,
                   "unknown route '%.60s' in [routes] (echo, broadcast, pubsub, stomp)", name);
            return 1;
        }
        snprintf(key, sizeof(key), "route-%s", routes[i]);
    } else if (section[0] == 0 || strcmp(section, "herald") == 0) {
        snprintf(key, sizeof(key), "%s", name);
    } else {
        if (st->reported_section_line != st->section_line)
            report(st, st->section_line,
                   "unknown section [%.60s] (expected [herald] or [routes]); its keys are "
                   "ignored",
                   section);
        st->reported_section_line = st->section_line;
        return 1;
    }
    int idx = hr_config_index(key);
    if (idx < 0 || strlen(name) >= sizeof(key) - 6) {
        report(st, st->lineno, "unknown option '%.60s' (see herald serve --help)", name);
        return 1;
    }
    if (strcmp(key, "namespace") != 0 && st->set_on[idx]) {
        report(st, st->lineno, "'%s' given twice (first on line %d)", name, st->set_on[idx]);
        return 1;
    }
    st->set_on[idx] = st->lineno;
    const char *value = hr_config_keep(st->cfg, line_value(st));
    char err[512];
    if (!value)
        report(st, st->lineno, "out of memory");
    else if (hr_config_set_file(st->cfg, key, value, err, sizeof(err)) != 0)
        report(st, st->lineno, "%s", err);
    return 1;
}

static int parse(parse_state_t *st)
{
    st->set_on = hr_calloc(hr_config_count(), sizeof(int));
    if (!st->set_on) {
        report(st, 0, "out of memory");
        return HR_ENOMEM;
    }
    ini_parse_stream(next_line, st, on_pair, st);
    check_unhandled(st);
    hr_free(st->set_on);
    hr_free(st->line);
    return st->errors;
}

int hr_config_load_string(hr_config_t *cfg, const char *name, const char *text,
                          hr_config_error_fn on_error, void *data)
{
    parse_state_t st = {.cfg = cfg, .file = name, .text = text, .on_error = on_error, .data = data};
    return parse(&st);
}

int hr_config_load_file(hr_config_t *cfg, const char *path, hr_config_error_fn on_error, void *data)
{
    parse_state_t st = {.cfg = cfg, .file = path, .on_error = on_error, .data = data};
    st.f = fopen(path, "re");
    if (!st.f) {
        int e = errno;
        report(&st, 0, "cannot read: %s", strerror(e));
        return -e;
    }
    int n = parse(&st);
    int e = ferror(st.f) ? (errno ? errno : EIO) : 0;
    fclose(st.f);
    if (e) {
        st.errors = 0;
        report(&st, 0, "cannot read: %s", strerror(e));
        return -e;
    }
    return n;
}

int hr_config_apply_args(hr_config_t *cfg, const hr_config_arg_t *args, size_t nargs, char *err,
                         size_t errlen)
{
    hr_namespaces_t *file_ns = hr_malloc(sizeof(*file_ns));
    if (!file_ns) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *file_ns = cfg->namespaces;
    hr_namespaces_init(&cfg->namespaces);
    int rc = 0;
    for (size_t i = 0; i < nargs && rc == 0; i++)
        rc = hr_config_set(cfg, args[i].name, args[i].value, err, errlen);
    /* The command line's namespaces first; a file namespace of the same pattern yields. */
    for (size_t i = 0; rc == 0 && i < file_ns->count; i++) {
        int r = hr_namespaces_add(&cfg->namespaces, &file_ns->items[i]);
        if (r != 0 && r != HR_EEXIST) {
            snprintf(err, errlen, "more than %d namespaces (file and command line together)",
                     HR_NAMESPACES_MAX);
            rc = -1;
        }
    }
    hr_free(file_ns);
    return rc;
}

int hr_config_load(hr_config_t *cfg, const char *path, const hr_config_arg_t *args, size_t nargs,
                   hr_config_error_fn on_error, void *data)
{
    hr_config_init(cfg);
    int n = 0;
    if (path) {
        n = hr_config_load_file(cfg, path, on_error, data);
        if (n < 0)
            return n;
    }
    char err[512];
    if (hr_config_apply_args(cfg, args, nargs, err, sizeof(err)) != 0) {
        if (on_error)
            on_error(data, NULL, 0, err);
        n++;
    }
    return n;
}

/* Fuzz target for the config file (src/server/config_file.c, over the option table of
 * src/server/config.c): the input is the text of a herald.conf. Loading must never
 * crash or leak, every error must name a line of the text (0..lines+1) and come with a
 * non-empty one-line message, and the count returned must be the count reported. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/config_file.h"

typedef struct seen {
    int lines;
    int errors;
} seen_t;

static void on_error(void *data, const char *file, int line, const char *msg)
{
    seen_t *s = data;
    (void)file;
    if (line < 0 || line > s->lines + 1 || !msg || !*msg || strchr(msg, '\n'))
        abort();
    s->errors++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    seen_t s = {1, 0};
    for (size_t i = 0; i < size; i++)
        s.lines += text[i] == '\n';
    hr_config_t cfg;
    hr_config_init(&cfg);
    int rc = hr_config_load_string(&cfg, "fuzz.conf", text, on_error, &s);
    if (rc < 0 || rc != s.errors)
        abort();
    hr_config_deinit(&cfg);
    free(text);
    return 0;
}

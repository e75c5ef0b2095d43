/* herald check-config FILE: reads a config file exactly as `herald serve --config FILE`
 * would (same parser, same validation) and prints every error with its line, so a file
 * can be checked before a restart or a SIGHUP. */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "cli/cmd_check_config.h"
#include "server/config_file.h"

static void usage(FILE *out)
{
    fputs("usage: herald check-config FILE\n"
          "\n"
          "Checks a config file for `herald serve --config FILE`: prints each error as\n"
          "FILE:LINE: message and exits with 2, or prints \"FILE: ok\" and exits with 0.\n",
          out);
}

static void print_error(void *data, const char *file, int line, const char *msg)
{
    (void)data;
    if (line > 0)
        fprintf(stderr, "%s:%d: %s\n", file, line, msg);
    else
        fprintf(stderr, "%s: %s\n", file ? file : "herald check-config", msg);
}

int hr_cmd_check_config(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc != 2 || argv[1][0] == 0) {
        usage(stderr);
        return 2;
    }
    const char *path = argv[1];
    hr_config_t *cfg = hr_malloc(sizeof(*cfg));
    if (!cfg) {
        fprintf(stderr, "herald check-config: out of memory\n");
        return 1;
    }
    int n = hr_config_load(cfg, path, NULL, 0, print_error, NULL);
    if (n > 0)
        fprintf(stderr, "%s: %d error%s\n", path, n, n == 1 ? "" : "s");
    else if (n == 0)
        printf("%s: ok\n", path);
    hr_config_deinit(cfg);
    hr_free(cfg);
    return n == 0 ? 0 : 2;
}

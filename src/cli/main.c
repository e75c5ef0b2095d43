/* herald: subcommand dispatch only. Exit codes: 0 success, 1 runtime failure (cannot
 * listen, ...), 2 usage error (unknown command, option or value). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmd_check_config.h"
#include "server/config.h"
#include "herald/version.h"

static void usage(FILE *out)
{
    fputs("usage: herald <command> [options]\n"
          "\n"
          "commands:\n"
          "  serve        run the server (/ws echo, /broadcast, /pubsub channels, /api/)\n"
          "  client URL   interactive WebSocket client: stdin lines out, messages to stdout\n"
          "  bench        load generator: echo, broadcast and idle-connection scenarios\n"
          "  pub CHANNEL DATA   publish to a channel (through /pubsub)\n"
          "  sub CHANNEL  follow a channel; reconnects and recovers missed messages\n"
          "  check-config FILE  check a config file for serve --config (errors with their line)\n"
          "\n"
          "  herald --help, herald --version, herald <command> --help\n"
          "\n"
          "serve options (--name VALUE or --name=VALUE; or a key without '--' in the file of\n"
          "serve --config FILE):\n",
          out);
    hr_config_usage(out);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
        printf("herald %s\n", HR_VERSION_STRING);
        return 0;
    }
    if (strcmp(cmd, "serve") == 0)
        return hr_cmd_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "pub") == 0)
        return hr_cmd_pub(argc - 1, argv + 1);
    if (strcmp(cmd, "sub") == 0)
        return hr_cmd_sub(argc - 1, argv + 1);
    if (strcmp(cmd, "client") == 0)
        return hr_cmd_client(argc - 1, argv + 1);
    if (strcmp(cmd, "check-config") == 0)
        return hr_cmd_check_config(argc - 1, argv + 1);
    if (strcmp(cmd, "bench") == 0)
        return hr_cmd_bench(argc - 1, argv + 1);
    fprintf(stderr, "herald: unknown command '%s' (see herald --help)\n", cmd);
    return 2;
}

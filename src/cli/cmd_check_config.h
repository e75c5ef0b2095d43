#ifndef HR_CLI_CMD_CHECK_CONFIG_H
#define HR_CLI_CMD_CHECK_CONFIG_H

/* herald check-config FILE: argv[0] is "check-config"; returns the exit code (0 valid,
 * 2 errors or unreadable). Kept apart from cli.h, which belongs to the CLI's owner. */
int hr_cmd_check_config(int argc, char **argv);

#endif

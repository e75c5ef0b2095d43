#ifndef HR_CLI_CLI_H
#define HR_CLI_CLI_H

/* Subcommands; each gets argv with argv[0] the subcommand name; returns the exit code. */
int hr_cmd_serve(int argc, char **argv);
int hr_cmd_client(int argc, char **argv);
int hr_cmd_bench(int argc, char **argv);
int hr_cmd_pub(int argc, char **argv);
int hr_cmd_sub(int argc, char **argv);

#endif

/* Subcommands of the `switchboard` binary that live outside main.c.
 *
 * Each takes the arguments after its command word and returns the process
 * exit status: 0 done, 1 the input or the operation failed (one line
 * "switchboard: …" on stderr), 2 bad usage (a usage line on stderr). They
 * write their results to stdout and nothing else. */
#ifndef SB_CLI_H
#define SB_CLI_H

/* `switchboard identity normalize [--region RR] (--phone V | --email V |
 * --kind K --value V)`; argv[0] is "normalize". Prints the normalised value
 * on the first line; a phone extension follows as "extension: 123", an
 * e-mail display name as "name: …". `default_region` (configuration
 * identity.default_region, may be NULL) applies when --region is absent. */
int sb_cli_identity(int argc, char **argv, const char *default_region);

#endif

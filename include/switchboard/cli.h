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

/* `switchboard import clients FILE [--channel ID] [--region RR] [--dry-run]`;
 * argv[0] is "clients". Skipped rows and warnings go to stderr with their
 * line numbers (and a progress bar when stderr is a terminal); stdout ends
 * with "created N, matched N, invalid N (lines: …)". 0 when something was
 * imported or the file holds no rows, 1 when nothing could be. --region
 * beats the channel's default_region, which beats `default_region`
 * (configuration identity.default_region). */
int sb_cli_import(int argc, char **argv, const char *db_url, const char *default_region);

/* `switchboard export DIR` (see export.h); argv[0] is DIR. Prints one
 * summary line. 1 when DIR is not empty or the export failed. */
int sb_cli_export(int argc, char **argv, const char *db_url);

struct sb_config;

/* `switchboard channel add KIND --name N [--set key=value …] | list | test ID`;
 * argv[0] is the verb. `add` prints the channel as one JSON object (secrets
 * masked); `list` one per line; `test` the provider's answer. */
int sb_cli_channel(int argc, char **argv, const struct sb_config *cfg);

#endif

/* The metrictap command: one function per subcommand, dispatched by main.c. */
#ifndef MT_CLI_H
#define MT_CLI_H

int mt_cmd_run(int argc, char **argv);
int mt_cmd_ls(int argc, char **argv);
int mt_cmd_show(int argc, char **argv);
int mt_cmd_restore(int argc, char **argv);
int mt_cmd_sync(int argc, char **argv);   /* cli/sync.c */
int mt_cmd_parse(int argc, char **argv);
int mt_cmd_import(int argc, char **argv);
int mt_cmd_config(int argc, char **argv);

/* Shared helpers (cli/util.c). */
struct mt_config;
/* Loads the config (environment + files) or prints the error and exits 2. */
void mt_cli_load_config(struct mt_config *cfg);
/* The directory holding this executable, for finding the shim and agent. */
int mt_cli_self_dir(char *out, unsigned long size);
/* Finds a file installed beside the CLI: <bindir>/NAME or <bindir>/../lib/metrictap/NAME. */
int mt_cli_find_beside(const char *name, char *out, unsigned long size);
/* Formats a duration as 1h02m, 3m05s or 4.2s. */
void mt_cli_format_duration(double s, char *out, unsigned long size);

#endif

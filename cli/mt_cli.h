/* The metrictap command: one function per subcommand, dispatched by main.c. */
#ifndef MT_CLI_H
#define MT_CLI_H

#include <stddef.h>

int mt_cmd_run(int argc, char **argv);
int mt_cmd_ls(int argc, char **argv);
int mt_cmd_show(int argc, char **argv);
int mt_cmd_restore(int argc, char **argv);
int mt_cmd_reindex(int argc, char **argv);
int mt_cmd_report(int argc, char **argv);
int mt_cmd_tag(int argc, char **argv);
int mt_cmd_rename(int argc, char **argv);
int mt_cmd_rm(int argc, char **argv);
int mt_cmd_sync(int argc, char **argv);   /* cli/sync.c */
/* sync's body; exporting: write files only (`metrictap export --to`), start
 * no upload of them (no `wandb sync`). */
int mt_cli_sync_main(int argc, char **argv, int exporting);
int mt_cmd_export_to(int argc, char **argv); /* cli/export_to.c */
/* export --csv|--json: history rows on stdout (cli/export_history.c). */
int mt_cli_export_history(int argc, char **argv);
/* cli/upload_state.c: each backend's state and last problem, for show. */
void mt_cli_print_uploads(const char *run_dir);
/* The run's upload state for the UPLOAD column of `ls` ("uploaded",
 * "pending 12 points", "failed: connection refused"; one per backend, named,
 * when there are several); "" when nothing was ever uploaded. */
void mt_cli_upload_column(const char *run_dir, char *out, size_t outsz);
int mt_cmd_parse(int argc, char **argv);
int mt_cmd_import(int argc, char **argv);
int mt_cmd_config(int argc, char **argv);
int mt_cmd_recover(int argc, char **argv); /* cli/recover.c */
int mt_cmd_stack(int argc, char **argv);   /* cli/stack.c */

/* cli/usage.c: a command's usage text (what CMD --help prints), or NULL. */
const char *mt_cli_usage(const char *cmd);
#define MT_VERSION "0.1.0"

/* Shared helpers (cli/util.c). */
struct mt_config;
struct mt_index;
struct mt_value;
/* Loads the config (environment + files) or prints the error and exits 2. */
void mt_cli_load_config(struct mt_config *cfg);
/* The directory holding this executable, for finding the shim and agent. */
int mt_cli_self_dir(char *out, unsigned long size);
/* Finds a file installed beside the CLI: <bindir>/NAME or <bindir>/../lib/metrictap/NAME. */
int mt_cli_find_beside(const char *name, char *out, unsigned long size);
/* Formats a duration as 1h02m, 3m05s or 4.2s. */
void mt_cli_format_duration(double s, char *out, unsigned long size);

/* Columns of the terminal: $COLUMNS when set, else the tty's width; 0 when
 * stdout is no terminal (nothing is cut then). */
int mt_cli_term_width(void);
/* Characters (UTF-8 code points) in s. */
size_t mt_cli_text_width(const char *s);
/* A value as text: 6 significant digits, or with `full` the shortest form
 * that reads back exactly; infinities as JSON's "Infinity". */
void mt_cli_format_value(const struct mt_value *v, char *out, size_t size, int full);
/* Prints "metrictap: WHAT: MSG", the text and a caret under byte `pos`. */
void mt_cli_filter_error(const char *what, const char *text, size_t pos, const char *msg);
/* Opens the store's index or prints why not (NULL); prints the line about a
 * damaged index it rebuilt. */
struct mt_index *mt_cli_open_index(struct mt_config *cfg);
/* The checked fd of <store>/runs/<project>/<id> for a run directory the
 * index named (mt_store_dir_fd), or -1 with the reason printed. */
int mt_cli_run_dir_fd(const struct mt_config *cfg, const char *dir);

/* cli/recover.c: a run whose agent is gone is finished (its journal parsed,
 * its true state recorded) by the commands that touch it; one line says so
 * unless quiet.  Returns mt_recover_run's result. */
int mt_cli_settle(const char *run_dir, int quiet);
/* The same for every run of the store still marked running (reindex). */
void mt_cli_settle_store(const char *store, int quiet);
/* What a run lost, in one line ("1,282,342 of 2,000,000 writes were
 * dropped (capture ring full: ...)"), from run.json's capture_counts:
 * 1 when there is something to say. */
struct cJSON;
/* A count with thousands separators: "1,282,342". */
void mt_cli_format_count(double v, char *out, size_t n);
int mt_cli_drops_line(const struct cJSON *run, char *out, size_t n);

#endif

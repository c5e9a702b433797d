/* mt_meta: what a run records about its code, binary, cluster and host.
 * Every *_json function returns a new cJSON object the caller owns
 * (cJSON_Delete), or NULL when there is nothing to record; none of them
 * fails the run.  Values pass through mt_redact where they could hold a
 * secret (git remotes). */
#ifndef MT_META_H
#define MT_META_H

#include <stdbool.h>
#include <stddef.h>

struct cJSON;

/* ---- git (meta_git.c) ---- */

struct mt_meta_git_opts {
    const char *dir;            /* the working directory of the program */
    const char *run_dir;        /* diff.patch goes here (0600); NULL: no diff */
    bool code_disabled;         /* METRICTAP_DISABLE_CODE / WANDB_DISABLE_CODE */
    unsigned max_untracked;     /* list cap; 0: 100 */
    int timeout_ms;             /* per git command; 0: 5000 */
};

/* {"remote": URL with credentials stripped, "commit", "branch" (absent when
 *  detached), "dirty": bool, "untracked": [...], "untracked_truncated": bool,
 *  "diff_patch": "diff.patch", "diff_bytes": N}
 * With code_disabled: remote, branch and dirty only (no commit, no diff, no
 * file names) and "code_disabled": true.  diff.patch is `git diff HEAD
 * --binary`, written only when not empty.  NULL when git is not installed,
 * dir is not in a work tree, or git timed out. */
struct cJSON *mt_meta_git_json(const struct mt_meta_git_opts *o);

/* Splits a comma-separated glob list (WANDB_IGNORE_GLOBS style; spaces
 * around items trimmed, empty items dropped) into a NULL-terminated array;
 * free with mt_meta_globs_free.  *n gets the count. */
char **mt_meta_globs_split(const char *csv, size_t *n);
void mt_meta_globs_free(char **globs);
/* 1 when the run-relative path matches a glob (fnmatch, no flags, so '*'
 * crosses '/'; a glob without '/' is also tried on the base name), else 0.
 * The uploader calls this for every file before sending it. */
int mt_meta_ignored(const char *relpath, char **globs, size_t n);

/* ---- binaries (meta_elf.c) ---- */

enum mt_meta_elf_kind {
    MT_META_ELF_DYNAMIC = 0,  /* PT_INTERP: LD_PRELOAD works */
    MT_META_ELF_STATIC,       /* no PT_INTERP (static, static-pie) */
    MT_META_ELF_GO,           /* .go.buildinfo: raw syscalls, capture from outside */
    MT_META_ELF_MUSL,         /* dynamic, but through ld-musl: a glibc shim cannot load */
    MT_META_ELF_SCRIPT,       /* "#!": the interpreter runs it (LD_PRELOAD applies to it) */
    MT_META_ELF_OTHER,        /* not ELF, not a script */
};

/* Tells how `metrictap run` can capture path: returns an enum
 * mt_meta_elf_kind, or -errno when the file cannot be read.  interp (may be
 * NULL) gets the PT_INTERP path, or for a script its "#!" interpreter. */
int mt_meta_elf_kind(const char *path, char *interp, size_t interp_size);
const char *mt_meta_elf_kind_name(int kind);

/* {"path", "size", "sha256", "build_id" (hex, if any), "kind": "dynamic"|
 *  "static"|"go"|"musl"|"script"|"other", "interpreter", "needed": [...]}
 * NULL when path cannot be read. */
struct cJSON *mt_meta_binary_json(const char *path);

/* Finds name in PATH the way execvp does (name with a '/' is taken as is);
 * 0 and the path in out, or -ENOENT. */
int mt_meta_which(const char *name, const char *path_env, char *out, size_t size);

/* ---- cluster identity (meta_cluster.c) ---- */

struct mt_meta_cluster {
    int rank, local_rank, world_size;   /* -1 when unknown */
    const char *rank_from;              /* the variable rank came from, or NULL */
    char slurm_job_id[64], slurm_step_id[64], torchelastic_run_id[128];
    char group[128];                    /* suggested group: SLURM_JOB_ID, else TORCHELASTIC_RUN_ID */
};

/* Reads RANK/LOCAL_RANK/WORLD_SIZE, then OMPI_COMM_WORLD_RANK/_LOCAL_RANK/
 * _SIZE, PMI_RANK/PMI_SIZE, SLURM_PROCID/SLURM_LOCALID/SLURM_NTASKS (first
 * found wins), SLURM_JOB_ID, SLURM_STEP_ID, TORCHELASTIC_RUN_ID from envp.
 * Returns 1 when anything was found, else 0. */
int mt_meta_cluster_from_env(char *const envp[], struct mt_meta_cluster *c);
struct cJSON *mt_meta_cluster_json(const struct mt_meta_cluster *c);

/* ---- host (meta_host.c) ---- */

/* {"hostname", "cpu_model", "cpu_count", "memory_total_mb",
 *  "gpus": [{"index", "name", "memory_total_mb"}]} from <procfs_root>/cpuinfo
 * and meminfo, and NVML at nvml_path (NULL: libnvidia-ml.so.1, "": none). */
struct cJSON *mt_meta_host_json(const char *procfs_root, const char *nvml_path);

#endif

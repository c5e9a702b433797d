/* mt_elf: is a command one the shim can enter?
 *
 * `metrictap run` asks this before it starts a program: LD_PRELOAD reaches a
 * dynamically linked program (an ELF file with PT_INTERP), and a `#!` script
 * (its interpreter gets the shim), but not a static binary, nor a Go program
 * (Go makes raw system calls even when dynamically linked; it is known by its
 * .go.buildinfo or .note.go.buildid section).  Reads the file with libelf;
 * keeps nothing open. */
#ifndef MT_ELF_H
#define MT_ELF_H

#include <stddef.h>

enum mt_elf_kind {
    MT_ELF_DYNAMIC,  /* ELF with PT_INTERP, not Go: the shim captures it */
    MT_ELF_STATIC,   /* ELF without PT_INTERP (static, static-pie) */
    MT_ELF_GO,       /* a Go program, static or not */
    MT_ELF_SCRIPT,   /* starts with "#!": its interpreter gets the shim */
    MT_ELF_UNKNOWN,  /* unreadable, not found or not ELF: left to exec */
};

/* Finds `cmd` as execvp would: as given when it contains '/', else the first
 * executable regular file in $PATH (default "/bin:/usr/bin").  Returns 0 with
 * the path in out, or -1 (not found, or the path does not fit). */
int mt_elf_which(const char *cmd, char *out, size_t size);

/* Classifies the file at `path`. */
enum mt_elf_kind mt_elf_classify(const char *path);

/* "dynamic", "static", "go", "script", "unknown". */
const char *mt_elf_kind_name(enum mt_elf_kind kind);

#endif

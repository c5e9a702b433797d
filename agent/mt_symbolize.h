/* mt_symbolize: turns the raw instruction pointers of a crash record
 * (common/mt_crash.h) into function names, with libelf, after the process is
 * gone.  Each address is placed in its maps line, its file offset turned into
 * a virtual address through the ELF's PT_LOAD segments, and looked up in
 * .symtab, then .dynsym (the function symbol that contains it).
 *
 * Nothing here keeps state between calls; the caller owns every buffer. */
#ifndef MT_SYMBOLIZE_H
#define MT_SYMBOLIZE_H

#include <stddef.h>
#include <stdint.h>

struct mt_buf;
struct mt_store;
struct mt_rec_view;

/* Describes `addr` using the maps text of its process:
 *   "victim_crash_here+0x14 (/path/to/file)"   a function was found
 *   "?? (/path/to/file+0x1a2b)"                mapped, no symbol covers it
 *   "??"                                       in no mapping
 * `lookup` is the address to look up (addr - 1 for a return address, so a
 * call at the end of a function names that function).  Returns 1 when a
 * function was named, else 0. */
int mt_symbolize_addr(const char *maps, size_t maps_len, uint64_t lookup, char *out,
                      size_t outsz);

/* Appends the report of one MT_REC_CRASH payload to `out`: signal, address,
 * pid/tid, then "#N 0x... in function+0xoff (file)" per frame.  The innermost
 * named frame goes to `top` (empty when none).  Returns the number of frames,
 * or -1 when the payload is malformed (nothing appended). */
int mt_symbolize_crash(const void *payload, size_t len, int signo, const char *exe,
                       struct mt_buf *out, char *top, size_t topsz);

/* One address, looked up (mt_stack.h uses it for live stacks).  `mapped`:
 * in some maps line, whose path (or [vdso], [heap]...) is `module`;
 * `named`: a function symbol covers it. */
struct mt_sym {
    int mapped, named;
    char function[256];
    uint64_t offset;        /* from the function's start */
    char module[4096];
    uint64_t module_offset; /* file offset in module */
    uint64_t vaddr;         /* the address as the ELF file has it, 0 when unknown */
};

/* The ELF files a caller keeps open across lookups (so a dump of 64 threads
 * reads libc once).  destroy accepts NULL. */
struct mt_sym_cache;
struct mt_sym_cache *mt_sym_cache_create(void);
void mt_sym_cache_destroy(struct mt_sym_cache *c);
/* `c` may be NULL (nothing kept).  Returns out->named. */
int mt_symbolize_lookup(struct mt_sym_cache *c, const char *maps, size_t maps_len, uint64_t lookup,
                        struct mt_sym *out);

/* The agent's handler for an MT_REC_CRASH record of process `pid`: appends
 * the report to crash.txt in the run dir and writes a "crash" event. */
void mt_symbolize_store(struct mt_store *store, double ts, uint32_t pid, const char *exe,
                        const struct mt_rec_view *v);

#endif

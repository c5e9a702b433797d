/* Crash records to text: see mt_symbolize.h. */
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <libelf.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/mt_buf.h"
#include "../common/mt_crash.h"
#include "../common/mt_ring.h"
#include "mt_store.h"
#include "mt_symbolize.h"

#define CACHE_FILES 8
#define CRASH_TXT_MAX (4u << 20) /* crash.txt stops growing here */

/* The ELF files one report has opened, so 128 frames of one program open it once. */
struct elf_file {
    char *path;
    int fd;
    Elf *elf;
};

struct mt_sym_cache {
    struct elf_file f[CACHE_FILES];
    int n;
};

static void cache_close(struct mt_sym_cache *c)
{
    for (int i = 0; c && i < c->n; i++) {
        if (c->f[i].elf)
            elf_end(c->f[i].elf);
        if (c->f[i].fd >= 0)
            close(c->f[i].fd);
        free(c->f[i].path);
    }
    if (c)
        c->n = 0;
}

static Elf *open_elf(struct mt_sym_cache *c, const char *path, int *fd_out)
{
    for (int i = 0; c && i < c->n; i++)
        if (strcmp(c->f[i].path, path) == 0)
            return c->f[i].elf;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    Elf *elf = elf_begin(fd, ELF_C_READ, NULL);
    if (elf && elf_kind(elf) != ELF_K_ELF) {
        elf_end(elf);
        elf = NULL;
    }
    if (!elf) {
        close(fd);
        return NULL;
    }
    if (c && c->n < CACHE_FILES) {
        c->f[c->n].path = mt_xstrdup(path);
        c->f[c->n].fd = fd;
        c->f[c->n].elf = elf;
        c->n++;
        *fd_out = -1;
    } else {
        *fd_out = fd; /* not cached: the caller closes it */
    }
    return elf;
}

/* One line of /proc/<pid>/maps. */
struct mapping {
    uint64_t start, end, offset;
    char path[4096];
};

/* Finds the maps line holding `addr`.  Returns 1 when found. */
static int find_mapping(const char *maps, size_t len, uint64_t addr, struct mapping *m)
{
    const char *p = maps, *end = maps + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        char line[4400];
        size_t n = (size_t)(eol - p);
        if (n >= sizeof line)
            n = sizeof line - 1;
        memcpy(line, p, n);
        line[n] = '\0';
        p = nl ? nl + 1 : end;
        unsigned long long lo, hi, off;
        int path_at = 0;
        if (sscanf(line, "%llx-%llx %*s %llx %*s %*s %n", &lo, &hi, &off, &path_at) < 3)
            continue;
        if (addr < lo || addr >= hi)
            continue;
        m->start = lo;
        m->end = hi;
        m->offset = off;
        snprintf(m->path, sizeof m->path, "%s", path_at > 0 ? line + path_at : "");
        return 1;
    }
    return 0;
}

/* The virtual address (as in the ELF's symbols) of file offset `fo`. */
static int vaddr_of_offset(Elf *elf, uint64_t fo, uint64_t *vaddr)
{
    size_t n;
    if (elf_getphdrnum(elf, &n) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        GElf_Phdr ph;
        if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_LOAD)
            continue;
        if (fo >= ph.p_offset && fo < ph.p_offset + ph.p_filesz) {
            *vaddr = fo - ph.p_offset + ph.p_vaddr;
            return 0;
        }
    }
    return -1;
}

/* The function symbol of `type` (SHT_SYMTAB or SHT_DYNSYM) that contains
 * vaddr; the one starting nearest below it, a global one on a tie. */
static const char *lookup_symbol(Elf *elf, unsigned type, uint64_t vaddr, uint64_t *sym_start)
{
    Elf_Scn *scn = NULL;
    const char *best = NULL;
    uint64_t best_value = 0;
    int best_global = 0;
    while ((scn = elf_nextscn(elf, scn)) != NULL) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh) || sh.sh_type != type || sh.sh_entsize == 0)
            continue;
        Elf_Data *data = elf_getdata(scn, NULL);
        if (!data)
            continue;
        size_t count = sh.sh_size / sh.sh_entsize;
        for (size_t i = 0; i < count; i++) {
            GElf_Sym sym;
            if (!gelf_getsym(data, (int)i, &sym))
                break;
            int t = GELF_ST_TYPE(sym.st_info);
            if ((t != STT_FUNC && t != STT_GNU_IFUNC) || sym.st_shndx == SHN_UNDEF)
                continue;
            if (vaddr < sym.st_value || vaddr >= sym.st_value + sym.st_size)
                continue;
            int global = GELF_ST_BIND(sym.st_info) != STB_LOCAL;
            if (best && (sym.st_value < best_value ||
                         (sym.st_value == best_value && (best_global || !global))))
                continue;
            const char *name = elf_strptr(elf, sh.sh_link, sym.st_name);
            if (!name || !*name)
                continue;
            best = name;
            best_value = sym.st_value;
            best_global = global;
        }
    }
    if (best)
        *sym_start = best_value;
    return best;
}

int mt_symbolize_lookup(struct mt_sym_cache *c, const char *maps, size_t maps_len, uint64_t lookup,
                        struct mt_sym *out)
{
    struct mapping m;
    memset(out, 0, sizeof *out);
    if (!find_mapping(maps, maps_len, lookup, &m))
        return 0;
    out->mapped = 1;
    out->module_offset = lookup - m.start + m.offset;
    snprintf(out->module, sizeof out->module, "%s", m.path);
    if (m.path[0] != '/')
        return 0; /* [vdso], anonymous (JIT) memory and the like: no file to read */
    int fd = -1;
    Elf *elf = open_elf(c, m.path, &fd);
    uint64_t vaddr, start = 0;
    const char *name = NULL;
    if (elf && vaddr_of_offset(elf, out->module_offset, &vaddr) == 0) {
        out->vaddr = vaddr;
        name = lookup_symbol(elf, SHT_SYMTAB, vaddr, &start);
        if (!name)
            name = lookup_symbol(elf, SHT_DYNSYM, vaddr, &start);
    }
    if (name) {
        snprintf(out->function, sizeof out->function, "%s", name);
        out->offset = vaddr - start;
        out->named = 1;
    }
    if (fd >= 0) {
        elf_end(elf);
        close(fd);
    }
    return out->named;
}

static int describe(struct mt_sym_cache *c, const char *maps, size_t maps_len, uint64_t lookup,
                    char *out, size_t outsz)
{
    struct mt_sym s;
    mt_symbolize_lookup(c, maps, maps_len, lookup, &s);
    if (!s.mapped)
        snprintf(out, outsz, "??");
    else if (s.named)
        snprintf(out, outsz, "%s+0x%" PRIx64 " (%s)", s.function, s.offset, s.module);
    else if (s.module[0] == '/')
        snprintf(out, outsz, "?? (%s+0x%" PRIx64 ")", s.module, s.module_offset);
    else
        snprintf(out, outsz, "?? (%s)", s.module[0] ? s.module : "anonymous");
    return s.named;
}

struct mt_sym_cache *mt_sym_cache_create(void)
{
    elf_version(EV_CURRENT);
    return mt_xcalloc(1, sizeof(struct mt_sym_cache));
}

void mt_sym_cache_destroy(struct mt_sym_cache *c)
{
    cache_close(c);
    free(c);
}

int mt_symbolize_addr(const char *maps, size_t maps_len, uint64_t lookup, char *out,
                      size_t outsz)
{
    elf_version(EV_CURRENT);
    return describe(NULL, maps, maps_len, lookup, out, outsz);
}

static const char *code_name(int signo, int code)
{
    switch (code) {
    case SI_USER: return "SI_USER (sent by kill)";
    case SI_TKILL: return "SI_TKILL (raised by the process: abort, raise)";
    case SI_QUEUE: return "SI_QUEUE";
    case SI_KERNEL: return "SI_KERNEL";
    default: break;
    }
    if (signo == SIGSEGV)
        return code == SEGV_MAPERR ? "SEGV_MAPERR (address not mapped)"
             : code == SEGV_ACCERR ? "SEGV_ACCERR (invalid permissions)" : NULL;
    if (signo == SIGBUS)
        return code == BUS_ADRALN ? "BUS_ADRALN" : code == BUS_ADRERR ? "BUS_ADRERR"
             : code == BUS_OBJERR ? "BUS_OBJERR" : NULL;
    if (signo == SIGFPE)
        return code == FPE_INTDIV ? "FPE_INTDIV (integer divide by zero)"
             : code == FPE_INTOVF ? "FPE_INTOVF" : code == FPE_FLTDIV ? "FPE_FLTDIV"
             : code == FPE_FLTINV ? "FPE_FLTINV" : NULL;
    if (signo == SIGILL)
        return code == ILL_ILLOPN ? "ILL_ILLOPN" : code == ILL_ILLOPC ? "ILL_ILLOPC"
             : code == ILL_PRVOPC ? "ILL_PRVOPC" : NULL;
    return NULL;
}

static void signal_name(int signo, char *out, size_t outsz)
{
    const char *abbrev = sigabbrev_np(signo);
    if (abbrev)
        snprintf(out, outsz, "SIG%s", abbrev);
    else
        snprintf(out, outsz, "signal %d", signo);
}

int mt_symbolize_crash(const void *payload, size_t len, int signo, const char *exe,
                       struct mt_buf *out, char *top, size_t topsz)
{
    struct mt_crash_hdr h;
    if (topsz)
        top[0] = '\0';
    if (len < sizeof h)
        return -1;
    memcpy(&h, payload, sizeof h);
    if (h.magic != MT_CRASH_MAGIC || h.hdr_size < sizeof h || h.hdr_size > len ||
        h.nframes > MT_CRASH_MAX_FRAMES ||
        (uint64_t)h.hdr_size + (uint64_t)h.nframes * 8u + h.maps_len > len)
        return -1;
    const char *base = payload;
    const char *maps = base + h.hdr_size + (size_t)h.nframes * 8u;
    if (h.signo > 0)
        signo = h.signo;

    elf_version(EV_CURRENT);
    char sig[32];
    signal_name(signo, sig, sizeof sig);
    const char *code = code_name(signo, h.code);
    mt_buf_printf(out, "signal: %s (%d)", sig, signo);
    if (code)
        mt_buf_printf(out, ", %s", code);
    else
        mt_buf_printf(out, ", code %d", h.code);
    if (signo == SIGSEGV || signo == SIGBUS || signo == SIGFPE || signo == SIGILL)
        mt_buf_printf(out, ", address 0x%" PRIx64, h.addr);
    if (h.code <= 0 && h.sender_pid)
        mt_buf_printf(out, ", sent by pid %u", h.sender_pid);
    mt_buf_printf(out, "\nprocess: pid %u, tid %u%s%s%s\n", h.pid, h.tid, exe && *exe ? " (" : "",
                  exe && *exe ? exe : "", exe && *exe ? ")" : "");
    mt_buf_printf(out, "backtrace (%u frames, innermost first):\n", h.nframes);

    struct mt_sym_cache cache = { .n = 0 };
    int top_in_exe = 0;
    for (uint32_t i = 0; i < h.nframes; i++) {
        uint64_t ip;
        memcpy(&ip, base + h.hdr_size + (size_t)i * 8u, sizeof ip);
        /* Frame 0 is the interrupted instruction; the others are return
         * addresses, whose call instruction lies just before them. */
        uint64_t lookup = i == 0 || ip == 0 ? ip : ip - 1;
        char where[4400];
        int named = describe(&cache, maps, h.maps_len, lookup, where, sizeof where);
        mt_buf_printf(out, "#%-2u 0x%016" PRIx64 " in %s\n", i, ip, where);
        /* The event names the innermost function of the program itself
         * (abort's frames in libc are less telling), else the innermost one. */
        int in_exe = exe && *exe && strstr(where, exe) != NULL;
        if (named && topsz && (!top[0] || (in_exe && !top_in_exe))) {
            size_t n = strcspn(where, "+ ");
            snprintf(top, topsz, "%.*s", (int)n, where);
            top_in_exe = in_exe;
        }
    }
    cache_close(&cache);
    if (h.flags & MT_CRASH_UNWIND_FAULTED)
        mt_buf_adds(out, "note: the unwinder faulted on a corrupt stack; later frames are missing\n");
    if (h.flags & MT_CRASH_UNWIND_FP)
        mt_buf_adds(out, "note: frames after #0 come from the frame-pointer chain (no unwind info)\n");
    if (h.flags & MT_CRASH_MAPS_CUT)
        mt_buf_adds(out, "note: the maps text was cut; some frames may lack a file\n");
    if (h.flags & MT_CRASH_CHAINED)
        mt_buf_adds(out, "note: a signal handler installed before metrictap's ran next\n");
    return (int)h.nframes;
}

void mt_symbolize_store(struct mt_store *store, double ts, uint32_t pid, const char *exe,
                        const struct mt_rec_view *v)
{
    struct mt_buf text;
    char top[256];
    mt_buf_init(&text, 1u << 20);
    size_t old_len = 0;
    char *old = mt_store_read(store, "crash.txt", &old_len);
    if (old && old_len < CRASH_TXT_MAX) {
        mt_buf_add(&text, old, old_len);
        if (old_len)
            mt_buf_addc(&text, '\n'); /* one report per crashed process */
    }
    int frames = mt_symbolize_crash(v->data, v->len, (int)v->aux, exe, &text, top, sizeof top);
    if (frames >= 0 && (!old || old_len < CRASH_TXT_MAX))
        mt_store_replace(store, "crash.txt", text.data, text.len);
    free(old);

    struct mt_buf ev;
    mt_buf_init(&ev, 1u << 16);
    char sig[32];
    signal_name((int)v->aux, sig, sizeof sig);
    mt_buf_printf(&ev, "\"pid\":%u,\"signal\":%u,\"signal_name\":", pid, v->aux);
    mt_buf_json_string(&ev, sig, strlen(sig));
    if (frames >= 0) {
        struct mt_crash_hdr h;
        memcpy(&h, v->data, sizeof h);
        mt_buf_printf(&ev, ",\"tid\":%u,\"frames\":%d,", h.tid, frames);
        if (h.signo == SIGSEGV || h.signo == SIGBUS || h.signo == SIGFPE || h.signo == SIGILL)
            mt_buf_printf(&ev, "\"address\":\"0x%" PRIx64 "\",", h.addr);
        mt_buf_adds(&ev, "\"function\":");
        if (top[0])
            mt_buf_json_string(&ev, top, strlen(top));
        else
            mt_buf_adds(&ev, "null");
        mt_buf_adds(&ev, ",\"file\":\"crash.txt\"");
    } else {
        mt_buf_adds(&ev, ",\"error\":\"malformed crash record\"");
    }
    mt_store_event(store, ts, "crash", ev.data);
    mt_buf_free(&ev);
    mt_buf_free(&text);
}

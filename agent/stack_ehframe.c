/* The search table libunwind wants, for ELF files that lack one.
 *
 * libunwind's remote unwinder finds a function's unwind entry (FDE) through
 * the binary search table of .eh_frame_hdr (PT_GNU_EH_FRAME).  `ld -static`
 * leaves that header out of non-PIE static binaries (glibc's, for one), so
 * their stacks stopped at frame 0.  The .eh_frame itself is there: this reads
 * it from the file (libelf), lists every FDE's start address, and gives the
 * sorted table the header would have held (stack.c serves it to libunwind
 * through its memory accessor). */
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/mt_buf.h"
#include "mt_stack_internal.h"

#define DW_EH_PE_omit 0xff
#define DW_EH_PE_pcrel 0x10

static uint64_t uleb(const uint8_t **p, const uint8_t *end)
{
    uint64_t v = 0;
    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            break;
    }
    return v;
}

/* One pointer of `enc` at *p (whose address is `at`); -1 when unsupported. */
static int read_ptr(const uint8_t **p, const uint8_t *end, uint8_t enc, uint64_t at,
                    uint64_t *out)
{
    uint64_t v;
    size_t n;
    switch (enc & 0x0f) {
    case 0x00: case 0x04: case 0x0c: n = 8; break;  /* absptr, udata8, sdata8 */
    case 0x03: case 0x0b: n = 4; break;             /* udata4, sdata4 */
    case 0x02: case 0x0a: n = 2; break;             /* udata2, sdata2 */
    default: return -1;
    }
    if ((size_t)(end - *p) < n)
        return -1;
    if (n == 8) {
        memcpy(&v, *p, 8);
    } else if (n == 4) {
        uint32_t u;
        memcpy(&u, *p, 4);
        v = (enc & 0x08) ? (uint64_t)(int64_t)(int32_t)u : u;
    } else {
        uint16_t u;
        memcpy(&u, *p, 2);
        v = (enc & 0x08) ? (uint64_t)(int64_t)(int16_t)u : u;
    }
    *p += n;
    if ((enc & 0x70) == DW_EH_PE_pcrel)
        v += at;
    else if ((enc & 0x70) != 0)
        return -1; /* textrel, datarel, funcrel: not used in .eh_frame by GCC */
    *out = v;
    return 0;
}

/* The FDE pointer encoding a CIE declares ('R' of a "z..." augmentation). */
static uint8_t cie_encoding(const uint8_t *p, const uint8_t *end, uint64_t at_of_p0,
                            const uint8_t *p0)
{
    uint8_t version = p < end ? *p++ : 0;
    const char *aug = (const char *)p;
    size_t alen = strnlen(aug, (size_t)(end - p));
    p += alen + 1;
    if (p > end)
        return DW_EH_PE_omit;
    uleb(&p, end);                      /* code alignment */
    uleb(&p, end);                      /* data alignment (sleb: same length) */
    if (version == 1)
        p++;
    else
        uleb(&p, end);                  /* return address register */
    if (aug[0] != 'z')
        return 0; /* absptr */
    uleb(&p, end);                      /* augmentation data length */
    for (size_t i = 1; i < alen && p < end; i++) {
        uint64_t ignored;
        switch (aug[i]) {
        case 'R': return *p;
        case 'L': p++; break;
        case 'P': {
            uint8_t penc = *p++;
            if (read_ptr(&p, end, penc, at_of_p0 + (uint64_t)(p - p0), &ignored) != 0)
                return DW_EH_PE_omit;
            break;
        }
        case 'S': case 'B': break;
        default: return DW_EH_PE_omit;
        }
    }
    return 0;
}

static int cmp_entry(const void *a, const void *b)
{
    int32_t x = ((const int32_t *)a)[0], y = ((const int32_t *)b)[0];
    return (x > y) - (x < y);
}

int mt_ehtab_build(const char *path, uint64_t bias, struct mt_ehtab *t)
{
    memset(t, 0, sizeof *t);
    elf_version(EV_CURRENT);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    Elf *elf = elf_begin(fd, ELF_C_READ, NULL);
    size_t shstrndx;
    Elf_Scn *scn = NULL;
    Elf_Data *data = NULL;
    GElf_Shdr sh = { 0 };
    int rc = -1;
    if (!elf || elf_getshdrstrndx(elf, &shstrndx) != 0)
        goto out;
    while ((scn = elf_nextscn(elf, scn)) != NULL) {
        const char *name;
        if (gelf_getshdr(scn, &sh) && (name = elf_strptr(elf, shstrndx, sh.sh_name)) &&
            strcmp(name, ".eh_frame") == 0 && sh.sh_type == SHT_PROGBITS) {
            data = elf_getdata(scn, NULL);
            break;
        }
    }
    if (!data || !data->d_buf || data->d_size < 8)
        goto out;
    const uint8_t *base = data->d_buf, *end = base + data->d_size, *p = base;
    uint64_t sec = sh.sh_addr + bias; /* .eh_frame where the process has it */
    size_t cap = 1024;
    t->ent = mt_xmalloc(cap * sizeof *t->ent);
    uint64_t lo = UINT64_MAX, hi = 0;
    /* The last CIE seen and its encoding: FDEs nearly always follow theirs. */
    const uint8_t *last_cie = NULL;
    uint8_t last_enc = DW_EH_PE_omit;
    while ((size_t)(end - p) >= 4) {
        const uint8_t *entry = p;
        uint32_t len32;
        memcpy(&len32, p, 4);
        p += 4;
        if (len32 == 0)
            break; /* the terminator */
        if (len32 == 0xffffffffu)
            break; /* 64-bit DWARF: not emitted for x86-64 .eh_frame */
        const uint8_t *next = p + len32;
        if (next > end || len32 < 4)
            break;
        uint32_t id;
        memcpy(&id, p, 4);
        const uint8_t *id_at = p;
        p += 4;
        if (id != 0) {
            const uint8_t *cie = id_at - id;
            if (cie < base || cie + 8 > end)
                break;
            if (cie != last_cie) {
                uint32_t clen;
                memcpy(&clen, cie, 4);
                const uint8_t *cend = cie + 4 + clen;
                last_enc = cend <= end ? cie_encoding(cie + 8, cend, sec + (uint64_t)(cie + 8 - base),
                                                     cie + 8)
                                       : DW_EH_PE_omit;
                last_cie = cie;
            }
            uint64_t start, range;
            if (last_enc != DW_EH_PE_omit &&
                read_ptr(&p, next, last_enc, sec + (uint64_t)(p - base), &start) == 0 &&
                read_ptr(&p, next, last_enc & 0x0f, 0, &range) == 0 && range) {
                if (t->n == cap) {
                    cap *= 2;
                    t->ent = mt_xrealloc(t->ent, cap * sizeof *t->ent);
                }
                /* Relative to the section's address (the table's segbase). */
                t->ent[t->n][0] = (int32_t)(start - sec);
                t->ent[t->n][1] = (int32_t)((uint64_t)(entry - base));
                t->n++;
                lo = start < lo ? start : lo;
                hi = start + range > hi ? start + range : hi;
            }
        }
        p = next;
    }
    if (t->n) {
        qsort(t->ent, t->n, sizeof *t->ent, cmp_entry);
        t->segbase = sec;
        t->lo = lo;
        t->hi = hi;
        rc = 0;
    }
out:
    if (elf)
        elf_end(elf);
    close(fd);
    if (rc != 0) {
        free(t->ent);
        t->ent = NULL;
        t->n = 0;
    }
    return rc;
}

void mt_ehtab_free(struct mt_ehtab *t)
{
    if (t) {
        free(t->ent);
        t->ent = NULL;
        t->n = 0;
    }
}

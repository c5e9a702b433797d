/* ELF facts about the traced binary, through libelf. */
#include "agent/mt_meta.h"
#include "common/mt_sha256.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct elf_facts {
    int kind;
    char interp[512];
    char build_id[129];   /* hex */
    cJSON *needed;        /* NULL unless asked for */
};

static const char *const kind_names[] = {
    [MT_META_ELF_DYNAMIC] = "dynamic", [MT_META_ELF_STATIC] = "static",
    [MT_META_ELF_GO] = "go", [MT_META_ELF_MUSL] = "musl",
    [MT_META_ELF_SCRIPT] = "script", [MT_META_ELF_OTHER] = "other",
};

const char *mt_meta_elf_kind_name(int kind)
{
    if (kind < 0 || kind > MT_META_ELF_OTHER)
        return "unknown";
    return kind_names[kind];
}

static void hex(const unsigned char *p, size_t n, char *out, size_t size)
{
    static const char d[] = "0123456789abcdef";
    size_t k = 0;
    for (size_t i = 0; i < n && k + 2 < size; i++) {
        out[k++] = d[p[i] >> 4];
        out[k++] = d[p[i] & 15];
    }
    out[k] = '\0';
}

static void find_build_id(Elf *e, const GElf_Phdr *ph, struct elf_facts *f)
{
    Elf_Data *data = elf_getdata_rawchunk(e, (int64_t)ph->p_offset, ph->p_filesz, ELF_T_NHDR);
    GElf_Nhdr nh;
    size_t off = 0, name_off, desc_off;
    if (!data)
        return;
    while ((off = gelf_getnote(data, off, &nh, &name_off, &desc_off)) > 0) {
        if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
            memcmp((char *)data->d_buf + name_off, "GNU", 4) == 0) {
            hex((unsigned char *)data->d_buf + desc_off, nh.n_descsz, f->build_id,
                sizeof f->build_id);
            return;
        }
    }
}

/* Reads program headers and sections of the open ELF. */
static void read_elf(Elf *e, struct elf_facts *f)
{
    size_t nph = 0, shstrndx = 0;
    Elf_Scn *scn = NULL;
    int go = 0, has_interp = 0;
    if (elf_getphdrnum(e, &nph) == 0) {
        for (size_t i = 0; i < nph; i++) {
            GElf_Phdr ph;
            if (!gelf_getphdr(e, (int)i, &ph))
                continue;
            if (ph.p_type == PT_INTERP) {
                size_t fsize;
                char *raw = elf_rawfile(e, &fsize);
                has_interp = 1;
                if (raw && ph.p_offset < fsize && ph.p_filesz > 0) {
                    size_t n = ph.p_filesz;
                    if (ph.p_offset + n > fsize)
                        n = fsize - ph.p_offset;
                    if (n >= sizeof f->interp)
                        n = sizeof f->interp - 1;
                    memcpy(f->interp, raw + ph.p_offset, n);
                    f->interp[n] = '\0';
                }
            } else if (ph.p_type == PT_NOTE && !f->build_id[0]) {
                find_build_id(e, &ph, f);
            }
        }
    }
    if (elf_getshdrstrndx(e, &shstrndx) == 0) {
        while ((scn = elf_nextscn(e, scn)) != NULL) {
            GElf_Shdr sh;
            if (!gelf_getshdr(scn, &sh))
                continue;
            const char *name = elf_strptr(e, shstrndx, sh.sh_name);
            if (name && strcmp(name, ".go.buildinfo") == 0)
                go = 1;
            if (sh.sh_type == SHT_DYNAMIC && f->needed) {
                Elf_Data *d = elf_getdata(scn, NULL);
                size_t n = sh.sh_entsize ? sh.sh_size / sh.sh_entsize : 0;
                for (size_t i = 0; d && i < n; i++) {
                    GElf_Dyn dyn;
                    if (!gelf_getdyn(d, (int)i, &dyn) || dyn.d_tag == DT_NULL)
                        break;
                    if (dyn.d_tag != DT_NEEDED)
                        continue;
                    const char *lib = elf_strptr(e, sh.sh_link, dyn.d_un.d_val);
                    if (lib)
                        cJSON_AddItemToArray(f->needed, cJSON_CreateString(lib));
                }
            }
        }
    }
    if (go)
        f->kind = MT_META_ELF_GO;
    else if (!has_interp)
        f->kind = MT_META_ELF_STATIC;
    else if (strstr(f->interp, "ld-musl"))
        f->kind = MT_META_ELF_MUSL;
    else
        f->kind = MT_META_ELF_DYNAMIC;
}

/* 0, or -errno; fills f. */
static int inspect(const char *path, struct elf_facts *f)
{
    char head[256];
    ssize_t n;
    Elf *e = NULL;
    int result = 0, fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    n = pread(fd, head, sizeof head - 1, 0);
    if (n < 0) {
        result = -errno;
        goto out;
    }
    head[n] = '\0';
    if (n >= 2 && head[0] == '#' && head[1] == '!') {
        const char *p = head + 2;
        size_t len;
        while (*p == ' ' || *p == '\t')
            p++;
        len = strcspn(p, " \t\n");
        if (len >= sizeof f->interp)
            len = sizeof f->interp - 1;
        memcpy(f->interp, p, len);
        f->interp[len] = '\0';
        f->kind = MT_META_ELF_SCRIPT;
        goto out;
    }
    f->kind = MT_META_ELF_OTHER;
    if (n < 4 || memcmp(head, ELFMAG, SELFMAG) != 0)
        goto out;
    if (elf_version(EV_CURRENT) == EV_NONE)
        goto out;
    e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    if (!e || elf_kind(e) != ELF_K_ELF)
        goto out;
    read_elf(e, f);
out:
    if (e)
        elf_end(e);
    close(fd);
    return result;
}

int mt_meta_elf_kind(const char *path, char *interp, size_t interp_size)
{
    struct elf_facts f = {0};
    int rc = inspect(path, &f);
    if (rc < 0)
        return rc;
    if (interp && interp_size)
        snprintf(interp, interp_size, "%s", f.interp);
    return f.kind;
}

cJSON *mt_meta_binary_json(const char *path)
{
    struct elf_facts f = {0};
    struct stat st;
    char sha[65], real[4096];
    cJSON *j = NULL;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return NULL;
    f.needed = cJSON_CreateArray();
    if (!f.needed || inspect(path, &f) < 0 || mt_sha256_file(path, sha) < 0)
        goto out;
    if (!(j = cJSON_CreateObject()))
        goto out;
    cJSON_AddStringToObject(j, "path", realpath(path, real) ? real : path);
    cJSON_AddNumberToObject(j, "size", (double)st.st_size);
    cJSON_AddStringToObject(j, "sha256", sha);
    if (f.build_id[0])
        cJSON_AddStringToObject(j, "build_id", f.build_id);
    cJSON_AddStringToObject(j, "kind", mt_meta_elf_kind_name(f.kind));
    if (f.kind != MT_META_ELF_OTHER && f.kind != MT_META_ELF_SCRIPT)
        cJSON_AddBoolToObject(j, "dynamic", f.interp[0] != '\0');
    if (f.interp[0])
        cJSON_AddStringToObject(j, "interpreter", f.interp);
    if (cJSON_GetArraySize(f.needed) > 0) {
        cJSON_AddItemToObject(j, "needed", f.needed);
        f.needed = NULL;
    }
out:
    cJSON_Delete(f.needed);
    return j;
}

int mt_meta_which(const char *name, const char *path_env, char *out, size_t size)
{
    if (!name || !*name)
        return -ENOENT;
    if (strchr(name, '/')) {
        if (access(name, X_OK) != 0)
            return -errno;
        snprintf(out, size, "%s", name);
        return 0;
    }
    const char *p = path_env && *path_env ? path_env : "/usr/local/bin:/usr/bin:/bin";
    while (*p) {
        size_t len = strcspn(p, ":");
        struct stat st;
        if ((size_t)snprintf(out, size, "%.*s%s%s", (int)len, p, len ? "/" : "", name) < size &&
            stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
            return 0;
        p += len;
        if (*p == ':')
            p++;
    }
    return -ENOENT;
}

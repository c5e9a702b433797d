/* mt_elf: see mt_elf.h. */
#include "mt_elf.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int is_exec_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

int mt_elf_which(const char *cmd, char *out, size_t size)
{
    if (!cmd || !*cmd)
        return -1;
    if (strchr(cmd, '/')) {
        int n = snprintf(out, size, "%s", cmd);
        return n < 0 || (size_t)n >= size ? -1 : 0;
    }
    const char *path = getenv("PATH");
    if (!path)
        path = "/bin:/usr/bin";
    for (const char *p = path;;) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        /* An empty element means the current directory, as for execvp. */
        int n = len ? snprintf(out, size, "%.*s/%s", (int)len, p, cmd)
                    : snprintf(out, size, "%s", cmd);
        if (n > 0 && (size_t)n < size && is_exec_file(out))
            return 0;
        if (!colon)
            break;
        p = colon + 1;
    }
    return -1;
}

static int has_interp(Elf *e)
{
    size_t n;
    if (elf_getphdrnum(e, &n) != 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        GElf_Phdr ph;
        if (gelf_getphdr(e, (int)i, &ph) && ph.p_type == PT_INTERP)
            return 1;
    }
    return 0;
}

static int has_go_section(Elf *e)
{
    size_t shstrndx;
    if (elf_getshdrstrndx(e, &shstrndx) != 0)
        return 0;
    Elf_Scn *scn = NULL;
    while ((scn = elf_nextscn(e, scn)) != NULL) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh))
            continue;
        const char *name = elf_strptr(e, shstrndx, sh.sh_name);
        if (name && (strcmp(name, ".go.buildinfo") == 0 || strcmp(name, ".note.go.buildid") == 0))
            return 1;
    }
    return 0;
}

enum mt_elf_kind mt_elf_classify(const char *path)
{
    enum mt_elf_kind kind = MT_ELF_UNKNOWN;
    Elf *e = NULL;
    char magic[4];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        goto out;
    if (pread(fd, magic, sizeof magic, 0) != (ssize_t)sizeof magic)
        goto out;
    if (magic[0] == '#' && magic[1] == '!') {
        kind = MT_ELF_SCRIPT;
        goto out;
    }
    if (elf_version(EV_CURRENT) == EV_NONE)
        goto out;
    e = elf_begin(fd, ELF_C_READ, NULL);
    if (!e || elf_kind(e) != ELF_K_ELF)
        goto out;
    if (has_go_section(e))
        kind = MT_ELF_GO;
    else
        kind = has_interp(e) ? MT_ELF_DYNAMIC : MT_ELF_STATIC;
out:
    if (e)
        elf_end(e);
    if (fd >= 0)
        close(fd);
    return kind;
}

const char *mt_elf_kind_name(enum mt_elf_kind kind)
{
    switch (kind) {
    case MT_ELF_DYNAMIC:
        return "dynamic";
    case MT_ELF_STATIC:
        return "static";
    case MT_ELF_GO:
        return "go";
    case MT_ELF_SCRIPT:
        return "script";
    case MT_ELF_UNKNOWN:
        break;
    }
    return "unknown";
}

/* mt_elf: which commands the shim can enter. */
#include <stdlib.h>

#include "../../common/mt_elf.h"
#include "mt_test.h"

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

MT_TEST(a_dynamic_program_is_dynamic)
{
    MT_CHECK(mt_elf_classify("/proc/self/exe") == MT_ELF_DYNAMIC);
    MT_CHECK_STR(mt_elf_kind_name(MT_ELF_DYNAMIC), "dynamic");
}

MT_TEST(scripts_text_and_missing_files)
{
    char dir[] = "/tmp/mt-elf-XXXXXX", path[128];
    MT_CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/script", dir);
    write_file(path, "#!/bin/sh\necho hi\n");
    MT_CHECK(mt_elf_classify(path) == MT_ELF_SCRIPT);
    write_file(path, "not an ELF file at all\n");
    MT_CHECK(mt_elf_classify(path) == MT_ELF_UNKNOWN);
    write_file(path, "\177EL");
    MT_CHECK(mt_elf_classify(path) == MT_ELF_UNKNOWN);
    unlink(path);
    MT_CHECK(mt_elf_classify(path) == MT_ELF_UNKNOWN);
    rmdir(dir);
}

MT_TEST(which_searches_path_like_execvp)
{
    char out[256];
    setenv("PATH", "/nonexistent::/bin", 1);
    MT_CHECK(mt_elf_which("sh", out, sizeof out) == 0);
    MT_CHECK_STR(out, "/bin/sh");
    MT_CHECK(mt_elf_which("./x", out, sizeof out) == 0);
    MT_CHECK_STR(out, "./x");
    MT_CHECK(mt_elf_which("no-such-command-mt", out, sizeof out) == -1);
    MT_CHECK(mt_elf_which("sh", out, 4) == -1);
}

int main(void)
{
    return mt_test_main();
}

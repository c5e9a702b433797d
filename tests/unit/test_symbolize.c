/* mt_symbolize: addresses of this very test binary, of libc and of anonymous
 * memory, named through /proc/self/maps; crash payloads, good and malformed. */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../agent/mt_symbolize.h"
#include "../../common/mt_buf.h"
#include "../../common/mt_crash.h"
#include "mt_test.h"

__attribute__((noinline, used)) int symbolize_probe_target(int x)
{
    return x * 3 + (int)getpid();
}

static char maps[1 << 16];
static size_t maps_len;

static void load_maps(void)
{
    int fd = open("/proc/self/maps", O_RDONLY);
    ssize_t n;
    maps_len = 0;
    while (fd >= 0 && (n = read(fd, maps + maps_len, sizeof maps - 1 - maps_len)) > 0)
        maps_len += (size_t)n;
    if (fd >= 0)
        close(fd);
}

static const char *self_exe(void)
{
    static char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    path[n > 0 ? n : 0] = '\0';
    return path;
}

MT_TEST(names_a_function_of_the_executable_with_its_offset)
{
    load_maps();
    char out[4400], want[4400];
    uint64_t addr = (uint64_t)(uintptr_t)&symbolize_probe_target + 4;
    MT_CHECK(mt_symbolize_addr(maps, maps_len, addr, out, sizeof out) == 1);
    snprintf(want, sizeof want, "symbolize_probe_target+0x4 (%s)", self_exe());
    MT_CHECK_STR(out, want);
}

MT_TEST(names_a_libc_function_from_dynsym)
{
    load_maps();
    char out[4400];
    uint64_t addr = (uint64_t)(uintptr_t)&getpid;
    MT_CHECK(mt_symbolize_addr(maps, maps_len, addr, out, sizeof out) == 1);
    /* getpid may have an alias at the same address (__getpid); either is right. */
    MT_CHECK(strstr(out, "getpid+0x0 (") != NULL);
    MT_CHECK(strstr(out, "libc.so") != NULL);
}

MT_TEST(unmapped_and_anonymous_addresses_are_unnamed)
{
    void *anon = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    MT_CHECK(anon != MAP_FAILED);
    load_maps();
    char out[4400];
    MT_CHECK(mt_symbolize_addr(maps, maps_len, 0x10, out, sizeof out) == 0);
    MT_CHECK_STR(out, "??");
    MT_CHECK(mt_symbolize_addr(maps, maps_len, (uint64_t)(uintptr_t)anon + 8, out,
                               sizeof out) == 0);
    MT_CHECK_STR(out, "?? (anonymous)");
}

MT_TEST(a_file_without_a_symbol_there_gives_file_and_offset)
{
    /* A maps text that puts the address in a file that is no ELF at all. */
    char fake[256];
    int n = snprintf(fake, sizeof fake, "1000-2000 r-xp 00003000 00:00 0    /etc/hostname\n");
    char out[4400];
    MT_CHECK(mt_symbolize_addr(fake, (size_t)n, 0x1010, out, sizeof out) == 0);
    MT_CHECK_STR(out, "?? (/etc/hostname+0x3010)");
}

/* A payload as the shim builds it: header, ips, the maps lines. */
static size_t build_payload(char *buf, size_t cap, const uint64_t *ips, uint32_t n, int signo,
                            int code, uint64_t addr)
{
    struct mt_crash_hdr h = { 0 };
    h.magic = MT_CRASH_MAGIC;
    h.version = MT_CRASH_VERSION;
    h.hdr_size = sizeof h;
    h.pid = h.tid = 4242;
    h.signo = signo;
    h.code = code;
    h.addr = addr;
    h.nframes = n;
    h.maps_len = (uint32_t)maps_len;
    size_t len = sizeof h + n * 8u + maps_len;
    if (len > cap)
        return 0;
    memcpy(buf, &h, sizeof h);
    memcpy(buf + sizeof h, ips, n * 8u);
    memcpy(buf + sizeof h + n * 8u, maps, maps_len);
    return len;
}

MT_TEST(crash_payload_becomes_a_report)
{
    load_maps();
    static char payload[1 << 17];
    /* Frame 0 exact; frame 1 a return address (looked up one byte before). */
    uint64_t ips[3] = { (uint64_t)(uintptr_t)&symbolize_probe_target + 2,
                        (uint64_t)(uintptr_t)&symbolize_probe_target + 1, 0x10 };
    size_t len = build_payload(payload, sizeof payload, ips, 3, SIGSEGV, SEGV_MAPERR, 0);
    MT_CHECK(len > 0);
    struct mt_buf out;
    mt_buf_init(&out, 1 << 20);
    char top[256];
    MT_CHECK(mt_symbolize_crash(payload, len, SIGSEGV, self_exe(), &out, top, sizeof top) == 3);
    MT_CHECK_STR(top, "symbolize_probe_target");
    MT_CHECK(strstr(out.data, "signal: SIGSEGV (11), SEGV_MAPERR (address not mapped), "
                              "address 0x0\n") != NULL);
    MT_CHECK(strstr(out.data, "process: pid 4242, tid 4242") != NULL);
    MT_CHECK(strstr(out.data, " in symbolize_probe_target+0x2 (") != NULL);
    MT_CHECK(strstr(out.data, " in symbolize_probe_target+0x0 (") != NULL);
    MT_CHECK(strstr(out.data, "#2  0x0000000000000010 in ??\n") != NULL);
    mt_buf_free(&out);
}

MT_TEST(malformed_payloads_are_refused)
{
    load_maps();
    static char payload[1 << 17];
    uint64_t ips[1] = { 1 };
    size_t len = build_payload(payload, sizeof payload, ips, 1, SIGABRT, SI_TKILL, 0);
    struct mt_buf out;
    mt_buf_init(&out, 1 << 20);
    char top[64];
    MT_CHECK(mt_symbolize_crash(payload, 10, SIGABRT, NULL, &out, top, sizeof top) == -1);
    MT_CHECK(mt_symbolize_crash(payload, len - 1, SIGABRT, NULL, &out, top, sizeof top) == -1);
    struct mt_crash_hdr *h = (struct mt_crash_hdr *)payload;
    h->nframes = MT_CRASH_MAX_FRAMES + 1;
    MT_CHECK(mt_symbolize_crash(payload, len, SIGABRT, NULL, &out, top, sizeof top) == -1);
    h->nframes = 1;
    h->magic = 0;
    MT_CHECK(mt_symbolize_crash(payload, len, SIGABRT, NULL, &out, top, sizeof top) == -1);
    MT_CHECK(out.len == 0);
    h->magic = MT_CRASH_MAGIC;
    MT_CHECK(mt_symbolize_crash(payload, len, SIGABRT, NULL, &out, top, sizeof top) == 1);
    MT_CHECK(strstr(out.data, "SIGABRT (6), SI_TKILL") != NULL);
    mt_buf_free(&out);
}

int main(void)
{
    return mt_test_main();
}

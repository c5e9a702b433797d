/* SHA-256 against the FIPS 180-4 / NIST example vectors. */
#include "common/mt_sha256.h"
#include "tests/unit/mt_test.h"

#include <errno.h>
#include <stdio.h>

static const struct { const char *in; const char *want; } vectors[] = {
    {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
     "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
};

MT_TEST(nist_vectors)
{
    char hex[65];
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        mt_sha256_hex(vectors[i].in, strlen(vectors[i].in), hex);
        MT_CHECK_STR(hex, vectors[i].want);
    }
}

MT_TEST(million_a_streamed_in_odd_chunks)
{
    struct mt_sha256 s;
    unsigned char d[32];
    char chunk[997], hex[65];
    memset(chunk, 'a', sizeof chunk);
    mt_sha256_init(&s);
    size_t left = 1000000;
    while (left) {
        size_t n = left < sizeof chunk ? left : sizeof chunk;
        mt_sha256_update(&s, chunk, n);
        left -= n;
    }
    mt_sha256_final(&s, d);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    MT_CHECK_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

MT_TEST(file_matches_buffer)
{
    char path[] = "/tmp/mt-sha-XXXXXX", a[65], b[65];
    int fd = mkstemp(path);
    MT_CHECK(fd >= 0);
    MT_CHECK(write(fd, "abc", 3) == 3);
    close(fd);
    MT_CHECK(mt_sha256_file(path, a) == 0);
    mt_sha256_hex("abc", 3, b);
    MT_CHECK_STR(a, b);
    unlink(path);
    MT_CHECK(mt_sha256_file("/nonexistent/x", a) == -ENOENT);
}

int main(void) { return mt_test_main(); }

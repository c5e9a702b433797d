/* mt_sha256: SHA-256 (FIPS 180-4), small and dependency-free, for binary
 * fingerprints in run metadata.  Streaming: init, update any number of times,
 * final.  No allocation. */
#ifndef MT_SHA256_H
#define MT_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct mt_sha256 {
    uint32_t h[8];
    uint64_t len;          /* bytes hashed so far */
    unsigned char buf[64];
    size_t nbuf;
};

void mt_sha256_init(struct mt_sha256 *s);
void mt_sha256_update(struct mt_sha256 *s, const void *data, size_t n);
void mt_sha256_final(struct mt_sha256 *s, unsigned char out[32]);

/* One-shot helpers.  hex must hold 65 bytes (64 digits and a NUL). */
void mt_sha256_hex(const void *data, size_t n, char hex[65]);
/* Hashes the file at path; 0, or -errno. */
int mt_sha256_file(const char *path, char hex[65]);

#endif

/* mt_enc: see mt_enc.h. */
#include "mt_enc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

void mt_enc_init(struct mt_enc *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

void mt_enc_free(struct mt_enc *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

void mt_enc_reset(struct mt_enc *b)
{
    b->len = 0;
    b->overflow = 0;
    b->depth = 0;
}

static int reserve(struct mt_enc *b, size_t n)
{
    if (b->overflow)
        return -1;
    if (b->len + n > b->max) {
        b->overflow = 1;
        return -1;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->overflow = 1;
            return -1;
        }
        b->p = p;
        b->cap = cap;
    }
    return 0;
}

void mt_enc_add(struct mt_enc *b, const void *p, size_t n)
{
    if (n && reserve(b, n) == 0) {
        memcpy(b->p + b->len, p, n);
        b->len += n;
    }
}

/* ---- protobuf wire format ---- */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

static size_t varint_put(unsigned char out[10], uint64_t v)
{
    size_t n = 0;
    do {
        unsigned char c = v & 0x7f;
        v >>= 7;
        out[n++] = c | (v ? 0x80 : 0);
    } while (v);
    return n;
}

static void raw_varint(struct mt_enc *b, uint64_t v)
{
    unsigned char tmp[10];
    mt_enc_add(b, tmp, varint_put(tmp, v));
}

static void tag(struct mt_enc *b, unsigned field, unsigned wt)
{
    raw_varint(b, ((uint64_t)field << 3) | wt);
}

static void le(struct mt_enc *b, uint64_t v, size_t n)
{
    unsigned char tmp[8];
    for (size_t i = 0; i < n; i++)
        tmp[i] = (unsigned char)(v >> (8 * i));
    mt_enc_add(b, tmp, n);
}

void mt_enc_pb_varint(struct mt_enc *b, unsigned field, uint64_t v)
{
    tag(b, field, WT_VARINT);
    raw_varint(b, v);
}

void mt_enc_pb_double(struct mt_enc *b, unsigned field, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    tag(b, field, WT_I64);
    le(b, u, 8);
}

void mt_enc_pb_float(struct mt_enc *b, unsigned field, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    tag(b, field, WT_I32);
    le(b, u, 4);
}

void mt_enc_pb_bytes(struct mt_enc *b, unsigned field, const void *p, size_t n)
{
    tag(b, field, WT_LEN);
    raw_varint(b, n);
    mt_enc_add(b, p, n);
}

void mt_enc_pb_str(struct mt_enc *b, unsigned field, const char *s)
{
    if (s)
        mt_enc_pb_bytes(b, field, s, strlen(s));
}

void mt_enc_pb_begin(struct mt_enc *b, unsigned field)
{
    tag(b, field, WT_LEN);
    if (b->depth == MT_ENC_DEPTH_MAX) {
        b->overflow = 1;
        return;
    }
    /* One byte for the length; end() widens it when the body is longer. */
    b->open[b->depth++] = b->len;
    mt_enc_add(b, "", 1);
}

void mt_enc_pb_end(struct mt_enc *b)
{
    if (b->depth == 0) {
        b->overflow = 1;
        return;
    }
    size_t at = b->open[--b->depth];
    if (b->overflow)
        return;
    size_t body = b->len - at - 1;
    unsigned char tmp[10];
    size_t k = varint_put(tmp, body);
    if (k > 1) {
        if (reserve(b, k - 1) != 0)
            return;
        memmove(b->p + at + k, b->p + at + 1, body);
        b->len += k - 1;
    }
    memcpy(b->p + at, tmp, k);
}

/* ---- checksums ---- */

uint32_t mt_enc_crc32(uint32_t crc, const void *p, size_t n)
{
    /* zlib takes a uInt length; feed it in pieces. */
    const unsigned char *s = p;
    while (n) {
        uInt part = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = (uint32_t)crc32(crc, s, part);
        s += part;
        n -= part;
    }
    return crc;
}

static uint32_t crc32c_table[256];

static void crc32c_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc32c_table[i] = c;
    }
}

uint32_t mt_enc_crc32c(uint32_t crc, const void *p, size_t n)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, crc32c_init);
    const unsigned char *s = p;
    crc = ~crc;
    while (n--)
        crc = crc32c_table[(crc ^ *s++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

uint32_t mt_enc_crc32c_masked(const void *p, size_t n)
{
    uint32_t c = mt_enc_crc32c(0, p, n);
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

/* ---- framings ---- */

void mt_enc_tfrecord(struct mt_enc *out, const void *data, size_t n)
{
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)((uint64_t)n >> (8 * i));
    mt_enc_add(out, len, 8);
    le(out, mt_enc_crc32c_masked(len, 8), 4);
    mt_enc_add(out, data, n);
    le(out, mt_enc_crc32c_masked(data, n), 4);
}

enum { CHUNK_FULL = 1, CHUNK_FIRST = 2, CHUNK_MIDDLE = 3, CHUNK_LAST = 4, CHUNK_HEADER = 7 };

void mt_enc_wandb_header(struct mt_enc *out)
{
    /* ":W&B", magic 0xBEE1 little-endian, version 0 */
    static const unsigned char h[MT_ENC_WANDB_HEADER_LEN] = {':', 'W', '&', 'B', 0xE1, 0xBE, 0};
    mt_enc_add(out, h, sizeof(h));
}

void mt_enc_wandb_record(struct mt_enc *out, uint64_t file_off, const void *data, size_t n)
{
    static const unsigned char zeros[CHUNK_HEADER] = {0};
    const unsigned char *s = data;
    size_t left = n;
    int begin = 1;
    do {
        size_t pos = (size_t)((file_off + out->len) % MT_ENC_WANDB_BLOCK);
        size_t room = MT_ENC_WANDB_BLOCK - pos;
        if (room < CHUNK_HEADER) {
            /* A header does not fit: pad the block with zeros. */
            mt_enc_add(out, zeros, room);
            room = MT_ENC_WANDB_BLOCK;
        }
        size_t avail = room - CHUNK_HEADER; /* 0 when exactly a header fits */
        size_t frag = left < avail ? left : avail;
        int end = frag == left;
        unsigned char type = begin && end ? CHUNK_FULL
                             : begin      ? CHUNK_FIRST
                             : end        ? CHUNK_LAST
                                          : CHUNK_MIDDLE;
        uint32_t crc = mt_enc_crc32(mt_enc_crc32(0, &type, 1), s, frag);
        le(out, crc, 4);
        le(out, frag, 2);
        mt_enc_add(out, &type, 1);
        mt_enc_add(out, s, frag);
        s += frag;
        left -= frag;
        begin = 0;
    } while (left > 0 && !out->overflow);
}

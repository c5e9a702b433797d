/* mt_enc: the byte-level encoders the file backends share (W&B transaction
 * logs, TensorBoard event files): the protobuf wire format, CRC-32 (zlib's,
 * as W&B uses it) and CRC-32C (TFRecord's, masked), and the two record
 * framings.  Byte layouts: ../shared/FORMATS.md.
 *
 * A small hand encoder rather than protobuf-c: the backends write a handful
 * of fields of a few messages (a W&B Record, a TensorBoard Event), and
 *     mt_enc_pb_begin(b, HISTORY); mt_enc_pb_str(b, ITEM_KEY, k); ...
 * with the field numbers named beside the .proto they come from reads closer
 * to the schema than filling generated structs (n_items, pointer arrays, the
 * oneof cases) and needs no generator at build time.
 *
 * struct mt_enc is a byte buffer with a cap: past it, further appends are
 * dropped and `overflow` is set (the caller counts and reports it). */
#ifndef MT_ENC_H
#define MT_ENC_H

#include <stddef.h>
#include <stdint.h>

#define MT_ENC_DEPTH_MAX 16

struct mt_enc {
    unsigned char *p;
    size_t len, cap, max;
    int overflow;
    size_t open[MT_ENC_DEPTH_MAX]; /* offsets of the nested messages' length bytes */
    int depth;
};

void mt_enc_init(struct mt_enc *b, size_t max);
void mt_enc_free(struct mt_enc *b);
void mt_enc_reset(struct mt_enc *b);       /* empty, capacity kept */
void mt_enc_add(struct mt_enc *b, const void *p, size_t n);

/* ---- protobuf wire format ---- */
void mt_enc_pb_varint(struct mt_enc *b, unsigned field, uint64_t v);   /* int32/64, bool, enum */
void mt_enc_pb_double(struct mt_enc *b, unsigned field, double v);     /* fixed64 */
void mt_enc_pb_float(struct mt_enc *b, unsigned field, float v);       /* fixed32 */
void mt_enc_pb_bytes(struct mt_enc *b, unsigned field, const void *p, size_t n);
void mt_enc_pb_str(struct mt_enc *b, unsigned field, const char *s);   /* NULL: nothing */
/* A nested message: begin writes its tag, end its length. */
void mt_enc_pb_begin(struct mt_enc *b, unsigned field);
void mt_enc_pb_end(struct mt_enc *b);

/* ---- checksums ---- */
uint32_t mt_enc_crc32(uint32_t crc, const void *p, size_t n);  /* zlib crc32: CRC-32/IEEE */
uint32_t mt_enc_crc32c(uint32_t crc, const void *p, size_t n); /* Castagnoli; start with 0 */
/* TFRecord's mask: ((c >> 15) | (c << 17)) + 0xa282ead8. */
uint32_t mt_enc_crc32c_masked(const void *p, size_t n);

/* ---- framings ---- */

/* A TFRecord: u64 LE length, masked CRC-32C of those 8 bytes, the data, its
 * masked CRC-32C. */
void mt_enc_tfrecord(struct mt_enc *out, const void *data, size_t n);

/* W&B's transaction log (LevelDB's log format with plain CRC-32 over type
 * and payload, 32 KiB blocks, the 7-byte file header in block 0). */
#define MT_ENC_WANDB_BLOCK 32768
#define MT_ENC_WANDB_HEADER_LEN 7
void mt_enc_wandb_header(struct mt_enc *out);
/* Appends one record, in chunks that never cross a block, for a file that
 * holds `file_off` bytes before out's contents. */
void mt_enc_wandb_record(struct mt_enc *out, uint64_t file_off, const void *data, size_t n);

#endif

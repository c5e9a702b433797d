/* The shared encoders against known vectors: the protobuf wire format (bytes
 * that Python's protobuf writes for wandb_internal_pb2 and TensorBoard's
 * event_pb2 messages), CRC-32 and CRC-32C check values, a TFRecord as
 * tensorboard's own RecordWriter frames it, and W&B's block framing at its
 * edges. */
#include <zlib.h>

#include "../../common/mt_enc.h"
#include "mt_test.h"

static int same_hex(const struct mt_enc *b, const char *hex)
{
    size_t n = strlen(hex) / 2;
    if (b->len != n || b->overflow) {
        fprintf(stderr, "    length %zu, want %zu\n", b->len, n);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        if (b->p[i] != v) {
            fprintf(stderr, "    byte %zu: %02x, want %02x\n", i, b->p[i], v);
            return 0;
        }
    }
    return 1;
}

MT_TEST(protobuf_matches_what_python_protobuf_writes)
{
    struct mt_enc b;
    mt_enc_init(&b, 1 << 20);
    /* wandb_internal_pb2.Record(num=1, history{item{key:"loss", value_json:"0.5"}, step{num:3}}) */
    mt_enc_pb_varint(&b, 1, 1);
    mt_enc_pb_begin(&b, 2);
    mt_enc_pb_begin(&b, 1);
    mt_enc_pb_str(&b, 1, "loss");
    mt_enc_pb_str(&b, 16, "0.5");
    mt_enc_pb_end(&b);
    mt_enc_pb_begin(&b, 2);
    mt_enc_pb_varint(&b, 1, 3);
    mt_enc_pb_end(&b);
    mt_enc_pb_end(&b);
    MT_CHECK(same_hex(&b, "080112120a0c0a046c6f7373820103302e3512020803"));
    /* Record{run{run_id:"abc", start_time{seconds:1700000000, nanos:5}}}: field 17 */
    mt_enc_reset(&b);
    mt_enc_pb_begin(&b, 17);
    mt_enc_pb_str(&b, 1, "abc");
    mt_enc_pb_begin(&b, 17);
    mt_enc_pb_varint(&b, 1, 1700000000);
    mt_enc_pb_varint(&b, 2, 5);
    mt_enc_pb_end(&b);
    mt_enc_pb_end(&b);
    MT_CHECK(same_hex(&b, "8a01100a036162638a01080880e2cfaa061005"));
    /* event_pb2.Event(wall_time=1.5, step=7, summary{value{tag:"loss", simple_value:0.25}}) */
    mt_enc_reset(&b);
    mt_enc_pb_double(&b, 1, 1.5);
    mt_enc_pb_varint(&b, 2, 7);
    mt_enc_pb_begin(&b, 5);
    mt_enc_pb_begin(&b, 1);
    mt_enc_pb_str(&b, 1, "loss");
    mt_enc_pb_float(&b, 2, 0.25f);
    mt_enc_pb_end(&b);
    mt_enc_pb_end(&b);
    MT_CHECK(same_hex(&b, "09000000000000f83f10072a0d0a0b0a046c6f7373150000803e"));
    mt_enc_free(&b);
}

MT_TEST(a_nested_message_longer_than_127_bytes_gets_a_wider_length)
{
    /* Record{history{item{key:"k"*200, value_json:"1"}}}: 213 bytes, starting 12 d2 01 0a cf 01 0a c8 */
    struct mt_enc b;
    mt_enc_init(&b, 1 << 20);
    char key[201];
    memset(key, 'k', 200);
    key[200] = '\0';
    mt_enc_pb_begin(&b, 2);
    mt_enc_pb_begin(&b, 1);
    mt_enc_pb_str(&b, 1, key);
    mt_enc_pb_str(&b, 16, "1");
    mt_enc_pb_end(&b);
    mt_enc_pb_end(&b);
    MT_CHECK(b.len == 213);
    static const unsigned char head[] = {0x12, 0xd2, 0x01, 0x0a, 0xcf, 0x01, 0x0a, 0xc8};
    MT_CHECK(memcmp(b.p, head, sizeof(head)) == 0);
    MT_CHECK(b.p[212] == '1');
    mt_enc_free(&b);
}

MT_TEST(the_cap_is_an_overflow_not_a_crash)
{
    struct mt_enc b;
    mt_enc_init(&b, 16);
    mt_enc_pb_str(&b, 1, "a string longer than sixteen bytes");
    MT_CHECK(b.overflow);
    MT_CHECK(b.len <= 16);
    mt_enc_pb_end(&b); /* unbalanced: still no crash */
    mt_enc_free(&b);
}

MT_TEST(crc_check_values)
{
    MT_CHECK(mt_enc_crc32(0, "123456789", 9) == 0xCBF43926u);
    MT_CHECK(mt_enc_crc32c(0, "123456789", 9) == 0xE3069283u);
    /* in pieces, the same */
    MT_CHECK(mt_enc_crc32c(mt_enc_crc32c(0, "1234", 4), "56789", 5) == 0xE3069283u);
    MT_CHECK(mt_enc_crc32c(0, "", 0) == 0);
    /* zlib's crc32 is the one W&B's reader checks */
    MT_CHECK(mt_enc_crc32(0, "abc", 3) == (uint32_t)crc32(0, (const Bytef *)"abc", 3));
}

MT_TEST(tfrecord_matches_tensorboards_record_writer)
{
    /* tensorboard.summary.writer.record_writer.RecordWriter(f).write(b"hello") */
    struct mt_enc b;
    mt_enc_init(&b, 1 << 20);
    mt_enc_tfrecord(&b, "hello", 5);
    MT_CHECK(same_hex(&b, "0500000000000000eab2043e68656c6c6fbb1f1c19"));
    mt_enc_free(&b);
}

/* Walks a W&B log in b (after its 7-byte header) and checks every chunk: the
 * CRC over type and payload, no chunk across a block, zero padding; returns
 * the records' lengths. */
static int walk(const struct mt_enc *b, size_t *lens, int max)
{
    size_t off = MT_ENC_WANDB_HEADER_LEN, cur = 0;
    int n = 0;
    while (off < b->len) {
        size_t room = MT_ENC_WANDB_BLOCK - off % MT_ENC_WANDB_BLOCK;
        if (room < 7) {
            for (size_t i = 0; i < room; i++)
                if (b->p[off + i])
                    return -1;
            off += room;
            continue;
        }
        const unsigned char *h = b->p + off;
        uint32_t crc = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 |
                       (uint32_t)h[3] << 24;
        size_t len = (size_t)h[4] | (size_t)h[5] << 8;
        unsigned type = h[6];
        if (7 + len > room || off + 7 + len > b->len)
            return -2;
        if (mt_enc_crc32(mt_enc_crc32(0, &h[6], 1), h + 7, len) != crc)
            return -3;
        cur += len;
        if (type == 1 || type == 4) {
            if (n < max)
                lens[n] = cur;
            n++;
            cur = 0;
        }
        off += 7 + len;
    }
    return n;
}

MT_TEST(wandb_framing_at_block_edges)
{
    struct mt_enc b;
    mt_enc_init(&b, 1 << 22);
    static unsigned char big[70000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (unsigned char)i;
    mt_enc_wandb_header(&b);
    MT_CHECK(b.len == 7 && memcmp(b.p, ":W&B\xe1\xbe\x00", 7) == 0);
    /* a record longer than a block: FIRST, MIDDLE, LAST */
    mt_enc_wandb_record(&b, 0, big, sizeof(big));
    MT_CHECK(b.p[7 + 6] == 2);
    MT_CHECK(b.p[MT_ENC_WANDB_BLOCK + 6] == 3);
    MT_CHECK(b.p[2 * MT_ENC_WANDB_BLOCK + 6] == 4);
    /* fill up to exactly 7 bytes before the block's end: a 0-length FIRST
     * chunk goes there, and the record goes on in the next block */
    size_t pos = b.len % MT_ENC_WANDB_BLOCK;
    size_t fill = MT_ENC_WANDB_BLOCK - pos - 7 - 7;
    mt_enc_wandb_record(&b, 0, big, fill);
    MT_CHECK(b.len % MT_ENC_WANDB_BLOCK == MT_ENC_WANDB_BLOCK - 7);
    mt_enc_wandb_record(&b, 0, "abc", 3);
    size_t at = (b.len / MT_ENC_WANDB_BLOCK) * MT_ENC_WANDB_BLOCK;
    MT_CHECK(b.p[at - 7 + 4] == 0 && b.p[at - 7 + 5] == 0 && b.p[at - 7 + 6] == 2);
    MT_CHECK(b.p[at + 6] == 4);
    /* 3 bytes left in a block: padded with zeros */
    pos = b.len % MT_ENC_WANDB_BLOCK;
    mt_enc_wandb_record(&b, 0, big, MT_ENC_WANDB_BLOCK - pos - 7 - 3);
    MT_CHECK(b.len % MT_ENC_WANDB_BLOCK == MT_ENC_WANDB_BLOCK - 3);
    mt_enc_wandb_record(&b, 0, "", 0);
    size_t lens[8];
    int n = walk(&b, lens, 8);
    MT_CHECK(n == 5);
    MT_CHECK(lens[0] == sizeof(big) && lens[2] == 3 && lens[4] == 0);
    /* the same records written in two parts, the second knowing the file's size */
    struct mt_enc b2;
    mt_enc_init(&b2, 1 << 22);
    mt_enc_wandb_record(&b2, 40000, "abc", 3);
    MT_CHECK((40000 + 0) % MT_ENC_WANDB_BLOCK + 7 + 3 == (40000 + b2.len) % MT_ENC_WANDB_BLOCK);
    mt_enc_free(&b2);
    mt_enc_free(&b);
}

int main(void)
{
    return mt_test_main();
}

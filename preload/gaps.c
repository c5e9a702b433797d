/* Output that no call announces: at -O2 glibc's headers inline putc_unlocked,
 * putchar_unlocked, fputc_unlocked and small constant fwrite_unlocked, which
 * store into the FILE buffer directly and call the exported __overflow only
 * when it is full.  For stdout and stderr we remember where the write pointer
 * was after each interposed call; whatever lies between that mark and the
 * pointer at the next interposed call, __overflow, fflush, fclose or exit was
 * written inline, and is recorded then. */
#include <stdio.h>

#include "shim.h"

MT_HIDDEN struct mt_gap mt_gaps[3];

/* The slow side of mt_gap_catch_up: the write pointer moved since the mark. */
MT_HIDDEN void mt_gap_record(FILE *fp, int stream)
{
    struct mt_gap *g = &mt_gaps[stream];
    char *now = fp->_IO_write_ptr;
    if (g->fp == fp && g->mark && g->base == fp->_IO_write_base && now > g->mark &&
        now <= fp->_IO_buf_end)
        mt_capture(stream, g->mark, (size_t)(now - g->mark), NULL, 0);
    mt_gap_mark(fp, stream);
}

MT_HIDDEN void mt_gap_catch_up_all(void)
{
    if (!mt_ring)
        return;
    for (int s = 1; s <= 2; s++)
        if (mt_gaps[s].fp && mt_stream_of_file(mt_gaps[s].fp) == s)
            mt_gap_catch_up(mt_gaps[s].fp, s);
}

/* Called by inline putc when the buffer is full: the buffer holds inline
 * bytes up to its end, then `c` follows. */
MT_EXPORT int __overflow(FILE *fp, int c)
{
    int stream = (mt_ring && mt_depth == 0 && fp) ? mt_stream_of_file(fp) : 0;
    if (stream)
        mt_gap_catch_up(fp, stream);
    mt_depth++;
    int rc = MT_REAL(overflow, "__overflow")(fp, c);
    mt_depth--;
    if (stream) {
        if (rc != EOF && c != EOF) {
            char ch = (char)c;
            mt_capture(stream, &ch, 1, NULL, 0);
        }
        mt_gap_mark(fp, stream);
    }
    return rc;
}

MT_EXPORT int fflush(FILE *fp)
{
    if (mt_ring && mt_depth == 0) {
        if (fp) {
            int stream = mt_stream_of_file(fp);
            if (stream)
                mt_gap_catch_up(fp, stream);
        } else {
            mt_gap_catch_up_all();
        }
    }
    mt_depth++;
    int rc = MT_REAL(fflush, "fflush")(fp);
    mt_depth--;
    if (mt_ring && fp) {
        int stream = mt_stream_of_file(fp);
        if (stream)
            mt_gap_mark(fp, stream);
    }
    return rc;
}

MT_EXPORT int fclose(FILE *fp)
{
    if (mt_ring && mt_depth == 0 && fp) {
        int stream = mt_stream_of_file(fp);
        if (stream) {
            mt_gap_catch_up(fp, stream);
            mt_gaps[stream].fp = NULL;
        }
    }
    return MT_REAL(fclose, "fclose")(fp);
}

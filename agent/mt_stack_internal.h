/* Shared by the files of the stack reader (stack.c, stack_ehframe.c). */
#ifndef MT_STACK_INTERNAL_H
#define MT_STACK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* An .eh_frame_hdr search table made from .eh_frame: (start, fde) pairs of
 * int32 offsets from `segbase`, sorted, for the code in [lo, hi). */
struct mt_ehtab {
    char path[512];
    uint64_t bias, segbase, lo, hi;
    int32_t (*ent)[2];
    size_t n;
};

/* Reads path's .eh_frame, loaded at `bias` (0 for a non-PIE executable). */
int mt_ehtab_build(const char *path, uint64_t bias, struct mt_ehtab *t);
void mt_ehtab_free(struct mt_ehtab *t);

#endif

/* mt_crash: the payload of an MT_REC_CRASH ring record (mt_ring.h), written by
 * the shim's crash handler (preload/crash.c) and read by the agent's
 * symbolizer (agent/symbolize.c).  Part of the shim/agent contract.
 *
 * Layout, all in the producer's byte order:
 *   struct mt_crash_hdr
 *   uint64_t ips[nframes]   innermost first; frame 0 is the interrupted
 *                           instruction (exact), the others return addresses
 *   char maps[maps_len]     the lines of /proc/<pid>/maps that contain one of
 *                           the ips, so the agent can map them to files after
 *                           the process is gone (not NUL-terminated)
 * The record's aux is the signal number. */
#ifndef MT_CRASH_H
#define MT_CRASH_H

#include <stdint.h>

#define MT_CRASH_MAGIC   0x4d544352u /* "MTCR" */
#define MT_CRASH_VERSION 1u
#define MT_CRASH_MAX_FRAMES 128u
#define MT_CRASH_MAX_MAPS   (24u << 10)

enum mt_crash_flags {
    MT_CRASH_UNWIND_FAULTED = 1u << 0, /* the unwinder faulted; frames so far kept */
    MT_CRASH_UNWIND_NONE    = 1u << 1, /* the DWARF walk found nothing: frame 0 is the pc */
    MT_CRASH_MAPS_CUT       = 1u << 2, /* the maps text was cut to fit */
    MT_CRASH_CHAINED        = 1u << 3, /* a handler installed before ours runs next */
    MT_CRASH_UNWIND_FP      = 1u << 4, /* frames past the first come from the fp chain */
};

struct mt_crash_hdr {
    uint32_t magic;
    uint16_t version;
    uint16_t hdr_size;   /* sizeof this struct, so it can grow */
    uint32_t pid, tid;
    int32_t signo, code; /* siginfo si_signo, si_code */
    uint64_t addr;       /* siginfo si_addr (the faulting address, if any) */
    uint32_t sender_pid; /* siginfo si_pid when sent by a process (si_code <= 0) */
    uint32_t flags;      /* enum mt_crash_flags */
    uint32_t nframes;
    uint32_t maps_len;
};

#endif

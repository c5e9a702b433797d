/* The real libc functions behind each interposer. */
#include <dlfcn.h>

#include "shim.h"

MT_HIDDEN struct mt_real mt_real;

MT_HIDDEN void *mt_resolve(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

MT_HIDDEN void mt_resolve_all(void)
{
#define R(field, name) MT_REAL(field, name)
    R(write, "write");
    R(writev, "writev");
    R(pwrite, "pwrite");
    R(vfprintf, "vfprintf");
    R(vfprintf_chk, "__vfprintf_chk");
    R(vdprintf, "vdprintf");
    R(vdprintf_chk, "__vdprintf_chk");
    R(puts, "puts");
    R(fputs, "fputs");
    R(fputs_unlocked, "fputs_unlocked");
    R(fwrite, "fwrite");
    R(fwrite_unlocked, "fwrite_unlocked");
    R(fputc, "fputc");
    R(fputc_unlocked, "fputc_unlocked");
    R(putc, "putc");
    R(putc_unlocked, "putc_unlocked");
    R(putchar, "putchar");
    R(putchar_unlocked, "putchar_unlocked");
    R(io_putc, "_IO_putc");
    R(exit, "exit");
    R(exit_, "_exit");
    R(Exit, "_Exit");
    R(dup2, "dup2");
    R(dup3, "dup3");
    R(close, "close");
    R(close_range, "close_range");
#undef R
    if (!mt_real.libc_start_main) {
        /* glibc 2.34 added a new version; dlsym would return whichever is the
         * default, which is what a program linked today calls. */
        void *p = dlvsym(RTLD_NEXT, "__libc_start_main", "GLIBC_2.34");
        if (!p)
            p = dlsym(RTLD_NEXT, "__libc_start_main");
        mt_real.libc_start_main = p;
    }
}

/* How a process's end reaches the agent: the value main returned, exit(),
 * _exit() and _Exit().  main is reached by wrapping __libc_start_main, since
 * the exit() that follows main's return is bound inside libc. */
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

static int (*real_main)(int, char **, char **);

static int main_wrapper(int argc, char **argv, char **envp)
{
    int code = real_main(argc, argv, envp);
    mt_gap_catch_up_all();
    mt_capture_end(MT_REC_EXIT, code & 0xff);
    return code;
}

MT_EXPORT int __libc_start_main(int (*main)(int, char **, char **), int argc, char **argv,
                                void (*init)(void), void (*fini)(void),
                                void (*rtld_fini)(void), void *stack_end)
{
    if (!mt_real.libc_start_main)
        mt_resolve_all();
    real_main = main;
    return mt_real.libc_start_main(main_wrapper, argc, argv, init, fini, rtld_fini, stack_end);
}

MT_EXPORT void exit(int code)
{
    mt_gap_catch_up_all();
    mt_capture_end(MT_REC_EXIT, code & 0xff);
    void (*real)(int) = MT_REAL(exit, "exit");
    real(code);
    __builtin_unreachable();
}

MT_EXPORT void _exit(int code)
{
    mt_capture_end(MT_REC_EXIT, code & 0xff);
    void (*real)(int) = mt_real.exit_;
    if (real)
        real(code);
    syscall(SYS_exit_group, code);
    __builtin_unreachable();
}

MT_EXPORT void _Exit(int code)
{
    mt_capture_end(MT_REC_EXIT, code & 0xff);
    void (*real)(int) = MT_REAL(Exit, "_Exit");
    real(code);
    __builtin_unreachable();
}

/* A preloaded library whose constructor installs SIGSEGV and SIGABRT
 * handlers before metrictap's shim does (it comes after the shim in
 * LD_PRELOAD, so it is initialised first): metrictap must chain to them.
 * The handler prints what it received, puts the default back and returns,
 * so the signal comes again and kills the process. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void prev_handler(int sig, siginfo_t *info, void *uc)
{
    char line[160];
    (void)uc;
    int n = snprintf(line, sizeof line, "prev handler: signal %d code %d addr %p from self %d\n",
                     sig, info->si_code, sig == SIGSEGV ? info->si_addr : NULL,
                     info->si_code <= 0 && info->si_pid == getpid());
    ssize_t w = write(2, line, (size_t)n);
    (void)w;
    signal(sig, SIG_DFL);
}

__attribute__((constructor)) static void install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = prev_handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGABRT, &sa, NULL);
}

/* Victim: how a process can end.  argv[1]: "return", "exit", "_exit",
 * "sigterm", "sigkill", "progress" (a \r progress bar first), "slow" (a line
 * every 20 ms for 3 s), "garbage" (binary bytes, NUL, bad UTF-8 and a 10 MB
 * line without a newline), "flood N" (N MB of 1 KB lines). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    const char *how = argc > 1 ? argv[1] : "return";
    printf("started loss: 1.5\n");
    if (!strcmp(how, "progress")) {
        for (int i = 1; i <= 10000; i++)
            fprintf(stderr, "\rprogress: %d", i);
        fprintf(stderr, "\n");
    } else if (!strcmp(how, "slow")) {
        for (int i = 0; i < 150; i++) {
            printf("tick %d\n", i);
            fflush(stdout);
            usleep(20000);
        }
    } else if (!strcmp(how, "garbage")) {
        static const unsigned char junk[] = { 0, 1, 2, 0xff, 0xfe, 0xc3, 0x28, 0xe2, 0x82, '\n',
                                              'k', '=', 0, '1', '\n' };
        fwrite(junk, 1, sizeof junk, stdout);
        size_t big = 10u << 20;
        char *line = malloc(big);
        memset(line, 'x', big);
        fwrite(line, 1, big, stdout);
        free(line);
        printf("\nafter the long line acc: 0.5\n");
    } else if (!strcmp(how, "flood")) {
        long mb = argc > 2 ? strtol(argv[2], NULL, 10) : 64;
        char line[1024];
        memset(line, 'y', sizeof line);
        line[sizeof line - 1] = '\n';
        for (long i = 0; i < mb * 1024; i++)
            fwrite(line, 1, sizeof line, stdout);
    }
    printf("before the end\n");
    if (!strcmp(how, "exit"))
        exit(2);
    if (!strcmp(how, "_exit")) {
        printf("buffered when _exit came\n");
        _exit(3);
    }
    if (!strcmp(how, "sigterm"))
        raise(SIGTERM);
    if (!strcmp(how, "sigkill"))
        raise(SIGKILL);
    return 0;
}

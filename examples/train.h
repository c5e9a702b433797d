/* The body both example trainers share: a tiny "legacy" training loop that
 * prints one metric line per epoch on stdout and progress on stderr, the way
 * old C trainers do. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int train(int argc, char **argv, int epochs, int fail_after)
{
    double lr = 0.1;
    int delay_ms = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--lr") == 0 && i + 1 < argc)
            lr = strtod(argv[++i], NULL);
        else if (strcmp(argv[i], "--epochs") == 0 && i + 1 < argc)
            epochs = (int)strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--delay-ms") == 0 && i + 1 < argc)
            delay_ms = (int)strtol(argv[++i], NULL, 10);
    }
    printf("training with lr=%g for %d epochs\n", lr, epochs);
    double loss = 2.0, acc = 0.1;
    for (int e = 1; e <= epochs; e++) {
        for (int b = 0; b < 4; b++)
            fprintf(stderr, "epoch %d: batch %d/4\r", e, b + 1);
        fprintf(stderr, "\n");
        loss = loss * (1.0 - lr * 2.5) + 0.01 * e;
        acc = 1.0 - 0.9 * exp(-0.35 * e);
        printf("epoch %d loss=%.4f acc=%.3f\n", e, loss, acc);
        fflush(stdout);
        if (delay_ms)
            usleep((useconds_t)delay_ms * 1000);
        if (fail_after && e == fail_after) {
            fprintf(stderr, "error: diverged at epoch %d\n", e);
            return 3;
        }
    }
    puts("done");
    return 0;
}

/* Prints, then blocks in read() on a pipe of its own (whose writer is a
 * child that writes once stdin says so), then prints again
 * (tests/integration/test_stack.py): the read must come back with the data,
 * not EINTR, after the dump held the thread. */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline, noclone)) static ssize_t victim_read_pipe(int fd, char *buf, size_t n)
{
    ssize_t r = read(fd, buf, n);
    __asm__ volatile("" ::: "memory");
    return r;
}

int main(void)
{
    int p[2];
    if (pipe(p) != 0)
        return 1;
    for (int i = 0; i < 100; i++)
        printf("before %d\n", i);
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        char go[16];
        close(p[0]);
        if (read(0, go, sizeof go) > 0 && write(p[1], "payload", 7) != 7)
            _exit(1);
        _exit(0);
    }
    close(p[1]);
    char buf[64] = "";
    ssize_t r = victim_read_pipe(p[0], buf, sizeof buf - 1);
    int status = 0;
    waitpid(child, &status, 0);
    printf("read %zd: %s\n", r, r > 0 ? buf : strerror(0));
    for (int i = 0; i < 100; i++)
        printf("after %d\n", i);
    return WIFEXITED(status) ? 10 + WEXITSTATUS(status) : 2;
}

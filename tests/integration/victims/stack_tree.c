/* Eight processes (tests/integration/test_stack.py): the parent and seven
 * children, each child blocked in read() on a pipe the parent holds open;
 * the parent waits in read() on stdin, then closes the pipe and reaps them. */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline, noclone)) static void victim_child_waits(int fd)
{
    char c;
    while (read(fd, &c, 1) > 0)
        ;
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline, noclone)) static void victim_parent_waits(void)
{
    char buf[16];
    if (read(0, buf, sizeof buf) < 0)
        perror("read");
    __asm__ volatile("" ::: "memory");
}

int main(void)
{
    int p[2];
    if (pipe(p) != 0)
        return 1;
    printf("tree of 8\n");
    fflush(stdout);
    for (int i = 0; i < 7; i++) {
        if (fork() == 0) {
            close(p[1]);
            victim_child_waits(p[0]);
            _exit(i);
        }
    }
    close(p[0]);
    victim_parent_waits();
    close(p[1]);
    int sum = 0, status;
    while (wait(&status) > 0)
        sum += WEXITSTATUS(status);
    printf("done %d\n", sum);
    return 0;
}

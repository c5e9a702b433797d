/* A parent in uninterruptible sleep (D): vfork's parent waits, killable but
 * not interruptible, until its child execs or exits; the child waits in
 * read() on stdin (tests/integration/test_stack.py).  The dump reports the
 * parent without holding it. */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline, noclone)) static void victim_vfork_child(void)
{
    char buf[16];
    if (read(0, buf, sizeof buf) < 0)
        _exit(2);
    _exit(5);
}

int main(void)
{
    printf("vforking\n");
    fflush(stdout);
    pid_t child = vfork();
    if (child == 0)
        victim_vfork_child();
    int status = 0;
    waitpid(child, &status, 0);
    printf("child %d\n", WEXITSTATUS(status));
    return 0;
}

/* hermod-probe: makes one system call the seccomp filter is about and
 * prints "<name>: ok" or "<name>: <ERRNO>". Compiled by the test fixture
 * with the host's gcc into the test rootfs. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static long i386_getpid(void) {
    long ret = 20; /* __NR_getpid on i386 */
    __asm__ volatile("int $0x80" : "+a"(ret) : : "memory");
    return ret;
}

int main(int argc, char **argv) {
    const char *op = argc > 1 ? argv[1] : "";
    long r;
    char c = 'x';
    if (!strcmp(op, "unshare")) {
        r = unshare(CLONE_NEWUSER);
    } else if (!strcmp(op, "clone-newuser")) {
        r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
        if (r == 0) _exit(0);
        if (r > 0) waitpid(r, 0, 0);
    } else if (!strcmp(op, "clone3")) {
        r = syscall(SYS_clone3, 0, 0);
    } else if (!strcmp(op, "fork")) {
        r = fork();
        if (r == 0) _exit(0);
        if (r > 0) waitpid(r, 0, 0);
    } else if (!strcmp(op, "mount")) {
        r = mount("none", "/tmp", "tmpfs", 0, 0);
    } else if (!strcmp(op, "tiocsti")) {
        r = ioctl(1, TIOCSTI, &c);
    } else if (!strcmp(op, "personality")) {
        r = personality(ADDR_NO_RANDOMIZE);
    } else if (!strcmp(op, "x32")) {
        r = syscall(0x40000000 | SYS_getpid);
    } else if (!strcmp(op, "i386")) {
        r = i386_getpid();
        if (r < 0) { errno = -r; r = -1; }
    } else {
        fprintf(stderr, "hermod-probe: unknown op %s\n", op);
        return 2;
    }
    if (r < 0)
        printf("%s: %s\n", op, strerrorname_np(errno));
    else
        printf("%s: ok\n", op);
    return 0;
}

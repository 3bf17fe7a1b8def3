/* Hostile build, freestanding (see syscall.h, which the test copies in). */
#include "syscall.h"

/* ptrace another process. */
void _start(void)
{
	check("ptrace attach to pid 1", sys(101, 16, 1, 0, 0, 0));
	sys(60, 1, 0, 0, 0, 0);
}

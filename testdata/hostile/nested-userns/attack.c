/* Hostile build, freestanding (see syscall.h, which the test copies in). */
#include "syscall.h"

/* create a nested user namespace. */
void _start(void)
{
	check("unshare(CLONE_NEWUSER)", sys(272, 0x10000000, 0, 0, 0, 0));
	check("setns", sys(308, 0, 0, 0, 0, 0));
	sys(60, 1, 0, 0, 0, 0);
}

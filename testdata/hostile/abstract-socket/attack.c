/* Hostile build, freestanding (see syscall.h, which the test copies in). */
#include "syscall.h"

/* reach the host through an abstract unix socket. */
void _start(void)
{
	struct { unsigned short family; char path[32]; } addr = { 1, "\0hermod-hostile-abstract" };
	long s = sys(41, 1, 1, 0, 0, 0);
	check("connect to @hermod-hostile-abstract", s < 0 ? s : sys(42, s, (long)&addr, 2 + 1 + 23, 0, 0));
	sys(60, 1, 0, 0, 0, 0);
}

/* Hostile build, freestanding (see syscall.h, which the test copies in). */
#include "syscall.h"

/* push keystrokes into the caller's terminal (TIOCSTI). */
void _start(void)
{
	for (long fd = 0; fd < 3; fd++)
		check("ioctl(TIOCSTI)", sys(16, fd, 0x5412, (long)"x", 0, 0));
	sys(60, 1, 0, 0, 0, 0);
}

/* Hostile build, freestanding (see syscall.h, which the test copies in). */
#include "syscall.h"

/* Fork until the kernel refuses; every child waits to be killed. Contained
 * when fork fails long before MANY: the sandbox's pids cgroup (default 2048)
 * or RLIMIT_NPROC (default 4096) stops it. */
#define MANY 8192

void _start(void)
{
	long n = 0, r;
	for (;;) {
		r = sys(57, 0, 0, 0, 0, 0); /* fork */
		if (r == 0)
			for (;;)
				sys(34, 0, 0, 0, 0, 0); /* pause */
		if (r < 0)
			break;
		if (++n >= MANY) {
			escaped("fork bomb: 8192 processes and counting");
			break;
		}
	}
	refused("fork bomb: fork", r);
	sys(60, 1, 0, 0, 0, 0);
}

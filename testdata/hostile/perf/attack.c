/* Hostile build, freestanding (see syscall.h, which the test copies in). */
#include "syscall.h"

/* open a perf event. */
void _start(void)
{
	char attr[128] = {0};
	check("perf_event_open", sys(298, (long)attr, 0, -1, -1, 0));
	sys(60, 1, 0, 0, 0, 0);
}

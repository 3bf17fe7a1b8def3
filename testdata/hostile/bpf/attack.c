/* Hostile build, freestanding (see syscall.h, which the test copies in). */
#include "syscall.h"

/* load a BPF program. */
void _start(void)
{
	char attr[128] = {0};
	check("bpf(BPF_MAP_CREATE)", sys(321, 0, (long)attr, sizeof attr, 0, 0));
	sys(60, 1, 0, 0, 0, 0);
}

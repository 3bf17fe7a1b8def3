/* Hostile build, freestanding (see syscall.h, which the test copies in). */
#include "syscall.h"

/* load a kernel module. */
void _start(void)
{
	check("init_module", sys(175, (long)"\177ELF", 4, (long)"", 0, 0));
	check("finit_module", sys(313, 0, (long)"", 0, 0, 0));
	check("delete_module", sys(176, (long)"hello", 0, 0, 0, 0));
	sys(60, 1, 0, 0, 0, 0);
}

/* Hostile build, freestanding (see syscall.h, which the test copies in). */
#include "syscall.h"

/* read the kernel keyrings. */
void _start(void)
{
	check("keyctl(GET_KEYRING_ID, user keyring)", sys(250, 0, -4, 0, 0, 0));
	check("add_key", sys(248, (long)"user", (long)"hostile", (long)"x", 1, -4));
	sys(60, 1, 0, 0, 0, 0);
}

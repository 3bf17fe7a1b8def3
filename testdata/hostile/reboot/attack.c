/* Hostile build, freestanding (see syscall.h, which the test copies in). */
#include "syscall.h"

/* reboot the machine (asks only to change Ctrl-Alt-Del handling). */
void _start(void)
{
	check("reboot(CAD_OFF)", sys(169, 0xfee1dead, 672274793, 0, 0, 0));
	sys(60, 1, 0, 0, 0, 0);
}

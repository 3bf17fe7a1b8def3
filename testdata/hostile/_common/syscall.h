/* syscall.h: shared by the hostile builds that make system calls directly.
 * Freestanding: the build root has a compiler but no libc
 * headers, so system calls are made directly. Prints HOSTILE-ESCAPED (built at
 * run time, so the text is not in make's echo) when the attempt succeeds. */
static long sys(long n, long a, long b, long c, long d, long e)
{
	long r;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8) : "rcx", "r11", "memory");
	return r;
}

static void say(const char *s)
{
	long n = 0;
	while (s[n])
		n++;
	sys(1, 1, (long)s, n, 0, 0);
}

static void escaped(const char *what)
{
	say("HOSTILE-");
	say("ESCAPED: ");
	say(what);
	say("\n");
}

static void refused(const char *what, long r)
{
	char num[24];
	int i = 23;
	unsigned long v = (unsigned long)(r < 0 ? -r : r);
	num[i] = 0;
	do {
		num[--i] = '0' + v % 10;
		v /= 10;
	} while (v && i > 0);
	say(what);
	say(": refused, errno ");
	say(num + i);
	say("\n");
}

static void check(const char *what, long r)
{
	if (r >= 0)
		escaped(what);
	else
		refused(what, r);
}

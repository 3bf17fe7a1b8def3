/* Hostile build, freestanding (see syscall.h, which the test copies in). */
#include "syscall.h"

/* Fill every writable place: the build directory, /tmp, the outputs
 * directory, /dev/shm (tmpfs of bounded size, in memory, not on the host's
 * disk) and stdout, which is the host's log file (bounded by RLIMIT_FSIZE).
 * Contained when each write stops with ENOSPC or EFBIG long before TOO_MUCH. */
#define MIB (1L << 20)
#define TOO_MUCH 512 /* MiB; the test sets limits of 16 to 64 MiB */

static char chunk[MIB];

static void fill_fd(const char *what, long fd)
{
	long mb = 0, r;
	for (;;) {
		r = sys(1, fd, (long)chunk, MIB, 0, 0); /* write */
		if (r < MIB)
			break;
		if (++mb >= TOO_MUCH) {
			escaped(what);
			return;
		}
	}
	refused(what, r < 0 ? r : 28 /* a short write: the space ran out */);
}

static void fill_file(const char *path)
{
	long fd = sys(2, (long)path, 01 | 0100 | 01000, 0644, 0, 0); /* open O_WRONLY|O_CREAT|O_TRUNC */
	if (fd < 0) {
		refused(path, fd);
		return;
	}
	fill_fd(path, fd);
	sys(3, fd, 0, 0, 0, 0);              /* close */
	sys(87, (long)path, 0, 0, 0, 0);     /* unlink: free the space for the next */
}

void _start(void)
{
	/* Lines, so that the log stays readable. */
	for (long i = 0; i < MIB; i++)
		chunk[i] = (i % 64 == 63) ? '\n' : 'x';
	fill_file("/build/src/fill");
	fill_file("/tmp/fill");
	fill_file("/hermod/out/fill");
	fill_file("/dev/shm/fill");
	/* SIGXFSZ would kill us at the file size limit; ignore it to see EFBIG. */
	long act[4] = { 1 /* SIG_IGN */, 0, 0, 0 };
	sys(13, 25 /* SIGXFSZ */, (long)act, 0, 8, 0); /* rt_sigaction */
	fill_fd("stdout (the host's log file)", 1);
	sys(60, 1, 0, 0, 0, 0);
}

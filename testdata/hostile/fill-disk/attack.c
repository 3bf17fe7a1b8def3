/* Hostile build, freestanding (see syscall.h, which the test copies in). */
#include "syscall.h"

/* Fill every writable place: the build directory, /tmp, the outputs
 * directory, /dev/shm (tmpfs of bounded size, in memory, not on the host's
 * disk) and stdout, which is the host's log file (bounded by RLIMIT_FSIZE).
 * Each place is filled with many 8 MiB files, below the file size limit, so
 * that it is the tmpfs size that stops them. Contained when every place is
 * full (ENOSPC, or EFBIG for the log) long before TOO_MUCH. */
#define MIB (1L << 20)
#define FILE_MIB 8
#define TOO_MUCH 512 /* MiB; the test sets limits of 16 to 64 MiB */

static char chunk[MIB];

/* Writes up to `most` MiB to fd; returns how many, or -errno on a failed write. */
static long fill_fd(long fd, long most, long *err)
{
	long mb = 0, r;
	while (mb < most) {
		r = sys(1, fd, (long)chunk, MIB, 0, 0); /* write */
		if (r < MIB) {
			*err = r < 0 ? r : -28 /* a short write: ENOSPC */;
			return mb;
		}
		mb++;
	}
	*err = 0;
	return mb;
}

static void fill_dir(const char *dir)
{
	char path[128];
	long total = 0, err = 0, files = 0;
	int n = 0;
	while (dir[n]) {
		path[n] = dir[n];
		n++;
	}
	path[n] = '/';
	path[n + 1] = 'f';
	path[n + 3] = 0;
	while (err == 0 && total < TOO_MUCH) {
		path[n + 2] = 'a' + files % 26;
		if (files >= 26)
			break;
		long fd = sys(2, (long)path, 01 | 0100 | 01000, 0644, 0, 0); /* open O_WRONLY|O_CREAT|O_TRUNC */
		if (fd < 0) {
			err = fd;
			break;
		}
		files++;
		total += fill_fd(fd, FILE_MIB, &err);
		sys(3, fd, 0, 0, 0, 0); /* close */
	}
	if (total >= TOO_MUCH || (err == 0 && files >= 26))
		escaped(dir);
	else
		refused(dir, err);
	for (long i = 0; i < files; i++) {
		path[n + 2] = 'a' + i;
		sys(87, (long)path, 0, 0, 0, 0); /* unlink: free the space for the next */
	}
}

void _start(void)
{
	/* Lines, so that the log stays readable. */
	for (long i = 0; i < MIB; i++)
		chunk[i] = (i % 64 == 63) ? '\n' : 'x';
	/* SIGXFSZ would kill us at the file size limit; ignore it to see EFBIG. */
	long act[4] = { 1 /* SIG_IGN */, 0, 0, 0 };
	sys(13, 25 /* SIGXFSZ */, (long)act, 0, 8, 0); /* rt_sigaction */
	fill_dir("/build/src");
	fill_dir("/tmp");
	fill_dir("/hermod/out");
	fill_dir("/dev/shm");
	long err = 0;
	if (fill_fd(1, TOO_MUCH, &err) >= TOO_MUCH)
		escaped("stdout (the host's log file)");
	sys(60, 1, 0, 0, 0, 0);
}

/*
 * procstat.c: the process_* metrics, read from /proc/self as the
 * Prometheus client libraries read them (client_golang's procfs,
 * client_python's process_collector): CPU time and start time from
 * /proc/self/stat in clock ticks, memory from the same line (vsize in
 * bytes, rss in pages), open descriptors by listing /proc/self/fd, the
 * limit from getrlimit(RLIMIT_NOFILE). What cannot be read is left < 0
 * and its sample is left out. Not a policy module: it reads files.
 */
#include <sys/resource.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spillway.h"
#include "metrics.h"

/* The boot time, "btime" of /proc/stat, in seconds; -1 if unknown. */
static double
boot_time(void)
{
	static double	 btime = -1;	/* it does not change */
	char		 line[256];
	FILE		*f;
	unsigned long long v;

	if (btime >= 0 || (f = fopen("/proc/stat", "re")) == NULL)
		return btime;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "btime %llu", &v) == 1) {
			btime = (double)v;
			break;
		}
	fclose(f);
	return btime;
}

/*
 * Fields 14 (utime), 15 (stime), 22 (starttime), 23 (vsize) and 24 (rss)
 * of /proc/self/stat. The second field, the command, is in parentheses
 * and may hold spaces and ')': the rest starts after its last ')'.
 */
static void
read_stat(struct metrics_process *p)
{
	char			 buf[1024], *s;
	unsigned long long	 utime, stime, start, vsize;
	long long		 rss;
	ssize_t			 n;
	int			 fd;
	long			 tck = sysconf(_SC_CLK_TCK);
	long			 page = sysconf(_SC_PAGESIZE);
	double			 btime;

	if ((fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC)) == -1)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	if ((s = strrchr(buf, ')')) == NULL)
		return;
	/* from field 3 (state) on */
	if (sscanf(s + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
	    "%llu %llu %*d %*d %*d %*d %*d %*d %llu %llu %lld", &utime, &stime,
	    &start, &vsize, &rss) != 5 || tck <= 0)
		return;
	p->cpu_seconds = (double)(utime + stime) / (double)tck;
	p->virtual_memory_bytes = (double)vsize;
	if (page > 0)
		p->resident_memory_bytes = (double)rss * (double)page;
	if ((btime = boot_time()) >= 0)
		p->start_time_seconds = btime + (double)start / (double)tck;
}

/* Entries of /proc/self/fd but "." and "..", and the one we opened. */
static double
open_fds(void)
{
	DIR		*d;
	struct dirent	*de;
	double		 n = 0;

	if ((d = opendir("/proc/self/fd")) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;
}

void
procstat_read(struct metrics_process *p)
{
	struct rlimit	 rl;

	p->start_time_seconds = p->cpu_seconds = -1;
	p->resident_memory_bytes = p->virtual_memory_bytes = -1;
	p->max_fds = -1;
	read_stat(p);
	p->open_fds = open_fds();
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		p->max_fds = (double)rl.rlim_cur;
}

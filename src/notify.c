/*
 * notify.c: sd_notify(3) for Type=notify units. Start-up sends READY=1
 * once every listener is bound; a reload, whether from SIGHUP or from
 * POST /reload, is framed by RELOADING=1 (with MONOTONIC_USEC, which
 * systemd 253 and later want and older ones ignore) and READY=1, sent
 * also when the reload failed and the old configuration runs on. Outside
 * systemd (no NOTIFY_SOCKET) sd_notify does nothing.
 */
#include <stdint.h>
#include <time.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "notify.h"

#ifdef HAVE_LIBSYSTEMD
void
notify_ready(void)
{
	sd_notify(0, "READY=1\nSTATUS=running");
}

void
notify_reloading(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf(0, "RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC=%llu",
	    (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000);
}

void
notify_stopping(void)
{
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}
#else
void
notify_ready(void)
{
}

void
notify_reloading(void)
{
}

void
notify_stopping(void)
{
}
#endif

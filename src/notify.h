/*
 * notify.h: tell the service manager (systemd, when built with libsystemd
 * and run under it) where spillway stands. No-ops otherwise.
 */
#ifndef SPILLWAY_NOTIFY_H
#define SPILLWAY_NOTIFY_H

void	notify_ready(void);	/* listening, or done reloading */
void	notify_reloading(void);	/* a reload starts */
void	notify_stopping(void);	/* a graceful stop starts */

#endif

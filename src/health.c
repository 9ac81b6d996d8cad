/*
 * health.c: passive health of one backend server (see health.h).
 *
 * Invariants:
 * - Only a server that is up can be ejected, and only when fewer than
 *   max_ejection_percent of the servers would then be out; an ejected
 *   server comes back only by a successful trial request.
 * - Once its back-off is over, an ejected server gets one trial at a time
 *   (upstream.c makes it a connection of its own, not a client's request):
 *   requests still avoid it, so an outage costs no client any wait. A
 *   server back from a trial is on probation: until a request succeeds,
 *   its first failure ejects it again, for a longer back-off.
 * - Outcomes of requests that were already in flight when the server was
 *   ejected change nothing: only the trial decides.
 * - The back-off doubles with each ejection in a row, from fail_timeout up
 *   to max_ejection_time, and starts over once the server has stayed up
 *   for max_ejection_time.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "health.h"

static const char *const state_names[HS_NSTATES] = {
	[HS_UP] = "up",
	[HS_EJECTED] = "ejected",
	[HS_TRIAL] = "trial",
	[HS_DOWN] = "down",
};

static const char *const event_names[HE_NEVENTS] = {
	[HE_OK] = "ok",
	[HE_NEUTRAL] = "no verdict",
	[HE_CONNECT] = "connect failed",
	[HE_CONNECT_TIMEOUT] = "connect timed out",
	[HE_RESET] = "closed before answering",
	[HE_TIMEOUT] = "no response in time",
	[HE_INVALID] = "invalid response",
	[HE_5XX] = "5xx response",
};

const char *
health_state_name(enum health_state s)
{
	return (unsigned int)s < HS_NSTATES ? state_names[s] : "unknown";
}

const char *
health_event_name(enum health_event e)
{
	return (unsigned int)e < HE_NEVENTS ? event_names[e] : "unknown";
}

void
health_init(struct health *h, uint64_t now)
{
	h->hs_state = HS_UP;
	h->hs_fails = 0;
	h->hs_backoff = 0;
	h->hs_until = 0;
	/* a server new at start-up is at full weight at once */
	h->hs_since = 0;
	h->hs_ejections = 0;
	h->hs_failures = 0;
	h->hs_last = HE_OK;
	h->hs_check_ok = 0;
	h->hs_check_fail = 0;
	h->hs_checks = 0;
	h->hs_checks_failed = 0;
	(void)now;
}

/* The back-off of the next ejection, in usec. */
static uint64_t
backoff_usec(const struct health_conf *hc, unsigned int n)
{
	uint64_t	 ms = hc->fail_timeout_ms;

	while (n-- > 0 && ms < hc->max_ejection_time_ms)
		ms *= 2;
	if (ms > hc->max_ejection_time_ms)
		ms = hc->max_ejection_time_ms;
	return ms * 1000;
}

static void
eject(struct health *h, const struct health_conf *hc, uint64_t now)
{
	h->hs_until = now + backoff_usec(hc, h->hs_backoff);
	h->hs_backoff++;
	h->hs_state = HS_EJECTED;
	h->hs_since = now;
	h->hs_ejections++;
	h->hs_fails = 0;
}

/* Back up: after a trial, on probation (see the invariants). */
static void
come_back(struct health *h, const struct health_conf *hc, uint64_t now)
{
	h->hs_state = HS_UP;
	h->hs_since = now;
	h->hs_fails = hc->max_fails > 0 ? hc->max_fails - 1 : 0;
}

int
health_event(struct health *h, const struct health_conf *hc,
    enum health_event ev, int trial, size_t nejected, size_t nservers,
    uint64_t now)
{
	int	 failure = ev != HE_OK && ev != HE_NEUTRAL;

	if (failure) {
		h->hs_failures++;
		h->hs_last = ev;
	}
	if (h->hs_state != HS_UP) {
		if (!trial || h->hs_state != HS_TRIAL)
			return 0;
		if (ev == HE_NEUTRAL) {
			h->hs_state = HS_EJECTED;	/* may be tried again */
			return 0;
		}
		if (failure) {
			eject(h, hc, now);
			h->hs_ejections--;	/* the same ejection, longer */
			return 1;
		}
		come_back(h, hc, now);
		return 1;
	}
	if (ev == HE_OK) {
		h->hs_fails = 0;
		return 0;
	}
	if (!failure || hc->max_fails == 0)
		return 0;
	if (++h->hs_fails < hc->max_fails)
		return 0;
	/* would one more out stay within the share? */
	if ((nejected + 1) * 100 > (uint64_t)nservers *
	    hc->max_ejection_percent)
		return 0;
	if (now - h->hs_since >= hc->max_ejection_time_ms * 1000)
		h->hs_backoff = 0;
	eject(h, hc, now);
	return 1;
}

int
health_usable(const struct health *h, const struct health_conf *hc,
    uint64_t now)
{
	switch (h->hs_state) {
	case HS_UP:
		return 2;
	case HS_EJECTED:
		/* with checks on, the next check is the trial */
		return now >= h->hs_until && !hc->check_on ? 1 : 0;
	default:
		return 0;
	}
}

int
health_check_result(struct health *h, const struct health_conf *hc, int ok,
    uint64_t now)
{
	h->hs_checks++;
	if (!ok) {
		h->hs_checks_failed++;
		h->hs_check_ok = 0;
		if (h->hs_check_fail < UINT32_MAX)
			h->hs_check_fail++;
		if (h->hs_state == HS_DOWN || h->hs_check_fail < hc->check_fall)
			return 0;
		h->hs_state = HS_DOWN;
		h->hs_since = now;
		h->hs_fails = 0;
		return 1;
	}
	h->hs_check_fail = 0;
	if (h->hs_check_ok < UINT32_MAX)
		h->hs_check_ok++;
	switch (h->hs_state) {
	case HS_DOWN:
		if (h->hs_check_ok < hc->check_rise)
			return 0;
		h->hs_state = HS_UP;
		h->hs_since = now;
		h->hs_fails = 0;
		return 1;
	case HS_EJECTED:
		if (now < h->hs_until)
			return 0;
		come_back(h, hc, now);
		return 1;
	default:
		return 0;
	}
}

int
health_checks_off(struct health *h, uint64_t now)
{
	h->hs_check_ok = 0;
	h->hs_check_fail = 0;
	if (h->hs_state != HS_DOWN)
		return 0;
	h->hs_state = HS_UP;
	h->hs_since = now;
	h->hs_fails = 0;
	return 1;
}

void
health_trial_start(struct health *h, uint64_t now)
{
	(void)now;
	if (h->hs_state == HS_EJECTED)
		h->hs_state = HS_TRIAL;
}

int
health_out(const struct health *h)
{
	return h->hs_state != HS_UP;
}

uint64_t
health_quiet_from(const struct health *h, const struct health_conf *hc)
{
	if (h->hs_state != HS_UP || h->hs_fails > 0)
		return UINT64_MAX;
	if (hc->slowstart_ms == 0 || h->hs_since == 0)
		return 0;
	return h->hs_since + hc->slowstart_ms * 1000;
}

double
health_weight(const struct health *h, const struct health_conf *hc,
    uint64_t now)
{
	uint64_t	 up;

	if (h->hs_state != HS_UP)
		return 0;
	if (hc->slowstart_ms == 0 || h->hs_since == 0)
		return 1;
	up = now > h->hs_since ? now - h->hs_since : 0;
	if (up >= hc->slowstart_ms * 1000)
		return 1;
	return (double)up / (double)(hc->slowstart_ms * 1000);
}

uint64_t
health_wait(const struct health *h, uint64_t now)
{
	if (h->hs_state == HS_UP || now >= h->hs_until)
		return 0;
	return h->hs_until - now;
}

/* A token character (RFC 9110, 5.6.2). */
static int
tchar(int ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9') || (ch != '\0' &&
	    strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* A character of a Host value: a name, an IPv4 or [IPv6], a port. */
static int
hostchar(int ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9') || (ch != '\0' &&
	    strchr(".-_:[]", ch) != NULL);
}

/* The next blank-separated word of *p: its start and length; 0 at end. */
static size_t
word(const char **p, const char **start)
{
	const char	*q = *p;

	while (*q == ' ' || *q == '\t')
		q++;
	*start = q;
	while (*q != '\0' && *q != ' ' && *q != '\t')
		q++;
	*p = q;
	return (size_t)(q - *start);
}

long
health_check_request(const char *spec, const char *host, char *buf,
    size_t len, const char **why)
{
	const char	*p = spec, *m, *path, *h, *extra;
	size_t		 ml, pl, hl, i;
	int		 n;

	if ((ml = word(&p, &m)) == 0 || ml > 32) {
		*why = "needs a method: METHOD PATH [HOST]";
		return -1;
	}
	for (i = 0; i < ml; i++)
		if (!tchar((unsigned char)m[i])) {
			*why = "the method is not a token";
			return -1;
		}
	if (ml == 7 && memcmp(m, "CONNECT", 7) == 0) {
		*why = "CONNECT opens a tunnel: no check";
		return -1;
	}
	if ((pl = word(&p, &path)) == 0 || path[0] != '/' || pl > 1024) {
		*why = "needs a path starting with '/', at most 1024 bytes";
		return -1;
	}
	/* as the request parser wants a target: no fragment (RFC 9112 3.2) */
	for (i = 0; i < pl; i++)
		if ((unsigned char)path[i] <= 0x20 ||
		    (unsigned char)path[i] >= 0x7f || path[i] == '#') {
			*why = "the path has a byte that is not visible ASCII, "
			    "or a '#'";
			return -1;
		}
	if ((hl = word(&p, &h)) == 0) {
		h = host;
		hl = strlen(host);
	}
	if (hl == 0 || hl > 255) {
		*why = "the host is empty or longer than 255 bytes";
		return -1;
	}
	for (i = 0; i < hl; i++)
		if (!hostchar((unsigned char)h[i])) {
			*why = "the host has a byte not allowed in a host name";
			return -1;
		}
	if (word(&p, &extra) != 0) {
		*why = "too many words: METHOD PATH [HOST]";
		return -1;
	}
	n = snprintf(buf, len, "%.*s %.*s HTTP/1.1\r\nHost: %.*s\r\n"
	    "User-Agent: spillway-check\r\nConnection: close\r\n\r\n",
	    (int)ml, m, (int)pl, path, (int)hl, h);
	if (n < 0 || (size_t)n >= len) {
		*why = "the request does not fit";
		return -1;
	}
	return n;
}

int
health_check_status(int status, unsigned int want)
{
	if (want == 0)
		return status >= 200 && status < 400;
	return status == (int)want;
}

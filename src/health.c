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

#include "health.h"

static const char *const state_names[HS_NSTATES] = {
	[HS_UP] = "up",
	[HS_EJECTED] = "ejected",
	[HS_TRIAL] = "trial",
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
		h->hs_state = HS_UP;
		h->hs_since = now;
		/* on probation: its next failure ejects it again */
		h->hs_fails = hc->max_fails > 0 ? hc->max_fails - 1 : 0;
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
health_usable(const struct health *h, uint64_t now)
{
	switch (h->hs_state) {
	case HS_UP:
		return 2;
	case HS_EJECTED:
		return now >= h->hs_until ? 1 : 0;
	default:
		return 0;
	}
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

/*
 * health.h: what spillway knows of one backend server's health, from the
 * answers of real requests (passive health, outlier detection) and the
 * slow-start weight after it comes back. Pure: no libevent, no globals,
 * no clock; times are microseconds passed in.
 *
 * States (health_state_name() names them):
 *   HS_UP       serving; counts consecutive failures
 *   HS_EJECTED  out until hs_until (exponential back-off); after that, a
 *               trial may go to it
 *   HS_TRIAL    a trial is in flight (one at a time); its success brings
 *               the server back, on probation (see health.c)
 *   HS_DOWN     active health checks failed check_fall times in a row; up
 *               again after check_rise successes in a row
 *
 * With active checks on, a check is the trial of an ejected server: a
 * passing check after the back-off brings it back, on probation.
 *
 * What is a failure (enum health_event): a refused, failed or timed-out
 * connect, a reset or EOF before any response byte on a fresh connection,
 * a response_timeout before the response head, an invalid response head,
 * and a 5xx response other than 503. A 503 is neutral: it is a server
 * (or a spillway in front of one) saying it is overloaded, and ejecting it
 * would only move its load onto the others; it neither counts as a failure
 * nor clears the count. Any other response is a success.
 */
#ifndef SPILLWAY_HEALTH_H
#define SPILLWAY_HEALTH_H

#include <stddef.h>
#include <stdint.h>

enum health_state {
	HS_UP = 0,	/* serving */
	HS_EJECTED,	/* out: back-off running, or over and no trial yet */
	HS_TRIAL,	/* back-off over, one trial request in flight */
	HS_DOWN,	/* failed its active checks */
	HS_NSTATES,
};

enum health_event {
	HE_OK = 0,		/* a response head, not 5xx */
	HE_NEUTRAL,		/* a 503, or no verdict (the client left) */
	HE_CONNECT,		/* connect refused or failed */
	HE_CONNECT_TIMEOUT,	/* connect_timeout */
	HE_RESET,		/* reset or EOF before any response byte */
	HE_TIMEOUT,		/* response_timeout before the head */
	HE_INVALID,		/* an invalid response head */
	HE_5XX,			/* a 5xx other than 503 */
	HE_NEVENTS,
};

/* Plain data: [backend] keys. */
struct health_conf {
	unsigned int	 max_fails;	/* consecutive failures; 0: off */
	uint64_t	 fail_timeout_ms;	/* first ejection's length */
	uint64_t	 max_ejection_time_ms;	/* back-off's cap */
	unsigned int	 max_ejection_percent;	/* of the servers, 0..100 */
	uint64_t	 slowstart_ms;	/* ramp after coming back; 0: off */
	unsigned int	 check_rise;	/* passing checks in a row: up */
	unsigned int	 check_fall;	/* failing checks in a row: down */
	int		 check_on;	/* active checks configured */
};

struct health {
	enum health_state hs_state;
	unsigned int	 hs_fails;	/* consecutive, while up */
	unsigned int	 hs_backoff;	/* ejections in a row, for back-off */
	uint64_t	 hs_until;	/* ejected until, usec */
	uint64_t	 hs_since;	/* last state change, usec */
	uint64_t	 hs_ejections;	/* in all */
	uint64_t	 hs_failures;	/* in all, by any cause */
	enum health_event hs_last;	/* last failure's cause */
	unsigned int	 hs_check_ok;	/* passing checks in a row */
	unsigned int	 hs_check_fail;	/* failing checks in a row */
	uint64_t	 hs_checks;	/* in all */
	uint64_t	 hs_checks_failed;
};

void		 health_init(struct health *, uint64_t now);

/*
 * Record the outcome of one request to the server: trial says whether it
 * was the trial request of an ejected server. nejected is how many of the
 * nservers servers are out now (this one included if it is). Returns 1 if
 * the state changed (the caller logs it, with health_event_name() of the
 * event), else 0. A failure that would eject the server is not counted
 * as an ejection when max_ejection_percent is already reached: the server
 * stays up (a global failure must not eject everything).
 */
int		 health_event(struct health *, const struct health_conf *,
		    enum health_event, int trial, size_t nejected,
		    size_t nservers, uint64_t now);

/*
 * May a request go to the server now? 2: yes, it is up; 1: no, but its
 * back-off is over and a trial is due (the caller starts one and calls
 * health_trial_start(), then reports its outcome with trial set); 0: no.
 */
int		 health_usable(const struct health *, const struct health_conf *,
		    uint64_t now);
void		 health_trial_start(struct health *, uint64_t now);

/*
 * Record an active check's result. Returns 1 if the state changed. A
 * server goes down after check_fall failures in a row whatever
 * max_ejection_percent says (its checks say it cannot serve), and comes up
 * after check_rise passes in a row.
 */
int		 health_check_result(struct health *, const struct health_conf *,
		    int ok, uint64_t now);

/* Checks were turned off: a server they held down is up. 1 if it was. */
int		 health_checks_off(struct health *, uint64_t now);

/* Out of rotation (ejected, trial or not). */
int		 health_out(const struct health *);

/*
 * From when the server is plainly up: up, no failure counted in a row,
 * its slow start over (0: always was). UINT64_MAX while it is not up or
 * has failures counted. Its user publishes it after each change (an
 * atomic beside the health), so that in this, the common case, a request
 * learns what it needs without the health's lock: usable, weight 1, not
 * out, and a success or a neutral outcome (not a trial's) changes nothing.
 */
uint64_t	 health_quiet_from(const struct health *,
		    const struct health_conf *);

/*
 * The share of its normal traffic the server should get, 0..1: 1 when
 * up for slowstart or more, rising linearly from 0 after it came back.
 */
double		 health_weight(const struct health *, const struct health_conf *,
		    uint64_t now);

/* Microseconds until an ejected server may be tried; 0 if it may now. */
uint64_t	 health_wait(const struct health *, uint64_t now);

/*
 * The active check's request from its spec, "METHOD PATH [HOST]" (the
 * health_check key), into buf: HTTP/1.1 with Host (the spec's, else host)
 * and Connection: close. Returns its length, or -1 with *why set (a bad
 * spec, or buf too small).
 */
long		 health_check_request(const char *spec, const char *host,
		    char *buf, size_t len, const char **why);

/* Does status pass a check? want: a status, or 0 for any 2xx or 3xx. */
int		 health_check_status(int status, unsigned int want);

const char	*health_state_name(enum health_state);
const char	*health_event_name(enum health_event);

#endif /* SPILLWAY_HEALTH_H */

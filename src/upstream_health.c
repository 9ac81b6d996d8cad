/*
 * upstream_health.c: backend health as the servers live it (health.c is
 * the pure state machine): every try's verdict through server_event(),
 * logged once per change of state; a server out of rotation loses its
 * idle connections on every worker and the requests still connecting to
 * it move on; active checks' results; the fast refusal's Retry-After when
 * no server is up. See upstream.c for the whole story.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "spillway.h"
#include "health.h"
#include "log.h"
#include "upstream_int.h"

/*
 * Start or stop sv's active checks as conf says; a kept server's checks go
 * on (their schedule too). Checks turned off free a server they held down.
 * Only worker 0 runs checks: the health they change is every worker's.
 */
void
sync_checks(struct server *sv, const struct config *conf)
{
	struct worker	*w = sv->sv_worker;
	int		 on;

	if (w->w_id != 0)
		return;
	if (conf->backend.health.check_on) {
		if (sv->sv_check == NULL && check_start(sv, conf) == -1)
			log_warnx("server %s: out of memory; not checked",
			    sv->sv_addr->text);
		return;
	}
	check_free(sv->sv_check);
	sv->sv_check = NULL;
	health_lock(w);
	on = health_checks_off(sv->sv_health, now_usec());
	health_unlock(w);
	if (on)
		log_info("server %s: down -> up (checks turned off)",
		    sv->sv_addr->text);
}

/* Publish w's servers' health under w's configuration (health_unlock()). */
void
upstream_health_publish(struct worker *w)
{
	health_lock(w);
	health_unlock(w);
}

/* Servers out of rotation now (for max_ejection_percent); health locked. */
static size_t
count_out(const struct worker *w)
{
	size_t	 i, n = 0;

	for (i = 0; i < w->w_nservers; i++)
		n += health_out(w->w_servers[i]->sv_health);
	return n;
}

/*
 * The outcome of a try on sv: recorded once per try, logged when it
 * changes the server's state. An ejection moves the requests still
 * connecting to sv to another server. A retired server is judged no more.
 */
void
server_event(struct server *sv, enum health_event ev, int trial)
{
	struct worker		*w = sv->sv_worker;
	const struct health_conf *hc = &w->w_conf->backend.health;
	struct health		*h = sv->sv_health;
	enum health_state	 was, is;
	uint64_t		 now, wait;
	int			 changed;

	if (sv->sv_retired)
		return;
	/* up, no failure counted: a success or a neutral outcome is nothing */
	if (!trial && (ev == HE_OK || ev == HE_NEUTRAL) && server_quiet(sv))
		return;
	now = health_lock(w);
	was = h->hs_state;
	changed = health_event(h, hc, ev, trial, count_out(w), w->w_nservers,
	    now);
	is = h->hs_state;
	wait = health_wait(h, now);
	health_unlock(w);
	if (!changed)
		return;
	if (is == HS_UP) {
		log_info("server %s: %s -> up (%s)%s", sv->sv_addr->text,
		    health_state_name(was),
		    trial ? "trial connect succeeded" : health_event_name(ev),
		    hc->slowstart_ms > 0 ? ", slow start" : "");
		shed_kick(w);
		return;
	}
	log_warnx("server %s: %s -> ejected (%s%s), for %llums",
	    sv->sv_addr->text, health_state_name(was), health_event_name(ev),
	    trial ? ", trial" : was == HS_UP && hc->max_fails > 1 ?
	    ", max_fails in a row" : "",
	    (unsigned long long)(wait / 1000));
	move_connecting(sv);
	tell_workers(w);
	shed_kick(w);
}

/*
 * sv, seen out of rotation by worker w, is out for every worker (its
 * health is theirs): each other worker drops its own idle connections to
 * it and moves its connects under way (upstream_health_cb()).
 */
void
tell_workers(const struct worker *w)
{
	const struct proxy	*px = w->w_proxy;
	unsigned int		 k;

	if (w->w_stopping)
		return;
	for (k = 0; k < px->px_nworkers; k++)
		if (px->px_workers[k] != w)
			event_active(px->px_workers[k]->w_health_ev,
			    EV_TIMEOUT, 0);
}

/*
 * On w's loop, told that a server went out of rotation on another worker:
 * w's servers that are out keep no idle connection and no connect.
 */
void
upstream_health_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*w = arg;
	struct server	*sv;
	size_t		 i;
	int		 out;

	for (i = 0; i < w->w_nservers; i++) {
		sv = w->w_servers[i];
		health_lock(w);
		out = health_out(sv->sv_health);
		health_unlock(w);
		if (out && (sv->sv_nidle > 0 ||
		    !TAILQ_EMPTY(&sv->sv_connecting)))
			move_connecting(sv);
	}
}

/*
 * An active check's result on sv (check.c, on worker 0), logged when it
 * changes the server's state; a server that goes down loses its connects
 * under way (worker 0's; the other workers' stop picking it).
 */
void
upstream_check_result(struct server *sv, int ok, const char *why)
{
	struct worker		*w = sv->sv_worker;
	const struct health_conf *hc = &w->w_conf->backend.health;
	struct health		*h = sv->sv_health;
	enum health_state	 was, is;
	unsigned int		 in_row;
	int			 changed;

	if (sv->sv_retired)
		return;
	health_lock(w);
	was = h->hs_state;
	changed = health_check_result(h, hc, ok, now_usec());
	is = h->hs_state;
	in_row = ok ? h->hs_check_ok : h->hs_check_fail;
	health_unlock(w);
	if (!changed) {
		log_debug("%s: server %s: check %s: %s", __func__,
		    sv->sv_addr->text, ok ? "passed" : "failed", why);
		return;
	}
	if (is == HS_UP) {
		log_info("server %s: %s -> up (check passed: %s, %u in a "
		    "row)%s", sv->sv_addr->text,
		    health_state_name(was), why, in_row,
		    hc->slowstart_ms > 0 ? ", slow start" : "");
		shed_kick(w);
		return;
	}
	log_warnx("server %s: %s -> down (check failed: %s, %u in a row)",
	    sv->sv_addr->text, health_state_name(was), why,
	    in_row);
	move_connecting(sv);
	tell_workers(w);
	shed_kick(w);
}

/*
 * sv went out of rotation: its idle connections go (they would serve no
 * request before it is back, and may be what failed), and nothing was sent
 * on a connect under way to it: those requests go elsewhere now.
 */
void
move_connecting(struct server *sv)
{
	struct upconn_list	 moved;
	struct upconn		*uc;
	struct conn		*c;

	drop_idle(sv);
	TAILQ_INIT(&moved);
	TAILQ_CONCAT(&moved, &sv->sv_connecting, uc_entry);
	while ((uc = TAILQ_FIRST(&moved)) != NULL) {
		TAILQ_REMOVE(&moved, uc, uc_entry);
		TAILQ_INSERT_HEAD(&sv->sv_connecting, uc, uc_entry);
		c = uc->uc_conn;
		conn_upstream_req(c)->ur_server = NULL;
		conn_upstream_req(c)->ur_up = NULL;
		upconn_free(uc);
		server_put(sv);
		log_info("conn %llu: %s out of rotation while "
		    "connecting; trying another", (unsigned long long)conn_id(c),
		    sv->sv_addr->text);
		upstream_request(c);
	}
}

/* Seconds until the first ejected server may be tried again; 1 at least. */
uint64_t
no_server_retry_after(const struct worker *w, uint64_t now)
{
	uint64_t	 wait, min = UINT64_MAX;
	size_t		 i;

	now = health_lock(w);
	for (i = 0; i < w->w_nservers; i++)
		if ((wait = health_wait(w->w_servers[i]->sv_health, now)) < min)
			min = wait;
	health_unlock(w);
	wait = (min + 999999) / 1000000;
	return wait < 1 ? 1 : wait;
}

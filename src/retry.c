/*
 * retry.c: the retry budget (see retry.h). A ring of one-second slots;
 * a slot older than the window is cleared when its second comes round.
 */
#include <string.h>

#include "retry.h"

void
retry_init(struct retry *r)
{
	memset(r, 0, sizeof(*r));
}

/* The slot of second sec, cleared if it held an older second. */
static unsigned int
slot(struct retry *r, uint64_t sec)
{
	unsigned int	 i = (unsigned int)(sec % RETRY_WINDOW);

	if (r->rt_sec[i] != sec) {
		r->rt_sec[i] = sec;
		r->rt_req[i] = 0;
		r->rt_ret[i] = 0;
	}
	return i;
}

void
retry_request(struct retry *r, uint64_t now)
{
	r->rt_req[slot(r, now / 1000000)]++;
}

int
retry_allow(struct retry *r, double ratio, unsigned int floor, uint64_t now)
{
	uint64_t	 sec = now / 1000000, req = 0, ret = 0;
	unsigned int	 i, cur = slot(r, sec);

	for (i = 0; i < RETRY_WINDOW; i++) {
		if (r->rt_sec[i] + RETRY_WINDOW <= sec)
			continue;	/* stale */
		req += r->rt_req[i];
		ret += r->rt_ret[i];
	}
	if ((double)(ret + 1) > ratio * (double)req +
	    (double)floor * RETRY_WINDOW) {
		r->rt_denied++;
		return 0;
	}
	r->rt_ret[cur]++;
	r->rt_allowed++;
	return 1;
}

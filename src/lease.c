/*
 * lease.c: leases of shared tokens, the local share, the replies, and the
 * Lua scripts that keep the shared buckets in Redis.
 *
 * Invariants of a lease: stock <= 1.5 * size + what a lease of an older,
 * larger size left (a call is made only when the stock is at most half a
 * lease, and asks for one lease); debt <= size + what the local share
 * admitted past it (lease_spend(): the local bucket bounds it); a
 * lease with a call out (asked_at != 0) makes no other call until that one
 * is answered or stale.
 */
#include <string.h>

#include "lease.h"
#include "tbucket.h"

/*
 * take: KEYS[1] a bucket; ARGV rate (tokens per minute), burst, want,
 * debt. Refills by Redis' own clock, charges the debt (the level may go
 * below zero), grants up to want whole tokens; returns {granted, usec
 * until the next whole token (0: there is one)}. The key expires once the
 * bucket would be full: forgetting it then loses nothing.
 */
const char lease_take_script[] =
    "local rate = tonumber(ARGV[1])\n"
    "local burst = tonumber(ARGV[2])\n"
    "local want = tonumber(ARGV[3])\n"
    "local debt = tonumber(ARGV[4])\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local s = redis.call('HMGET', KEYS[1], 'l', 't')\n"
    "local level = tonumber(s[1])\n"
    "local last = tonumber(s[2])\n"
    "if level == nil or last == nil then level = burst; last = now end\n"
    "if now > last then\n"
    "  level = math.min(burst, level + (now - last) * rate / 60000000)\n"
    "  last = now\n"
    "end\n"
    "level = level - debt\n"
    "local grant = 0\n"
    "if level >= 1 then\n"
    "  grant = math.min(want, math.floor(level))\n"
    "  level = level - grant\n"
    "end\n"
    "local wait = 0\n"
    "if level < 1 then wait = math.ceil((1 - level) * 60000000 / rate) end\n"
    "redis.call('HSET', KEYS[1], 'l', string.format('%.6f', level),\n"
    "  't', string.format('%d', last))\n"
    "redis.call('PEXPIRE', KEYS[1],\n"
    "  math.ceil((burst - level) * 60000 / rate) + 1000)\n"
    "return {grant, wait}\n";

/*
 * beat: KEYS[1] the set of instances; ARGV id, ttl (ms). This instance is
 * live for ttl more; returns how many are.
 */
const char lease_beat_script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf',\n"
    "  string.format('%d', now))\n"
    "redis.call('ZADD', KEYS[1], string.format('%d', now + tonumber(ARGV[2])),"
    " ARGV[1])\n"
    "redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[2]))\n"
    "return redis.call('ZCARD', KEYS[1])\n";

uint64_t
lease_size(uint64_t rate, uint64_t burst, uint64_t rtt, unsigned int n)
{
	uint64_t	 size, cap;

	if (rtt < LEASE_RTT_MIN)
		rtt = LEASE_RTT_MIN;
	if (rtt > LEASE_WAIT_MAX)
		rtt = LEASE_WAIT_MAX;
	if (n == 0)
		n = 1;
	/* rate <= 6e8 per minute, 2 * rtt <= 7.2e9: no overflow */
	size = (rate * 2 * rtt + 60000000 - 1) / 60000000;
	cap = burst / (2 * (uint64_t)n);
	if (cap < 1)
		cap = 1;
	if (size > cap)
		size = cap;
	if (size > LEASE_MAX)
		size = LEASE_MAX;
	return size < 1 ? 1 : size;
}

uint64_t
lease_share(uint64_t v, unsigned int n)
{
	if (n <= 1)
		return v;
	v /= n;
	return v < 1 ? 1 : v;
}

uint64_t
lease_wait(const struct lease *ls, uint64_t size, uint64_t now)
{
	if (ls->ls_stock > 0)
		return 0;
	if (now < ls->ls_empty_until)
		return ls->ls_empty_until - now;
	if (ls->ls_debt < size)
		return 0;
	return LEASE_RTT_MIN;	/* credit spent: until the lease arrives */
}

void
lease_take(struct lease *ls, uint64_t size, uint64_t now)
{
	if (ls->ls_stock > 0)
		ls->ls_stock--;
	else if (now >= ls->ls_empty_until && ls->ls_debt < size)
		ls->ls_debt++;
}

int
lease_want(struct lease *ls, uint64_t size, uint64_t stale, uint64_t now,
    struct lease_ask *ask)
{
	uint64_t	 want;

	if (ls->ls_asked_at != 0 && now - ls->ls_asked_at < stale)
		return 0;
	want = ls->ls_stock <= size / 2 ? size : 0;
	if (now < ls->ls_empty_until)
		want = 0;	/* nothing there: only charge the debt */
	if (want == 0 && ls->ls_debt == 0)
		return 0;
	ask->la_want = want;
	ask->la_debt = ls->ls_debt;
	ls->ls_debt = 0;
	ls->ls_asked_at = now > 0 ? now : 1;
	return 1;
}

void
lease_grant(struct lease *ls, uint64_t granted, uint64_t wait, uint64_t now)
{
	ls->ls_stock += granted;
	ls->ls_asked_at = 0;
	if (wait > LEASE_WAIT_MAX)
		wait = LEASE_WAIT_MAX;
	ls->ls_empty_until = wait > 0 ? now + wait : 0;
}

/*
 * Past the credit, the local share rather than a refusal for the length
 * of a round trip: with credit alone, a new client's six parallel
 * requests got four 429s well under its burst.
 */
uint64_t
lease_admit_wait(const struct lease *ls, struct tbucket *tb, uint64_t size,
    uint64_t now, int *local)
{
	uint64_t	 w = lease_wait(ls, size, now);

	*local = 0;
	if (w == 0 || now < ls->ls_empty_until)
		return w;	/* stock or credit; or Redis said empty */
	if ((w = tbucket_wait(tb, now)) == 0)
		*local = 1;
	return w;
}

void
lease_spend(struct lease *ls, struct tbucket *tb, uint64_t size,
    uint64_t now, int local)
{
	if (!local) {
		lease_take(ls, size, now);
		return;
	}
	tbucket_take(tb, now);
	ls->ls_debt++;
}

void
lease_failed(struct lease *ls, const struct lease_ask *ask)
{
	ls->ls_asked_at = 0;
	ls->ls_debt += ask->la_debt;
}

void
lease_reset(struct lease *ls)
{
	memset(ls, 0, sizeof(*ls));
}

int
lease_reply_take(const struct lease_reply *r, uint64_t asked,
    uint64_t *granted, uint64_t *wait)
{
	const struct lease_reply_value	*top = &r->lr_top;

	if (top->lv_type == LR_ERROR && top->lv_len >= 8 &&
	    memcmp(top->lv_str, "NOSCRIPT", 8) == 0)
		return LEASE_REPLY_NOSCRIPT;
	if (top->lv_type != LR_ARRAY || r->lr_n != 2 ||
	    r->lr_elem[0].lv_type != LR_INTEGER ||
	    r->lr_elem[1].lv_type != LR_INTEGER)
		return LEASE_REPLY_BAD;
	if (r->lr_elem[0].lv_int < 0 || (uint64_t)r->lr_elem[0].lv_int > asked ||
	    r->lr_elem[1].lv_int < 0)
		return LEASE_REPLY_BAD;
	*granted = (uint64_t)r->lr_elem[0].lv_int;
	*wait = (uint64_t)r->lr_elem[1].lv_int;
	if (*wait > LEASE_WAIT_MAX)
		*wait = LEASE_WAIT_MAX;
	return LEASE_REPLY_OK;
}

int
lease_reply_instances(const struct lease_reply *r, unsigned int *n)
{
	const struct lease_reply_value	*top = &r->lr_top;

	if (top->lv_type == LR_ERROR && top->lv_len >= 8 &&
	    memcmp(top->lv_str, "NOSCRIPT", 8) == 0)
		return LEASE_REPLY_NOSCRIPT;
	if (top->lv_type != LR_INTEGER || top->lv_int < 1 ||
	    top->lv_int > LEASE_INSTANCES_MAX)
		return LEASE_REPLY_BAD;
	*n = (unsigned int)top->lv_int;
	return LEASE_REPLY_OK;
}

#define RESP_DEPTH_MAX	4
#define RESP_BULK_MAX	(512L * 1024 * 1024)	/* Redis' own limit */
#define RESP_ARRAY_MAX	(1024L * 1024)

/* A decimal integer, optionally negative, filling [s, e): 0 or -1. */
static int
resp_int(const char *s, const char *e, long long *v)
{
	int		 neg = 0;
	long long	 n = 0;

	if (s < e && *s == '-') {
		neg = 1;
		s++;
	}
	if (s == e || e - s > 18)
		return -1;
	for (; s < e; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		n = n * 10 + (*s - '0');
	}
	*v = neg ? -n : n;
	return 0;
}

static void
resp_copy(struct lease_reply_value *v, const char *s, size_t len)
{
	size_t	 n = len < LEASE_REPLY_STR - 1 ? len : LEASE_REPLY_STR - 1;

	memcpy(v->lv_str, s, n);
	v->lv_str[n] = '\0';
	v->lv_len = len;
}

/*
 * One value at buf into v; the elements of a top-level array into r too
 * (r is NULL below the top). Returns as lease_reply_parse().
 */
static long
resp_value(const char *buf, size_t len, int depth,
    struct lease_reply_value *v, struct lease_reply *r)
{
	struct lease_reply_value	 scratch;
	const char			*cr;
	long long			 n, i;
	long				 off, sub;

	memset(v, 0, sizeof(*v));
	if (len < 1)
		return 0;
	if ((cr = memchr(buf, '\r', len)) == NULL)
		return 0;
	if ((size_t)(cr - buf) + 1 >= len)
		return 0;
	if (cr[1] != '\n')
		return -1;
	off = (long)(cr - buf) + 2;
	switch (buf[0]) {
	case '+':
	case '-':
		v->lv_type = buf[0] == '+' ? LR_STATUS : LR_ERROR;
		resp_copy(v, buf + 1, (size_t)(cr - buf - 1));
		return off;
	case ':':
		if (resp_int(buf + 1, cr, &v->lv_int) == -1)
			return -1;
		v->lv_type = LR_INTEGER;
		return off;
	case '$':
		if (resp_int(buf + 1, cr, &n) == -1 || n < -1 ||
		    n > RESP_BULK_MAX)
			return -1;
		if (n == -1) {
			v->lv_type = LR_NIL;
			return off;
		}
		if ((size_t)off + (size_t)n + 2 > len)
			return 0;
		if (buf[off + n] != '\r' || buf[off + n + 1] != '\n')
			return -1;
		v->lv_type = LR_STRING;
		resp_copy(v, buf + off, (size_t)n);
		return off + (long)n + 2;
	case '*':
		if (resp_int(buf + 1, cr, &n) == -1 || n < -1 ||
		    n > RESP_ARRAY_MAX)
			return -1;
		if (n == -1) {
			v->lv_type = LR_NIL;
			return off;
		}
		if (depth >= RESP_DEPTH_MAX)
			return -1;
		for (i = 0; i < n; i++) {
			sub = resp_value(buf + off, len - (size_t)off,
			    depth + 1, r != NULL && i < LEASE_REPLY_ELEMS ?
			    &r->lr_elem[i] : &scratch, NULL);
			if (sub <= 0)
				return sub;
			off += sub;
		}
		v->lv_type = LR_ARRAY;
		v->lv_int = n;
		if (r != NULL)
			r->lr_n = (size_t)n;
		return off;
	default:
		return -1;
	}
}

long
lease_reply_parse(const char *buf, size_t len, struct lease_reply *r)
{
	memset(r, 0, sizeof(*r));
	return resp_value(buf, len, 0, &r->lr_top, r);
}

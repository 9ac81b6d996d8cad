/*
 * admission.c: token-bucket admission.
 *
 * Client buckets live in a hash table of at most max_clients entries,
 * chained, with an LRU list through all of them. When the table is full, a
 * new key takes the entry of the least recently used one: memory does not
 * grow with the number of keys, however many an attacker invents. The
 * hash is SipHash-2-4 under a random key, so chains cannot be aimed at.
 * An evicted entry that was full loses nothing; one that was not gives
 * its client a fresh burst, which only the least recent client can get.
 */
#include <sys/queue.h>

#include <stdlib.h>
#include <string.h>

#include "admission.h"

struct client {
	uint64_t		 cl_hash;
	int			 cl_kind;	/* enum client_key_kind */
	size_t			 cl_keylen;	/* full length of the key */
	char			 cl_key[ADMISSION_KEY_MAX];
	struct tbucket		 cl_tb;
	struct lease		 cl_ls;		/* when shared on Redis */
	uint64_t		 cl_gen;	/* parameters of ad_gen */
	struct client		*cl_next;	/* hash chain */
	TAILQ_ENTRY(client)	 cl_lru;	/* most recent first */
};
TAILQ_HEAD(client_lru, client);

struct admission {
	int			 ad_dry_run;
	int			 ad_global_on;
	struct tbucket		 ad_global;
	struct lease		 ad_global_ls;
	uint64_t		 ad_rate;	/* whole, per minute */
	uint64_t		 ad_burst;	/* whole */
	uint64_t		 ad_client_full_rate;	/* whole */
	uint64_t		 ad_client_full_burst;
	uint64_t		 ad_client_rate;	/* local: a share of it */
	uint64_t		 ad_client_burst;
	int			 ad_shared;	/* buckets on Redis: leases */
	unsigned int		 ad_share_n;	/* instances sharing, >= 1 */
	uint64_t		 ad_rtt;	/* of a call to Redis, usec */
	uint64_t		 ad_stale;	/* a call unanswered, usec */
	size_t			 ad_max_clients;
	struct client		**ad_table;
	size_t			 ad_mask;	/* table size - 1 */
	size_t			 ad_nclients;
	uint64_t		 ad_evictions;
	struct client_lru	 ad_lru;
	uint64_t		 ad_k0, ad_k1;	/* SipHash key */
	uint64_t		 ad_gen;	/* client parameters' version */
	uint64_t		 ad_gen_at;	/* when they took effect, usec */
	char			**ad_class_names; /* to carry state by name */
	size_t			 ad_nclasses;
	struct tbucket		*ad_class_tb;	/* per class, if rate set */
	struct lease		*ad_class_ls;
	uint64_t		*ad_class_rate;	/* whole, per minute */
	uint64_t		*ad_class_burst;
	int			*ad_class_on;
	struct admission_counters *ad_counters;	/* per class */
};

static void	unlink_client(struct admission *, struct client *);

#define ROTL(x, b)	(uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND(v0, v1, v2, v3) do {					\
	v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);	\
	v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;				\
	v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;				\
	v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);	\
} while (0)

static uint64_t
load64(const uint8_t *p)
{
	uint64_t	 v = 0;
	int		 i;

	for (i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* SipHash-2-4 of buf under the key (k0, k1). */
static uint64_t
siphash(uint64_t k0, uint64_t k1, const uint8_t *buf, size_t len)
{
	uint64_t	 v0 = k0 ^ 0x736f6d6570736575ULL;
	uint64_t	 v1 = k1 ^ 0x646f72616e646f6dULL;
	uint64_t	 v2 = k0 ^ 0x6c7967656e657261ULL;
	uint64_t	 v3 = k1 ^ 0x7465646279746573ULL;
	uint64_t	 m, b = (uint64_t)len << 56;
	size_t		 i, tail = len & 7;

	for (i = 0; i + 8 <= len; i += 8) {
		m = load64(buf + i);
		v3 ^= m;
		SIPROUND(v0, v1, v2, v3);
		SIPROUND(v0, v1, v2, v3);
		v0 ^= m;
	}
	while (tail > 0) {
		tail--;
		b |= (uint64_t)buf[i + tail] << (8 * tail);
	}
	v3 ^= b;
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

/* Unset, a burst is one second's worth of the rate (per minute), >= 1. */
static uint64_t
burst_or_rate(uint64_t burst, uint64_t rate)
{
	if (burst > 0)
		return burst;
	return rate >= 120 ? rate / 60 : 1;
}

static void
free_names(char **names, size_t n)
{
	size_t	 i;

	for (i = 0; names != NULL && i < n; i++)
		free(names[i]);
	free(names);
}

/*
 * Per-class state for conf: a class of the same name in the running state
 * keeps its bucket level, lease and counters. Builds new arrays and swaps
 * them in only when all are allocated: -1 leaves everything as it was.
 * The local buckets take their share later, in apply_share().
 */
static int
set_classes(struct admission *ad, const struct config *conf, uint64_t now)
{
	size_t			 n = conf->nclasses, i, j;
	struct tbucket		*tb = calloc(n + 1, sizeof(*tb));
	struct lease		*ls = calloc(n + 1, sizeof(*ls));
	uint64_t		*rate = calloc(n + 1, sizeof(*rate));
	uint64_t		*burst = calloc(n + 1, sizeof(*burst));
	int			*on = calloc(n + 1, sizeof(*on));
	struct admission_counters *cnt = calloc(n + 1, sizeof(*cnt));
	char			**names = calloc(n, sizeof(*names));
	const struct class_conf	*cc;

	if (tb == NULL || ls == NULL || rate == NULL || burst == NULL ||
	    on == NULL || cnt == NULL || names == NULL)
		goto fail;
	for (i = 0; i < n; i++)
		if ((names[i] = strdup(conf->classes[i].name)) == NULL)
			goto fail;
	for (i = 0; i < n; i++) {
		cc = &conf->classes[i];
		rate[i] = cc->rate;
		burst[i] = burst_or_rate(cc->burst, cc->rate);
		for (j = 0; j < ad->ad_nclasses; j++)
			if (strcmp(ad->ad_class_names[j], cc->name) == 0)
				break;
		if (j < ad->ad_nclasses) {
			cnt[i] = ad->ad_counters[j];
			if (cc->rate > 0 && ad->ad_class_on[j]) {
				tb[i] = ad->ad_class_tb[j];
				ls[i] = ad->ad_class_ls[j];
				on[i] = 1;
				continue;
			}
		}
		if (cc->rate > 0) {
			tbucket_init(&tb[i], cc->rate, burst[i], now);
			on[i] = 1;
		}
	}
	if (ad->ad_counters != NULL)	/* requests of no known class */
		cnt[n] = ad->ad_counters[ad->ad_nclasses];
	free_names(ad->ad_class_names, ad->ad_nclasses);
	free(ad->ad_class_tb);
	free(ad->ad_class_ls);
	free(ad->ad_class_rate);
	free(ad->ad_class_burst);
	free(ad->ad_class_on);
	free(ad->ad_counters);
	ad->ad_class_names = names;
	ad->ad_class_tb = tb;
	ad->ad_class_ls = ls;
	ad->ad_class_rate = rate;
	ad->ad_class_burst = burst;
	ad->ad_class_on = on;
	ad->ad_counters = cnt;
	ad->ad_nclasses = n;
	return 0;
 fail:
	free_names(names, n);
	free(tb);
	free(ls);
	free(rate);
	free(burst);
	free(on);
	free(cnt);
	return -1;
}

/*
 * The local buckets at their share of the whole (1/ad_share_n of rate and
 * burst), keeping their levels: the share is what this instance enforces
 * while the shared buckets are out of reach. Client buckets take it
 * lazily, on their next use.
 */
static void
apply_share(struct admission *ad, uint64_t now)
{
	unsigned int	 n = ad->ad_share_n;
	size_t		 i;

	if (ad->ad_global_on)
		tbucket_set(&ad->ad_global, lease_share(ad->ad_rate, n),
		    lease_share(ad->ad_burst, n), now);
	for (i = 0; i < ad->ad_nclasses; i++)
		if (ad->ad_class_on[i])
			tbucket_set(&ad->ad_class_tb[i],
			    lease_share(ad->ad_class_rate[i], n),
			    lease_share(ad->ad_class_burst[i], n), now);
	ad->ad_client_rate = lease_share(ad->ad_client_full_rate, n);
	if (ad->ad_client_full_rate == 0)
		ad->ad_client_rate = 0;
	ad->ad_client_burst = lease_share(ad->ad_client_full_burst, n);
	ad->ad_gen++;
	ad->ad_gen_at = now;
}

/* Size the client table for max_clients (a power of two, at least 16). */
static int
set_table(struct admission *ad, size_t max_clients)
{
	struct client	**table, *cl;
	size_t		 size = 16;

	while (size < max_clients && size < ((size_t)1 << 24))
		size <<= 1;
	if (ad->ad_table != NULL && size <= ad->ad_mask + 1)
		return 0;	/* never shrink: chains only get shorter */
	if ((table = calloc(size, sizeof(*table))) == NULL)
		return -1;
	TAILQ_FOREACH(cl, &ad->ad_lru, cl_lru) {
		cl->cl_next = table[cl->cl_hash & (size - 1)];
		table[cl->cl_hash & (size - 1)] = cl;
	}
	free(ad->ad_table);
	ad->ad_table = table;
	ad->ad_mask = size - 1;
	return 0;
}

struct admission *
admission_new(const struct config *conf, const uint8_t seed[16],
    uint64_t now)
{
	struct admission	*ad;

	if ((ad = calloc(1, sizeof(*ad))) == NULL)
		return NULL;
	TAILQ_INIT(&ad->ad_lru);
	ad->ad_k0 = load64(seed);
	ad->ad_k1 = load64(seed + 8);
	ad->ad_share_n = 1;
	ad->ad_rtt = LEASE_RTT_MIN;
	ad->ad_stale = 1000000;
	if (admission_reconfigure(ad, conf, now) == -1) {
		admission_free(ad);
		return NULL;
	}
	return ad;
}

/*
 * A reload: new parameters, learned state kept. The global bucket keeps
 * its level; client buckets take the new rate and burst lazily, each on
 * its next use, keeping their levels; class buckets, leases and counters
 * carry over by class name. A smaller max_clients evicts the least recent.
 */
int
admission_reconfigure(struct admission *ad, const struct config *conf,
    uint64_t now)
{
	const struct admission_conf	*ac = &conf->admission;
	struct client			*cl;
	size_t				 max = ac->max_clients > 0 ?
					    ac->max_clients : 1;

	if (set_table(ad, max) == -1 || set_classes(ad, conf, now) == -1)
		return -1;
	ad->ad_dry_run = ac->dry_run;
	ad->ad_rate = ac->rate;
	ad->ad_burst = burst_or_rate(ac->burst, ac->rate);
	if (ac->rate > 0 && !ad->ad_global_on) {
		tbucket_init(&ad->ad_global, ac->rate, ad->ad_burst, now);
		lease_reset(&ad->ad_global_ls);
	}
	ad->ad_global_on = ac->rate > 0;
	ad->ad_client_full_rate = ac->client_rate;
	ad->ad_client_full_burst = burst_or_rate(ac->client_burst,
	    ac->client_rate);
	apply_share(ad, now);
	ad->ad_max_clients = max;
	while (ad->ad_nclients > ad->ad_max_clients) {
		cl = TAILQ_LAST(&ad->ad_lru, client_lru);
		unlink_client(ad, cl);
		free(cl);
		ad->ad_nclients--;
		ad->ad_evictions++;
	}
	return 0;
}

void
admission_free(struct admission *ad)
{
	struct client	*cl;

	if (ad == NULL)
		return;
	while ((cl = TAILQ_FIRST(&ad->ad_lru)) != NULL) {
		TAILQ_REMOVE(&ad->ad_lru, cl, cl_lru);
		free(cl);
	}
	free(ad->ad_table);
	free_names(ad->ad_class_names, ad->ad_nclasses);
	free(ad->ad_class_tb);
	free(ad->ad_class_ls);
	free(ad->ad_class_rate);
	free(ad->ad_class_burst);
	free(ad->ad_class_on);
	free(ad->ad_counters);
	free(ad);
}

static void
unlink_client(struct admission *ad, struct client *cl)
{
	struct client	**pp = &ad->ad_table[cl->cl_hash & ad->ad_mask];

	while (*pp != cl)
		pp = &(*pp)->cl_next;
	*pp = cl->cl_next;
	TAILQ_REMOVE(&ad->ad_lru, cl, cl_lru);
}

/* The bucket of a client key if there is one, made most recent. */
static struct client *
find_client(struct admission *ad, int kind, const char *key, size_t keylen,
    uint64_t h)
{
	size_t		 cmp = keylen < ADMISSION_KEY_MAX ? keylen :
			    ADMISSION_KEY_MAX;
	struct client	*cl;

	for (cl = ad->ad_table[h & ad->ad_mask]; cl != NULL;
	    cl = cl->cl_next) {
		if (cl->cl_hash == h && cl->cl_kind == kind &&
		    cl->cl_keylen == keylen &&
		    memcmp(cl->cl_key, key, cmp) == 0) {
			TAILQ_REMOVE(&ad->ad_lru, cl, cl_lru);
			TAILQ_INSERT_HEAD(&ad->ad_lru, cl, cl_lru);
			if (cl->cl_gen != ad->ad_gen) {
				/* the old rate ran until the reload, not now */
				tbucket_set(&cl->cl_tb, ad->ad_client_rate,
				    ad->ad_client_burst, ad->ad_gen_at);
				cl->cl_gen = ad->ad_gen;
			}
			return cl;
		}
	}
	return NULL;
}

static uint64_t
client_hash(const struct admission *ad, int kind, const char *key,
    size_t keylen)
{
	return siphash(ad->ad_k0, ad->ad_k1 ^ (uint64_t)kind,
	    (const uint8_t *)key, keylen);
}

/* The bucket of a client key: found, new, or the LRU entry reused. */
static struct client *
lookup_client(struct admission *ad, int kind, const char *key, size_t keylen,
    uint64_t now)
{
	size_t		 cmp = keylen < ADMISSION_KEY_MAX ? keylen :
			    ADMISSION_KEY_MAX;
	uint64_t	 h = client_hash(ad, kind, key, keylen);
	struct client	*cl;

	if ((cl = find_client(ad, kind, key, keylen, h)) != NULL)
		return cl;
	if (ad->ad_nclients >= ad->ad_max_clients) {
		cl = TAILQ_LAST(&ad->ad_lru, client_lru);
		unlink_client(ad, cl);
		ad->ad_evictions++;
	} else {
		if ((cl = malloc(sizeof(*cl))) == NULL)
			return NULL;
		ad->ad_nclients++;
	}
	cl->cl_hash = h;
	cl->cl_kind = kind;
	cl->cl_keylen = keylen;
	memcpy(cl->cl_key, key, cmp);
	tbucket_init(&cl->cl_tb, ad->ad_client_rate, ad->ad_client_burst, now);
	lease_reset(&cl->cl_ls);
	cl->cl_gen = ad->ad_gen;
	cl->cl_next = ad->ad_table[h & ad->ad_mask];
	ad->ad_table[h & ad->ad_mask] = cl;
	TAILQ_INSERT_HEAD(&ad->ad_lru, cl, cl_lru);
	return cl;
}

/* The lease of a bucket named as in a call, or NULL if it is gone. */
static struct lease *
find_lease(struct admission *ad, const struct admission_ref *ref)
{
	struct client	*cl;
	size_t		 i;

	switch (ref->ar_bucket) {
	case ADM_BUCKET_GLOBAL:
		if (!ad->ad_global_on)
			return NULL;
		return &ad->ad_global_ls;
	case ADM_BUCKET_CLIENT:
		if (ad->ad_client_full_rate == 0 || (cl = find_client(ad,
		    ref->ar_kind, ref->ar_key, ref->ar_keylen,
		    client_hash(ad, ref->ar_kind, ref->ar_key,
		    ref->ar_keylen))) == NULL)
			return NULL;
		return &cl->cl_ls;
	case ADM_BUCKET_CLASS:
		for (i = 0; i < ad->ad_nclasses; i++)
			if (ad->ad_class_on[i] &&
			    strlen(ad->ad_class_names[i]) == ref->ar_keylen &&
			    memcmp(ad->ad_class_names[i], ref->ar_key,
			    ref->ar_keylen) == 0) {
				return &ad->ad_class_ls[i];
			}
		return NULL;
	case ADM_NBUCKETS:
		break;
	}
	return NULL;
}

int
admission_applies(const struct config *conf, size_t class_idx)
{
	return conf->admission.rate > 0 || conf->admission.client_rate > 0 ||
	    (class_idx < conf->nclasses && conf->classes[class_idx].rate > 0);
}

void
admission_check(struct admission *ad, uint64_t now, size_t class_idx,
    int key_kind, const char *key, size_t keylen,
    struct admission_verdict *v)
{
	struct tbucket			*tb[ADM_NBUCKETS] = { NULL };
	struct lease			*ls[ADM_NBUCKETS] = { NULL };
	uint64_t			 size[ADM_NBUCKETS] = { 0 };
	int				 local[ADM_NBUCKETS] = { 0 };
	struct admission_counters	*cnt;
	struct client			*cl;
	uint64_t			 w;
	int				 i;

	if (class_idx >= ad->ad_nclasses)
		class_idx = ad->ad_nclasses;	/* a counter of its own */
	cnt = &ad->ad_counters[class_idx];
	memset(v, 0, sizeof(*v));
	if (ad->ad_global_on) {
		tb[ADM_BUCKET_GLOBAL] = &ad->ad_global;
		ls[ADM_BUCKET_GLOBAL] = &ad->ad_global_ls;
		v->rate[ADM_BUCKET_GLOBAL] = ad->ad_rate;
		v->burst[ADM_BUCKET_GLOBAL] = ad->ad_burst;
	}
	if (ad->ad_client_rate > 0 && key != NULL &&
	    (cl = lookup_client(ad, key_kind, key, keylen, now)) != NULL) {
		tb[ADM_BUCKET_CLIENT] = &cl->cl_tb;
		ls[ADM_BUCKET_CLIENT] = &cl->cl_ls;
		v->rate[ADM_BUCKET_CLIENT] = ad->ad_client_full_rate;
		v->burst[ADM_BUCKET_CLIENT] = ad->ad_client_full_burst;
	}
	if (class_idx < ad->ad_nclasses && ad->ad_class_on[class_idx]) {
		tb[ADM_BUCKET_CLASS] = &ad->ad_class_tb[class_idx];
		ls[ADM_BUCKET_CLASS] = &ad->ad_class_ls[class_idx];
		v->rate[ADM_BUCKET_CLASS] = ad->ad_class_rate[class_idx];
		v->burst[ADM_BUCKET_CLASS] = ad->ad_class_burst[class_idx];
	}
	for (i = 0; i < ADM_NBUCKETS; i++)
		if (ad->ad_shared && ls[i] != NULL)
			size[i] = lease_size(v->rate[i], v->burst[i],
			    ad->ad_rtt, ad->ad_share_n);

	for (i = 0; i < ADM_NBUCKETS; i++) {
		if (tb[i] == NULL)
			continue;
		w = ad->ad_shared ? lease_admit_wait(ls[i], tb[i], size[i],
		    now, &local[i]) : tbucket_wait(tb[i], now);
		if (w == 0)
			continue;
		if (!v->refused || w > v->wait_usec) {
			v->bucket = (enum admission_bucket)i;
			v->wait_usec = w;
		}
		v->refused = 1;
	}
	if (v->refused) {
		v->retry_after = (v->wait_usec + 999999) / 1000000;
		if (v->retry_after < 1)
			v->retry_after = 1;
		if (ad->ad_dry_run) {
			cnt->dry_run[v->bucket]++;
			v->refused = 0;
			v->dry_run = 1;
		} else
			cnt->refused[v->bucket]++;
	} else {
		for (i = 0; i < ADM_NBUCKETS; i++) {
			if (tb[i] == NULL)
				continue;
			if (ad->ad_shared)
				lease_spend(ls[i], tb[i], size[i], now,
				    local[i]);
			else
				tbucket_take(tb[i], now);
		}
		cnt->admitted++;
	}
	/* what to ask Redis for, refused or not: the caller makes the calls */
	for (i = 0; ad->ad_shared && i < ADM_NBUCKETS; i++)
		if (ls[i] != NULL)
			v->asking[i] = lease_want(ls[i], size[i], ad->ad_stale,
			    now, &v->ask[i]);
}

void
admission_granted(struct admission *ad, const struct admission_ref *ref,
    uint64_t granted, uint64_t wait, uint64_t now)
{
	struct lease	*ls;

	if (!ad->ad_shared || (ls = find_lease(ad, ref)) == NULL)
		return;		/* gone meanwhile: the tokens are lost */
	lease_grant(ls, granted, wait, now);
}

void
admission_ask_failed(struct admission *ad, const struct admission_ref *ref,
    const struct lease_ask *ask)
{
	struct lease	*ls;

	if (!ad->ad_shared || (ls = find_lease(ad, ref)) == NULL)
		return;
	lease_failed(ls, ask);
}

/*
 * Shared (leases from Redis) or local (the local share), with n instances
 * sharing; either change forgets every lease: stock leased under the old
 * state is not spent under the new one, and a debt is not carried.
 */
void
admission_set_shared(struct admission *ad, int shared, unsigned int n,
    uint64_t now)
{
	struct client	*cl;
	size_t		 i;

	if (n < 1)
		n = 1;
	if (n != ad->ad_share_n) {
		ad->ad_share_n = n;
		apply_share(ad, now);
	}
	if ((shared != 0) == ad->ad_shared)
		return;
	ad->ad_shared = shared != 0;
	lease_reset(&ad->ad_global_ls);
	for (i = 0; i < ad->ad_nclasses; i++)
		lease_reset(&ad->ad_class_ls[i]);
	TAILQ_FOREACH(cl, &ad->ad_lru, cl_lru)
		lease_reset(&cl->cl_ls);
}

void
admission_set_rtt(struct admission *ad, uint64_t rtt, uint64_t stale)
{
	ad->ad_rtt = rtt;
	ad->ad_stale = stale;
}

int
admission_shared(const struct admission *ad)
{
	return ad->ad_shared;
}

size_t
admission_class_of(const struct admission *ad, const char *name)
{
	size_t	 i;

	for (i = 0; i < ad->ad_nclasses; i++)
		if (strcmp(ad->ad_class_names[i], name) == 0)
			break;
	return i;
}

const struct admission_counters *
admission_counters(const struct admission *ad, size_t class_idx)
{
	if (class_idx > ad->ad_nclasses)
		class_idx = ad->ad_nclasses;
	return &ad->ad_counters[class_idx];
}

size_t
admission_clients(const struct admission *ad)
{
	return ad->ad_nclients;
}

uint64_t
admission_evictions(const struct admission *ad)
{
	return ad->ad_evictions;
}

const char *
admission_bucket_name(enum admission_bucket b)
{
	switch (b) {
	case ADM_BUCKET_GLOBAL:
		return "global";
	case ADM_BUCKET_CLIENT:
		return "client";
	case ADM_BUCKET_CLASS:
		return "class";
	case ADM_NBUCKETS:
		break;
	}
	return "unknown";
}

/*
 * gen.c: configuration generations. A generation is the plain data of one
 * configuration file (struct config) and what is built from it (its TLS
 * contexts), counted: the proxy holds one reference on the generation in
 * force, every client connection one on the generation its request
 * started with, and the last reference frees it. So a reload never frees
 * what an in-flight request still reads. The count is atomic: every
 * worker holds a reference and its connections theirs, each on its own
 * thread (the acquire-release on the last put orders every reader's use
 * before the free, as for a shared_ptr).
 */
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "spillway.h"

/*
 * A generation of conf (which it takes, even on failure), with one
 * reference and its TLS contexts built. NULL with "FILE:LINE: message" in
 * err if that fails.
 */
struct generation *
gen_new(struct config *conf, char *err, size_t errlen)
{
	struct generation	*gen;

	err[0] = '\0';
	if ((gen = calloc(1, sizeof(*gen))) == NULL) {
		snprintf(err, errlen, "%s: out of memory", conf->path);
		config_free(conf);
		return NULL;
	}
	gen->g_conf = conf;
	atomic_init(&gen->g_refs, 1);
	gen->g_tls = tls_new(conf, err, errlen);
	if (err[0] != '\0') {
		gen_free(gen);
		return NULL;
	}
	return gen;
}

/* Free a generation whatever its count (start-up failed, or at exit). */
void
gen_free(struct generation *gen)
{
	if (gen == NULL)
		return;
	tls_free(gen->g_tls);
	config_free(gen->g_conf);
	free(gen);
}

struct generation *
gen_get(struct generation *gen)
{
	atomic_fetch_add_explicit(&gen->g_refs, 1, memory_order_relaxed);
	return gen;
}

/* Drop a reference; the last one frees the generation. */
void
gen_put(struct generation *gen)
{
	if (atomic_fetch_sub_explicit(&gen->g_refs, 1,
	    memory_order_acq_rel) == 1)
		gen_free(gen);
}

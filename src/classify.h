/*
 * classify.h: which class a request belongs to, and which client key its
 * admission bucket is kept under. Pure: reads a parsed head and the
 * configuration, nothing else.
 */
#ifndef SPILLWAY_CLASSIFY_H
#define SPILLWAY_CLASSIFY_H

#include <stddef.h>

#include "config.h"
#include "http.h"

/*
 * The index in conf->classes of the first class whose every criterion
 * matches (any of its path prefixes, any of its methods, its header); the
 * default class, last, if none does.
 */
size_t		 classify_request(const struct config *,
		    const struct http_head *);

/*
 * The client key: the peer's address, or with client_key = header:NAME
 * that header's value. A request without the header is keyed by its
 * address, so leaving the header out evades nothing. Returns the kind of
 * key found (enum client_key_kind).
 */
int		 classify_client_key(const struct config *,
		    const struct http_head *, const char *peer_ip,
		    const char **key, size_t *keylen);

/* The path of a request target: no query, no scheme and authority. */
void		 classify_path(const struct http_head *, const char **path,
		    size_t *len);

#endif /* SPILLWAY_CLASSIFY_H */

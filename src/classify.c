/*
 * classify.c: request classes and client keys.
 *
 * Paths are compared as the client sent them (no percent-decoding or dot
 * segment removal), as HAProxy's path_beg does: a class is a routing and
 * priority tool, and limits that must not be evaded belong on the global
 * or per-client buckets.
 */
#include <string.h>
#include <strings.h>

#include "classify.h"

void
classify_path(const struct http_head *h, const char **path, size_t *len)
{
	const char	*t = h->target, *end = h->target + h->target_len;
	const char	*p, *q;

	p = t;
	if (h->target_len > 0 && t[0] != '/') {
		/* absolute-form: skip "scheme://authority" */
		if ((q = memchr(t, ':', h->target_len)) != NULL &&
		    end - q >= 3 && q[1] == '/' && q[2] == '/') {
			for (p = q + 3; p < end && *p != '/' && *p != '?'; p++)
				;
		}
	}
	for (q = p; q < end && *q != '?'; q++)
		;
	*path = p;
	*len = (size_t)(q - p);
}

static int
match_path(const struct class_conf *cc, const char *path, size_t len)
{
	size_t	 i, plen;

	if (cc->npaths == 0)
		return 1;
	for (i = 0; i < cc->npaths; i++) {
		plen = strlen(cc->paths[i]);
		if (plen <= len && memcmp(cc->paths[i], path, plen) == 0)
			return 1;
	}
	return 0;
}

static int
match_method(const struct class_conf *cc, const struct http_head *h)
{
	size_t	 i;

	if (cc->nmethods == 0)
		return 1;
	for (i = 0; i < cc->nmethods; i++) {
		if (strlen(cc->methods[i]) == h->method_len &&
		    memcmp(cc->methods[i], h->method_str, h->method_len) == 0)
			return 1;
	}
	return 0;
}

static int
match_header(const struct class_conf *cc, const struct http_head *h)
{
	const struct http_header	*hd;

	if (cc->header_name == NULL)
		return 1;
	if ((hd = http_head_find(h, cc->header_name)) == NULL)
		return 0;
	if (cc->header_value == NULL)
		return 1;
	return strlen(cc->header_value) == hd->value_len &&
	    memcmp(cc->header_value, hd->value, hd->value_len) == 0;
}

size_t
classify_request(const struct config *conf, const struct http_head *h)
{
	const char	*path;
	size_t		 i, len;

	classify_path(h, &path, &len);
	for (i = 0; i + 1 < conf->nclasses; i++) {
		if (match_path(&conf->classes[i], path, len) &&
		    match_method(&conf->classes[i], h) &&
		    match_header(&conf->classes[i], h))
			return i;
	}
	return conf->nclasses - 1;
}

int
classify_client_key(const struct config *conf, const struct http_head *h,
    const char *peer_ip, const char **key, size_t *keylen)
{
	const struct http_header	*hd;

	if (conf->admission.client_key == CLIENT_KEY_HEADER &&
	    (hd = http_head_find(h, conf->admission.client_key_header)) !=
	    NULL && hd->value_len > 0) {
		*key = hd->value;
		*keylen = hd->value_len;
		return CLIENT_KEY_HEADER;
	}
	*key = peer_ip;
	*keylen = strlen(peer_ip);
	return CLIENT_KEY_IP;
}

/*
 * fuzz_check.c: libFuzzer target for the active health check's request
 * builder (health_check_request(), the parser of the health_check key).
 *
 * The input is the key's value, then optionally a NUL and the server's
 * address to use as Host. Whatever the builder accepts must be one valid
 * request head, by the proxy's own request parser: the method and path
 * given, the Host given, and nothing after the head. And a status passes
 * a check exactly as check_status says.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "health.h"
#include "http.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_head	 h;
	const struct http_header *host;
	char			*text, buf[2048];
	const char		*spec, *addr, *why = NULL;
	size_t			 n;
	long			 len;
	ssize_t			 r;
	int			 st;

	if ((text = malloc(size + 2)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	text[size + 1] = '\0';
	spec = text;
	n = strlen(spec);
	addr = n < size ? text + n + 1 : "127.0.0.1:8081";
	len = health_check_request(spec, addr, buf, sizeof(buf), &why);
	if (len == -1) {
		if (why == NULL)
			abort();
		free(text);
		return 0;
	}
	if (len <= 0 || (size_t)len >= sizeof(buf) || buf[len] != '\0')
		abort();
	memset(&h, 0, sizeof(h));
	r = http_parse_request(&h, buf, (size_t)len, sizeof(buf));
	if (r != len)
		abort();	/* one whole head, nothing after it */
	if ((host = http_head_find(&h, "host")) == NULL || host->value_len == 0)
		abort();
	if (h.target_len == 0 || h.target[0] != '/' ||
	    memmem(spec, strlen(spec), h.target, h.target_len) == NULL ||
	    memmem(spec, strlen(spec), h.method_str, h.method_len) == NULL)
		abort();
	for (st = 100; st < 600; st++)
		if (health_check_status(st, 0) != (st >= 200 && st < 400) ||
		    !health_check_status(st, (unsigned int)st) ||
		    health_check_status(st, (unsigned int)(st == 599 ? 100 :
		    st + 1)))
			abort();
	free(text);
	return 0;
}

/*
 * fuzz_proxyproto.c: libFuzzer target for the PROXY protocol parser
 * (proxyproto.c).
 *
 * Besides not crashing, the parser must keep the promises its callers
 * build on (ppaccept.c consumes the bytes it is told are header bytes):
 * fed the input one more byte at a time, it answers PROXYPROTO_MORE and
 * then one final answer that never changes again; when that answer is
 * PROXYPROTO_OK, it comes exactly when the header's last byte arrives
 * (pp_len is that prefix's length), within the protocol's bounds, and the
 * addresses it reports are whole IPv4 or IPv6 socket addresses.
 */
#include <sys/socket.h>
#include <netinet/in.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxyproto.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define PREFIXES	300	/* prefixes checked one by one */

static void
check_ok(const struct proxyproto *pp, size_t len)
{
	if (pp->pp_len == 0 || pp->pp_len > len)
		abort();
	if (pp->pp_version == 1 && pp->pp_len > PROXYPROTO_V1_MAX)
		abort();
	if (pp->pp_version == 2 && (pp->pp_len < PROXYPROTO_V2_HEAD ||
	    pp->pp_len > PROXYPROTO_MAX))
		abort();
	if (pp->pp_version != 1 && pp->pp_version != 2)
		abort();
	if (pp->pp_has_addr) {
		if (pp->pp_src.ss_family != pp->pp_dst.ss_family)
			abort();
		if (pp->pp_src.ss_family == AF_INET ? pp->pp_srclen !=
		    sizeof(struct sockaddr_in) : pp->pp_src.ss_family ==
		    AF_INET6 ? pp->pp_srclen != sizeof(struct sockaddr_in6) : 1)
			abort();
		if (pp->pp_local || pp->pp_unsupported)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxyproto	 pp, first;
	enum proxyproto_result	 r, final = PROXYPROTO_MORE;
	const char		*why;
	size_t			 i, at = 0;
	uint8_t			*copy;

	/* a heap copy of the exact size: ASan sees any read past it */
	if ((copy = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(copy, data, size);
	memset(&first, 0, sizeof(first));
	for (i = 0; i <= size && i <= PREFIXES; i++) {
		r = proxyproto_parse(copy, i, &pp, &why);
		if (final == PROXYPROTO_MORE) {
			final = r;
			at = i;
			if (r == PROXYPROTO_OK) {
				check_ok(&pp, i);
				if (pp.pp_len != i)
					abort();	/* late or early */
				first = pp;
			}
		} else if (r != final)
			abort();	/* a final answer changed */
		else if (r == PROXYPROTO_OK && pp.pp_len != first.pp_len)
			abort();
	}
	r = proxyproto_parse(copy, size, &pp, &why);
	if (final != PROXYPROTO_MORE && r != final)
		abort();
	if (r == PROXYPROTO_OK) {
		check_ok(&pp, size);
		if (final == PROXYPROTO_OK && pp.pp_len != at)
			abort();
	}
	if (r == PROXYPROTO_BAD && (why == NULL || why[0] == '\0'))
		abort();
	free(copy);
	return 0;
}

/*
 * fuzz_lease.c: libFuzzer target for the interpretation of Redis' replies
 * to the cluster's scripts (lease.c), over their serialized form, RESP.
 *
 * The first input byte is the number of tokens the call asked for; the
 * rest is read as one reply. The reader must keep its promises: it takes
 * at most what it was given, a reply it took whole is read the same from
 * exactly its bytes, and every proper prefix of it is "incomplete" (RESP
 * says where each value ends). An interpreted reply never grants more
 * than was asked nor a wait beyond LEASE_WAIT_MAX, a count of instances
 * is within bounds, and a lease fed the result keeps its arithmetic.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lease.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lease_reply	 r, r2;
	struct lease		 ls;
	uint64_t		 asked, granted, wait;
	unsigned int		 n;
	long			 took, again;
	const char		*buf;
	size_t			 len, cut;

	if (size < 1)
		return 0;
	asked = data[0];
	buf = (const char *)data + 1;
	len = size - 1;
	took = lease_reply_parse(buf, len, &r);
	if (took > (long)len)
		abort();
	if (took <= 0)
		return 0;
	again = lease_reply_parse(buf, (size_t)took, &r2);
	if (again != took || memcmp(&r, &r2, sizeof(r)) != 0)
		abort();
	/* a few proper prefixes: each one incomplete */
	for (cut = 0; cut < (size_t)took; cut += 1 + (size_t)took / 8)
		if (lease_reply_parse(buf, cut, &r2) != 0)
			abort();
	if (r.lr_top.lv_type == LR_ARRAY && r.lr_n != (size_t)r.lr_top.lv_int)
		abort();

	switch (lease_reply_take(&r, asked, &granted, &wait)) {
	case LEASE_REPLY_OK:
		if (granted > asked || wait > LEASE_WAIT_MAX)
			abort();
		lease_reset(&ls);
		ls.ls_stock = 7;
		ls.ls_asked_at = 5;
		lease_grant(&ls, granted, wait, 1000);
		if (ls.ls_stock != 7 + granted || ls.ls_asked_at != 0 ||
		    (wait > 0) != (ls.ls_empty_until != 0))
			abort();
		break;
	case LEASE_REPLY_NOSCRIPT:
		if (r.lr_top.lv_type != LR_ERROR)
			abort();
		break;
	case LEASE_REPLY_BAD:
		break;
	default:
		abort();
	}
	if (lease_reply_instances(&r, &n) == LEASE_REPLY_OK &&
	    (n < 1 || n > LEASE_INSTANCES_MAX))
		abort();
	return 0;
}

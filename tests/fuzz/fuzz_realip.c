/*
 * fuzz_realip.c: libFuzzer target for the client address behind trusted
 * proxies (realip.c): the X-Forwarded-For and Forwarded parsers and the
 * walk, and the trusted_proxies network parser.
 *
 * Input: the first byte picks the header (bit 0) and the peer (bits 1-2:
 * trusted IPv4, trusted IPv6, untrusted, garbage); the rest is header
 * values, one per line; the first line is also parsed as a network. The
 * answer must be an address (inet_pton reads it back), the peer itself
 * when the peer is not trusted, and the same when asked twice. A network
 * that parses prints as text that parses to the same network.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "realip.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define MAX_VALUES	16

static struct realip_cidr	 trusted[4];
static size_t			 ntrusted;

static void
setup(void)
{
	static const char *const nets[] = {
		"10.0.0.0/8", "2001:db8::/32", "127.0.0.1", "192.0.2.128/25",
	};
	char	 err[256];
	size_t	 i;

	for (i = 0; i < 4; i++)
		if (realip_cidr_parse(nets[i], &trusted[i], err,
		    sizeof(err)) == -1)
			abort();
	ntrusted = 4;
}

static void
check_cidr(const char *s, size_t n)
{
	struct realip_cidr	 a, b;
	char			 text[200], err[256];

	if (n >= sizeof(text))
		return;
	memcpy(text, s, n);
	text[n] = '\0';
	if (realip_cidr_parse(text, &a, err, sizeof(err)) == -1) {
		if (err[0] == '\0')
			abort();
		return;
	}
	if (realip_cidr_parse(a.rc_text, &b, err, sizeof(err)) == -1 ||
	    a.rc_family != b.rc_family || a.rc_prefix != b.rc_prefix ||
	    memcmp(a.rc_addr, b.rc_addr, sizeof(a.rc_addr)) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const peers[] = {
		"10.1.2.3", "2001:db8::7", "198.51.100.9", "not-an-address",
	};
	const char		*values[MAX_VALUES], *peer;
	size_t			 lens[MAX_VALUES], nv = 0, i, start;
	enum realip_header	 which;
	enum realip_source	 src, src2;
	char			 out[REALIP_TEXT_MAX], out2[REALIP_TEXT_MAX];
	char			*text;
	uint8_t			 addr[16];

	if (ntrusted == 0)
		setup();
	if (size == 0)
		return 0;
	which = (data[0] & 1) ? REALIP_FORWARDED : REALIP_XFF;
	peer = peers[(data[0] >> 1) & 3];
	/* a heap copy of the exact size: ASan sees any read past it */
	if ((text = malloc(size)) == NULL)
		return 0;
	memcpy(text, data + 1, size - 1);
	for (i = start = 0; i <= size - 1 && nv < MAX_VALUES; i++) {
		if (i == size - 1 || text[i] == '\n') {
			values[nv] = text + start;
			lens[nv++] = i - start;
			start = i + 1;
		}
	}
	if (nv > 0)
		check_cidr(values[0], lens[0]);
	src = realip_walk(values, lens, nv, which, peer, trusted, ntrusted,
	    out);
	src2 = realip_walk(values, lens, nv, which, peer, trusted, ntrusted,
	    out2);
	if (src != src2 || strcmp(out, out2) != 0)
		abort();
	if (!realip_trusted(trusted, ntrusted, peer) &&
	    (src != REALIP_PEER || strcmp(out, peer) != 0))
		abort();
	if (src == REALIP_HEADER && inet_pton(AF_INET, out, addr) != 1 &&
	    inet_pton(AF_INET6, out, addr) != 1)
		abort();
	if (src == REALIP_PEER && strcmp(out, peer) != 0)
		abort();
	free(text);
	return 0;
}

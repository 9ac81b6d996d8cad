/*
 * test_proxyproto.c: unit tests for the PROXY protocol parser
 * (proxyproto.c): valid v1 and v2 headers of every kind, the malformed,
 * every truncation of each valid one (always "read more", never a verdict
 * before the last byte), and the oversized.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdlib.h>
#include <string.h>

#include "proxyproto.h"
#include "tap.h"

static const uint8_t sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};

static uint8_t	 buf[PROXYPROTO_MAX + 64];

/* A v2 header: ver/cmd byte, family byte, then n bytes of body. */
static size_t
v2(uint8_t vercmd, uint8_t fam, const void *body, size_t n)
{
	memcpy(buf, sig, sizeof(sig));
	buf[12] = vercmd;
	buf[13] = fam;
	buf[14] = (uint8_t)(n >> 8);
	buf[15] = (uint8_t)n;
	memcpy(buf + 16, body, n);
	return 16 + n;
}

static enum proxyproto_result
parse(const void *s, size_t n, struct proxyproto *pp)
{
	const char	*why = NULL;
	enum proxyproto_result r;

	r = proxyproto_parse(s, n, pp, &why);
	if (r == PROXYPROTO_BAD)
		CHECK(why != NULL && why[0] != '\0');
	return r;
}

/* Every proper prefix of a valid header asks for more; the whole is OK. */
static void
check_prefixes(const uint8_t *s, size_t n)
{
	struct proxyproto	 pp;
	size_t			 i, more = 0;

	for (i = 0; i < n; i++)
		more += parse(s, i, &pp) == PROXYPROTO_MORE;
	CHECK_EQ_INT(more, n);
	CHECK_EQ_INT(parse(s, n, &pp), PROXYPROTO_OK);
	CHECK_EQ_INT(pp.pp_len, n);
}

static const char *
src_text(const struct proxyproto *pp, char *out, size_t len, int *port)
{
	const struct sockaddr_in	*sin = (const void *)&pp->pp_src;
	const struct sockaddr_in6	*sin6 = (const void *)&pp->pp_src;

	if (pp->pp_src.ss_family == AF_INET) {
		*port = ntohs(sin->sin_port);
		return inet_ntop(AF_INET, &sin->sin_addr, out, (socklen_t)len);
	}
	*port = ntohs(sin6->sin6_port);
	return inet_ntop(AF_INET6, &sin6->sin6_addr, out, (socklen_t)len);
}

static void
test_v1_tcp4(void)
{
	const char		*s = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 "
				    "443\r\nGET / HTTP/1.1\r\n\r\n";
	struct proxyproto	 pp;
	char			 ip[64];
	int			 port = 0;

	CHECK_EQ_INT(parse(s, strlen(s), &pp), PROXYPROTO_OK);
	CHECK_EQ_INT(pp.pp_version, 1);
	CHECK_EQ_INT(pp.pp_has_addr, 1);
	CHECK_EQ_INT(pp.pp_len, strlen("PROXY TCP4 192.0.2.1 198.51.100.2 "
	    "56324 443\r\n"));
	CHECK_EQ_STR(src_text(&pp, ip, sizeof(ip), &port), "192.0.2.1");
	CHECK_EQ_INT(port, 56324);
	CHECK_EQ_INT(pp.pp_srclen, sizeof(struct sockaddr_in));
	check_prefixes((const uint8_t *)s, pp.pp_len);
}

static void
test_v1_tcp6_and_unknown(void)
{
	const char		*s = "PROXY TCP6 2001:db8::1 2001:db8::2 0 "
				    "65535\r\n";
	const char		*longest = "PROXY UNKNOWN "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	struct proxyproto	 pp;
	char			 ip[64];
	int			 port = -1;

	CHECK_EQ_INT(parse(s, strlen(s), &pp), PROXYPROTO_OK);
	CHECK_EQ_STR(src_text(&pp, ip, sizeof(ip), &port), "2001:db8::1");
	CHECK_EQ_INT(port, 0);
	check_prefixes((const uint8_t *)s, strlen(s));
	/* the longest header the spec allows is exactly 107 bytes */
	CHECK_EQ_INT(strlen(longest), PROXYPROTO_V1_MAX);
	check_prefixes((const uint8_t *)longest, strlen(longest));
	/* and the longest TCP6 one */
	longest = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	check_prefixes((const uint8_t *)longest, strlen(longest));
	/* UNKNOWN: the rest of the line is ignored, no address */
	CHECK_EQ_INT(parse("PROXY UNKNOWN\r\n", 15, &pp), PROXYPROTO_OK);
	CHECK_EQ_INT(pp.pp_has_addr, 0);
	CHECK_EQ_INT(pp.pp_len, 15);
	s = "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nGET";
	CHECK_EQ_INT(parse(s, strlen(s), &pp), PROXYPROTO_OK);
	CHECK_EQ_INT(pp.pp_has_addr, 0);
	CHECK_EQ_INT(pp.pp_len, strlen(s) - 3);
	check_prefixes((const uint8_t *)s, pp.pp_len);
}

static void
test_v1_malformed(void)
{
	static const char *const bad[] = {
		"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\n",	/* bare LF */
		"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\rX",	/* CR alone */
		"PROXY TCP4  192.0.2.1 198.51.100.2 1 2\r\n",	/* 2 spaces */
		"PROXY TCP4 192.0.2.1 198.51.100.2 1 2 \r\n",	/* trailing */
		"PROXY TCP4 192.0.2.1 198.51.100.2 1\r\n",	/* 4 fields */
		"PROXY TCP4 192.0.2.1 198.51.100.2 1 2 3\r\n",	/* 6 fields */
		"PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n",	/* v6 in TCP4 */
		"PROXY TCP6 192.0.2.1 2001:db8::2 1 2\r\n",	/* v4 in TCP6 */
		"PROXY TCP4 192.0.2.01 198.51.100.2 1 2\r\n",	/* leading 0 */
		"PROXY TCP4 192.0.2.1 198.51.100.2 65536 2\r\n",
		"PROXY TCP4 192.0.2.1 198.51.100.2 01 2\r\n",
		"PROXY TCP4 192.0.2.1 198.51.100.2 -1 2\r\n",
		"PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n",
		"PROXY tcp4 192.0.2.1 198.51.100.2 1 2\r\n",
		"PROXY UNKNOWNX\r\n",
		"PROXY \r\n",
		"PROXY\r\n",
		"proxy TCP4 192.0.2.1 198.51.100.2 1 2\r\n",
		"PROXY TCP4 192.0.2.1\t198.51.100.2 1 2\r\n",
		"GET / HTTP/1.1\r\n\r\n",
		"\x16\x03\x01\x02\x00",				/* TLS */
	};
	struct proxyproto	 pp;
	size_t			 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse(bad[i], strlen(bad[i]), &pp) != PROXYPROTO_BAD)
			printf("# accepted: %s\n", bad[i]);
		CHECK_EQ_INT(parse(bad[i], strlen(bad[i]), &pp),
		    PROXYPROTO_BAD);
	}
	/* a non-ASCII byte before any CRLF is refused at once */
	CHECK_EQ_INT(parse("PROXY TCP4 \x80", 12, &pp), PROXYPROTO_BAD);
}

static void
test_v1_oversized(void)
{
	char			 s[300];
	struct proxyproto	 pp;

	/* 106 bytes without CR: the CR could come at byte 107 at best */
	memset(s, 'x', sizeof(s));
	memcpy(s, "PROXY UNKNOWN ", 14);
	CHECK_EQ_INT(parse(s, 105, &pp), PROXYPROTO_MORE);
	CHECK_EQ_INT(parse(s, 106, &pp), PROXYPROTO_BAD);
	CHECK_EQ_INT(parse(s, sizeof(s), &pp), PROXYPROTO_BAD);
	s[105] = '\r';
	s[106] = '\n';
	CHECK_EQ_INT(parse(s, 107, &pp), PROXYPROTO_OK);
	s[105] = 'x';
	s[106] = '\r';
	s[107] = '\n';
	CHECK_EQ_INT(parse(s, 108, &pp), PROXYPROTO_BAD);
}

static void
test_v2_inet(void)
{
	uint8_t			 body[64];
	struct proxyproto	 pp;
	char			 ip[64];
	size_t			 n;
	int			 port = 0;

	inet_pton(AF_INET, "192.0.2.1", body);
	inet_pton(AF_INET, "198.51.100.2", body + 4);
	body[8] = 0xdc; body[9] = 0x04;		/* 56324 */
	body[10] = 0x01; body[11] = 0xbb;	/* 443 */
	n = v2(0x21, 0x11, body, 12);
	memcpy(buf + n, "GET /", 5);
	CHECK_EQ_INT(parse(buf, n + 5, &pp), PROXYPROTO_OK);
	CHECK_EQ_INT(pp.pp_version, 2);
	CHECK_EQ_INT(pp.pp_len, 28);
	CHECK_EQ_INT(pp.pp_has_addr, 1);
	CHECK_EQ_STR(src_text(&pp, ip, sizeof(ip), &port), "192.0.2.1");
	CHECK_EQ_INT(port, 56324);
	check_prefixes(buf, n);

	/* TLVs after the addresses are skipped, the length includes them */
	memcpy(body + 12, "\x01\x00\x02" "h2\x04\x00\x00", 8);
	n = v2(0x21, 0x11, body, 20);
	CHECK_EQ_INT(parse(buf, n, &pp), PROXYPROTO_OK);
	CHECK_EQ_INT(pp.pp_len, 36);
	check_prefixes(buf, n);

	inet_pton(AF_INET6, "2001:db8::1", body);
	inet_pton(AF_INET6, "2001:db8::2", body + 16);
	body[32] = 0; body[33] = 80; body[34] = 0; body[35] = 81;
	n = v2(0x21, 0x21, body, 36);
	CHECK_EQ_INT(parse(buf, n, &pp), PROXYPROTO_OK);
	CHECK_EQ_STR(src_text(&pp, ip, sizeof(ip), &port), "2001:db8::1");
	CHECK_EQ_INT(port, 80);
	CHECK_EQ_INT(pp.pp_srclen, sizeof(struct sockaddr_in6));
	check_prefixes(buf, n);
}

/* LOCAL, UNSPEC, UNIX, DGRAM: a valid header naming no client address. */
static void
test_v2_no_address(void)
{
	uint8_t			 body[216];
	struct proxyproto	 pp;
	size_t			 n;

	memset(body, 0, sizeof(body));
	n = v2(0x20, 0x00, body, 0);
	CHECK_EQ_INT(parse(buf, n, &pp), PROXYPROTO_OK);
	CHECK(pp.pp_local && !pp.pp_has_addr);
	check_prefixes(buf, n);
	/* LOCAL with addresses: they are ignored */
	n = v2(0x20, 0x11, body, 12);
	CHECK_EQ_INT(parse(buf, n, &pp), PROXYPROTO_OK);
	CHECK(pp.pp_local && !pp.pp_has_addr);
	n = v2(0x21, 0x00, body, 0);
	CHECK_EQ_INT(parse(buf, n, &pp), PROXYPROTO_OK);
	CHECK(!pp.pp_local && !pp.pp_has_addr && !pp.pp_unsupported);
	memcpy(body, "/run/lb.sock", 12);
	n = v2(0x21, 0x31, body, 216);
	CHECK_EQ_INT(parse(buf, n, &pp), PROXYPROTO_OK);
	CHECK(pp.pp_unsupported && !pp.pp_has_addr);
	check_prefixes(buf, n);
	n = v2(0x21, 0x12, body, 12);	/* UDP over IPv4 */
	CHECK_EQ_INT(parse(buf, n, &pp), PROXYPROTO_OK);
	CHECK(pp.pp_unsupported && !pp.pp_has_addr);
}

static void
test_v2_malformed(void)
{
	uint8_t			 body[64];
	struct proxyproto	 pp;
	size_t			 n;

	memset(body, 0, sizeof(body));
	n = v2(0x11, 0x11, body, 12);	/* version 1 in binary */
	CHECK_EQ_INT(parse(buf, n, &pp), PROXYPROTO_BAD);
	n = v2(0x31, 0x11, body, 12);	/* version 3 */
	CHECK_EQ_INT(parse(buf, n, &pp), PROXYPROTO_BAD);
	n = v2(0x22, 0x11, body, 12);	/* command 2 */
	CHECK_EQ_INT(parse(buf, n, &pp), PROXYPROTO_BAD);
	n = v2(0x21, 0x41, body, 12);	/* family 4 */
	CHECK_EQ_INT(parse(buf, n, &pp), PROXYPROTO_BAD);
	n = v2(0x21, 0x13, body, 12);	/* protocol 3 */
	CHECK_EQ_INT(parse(buf, n, &pp), PROXYPROTO_BAD);
	n = v2(0x21, 0x11, body, 11);	/* IPv4 block one byte short */
	CHECK_EQ_INT(parse(buf, n, &pp), PROXYPROTO_BAD);
	n = v2(0x21, 0x21, body, 12);	/* IPv6 with an IPv4 block */
	CHECK_EQ_INT(parse(buf, n, &pp), PROXYPROTO_BAD);
	n = v2(0x21, 0x31, body, 64);	/* UNIX block short */
	CHECK_EQ_INT(parse(buf, n, &pp), PROXYPROTO_BAD);
	/* a TLV whose length runs past the header, a stray TLV byte */
	memcpy(body + 12, "\x01\x00\x09" "ab", 5);
	n = v2(0x21, 0x11, body, 17);
	CHECK_EQ_INT(parse(buf, n, &pp), PROXYPROTO_BAD);
	memcpy(body + 12, "\x04\x00\x00\x01", 4);
	n = v2(0x21, 0x11, body, 16);
	CHECK_EQ_INT(parse(buf, n, &pp), PROXYPROTO_BAD);
	/* a damaged signature is refused as soon as it differs */
	memcpy(buf, sig, sizeof(sig));
	buf[7] = 'q';
	CHECK_EQ_INT(parse(buf, 7, &pp), PROXYPROTO_MORE);
	CHECK_EQ_INT(parse(buf, 8, &pp), PROXYPROTO_BAD);
	/* HTTP's empty line first is not a signature */
	CHECK_EQ_INT(parse("\r\nGET", 5, &pp), PROXYPROTO_BAD);
	CHECK_EQ_INT(parse("", 0, &pp), PROXYPROTO_MORE);
}

static void
test_v2_oversized(void)
{
	struct proxyproto	 pp;
	size_t			 blen = PROXYPROTO_MAX - 16, n;
	uint8_t			*body;

	if ((body = calloc(1, blen + 1)) == NULL)
		abort();
	/* one NOOP TLV filling the header up to the limit: accepted */
	inet_pton(AF_INET, "192.0.2.1", body);
	body[12] = 0x04;
	body[13] = (uint8_t)((blen - 15) >> 8);
	body[14] = (uint8_t)(blen - 15);
	n = v2(0x21, 0x11, body, blen);
	CHECK_EQ_INT(n, PROXYPROTO_MAX);
	CHECK_EQ_INT(parse(buf, n, &pp), PROXYPROTO_OK);
	/* one byte more is refused from the 16 bytes that announce it */
	body[14]++;
	n = v2(0x21, 0x11, body, blen + 1);
	CHECK_EQ_INT(parse(buf, 16, &pp), PROXYPROTO_BAD);
	free(body);
}

int
main(void)
{
	RUN(test_v1_tcp4);
	RUN(test_v1_tcp6_and_unknown);
	RUN(test_v1_malformed);
	RUN(test_v1_oversized);
	RUN(test_v2_inet);
	RUN(test_v2_no_address);
	RUN(test_v2_malformed);
	RUN(test_v2_oversized);
	return tap_done();
}

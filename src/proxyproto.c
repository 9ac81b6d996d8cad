/*
 * proxyproto.c: the PROXY protocol header, versions 1 and 2, parsed
 * strictly (HAProxy's proxy-protocol.txt). See proxyproto.h.
 *
 * Invariants: the parser reads only buf[0..len), never past the end of the
 * header it reports, and answers PROXYPROTO_MORE only while every byte seen
 * could still begin a valid header, so that a caller holding those bytes
 * holds header bytes only, at most PROXYPROTO_MAX of them.
 *
 * Pure: no libevent, no globals, no clock.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <string.h>

#include "proxyproto.h"

static const uint8_t v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};

#define V1_PREFIX	"PROXY "

/* v2 command (low nibble of byte 13), family and protocol (byte 14) */
#define V2_CMD_LOCAL	0x0
#define V2_CMD_PROXY	0x1
#define V2_FAM_UNSPEC	0x0
#define V2_FAM_INET	0x1
#define V2_FAM_INET6	0x2
#define V2_FAM_UNIX	0x3
#define V2_PROTO_UNSPEC	0x0
#define V2_PROTO_STREAM	0x1
#define V2_PROTO_DGRAM	0x2
#define V2_INET_LEN	12	/* two IPv4 addresses, two ports */
#define V2_INET6_LEN	36
#define V2_UNIX_LEN	216
#define V2_TLV_HEAD	3	/* type, 16-bit length */

static enum proxyproto_result
bad(const char **why, const char *reason)
{
	*why = reason;
	return PROXYPROTO_BAD;
}

/* A port: 1 to 5 digits, no leading zero (but "0"), at most 65535. */
static int
v1_port(const char *s, size_t n, uint16_t *port)
{
	unsigned long	 v = 0;
	size_t		 i;

	if (n == 0 || n > 5 || (s[0] == '0' && n > 1))
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/* An address of family af, written as inet_pton() reads it exactly. */
static int
v1_addr(int af, const char *s, size_t n, void *dst)
{
	char	 text[INET6_ADDRSTRLEN];

	if (n == 0 || n >= sizeof(text))
		return -1;
	memcpy(text, s, n);
	text[n] = '\0';
	return inet_pton(af, text, dst) == 1 ? 0 : -1;
}

static void
set_sa(struct sockaddr_storage *ss, socklen_t *sslen, int af,
    const void *addr, uint16_t port)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (af == AF_INET) {
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, addr, 4);
		sin->sin_port = htons(port);
		*sslen = sizeof(*sin);
	} else {
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, addr, 16);
		sin6->sin6_port = htons(port);
		*sslen = sizeof(*sin6);
	}
}

/*
 * Version 1: "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" with single spaces,
 * or "PROXY UNKNOWN" and anything up to CRLF, 107 bytes at most.
 */
static enum proxyproto_result
parse_v1(const uint8_t *buf, size_t len, struct proxyproto *pp,
    const char **why)
{
	const char	*s = (const char *)buf, *f[6];
	size_t		 flen[6], i, end, nf;
	uint8_t		 src[16], dst[16];
	uint16_t	 sport, dport;
	int		 af;

	for (end = 0; end < len && end < PROXYPROTO_V1_MAX; end++) {
		if (buf[end] == '\r')
			break;
		/* printable US-ASCII only, up to the CR */
		if (buf[end] < 0x20 || buf[end] > 0x7e)
			return bad(why, "v1: a control or non-ASCII byte");
	}
	/* the CR may stand at PROXYPROTO_V1_MAX - 2 at the latest */
	if (end + 2 > PROXYPROTO_V1_MAX)
		return bad(why, "v1: longer than 107 bytes");
	if (end == len)
		return PROXYPROTO_MORE;
	if (end + 1 == len)
		return PROXYPROTO_MORE;
	if (buf[end + 1] != '\n')
		return bad(why, "v1: CR not followed by LF");

	memset(pp, 0, sizeof(*pp));
	pp->pp_version = 1;
	pp->pp_len = end + 2;
	/* split "PROXY" and what follows at single spaces */
	for (nf = 0, i = sizeof(V1_PREFIX) - 1; nf < 6; nf++) {
		f[nf] = s + i;
		while (i < end && s[i] != ' ')
			i++;
		flen[nf] = (size_t)(s + i - f[nf]);
		if (nf == 0 && flen[0] == 7 && memcmp(f[0], "UNKNOWN", 7) == 0)
			return PROXYPROTO_OK;	/* the rest is ignored */
		if (flen[nf] == 0)
			return bad(why, "v1: an empty field");
		if (i == end)
			break;
		i++;	/* the space */
	}
	if (nf != 4 || i != end)
		return bad(why, "v1: not five fields after PROXY");
	if (flen[0] == 4 && memcmp(f[0], "TCP4", 4) == 0)
		af = AF_INET;
	else if (flen[0] == 4 && memcmp(f[0], "TCP6", 4) == 0)
		af = AF_INET6;
	else
		return bad(why, "v1: protocol not TCP4, TCP6 or UNKNOWN");
	if (v1_addr(af, f[1], flen[1], src) == -1 ||
	    v1_addr(af, f[2], flen[2], dst) == -1)
		return bad(why, "v1: an address not of its protocol");
	if (v1_port(f[3], flen[3], &sport) == -1 ||
	    v1_port(f[4], flen[4], &dport) == -1)
		return bad(why, "v1: a port not 0 to 65535");
	set_sa(&pp->pp_src, &pp->pp_srclen, af, src, sport);
	set_sa(&pp->pp_dst, &pp->pp_dstlen, af, dst, dport);
	pp->pp_has_addr = 1;
	return PROXYPROTO_OK;
}

/* TLVs fill the rest of the header exactly; their values are skipped. */
static int
v2_tlvs_fit(const uint8_t *p, size_t n)
{
	size_t	 vlen;

	while (n > 0) {
		if (n < V2_TLV_HEAD)
			return -1;
		vlen = ((size_t)p[1] << 8) | p[2];
		if (vlen > n - V2_TLV_HEAD)
			return -1;
		p += V2_TLV_HEAD + vlen;
		n -= V2_TLV_HEAD + vlen;
	}
	return 0;
}

static enum proxyproto_result
parse_v2(const uint8_t *buf, size_t len, struct proxyproto *pp,
    const char **why)
{
	const uint8_t	*body;
	size_t		 blen, alen;
	unsigned int	 cmd, fam, proto;

	if (len < PROXYPROTO_V2_HEAD)
		return PROXYPROTO_MORE;
	if ((buf[12] >> 4) != 2)
		return bad(why, "v2: version not 2");
	cmd = buf[12] & 0x0f;
	if (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY)
		return bad(why, "v2: command not LOCAL or PROXY");
	fam = buf[13] >> 4;
	proto = buf[13] & 0x0f;
	if (fam > V2_FAM_UNIX || proto > V2_PROTO_DGRAM)
		return bad(why, "v2: unknown family or protocol");
	blen = ((size_t)buf[14] << 8) | buf[15];
	if (PROXYPROTO_V2_HEAD + blen > PROXYPROTO_MAX)
		return bad(why, "v2: longer than spillway accepts");
	if (len < PROXYPROTO_V2_HEAD + blen)
		return PROXYPROTO_MORE;

	memset(pp, 0, sizeof(*pp));
	pp->pp_version = 2;
	pp->pp_len = PROXYPROTO_V2_HEAD + blen;
	body = buf + PROXYPROTO_V2_HEAD;
	if (cmd == V2_CMD_LOCAL) {
		/* the balancer's own connection: the address block is moot */
		pp->pp_local = 1;
		return PROXYPROTO_OK;
	}
	switch (fam) {
	case V2_FAM_INET:
		alen = V2_INET_LEN;
		break;
	case V2_FAM_INET6:
		alen = V2_INET6_LEN;
		break;
	case V2_FAM_UNIX:
		alen = V2_UNIX_LEN;
		break;
	default:		/* UNSPEC: no addresses, the rest is TLVs */
		alen = 0;
		break;
	}
	if (blen < alen)
		return bad(why, "v2: address block shorter than its family");
	if (v2_tlvs_fit(body + alen, blen - alen) == -1)
		return bad(why, "v2: a TLV overruns the header");
	if (fam == V2_FAM_UNSPEC)
		return PROXYPROTO_OK;
	if (fam == V2_FAM_UNIX || proto != V2_PROTO_STREAM) {
		pp->pp_unsupported = 1;
		return PROXYPROTO_OK;
	}
	if (fam == V2_FAM_INET) {
		set_sa(&pp->pp_src, &pp->pp_srclen, AF_INET, body,
		    (uint16_t)((body[8] << 8) | body[9]));
		set_sa(&pp->pp_dst, &pp->pp_dstlen, AF_INET, body + 4,
		    (uint16_t)((body[10] << 8) | body[11]));
	} else {
		set_sa(&pp->pp_src, &pp->pp_srclen, AF_INET6, body,
		    (uint16_t)((body[32] << 8) | body[33]));
		set_sa(&pp->pp_dst, &pp->pp_dstlen, AF_INET6, body + 16,
		    (uint16_t)((body[34] << 8) | body[35]));
	}
	pp->pp_has_addr = 1;
	return PROXYPROTO_OK;
}

enum proxyproto_result
proxyproto_parse(const uint8_t *buf, size_t len, struct proxyproto *pp,
    const char **why)
{
	size_t	 n;

	if (len == 0)
		return PROXYPROTO_MORE;
	if (buf[0] == v2_sig[0]) {
		n = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
		if (memcmp(buf, v2_sig, n) != 0)
			return bad(why, "not a PROXY protocol signature");
		if (len < sizeof(v2_sig))
			return PROXYPROTO_MORE;
		return parse_v2(buf, len, pp, why);
	}
	n = len < sizeof(V1_PREFIX) - 1 ? len : sizeof(V1_PREFIX) - 1;
	if (memcmp(buf, V1_PREFIX, n) != 0)
		return bad(why, "not a PROXY protocol header");
	return parse_v1(buf, len, pp, why);
}

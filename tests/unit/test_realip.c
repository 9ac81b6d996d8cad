/*
 * test_realip.c: unit tests for the client address behind trusted
 * proxies (realip.c): trusted_proxies networks, the walk over
 * X-Forwarded-For and Forwarded (RFC 7239), and what is not believed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "realip.h"
#include "tap.h"

static struct realip_cidr	 nets[8];
static size_t			 nnets;
static char			 out[REALIP_TEXT_MAX];

static void
trust(const char *text)
{
	char	 err[256];

	if (realip_cidr_parse(text, &nets[nnets], err, sizeof(err)) == -1) {
		printf("# %s\n", err);
		abort();
	}
	nnets++;
}

static void
setup(void)
{
	nnets = 0;
	trust("10.0.0.0/8");
	trust("2001:db8::/32");
	trust("192.0.2.128/25");
}

/* The client found behind peer from one or two lines of header which. */
static const char *
walk(enum realip_header which, const char *peer, const char *v1,
    const char *v2, enum realip_source want)
{
	const char	*values[2] = { v1, v2 };
	size_t		 lens[2] = { v1 ? strlen(v1) : 0, v2 ? strlen(v2) : 0 };

	CHECK_EQ_INT(realip_walk(values, lens, v1 == NULL ? 0 : v2 == NULL ?
	    1 : 2, which, peer, nets, nnets, out), want);
	return out;
}

#define XFF(peer, v, want)	walk(REALIP_XFF, peer, v, NULL, want)
#define FWD(peer, v, want)	walk(REALIP_FORWARDED, peer, v, NULL, want)

static void
test_cidr_parse(void)
{
	static const struct {
		const char	*text;
		const char	*error;		/* NULL: valid */
	} cases[] = {
		{ "10.0.0.0/8", NULL },
		{ "192.0.2.7", NULL },
		{ "0.0.0.0/0", NULL },
		{ "2001:db8::/32", NULL },
		{ "::1", NULL },
		{ "::/0", NULL },
		{ "10.1.2.3/8", "10.1.2.3/8: bits set past the /8 prefix" },
		{ "2001:db8::1/32", "2001:db8::1/32: bits set past the /32 "
		    "prefix" },
		{ "10.0.0.0/33", "10.0.0.0/33: the prefix length must be 0 "
		    "to 32" },
		{ "::/129", "::/129: the prefix length must be 0 to 128" },
		{ "10.0.0.0/", "10.0.0.0/: the prefix length must be 0 to 32" },
		{ "10.0.0.0/08", "10.0.0.0/08: the prefix length must be 0 "
		    "to 32" },
		{ "10.0.0.0/8x", "10.0.0.0/8x: the prefix length must be 0 "
		    "to 32" },
		{ "10.0.0.0/-1", "10.0.0.0/-1: the prefix length must be 0 "
		    "to 32" },
		{ "localhost", "localhost: not an IPv4 or IPv6 address (use "
		    "e.g. 10.0.0.0/8 or 2001:db8::/32)" },
		{ "10.0.0/8", "10.0.0/8: not an IPv4 or IPv6 address (use "
		    "e.g. 10.0.0.0/8 or 2001:db8::/32)" },
	};
	struct realip_cidr	 rc;
	char			 err[256];
	size_t			 i;
	int			 r;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		r = realip_cidr_parse(cases[i].text, &rc, err, sizeof(err));
		CHECK_EQ_INT(r, cases[i].error == NULL ? 0 : -1);
		if (cases[i].error != NULL)
			CHECK_EQ_STR(err, cases[i].error);
	}
	CHECK_EQ_INT(realip_cidr_parse("192.0.2.7", &rc, err, sizeof(err)), 0);
	CHECK_EQ_STR(rc.rc_text, "192.0.2.7/32");
	CHECK_EQ_INT(rc.rc_prefix, 32);
}

static void
test_trusted(void)
{
	struct realip_cidr	 all;
	char			 err[256];

	setup();
	CHECK(realip_trusted(nets, nnets, "10.255.255.255"));
	CHECK(!realip_trusted(nets, nnets, "11.0.0.0"));
	CHECK(realip_trusted(nets, nnets, "192.0.2.128"));
	CHECK(realip_trusted(nets, nnets, "192.0.2.255"));
	CHECK(!realip_trusted(nets, nnets, "192.0.2.127"));
	CHECK(realip_trusted(nets, nnets, "2001:db8:ffff::1"));
	CHECK(!realip_trusted(nets, nnets, "2001:db9::1"));
	/* an IPv4-mapped address is not the IPv4 network */
	CHECK(!realip_trusted(nets, nnets, "::ffff:10.0.0.1"));
	CHECK(!realip_trusted(nets, nnets, "garbage"));
	CHECK(!realip_trusted(nets, 0, "10.0.0.1"));
	CHECK_EQ_INT(realip_cidr_parse("0.0.0.0/0", &all, err, sizeof(err)), 0);
	CHECK(realip_trusted(&all, 1, "203.0.113.9"));
	CHECK(!realip_trusted(&all, 1, "::1"));
}

/* From a peer not trusted, no header is believed. */
static void
test_untrusted_peer(void)
{
	setup();
	CHECK_EQ_STR(XFF("198.51.100.9", "6.6.6.6", REALIP_PEER),
	    "198.51.100.9");
	CHECK_EQ_STR(FWD("198.51.100.9", "for=6.6.6.6", REALIP_PEER),
	    "198.51.100.9");
	CHECK_EQ_STR(XFF("10.0.0.1", NULL, REALIP_PEER), "10.0.0.1");
}

static void
test_xff_walk(void)
{
	setup();
	/* the rightmost untrusted hop: what the client wrote is left of it */
	CHECK_EQ_STR(XFF("10.0.0.1", "6.6.6.6, 203.0.113.5", REALIP_HEADER),
	    "203.0.113.5");
	CHECK_EQ_STR(XFF("10.0.0.1", "6.6.6.6, 203.0.113.5, 10.9.9.9, "
	    "192.0.2.200", REALIP_HEADER), "203.0.113.5");
	/* every hop trusted: the leftmost */
	CHECK_EQ_STR(XFF("10.0.0.1", "10.0.0.7, 2001:db8::5", REALIP_HEADER),
	    "10.0.0.7");
	/* several lines are one list, in order */
	CHECK_EQ_STR(walk(REALIP_XFF, "10.0.0.1", "203.0.113.5, 6.6.6.6",
	    "10.1.1.1", REALIP_HEADER), "6.6.6.6");
	/* ports and brackets, empty elements, OWS */
	CHECK_EQ_STR(XFF("10.0.0.1", "[2001:db9::9]:443", REALIP_HEADER),
	    "2001:db9::9");
	CHECK_EQ_STR(XFF("10.0.0.1", " 198.51.100.1:80 ,, ", REALIP_HEADER),
	    "198.51.100.1");
	CHECK_EQ_STR(XFF("10.0.0.1", "2001:db9::1", REALIP_HEADER),
	    "2001:db9::1");
	/* canonical text, whatever the header's spelling */
	CHECK_EQ_STR(XFF("10.0.0.1", "2001:DB9:0::0:1", REALIP_HEADER),
	    "2001:db9::1");
	/*
	 * A hop that is no address cannot be keyed or vouched for: the
	 * client is the last hop trusted (here the proxy 10.0.0.5 that
	 * passed it on); a bad rightmost hop leaves the peer.
	 */
	CHECK_EQ_STR(XFF("10.0.0.1", "203.0.113.5, unknown, 10.0.0.5",
	    REALIP_HEADER), "10.0.0.5");
	CHECK_EQ_STR(XFF("10.0.0.1", "203.0.113.5, garbage", REALIP_PEER),
	    "10.0.0.1");
	CHECK_EQ_STR(XFF("10.0.0.1", "1.2.3.4:99999", REALIP_PEER),
	    "10.0.0.1");
	CHECK_EQ_STR(XFF("10.0.0.1", "[1.2.3.4]", REALIP_PEER), "10.0.0.1");
	CHECK_EQ_STR(XFF("10.0.0.1", "", REALIP_PEER), "10.0.0.1");
}

static void
test_xff_many_hops(void)
{
	char	 chain[2048];
	size_t	 i, n = 0;

	setup();
	/* 40 trusted hops: the rightmost REALIP_MAX_HOPS are walked */
	for (i = 0; i < 40; i++)
		n += (size_t)snprintf(chain + n, sizeof(chain) - n, "%s10.0.0.%zu",
		    i ? ", " : "", i);
	CHECK_EQ_STR(XFF("10.0.0.1", chain, REALIP_HEADER), "10.0.0.8");
}

static void
test_forwarded_walk(void)
{
	setup();
	CHECK_EQ_STR(FWD("10.0.0.1", "for=192.0.2.60;proto=http;"
	    "by=203.0.113.43", REALIP_HEADER), "192.0.2.60");
	CHECK_EQ_STR(FWD("10.0.0.1", "for=6.6.6.6, for=198.51.100.17;"
	    "by=203.0.113.60;proto=http;host=example.com", REALIP_HEADER),
	    "198.51.100.17");
	CHECK_EQ_STR(FWD("10.0.0.1", "For=\"[2001:db9:cafe::17]:4711\"",
	    REALIP_HEADER), "2001:db9:cafe::17");
	CHECK_EQ_STR(FWD("10.0.0.1", "for=\"198.51.100.7:_port\"",
	    REALIP_HEADER), "198.51.100.7");
	CHECK_EQ_STR(FWD("10.0.0.1", "for=\"198.51.\\100.7\"",
	    REALIP_HEADER), "198.51.100.7");
	CHECK_EQ_STR(walk(REALIP_FORWARDED, "10.0.0.1", "for=198.51.100.1",
	    "for=10.0.0.4;proto=https", REALIP_HEADER), "198.51.100.1");
	/* empty list elements and empty pairs are allowed */
	CHECK_EQ_STR(FWD("10.0.0.1", ", for=198.51.100.2;;proto=http ,",
	    REALIP_HEADER), "198.51.100.2");
	/* unknown, obfuscated or no for=: the last trusted hop */
	CHECK_EQ_STR(FWD("10.0.0.1", "for=unknown, for=10.0.0.3",
	    REALIP_HEADER), "10.0.0.3");
	CHECK_EQ_STR(FWD("10.0.0.1", "for=_hidden, for=10.0.0.3",
	    REALIP_HEADER), "10.0.0.3");
	CHECK_EQ_STR(FWD("10.0.0.1", "for=\"_SEVKISEK\"", REALIP_PEER),
	    "10.0.0.1");
	CHECK_EQ_STR(FWD("10.0.0.1", "proto=https;by=10.0.0.2", REALIP_PEER),
	    "10.0.0.1");
	/* RFC 7239 brackets IPv6: a bare one is no address */
	CHECK_EQ_STR(FWD("10.0.0.1", "for=\"2001:db9::1\"", REALIP_PEER),
	    "10.0.0.1");
}

/* A Forwarded header against RFC 7239's grammar is not used at all. */
static void
test_forwarded_grammar(void)
{
	static const char *const bad[] = {
		"for=[2001:db9::1]",		/* IPv6 must be quoted */
		"for=1.2.3.4;for=5.6.7.8",	/* a parameter twice */
		"for=1.2.3.4 ;proto=http",	/* no OWS around ; */
		"for= 1.2.3.4",
		"for=\"1.2.3.4",		/* unterminated */
		"for=\"1.2.3.4\\",
		"for",
		"=1.2.3.4",
		"for=",
		"for=1.2.3.4 for=5.6.7.8",
		"for=\"a\x01\"",
		"",
		" , ",
	};
	size_t	 i;

	setup();
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (strcmp(FWD("10.0.0.1", bad[i], REALIP_PEER), "10.0.0.1"))
			printf("# believed: %s\n", bad[i]);
	}
	/* one bad line spoils the others */
	CHECK_EQ_STR(walk(REALIP_FORWARDED, "10.0.0.1", "for=198.51.100.1",
	    "for=1.2.3.4;;for=5.6.7.8", REALIP_PEER), "10.0.0.1");
}

/* From a parsed request: the header named, hop-by-hop fields left out. */
static void
test_client_from_head(void)
{
	struct http_head	 h;
	const char		*req = "GET / HTTP/1.1\r\nHost: x\r\n"
	    "X-Forwarded-For: 6.6.6.6, 203.0.113.5\r\n"
	    "Forwarded: for=198.51.100.3\r\n"
	    "x-forwarded-for: 10.0.0.2\r\n\r\n";

	setup();
	http_head_reset(&h);
	CHECK(http_parse_request(&h, req, strlen(req), 8192) > 0);
	CHECK_EQ_INT(realip_client(&h, REALIP_XFF, "10.0.0.1", nets, nnets,
	    out), REALIP_HEADER);
	CHECK_EQ_STR(out, "203.0.113.5");
	CHECK_EQ_INT(realip_client(&h, REALIP_FORWARDED, "10.0.0.1", nets,
	    nnets, out), REALIP_HEADER);
	CHECK_EQ_STR(out, "198.51.100.3");
	CHECK_EQ_INT(realip_client(&h, REALIP_XFF, "203.0.113.1", nets,
	    nnets, out), REALIP_PEER);
	CHECK_EQ_STR(out, "203.0.113.1");
}

int
main(void)
{
	RUN(test_cidr_parse);
	RUN(test_trusted);
	RUN(test_untrusted_peer);
	RUN(test_xff_walk);
	RUN(test_xff_many_hops);
	RUN(test_forwarded_walk);
	RUN(test_forwarded_grammar);
	RUN(test_client_from_head);
	return tap_done();
}

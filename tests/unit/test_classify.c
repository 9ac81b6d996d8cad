/* Unit tests of request classification and client keys. */
#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "tap.h"

static char *paths_api[] = { "/api/", "/v2/api/" };
static char *methods_write[] = { "POST", "PUT" };
static char *paths_health[] = { "/healthz" };

/* no fault injection (config.h, fault.h) */
#define NOFAULT	{ 0, 0, 503, 0 }

/* health (critical), api writes (with header), reports, default */
static struct class_conf classes[] = {
	{ "health", 1, paths_health, 1, NULL, 0, NULL, NULL, PRIO_CRITICAL,
	    0, 0, NOFAULT, 0 },
	{ "api-write", 2, paths_api, 2, methods_write, 2, NULL, NULL,
	    PRIO_NORMAL, 0, 0, NOFAULT, 0 },
	{ "batch", 3, NULL, 0, NULL, 0, "X-Batch", "yes", PRIO_SHEDDABLE,
	    0, 0, NOFAULT, 0 },
	{ "tagged", 4, NULL, 0, NULL, 0, "X-Tag", NULL, PRIO_NORMAL, 0, 0,
	    NOFAULT, 0 },
	{ "default", 0, NULL, 0, NULL, 0, NULL, NULL, PRIO_NORMAL, 0, 0,
	    NOFAULT, 0 },
};

static struct config	conf = {
	.classes = classes,
	.nclasses = sizeof(classes) / sizeof(classes[0]),
};

static const char *
class_of(const char *req)
{
	struct http_head	 h;
	ssize_t			 r;

	memset(&h, 0, sizeof(h));
	r = http_parse_request(&h, req, strlen(req), 16384);
	if (r <= 0)
		return "(parse error)";
	return conf.classes[classify_request(&conf, &h)].name;
}

static void
test_paths(void)
{
	CHECK_EQ_STR(class_of("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"),
	    "health");
	CHECK_EQ_STR(class_of("GET /healthz?full=1 HTTP/1.1\r\nHost: a\r\n\r\n"),
	    "health");
	CHECK_EQ_STR(class_of("GET /health HTTP/1.1\r\nHost: a\r\n\r\n"),
	    "default");
	/* the query string is not part of the path */
	CHECK_EQ_STR(class_of("GET /x?/healthz HTTP/1.1\r\nHost: a\r\n\r\n"),
	    "default");
	/* absolute-form: the path after the authority */
	CHECK_EQ_STR(class_of("GET http://h:80/healthz HTTP/1.1\r\nHost: h:80\r\n"
	    "\r\n"), "health");
}

static void
test_methods(void)
{
	CHECK_EQ_STR(class_of("POST /api/x HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 0\r\n\r\n"), "api-write");
	CHECK_EQ_STR(class_of("PUT /v2/api/y HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 0\r\n\r\n"), "api-write");
	CHECK_EQ_STR(class_of("GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n"),
	    "default");
	/* methods are case-sensitive */
	CHECK_EQ_STR(class_of("post /api/x HTTP/1.1\r\nHost: a\r\n\r\n"),
	    "default");
}

static void
test_headers(void)
{
	CHECK_EQ_STR(class_of("GET / HTTP/1.1\r\nHost: a\r\nX-Batch: yes\r\n"
	    "\r\n"), "batch");
	CHECK_EQ_STR(class_of("GET / HTTP/1.1\r\nHost: a\r\nx-batch: yes\r\n"
	    "\r\n"), "batch");
	CHECK_EQ_STR(class_of("GET / HTTP/1.1\r\nHost: a\r\nX-Batch: no\r\n"
	    "\r\n"), "default");
	CHECK_EQ_STR(class_of("GET / HTTP/1.1\r\nHost: a\r\nX-Tag: any\r\n"
	    "\r\n"), "tagged");
	/* first match in order wins */
	CHECK_EQ_STR(class_of("GET /healthz HTTP/1.1\r\nHost: a\r\n"
	    "X-Batch: yes\r\n\r\n"), "health");
}

static void
test_client_key(void)
{
	struct config		 c = conf;
	struct http_head	 h;
	const char		*req = "GET / HTTP/1.1\r\nHost: a\r\n"
				    "X-Api-Key: secret-1\r\n\r\n";
	const char		*key;
	size_t			 len;

	memset(&h, 0, sizeof(h));
	CHECK(http_parse_request(&h, req, strlen(req), 16384) > 0);
	CHECK_EQ_INT(classify_client_key(&c, &h, "10.1.2.3", &key, &len),
	    CLIENT_KEY_IP);
	CHECK(len == 8 && memcmp(key, "10.1.2.3", len) == 0);
	c.admission.client_key = CLIENT_KEY_HEADER;
	c.admission.client_key_header = "X-Api-Key";
	CHECK_EQ_INT(classify_client_key(&c, &h, "10.1.2.3", &key, &len),
	    CLIENT_KEY_HEADER);
	CHECK(len == 8 && memcmp(key, "secret-1", len) == 0);
	/* without the header: the address, so leaving it out evades nothing */
	c.admission.client_key_header = "X-Other";
	CHECK_EQ_INT(classify_client_key(&c, &h, "10.1.2.3", &key, &len),
	    CLIENT_KEY_IP);
	CHECK(len == 8 && memcmp(key, "10.1.2.3", len) == 0);
}

int
main(void)
{
	RUN(test_paths);
	RUN(test_methods);
	RUN(test_headers);
	RUN(test_client_key);
	return tap_done();
}

/*
 * test_config.c: unit tests for config.c, the INI file to struct config.
 *
 * Usage: test_config [path/to/spillway.ini]; without an argument the
 * example file is found as $top_srcdir/conf/spillway.ini ("." if unset),
 * so the test runs from the build directory under make check.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L	/* mkstemp, strdup under -std=c11 */
#endif

#include <sys/types.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "mbuf.h"
#include "tap.h"

#define BACKEND	"[backend]\nserver = 127.0.0.1:8081\n"

static const char *example_path;

/* Parse text that must be valid; print the errors if it is not. */
static struct config *
parse_ok(const char *text)
{
	struct config	*conf;
	char		*errors = NULL;

	conf = config_parse("t", text, &errors);
	if (conf == NULL)
		printf("# unexpected errors:\n# %s", errors ? errors : "(null)\n");
	CHECK(conf != NULL);
	CHECK(errors == NULL);
	free(errors);
	return conf;
}

/* Parse text that must be refused; returns the error text to free. */
static char *
parse_err(const char *text)
{
	struct config	*conf;
	char		*errors = NULL;

	conf = config_parse("t", text, &errors);
	CHECK(conf == NULL);
	CHECK(errors != NULL);
	config_free(conf);
	return errors;
}

/* The error text of a one-error file, checked to be exactly want. */
static void
check_error(const char *text, const char *want)
{
	char	*errors = parse_err(text);

	CHECK_EQ_STR(errors, want);
	free(errors);
}

static int
count_lines(const char *s)
{
	int	 n = 0;

	for (; s != NULL && *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

static int
has_line(const char *errors, const char *line)
{
	return errors != NULL && strstr(errors, line) != NULL;
}

/* The value one key takes in a file with only that key and a server. */
static struct config *
parse_key(const char *section, const char *key, const char *value)
{
	char	 text[512];

	snprintf(text, sizeof(text), "[%s]\n%s = %s\n%s", section, key, value,
	    strcmp(section, "backend") == 0 ?
	    "server = 127.0.0.1:8081\n" : BACKEND);
	return parse_ok(text);
}

static const char *
addr_str(const struct config_addr *a, char *buf, size_t len)
{
	const struct sockaddr_in	*sin = (const void *)&a->ss;
	const struct sockaddr_in6	*sin6 = (const void *)&a->ss;
	char				 host[INET6_ADDRSTRLEN];

	if (a->ss.ss_family == AF_INET) {
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(sin->sin_port));
	} else if (a->ss.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(sin6->sin6_port));
	} else
		snprintf(buf, len, "family %d", a->ss.ss_family);
	return buf;
}

/* Resolve text with config_parse_addr() and write it back as a string. */
static const char *
addr(const char *text, int passive, char *buf, size_t len)
{
	struct config_addr	 a;
	char			 err[192];

	memset(&a, 0, sizeof(a));
	if (config_parse_addr(text, passive, &a, err, sizeof(err)) == -1) {
		snprintf(buf, len, "error: %s", err);
		return buf;
	}
	return addr_str(&a, buf, len);
}

/* The default class: no criteria, everything else as given. */
static void
check_default_class(const struct class_conf *cl, enum priority prio, int line)
{
	CHECK_EQ_STR(cl->name, "default");
	CHECK_EQ_INT(cl->line, line);
	CHECK_EQ_INT(cl->npaths, 0);
	CHECK(cl->paths == NULL);
	CHECK_EQ_INT(cl->nmethods, 0);
	CHECK(cl->methods == NULL);
	CHECK(cl->header_name == NULL);
	CHECK(cl->header_value == NULL);
	CHECK_EQ_INT(cl->priority, prio);
	CHECK_EQ_INT(cl->rate, 0);
	CHECK_EQ_INT(cl->burst, 0);
}

static void
check_defaults(const struct config *conf)
{
	char	 buf[64];

	CHECK_EQ_INT(conf->proxy.nlisten, 1);
	CHECK_EQ_STR(conf->proxy.listen[0].text, "127.0.0.1:8080");
	CHECK_EQ_STR(addr_str(&conf->proxy.listen[0], buf, sizeof(buf)),
	    "127.0.0.1:8080");
	CHECK_EQ_INT(conf->proxy.max_connections, 4096);
	CHECK_EQ_INT(conf->admin.max_connections, 64);
	CHECK_EQ_INT(conf->proxy.header_timeout_ms, 10000);
	CHECK_EQ_INT(conf->proxy.idle_timeout_ms, 60000);
	CHECK_EQ_INT(conf->proxy.body_timeout_ms, 0);
	CHECK_EQ_INT(conf->proxy.max_header_size, 16384);
	CHECK_EQ_INT(conf->proxy.max_body_size, 1048576);
	CHECK_EQ_INT(conf->proxy.shutdown_timeout_ms, 10000);
	CHECK_EQ_STR(conf->proxy.access_log, "-");
	CHECK_EQ_INT(conf->backend.nservers, 1);
	CHECK_EQ_STR(conf->backend.servers[0].text, "127.0.0.1:8081");
	CHECK_EQ_STR(addr_str(&conf->backend.servers[0], buf, sizeof(buf)),
	    "127.0.0.1:8081");
	CHECK_EQ_INT(conf->backend.connect_timeout_ms, 5000);
	CHECK_EQ_INT(conf->backend.response_timeout_ms, 60000);
	CHECK_EQ_INT(conf->backend.keepalive, 32);
	CHECK_EQ_INT(conf->backend.keepalive_timeout_ms, 60000);
	CHECK_EQ_INT(conf->backend.balance, BALANCE_ROUNDROBIN);
	CHECK_EQ_INT(conf->admission.rate, 0);
	CHECK_EQ_INT(conf->admission.burst, 0);
	CHECK_EQ_INT(conf->admission.client_rate, 0);
	CHECK_EQ_INT(conf->admission.client_burst, 0);
	CHECK_EQ_INT(conf->admission.client_key, CLIENT_KEY_IP);
	CHECK(conf->admission.client_key_header == NULL);
	CHECK_EQ_INT(conf->admission.max_clients, 100000);
	CHECK_EQ_INT(conf->admission.dry_run, 0);
	CHECK_EQ_INT(conf->nclasses, 1);
	if (conf->nclasses == 1)
		check_default_class(&conf->classes[0], PRIO_NORMAL, 0);
}

static void
test_defaults(void)
{
	struct config	*conf = parse_ok(BACKEND);

	if (conf == NULL)
		return;
	check_defaults(conf);
	CHECK_EQ_INT(conf->proxy.listen[0].line, 0);
	CHECK_EQ_INT(conf->backend.servers[0].line, 2);
	CHECK_EQ_STR(conf->path, "t");
	/* plain data: the runtime's count and generation are not in it */
	CHECK_EQ_INT(conf->nclasses, 1);
	CHECK_EQ_STR(conf->classes[0].name, "default");
	config_free(conf);
}

/* The shipped file documents the defaults: it must say exactly them. */
static void
test_example_file(void)
{
	struct config	*conf;
	char		*errors = NULL;

	conf = config_load(example_path, &errors);
	if (conf == NULL)
		printf("# %s: %s", example_path, errors ? errors : "(null)\n");
	CHECK(conf != NULL);
	CHECK(errors == NULL);
	if (conf != NULL) {
		check_defaults(conf);
		CHECK_EQ_STR(conf->path, example_path);
		CHECK(conf->proxy.listen[0].line > 0);
	}
	config_free(conf);
	free(errors);
}

static void
test_duration_units(void)
{
	uint64_t	 ms = 7;

	CHECK(config_parse_duration("250ms", &ms) == 0 && ms == 250);
	CHECK(config_parse_duration("10s", &ms) == 0 && ms == 10000);
	CHECK(config_parse_duration("2m", &ms) == 0 && ms == 120000);
	CHECK(config_parse_duration("1h", &ms) == 0 && ms == 3600000);
	CHECK(config_parse_duration("2d", &ms) == 0 && ms == 172800000);
	CHECK(config_parse_duration("30", &ms) == 0 && ms == 30000);
	CHECK(config_parse_duration("0", &ms) == 0 && ms == 0);
	CHECK(config_parse_duration("0ms", &ms) == 0 && ms == 0);
	CHECK(config_parse_duration("007s", &ms) == 0 && ms == 7000);
}

static void
test_duration_bad(void)
{
	static const char *const bad[] = {
		"", "s", "ms", "-1s", "+1s", "10 s", " 10s", "10s ", "1.5s",
		"10sec", "10S", "10M", "1s1", "10us", "0x10", "1e3",
		"18446744073709551616", "18446744073709551615s",
		"213503982334601d", "99999999999999999999ms",
	};
	uint64_t	 ms = 7;
	size_t		 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (config_parse_duration(bad[i], &ms) != -1) {
			printf("# accepted '%s'\n", bad[i]);
			CHECK(0);
		}
	}
	CHECK_EQ_INT(ms, 7);	/* left alone */
	CHECK(config_parse_duration("18446744073709551615ms", &ms) == 0);
	CHECK(ms == UINT64_MAX);
}

static void
test_size_units(void)
{
	uint64_t	 b = 7;

	CHECK(config_parse_size("0", &b) == 0 && b == 0);
	CHECK(config_parse_size("512", &b) == 0 && b == 512);
	CHECK(config_parse_size("16k", &b) == 0 && b == 16384);
	CHECK(config_parse_size("16K", &b) == 0 && b == 16384);
	CHECK(config_parse_size("3m", &b) == 0 && b == 3 * 1048576);
	CHECK(config_parse_size("3M", &b) == 0 && b == 3 * 1048576);
	CHECK(config_parse_size("2g", &b) == 0 && b == 2ULL << 30);
	CHECK(config_parse_size("2G", &b) == 0 && b == 2ULL << 30);
}

static void
test_size_bad(void)
{
	static const char *const bad[] = {
		"", "k", "-1", "+1", "1 k", "1kb", "1KiB", "1t", "1.5m",
		"0x10", "16k ", "18446744073709551616", "17179869184g",
	};
	uint64_t	 b = 7;
	size_t		 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (config_parse_size(bad[i], &b) != -1) {
			printf("# accepted '%s'\n", bad[i]);
			CHECK(0);
		}
	}
	CHECK_EQ_INT(b, 7);
	CHECK(config_parse_size("17179869183g", &b) == 0);
}

static void
test_every_key(void)
{
	struct config	*conf;

	conf = parse_ok("[proxy]\n"
	    "max_connections = 100\n"
	    "header_timeout = 250ms\n"
	    "idle_timeout = 2m\n"
	    "body_timeout = 30s\n"
	    "max_header_size = 8k\n"
	    "max_body_size = 2G\n"
	    "shutdown_timeout = 0\n"
	    "access_log = /var/log/spillway/access.log\n"
	    "[backend]\n"
	    "server = 127.0.0.1:9000\n"
	    "connect_timeout = 1500ms\n"
	    "response_timeout = 1h\n"
	    "keepalive = 0\n"
	    "keepalive_timeout = 1d\n"
	    "balance = leastconn\n");
	if (conf == NULL)
		return;
	CHECK_EQ_INT(conf->proxy.max_connections, 100);
	CHECK_EQ_INT(conf->proxy.header_timeout_ms, 250);
	CHECK_EQ_INT(conf->proxy.idle_timeout_ms, 120000);
	CHECK_EQ_INT(conf->proxy.body_timeout_ms, 30000);
	CHECK_EQ_INT(conf->proxy.max_header_size, 8192);
	CHECK(conf->proxy.max_body_size == 2ULL << 30);
	CHECK_EQ_INT(conf->proxy.shutdown_timeout_ms, 0);
	CHECK_EQ_STR(conf->proxy.access_log, "/var/log/spillway/access.log");
	CHECK_EQ_INT(conf->backend.connect_timeout_ms, 1500);
	CHECK_EQ_INT(conf->backend.response_timeout_ms, 3600000);
	CHECK_EQ_INT(conf->backend.keepalive, 0);
	CHECK_EQ_INT(conf->backend.keepalive_timeout_ms, 86400000);
	CHECK_EQ_INT(conf->backend.balance, BALANCE_LEASTCONN);
	config_free(conf);
}

static void
test_bounds_ok(void)
{
	struct config	*conf;

	if ((conf = parse_key("proxy", "max_connections", "1000000"))) {
		CHECK_EQ_INT(conf->proxy.max_connections, 1000000);
		config_free(conf);
	}
	if ((conf = parse_key("proxy", "header_timeout", "1ms"))) {
		CHECK_EQ_INT(conf->proxy.header_timeout_ms, 1);
		config_free(conf);
	}
	if ((conf = parse_key("proxy", "max_header_size", "1m"))) {
		CHECK_EQ_INT(conf->proxy.max_header_size, 1048576);
		config_free(conf);
	}
	if ((conf = parse_key("proxy", "max_body_size", "0"))) {
		CHECK_EQ_INT(conf->proxy.max_body_size, 0);
		config_free(conf);
	}
	if ((conf = parse_key("proxy", "max_body_size", "1024g"))) {
		CHECK(conf->proxy.max_body_size == 1ULL << 40);
		config_free(conf);
	}
	if ((conf = parse_key("backend", "keepalive", "10000"))) {
		CHECK_EQ_INT(conf->backend.keepalive, 10000);
		config_free(conf);
	}
}

static void
test_bounds_duration(void)
{
	check_error("[proxy]\nheader_timeout = 2h\n" BACKEND,
	    "t:2: header_timeout: 2h is out of range (1ms to 1h)\n");
	check_error("[proxy]\n\nheader_timeout = 0\n" BACKEND,
	    "t:3: header_timeout: 0 is out of range (1ms to 1h)\n");
	check_error("[proxy]\nshutdown_timeout = 3601s\n" BACKEND,
	    "t:2: shutdown_timeout: 3601s is out of range (0 to 1h)\n");
	check_error(BACKEND "response_timeout = 2d\n",
	    "t:3: response_timeout: 2d is out of range (1ms to 1d)\n");
}

static void
test_bounds_size(void)
{
	check_error("[proxy]\nmax_header_size = 512\n" BACKEND,
	    "t:2: max_header_size: 512 is out of range (1k to 1m)\n");
	check_error("[proxy]\nmax_header_size = 1025k\n" BACKEND,
	    "t:2: max_header_size: 1025k is out of range (1k to 1m)\n");
	check_error("[proxy]\nmax_body_size = 1025g\n" BACKEND,
	    "t:2: max_body_size: 1025g is out of range (0 to 1024g)\n");
}

static void
test_bounds_uint(void)
{
	check_error("[proxy]\nmax_connections = 0\n" BACKEND,
	    "t:2: max_connections: 0 is out of range (1 to 1000000)\n");
	check_error("[proxy]\nmax_connections = 1000001\n" BACKEND,
	    "t:2: max_connections: 1000001 is out of range (1 to 1000000)\n");
	check_error(BACKEND "keepalive = 10001\n",
	    "t:3: keepalive: 10001 is out of range (0 to 10000)\n");
}

static void
test_bad_number(void)
{
	check_error("[proxy]\nmax_connections = 12abc\n" BACKEND,
	    "t:2: max_connections: invalid number '12abc' "
	    "(use a whole number, e.g. 100)\n");
	check_error("[proxy]\nmax_connections = -5\n" BACKEND,
	    "t:2: max_connections: invalid number '-5' "
	    "(use a whole number, e.g. 100)\n");
	check_error("[proxy]\nmax_connections = 99999999999999999999\n"
	    BACKEND, "t:2: max_connections: invalid number "
	    "'99999999999999999999' (use a whole number, e.g. 100)\n");
}

static void
test_bad_duration(void)
{
	check_error("[proxy]\nheader_timeout = abc\n" BACKEND,
	    "t:2: header_timeout: invalid duration 'abc' "
	    "(use e.g. 250ms, 10s, 1m)\n");
	check_error("[proxy]\nheader_timeout = 10 s\n" BACKEND,
	    "t:2: header_timeout: invalid duration '10 s' "
	    "(use e.g. 250ms, 10s, 1m)\n");
}

static void
test_bad_size(void)
{
	check_error("[proxy]\nmax_body_size = 1kb\n" BACKEND,
	    "t:2: max_body_size: invalid size '1kb' "
	    "(use e.g. 512, 16k, 1m)\n");
}

static void
test_missing_value(void)
{
	check_error("[proxy]\nheader_timeout =\n" BACKEND,
	    "t:2: header_timeout: missing value (use e.g. 250ms, 10s, 1m)\n");
}

static void
test_unknown_section(void)
{
	check_error(BACKEND "[proxi]\nlisten = 8080\nfoo = bar\n",
	    "t:3: unknown section [proxi]\n");
	check_error("[]\n" BACKEND, "t:1: unknown section []\n");
	check_error("[ proxy ]\n" BACKEND, "t:1: unknown section [ proxy ]\n");
}

static void
test_unknown_key(void)
{
	check_error("[proxy]\nlisten = 8080\nlisen = 8081\n" BACKEND,
	    "t:3: unknown key 'lisen' in [proxy]\n");
	/* a key of the other section */
	check_error(BACKEND "listen = 8080\n",
	    "t:3: unknown key 'listen' in [backend]\n");
}

static void
test_key_outside_section(void)
{
	check_error("listen = 8080\n" BACKEND,
	    "t:1: key 'listen' outside any section "
	    "(start with [proxy] or [backend])\n");
}

static void
test_repeated_key(void)
{
	check_error("[proxy]\nheader_timeout = 5s\n" BACKEND
	    "[proxy]\nheader_timeout = 6s\n",
	    "t:6: header_timeout: given twice (first on line 2)\n");
	check_error(BACKEND "balance = leastconn\nbalance = leastconn\n",
	    "t:4: balance: given twice (first on line 3)\n");
}

static void
test_missing_backend(void)
{
	/* no [backend] at all: the last line */
	check_error("[proxy]\nlisten = 8080\n\n",
	    "t:3: no backend server ([backend] server = host:port)\n");
	/* a [backend] without a server: its header */
	check_error("[proxy]\n[backend]\nkeepalive = 1\n",
	    "t:2: no backend server ([backend] server = host:port)\n");
	/* nothing at all: line 1 */
	check_error("", "t:1: no backend server ([backend] server = host:port)\n");
}

static void
test_several_errors(void)
{
	char	*errors;

	errors = parse_err("[proxy]\n"
	    "listen = 80800\n"
	    "header_timeout = soon\n"
	    "nope = 1\n"
	    "[nosuch]\n"
	    "a = b\n"
	    "[backend]\n"
	    "balance = random\n"
	    "server\n");
	CHECK_EQ_INT(count_lines(errors), 7);
	CHECK(has_line(errors, "t:2: listen: invalid port in '80800' "
	    "(use 1 to 65535)\n"));
	CHECK(has_line(errors, "t:3: header_timeout: invalid duration "));
	CHECK(has_line(errors, "t:4: unknown key 'nope' in [proxy]\n"));
	CHECK(has_line(errors, "t:5: unknown section [nosuch]\n"));
	CHECK(has_line(errors, "t:8: balance: invalid value 'random' "
	    "(use roundrobin or leastconn)\n"));
	CHECK(has_line(errors, "t:9: syntax error: expected 'key = value'\n"));
	/* line 9 gave no server; the [backend] header is blamed */
	CHECK(has_line(errors, "t:7: no backend server ([backend] server = "
	    "host:port)\n"));
	free(errors);
}

/* A file of nothing but errors lists 100 and counts the rest. */
static void
test_error_cap(void)
{
	char	*text, *errors;
	size_t	 i;

	text = malloc(150 * 8 + 64);
	strcpy(text, BACKEND);
	for (i = 0; i < 150; i++)
		strcat(text, "bad!!!\n");
	errors = parse_err(text);
	CHECK_EQ_INT(count_lines(errors), 101);
	CHECK(has_line(errors, "t:3: syntax error"));
	CHECK(has_line(errors, "t:102: syntax error"));
	CHECK(!has_line(errors, "t:103:"));
	CHECK(has_line(errors, "\nt: 50 more errors not shown\n"));
	free(errors);
	free(text);
}

static void
test_syntax_errors(void)
{
	char	*errors;

	errors = parse_err(BACKEND
	    "keepalive 3\n"
	    "[proxy\n"
	    "[proxy] header_timeout = 1s\n"
	    "[proxy]\n"
	    "header_timeout: 5s\n"
	    "= 5s\n"
	    "idle_timeout ; = 5s\n"
	    "[backend] # not a comment\n");
	CHECK_EQ_STR(errors,
	    "t:3: syntax error: expected 'key = value'\n"
	    "t:4: syntax error: missing ']'\n"
	    "t:5: syntax error: text after ']'\n"
	    "t:7: syntax error: expected 'key = value'\n"
	    "t:8: syntax error: missing key before '='\n"
	    "t:9: syntax error: expected 'key = value'\n"
	    "t:10: syntax error: text after ']'\n");
	free(errors);
}

/* Keys after a broken section header are not blamed on another section. */
static void
test_broken_section_skips_keys(void)
{
	check_error("[proxy]\n[backend\nserver = 127.0.0.1:1\n",
	    "t:2: syntax error: missing ']'\n"
	    "t:3: no backend server ([backend] server = host:port)\n");
}

/*
 * inih reads lines into a buffer of 200 bytes (Debian); a longer line is
 * reported, and the lines after it keep their numbers.
 */
static void
test_line_too_long(void)
{
	char	 text[1024], *errors;

	snprintf(text, sizeof(text), BACKEND "; %0300d\nkeepalive = x\n", 0);
	errors = parse_err(text);
	CHECK(has_line(errors, "t:3: line too long (more than "));
	CHECK(has_line(errors, "t:4: keepalive: invalid number 'x'"));
	CHECK_EQ_INT(count_lines(errors), 2);
	free(errors);
}

static void
test_long_line_ok(void)
{
	struct config	*conf;
	char		 text[512];

	/* 197 characters, the most inih's default buffer holds; CR is free */
	snprintf(text, sizeof(text), "[proxy]\r\naccess_log = /%0183d\r\n"
	    BACKEND, 0);
	if ((conf = parse_ok(text)) != NULL) {
		CHECK_EQ_INT(strlen(conf->proxy.access_log), 184);
		config_free(conf);
	}
}

static void
test_inline_comments(void)
{
	struct config	*conf;

	conf = parse_ok("[proxy] ; the front\n"
	    "header_timeout = 5s ; not too long\n"
	    "# a comment\n"
	    "; another\n"
	    BACKEND);
	if (conf != NULL) {
		CHECK_EQ_INT(conf->proxy.header_timeout_ms, 5000);
		config_free(conf);
	}
	/* '#' is a comment only at the start of a line */
	check_error("[proxy]\nheader_timeout = 5s # no\n" BACKEND,
	    "t:2: header_timeout: invalid duration '5s # no' "
	    "(use e.g. 250ms, 10s, 1m)\n");
	/* ';' needs a blank before it */
	check_error("[proxy]\nheader_timeout = 5s;no\n" BACKEND,
	    "t:2: header_timeout: invalid duration '5s;no' "
	    "(use e.g. 250ms, 10s, 1m)\n");
}

/* Indented lines stand alone: inih's multi-line values are off. */
static void
test_indented_lines(void)
{
	struct config	*conf;

	conf = parse_ok("  [proxy]\n\tlisten = 9000\n    " BACKEND);
	if (conf != NULL) {
		CHECK_EQ_INT(conf->proxy.nlisten, 1);
		config_free(conf);
	}
	check_error(BACKEND "    127.0.0.1:8082\n",
	    "t:3: syntax error: expected 'key = value' "
	    "(an indented line does not continue a value)\n");
}

static void
test_crlf_and_bom(void)
{
	struct config	*conf;

	conf = parse_ok("\xef\xbb\xbf[proxy]\r\nmax_connections = 7\r\n"
	    "[backend]\r\nserver = 127.0.0.1:8081\r\n");
	if (conf != NULL) {
		CHECK_EQ_INT(conf->proxy.max_connections, 7);
		CHECK_EQ_STR(conf->backend.servers[0].text, "127.0.0.1:8081");
		config_free(conf);
	}
	check_error("[proxy]\r\n\r\nmax_connections = 0\r\n" BACKEND,
	    "t:3: max_connections: 0 is out of range (1 to 1000000)\n");
}

static void
test_listen_ipv4(void)
{
	char	 buf[128];

	CHECK_EQ_STR(addr("127.0.0.1:8080", 1, buf, sizeof(buf)),
	    "127.0.0.1:8080");
	CHECK_EQ_STR(addr("10.1.2.3:1", 1, buf, sizeof(buf)), "10.1.2.3:1");
	CHECK_EQ_STR(addr("0.0.0.0:65535", 1, buf, sizeof(buf)),
	    "0.0.0.0:65535");
}

static void
test_listen_any(void)
{
	char	 buf[128];

	CHECK_EQ_STR(addr("*:8080", 1, buf, sizeof(buf)), "0.0.0.0:8080");
	CHECK_EQ_STR(addr(":8080", 1, buf, sizeof(buf)), "0.0.0.0:8080");
	CHECK_EQ_STR(addr("8080", 1, buf, sizeof(buf)), "0.0.0.0:8080");
}

static void
test_listen_ipv6(void)
{
	char	 buf[128];

	CHECK_EQ_STR(addr("[::]:8080", 1, buf, sizeof(buf)), "[::]:8080");
	CHECK_EQ_STR(addr("[::1]:8080", 1, buf, sizeof(buf)), "[::1]:8080");
	CHECK_EQ_STR(addr("[2001:db8::5]:443", 1, buf, sizeof(buf)),
	    "[2001:db8::5]:443");
}

static void
test_listen_bad(void)
{
	char	 buf[256];

	CHECK_EQ_STR(addr("8080x", 1, buf, sizeof(buf)),
	    "error: missing port in '8080x' (use host:port)");
	CHECK_EQ_STR(addr("*:0", 1, buf, sizeof(buf)),
	    "error: invalid port in '*:0' (use 1 to 65535)");
	CHECK_EQ_STR(addr("::1:80", 1, buf, sizeof(buf)),
	    "error: IPv6 address without brackets in '::1:80' "
	    "(use [v6]:port)");
	CHECK_EQ_STR(addr("[::1]", 1, buf, sizeof(buf)),
	    "error: invalid address '[::1]' (use [v6]:port)");
	CHECK_EQ_STR(addr("[::1]8080", 1, buf, sizeof(buf)),
	    "error: invalid address '[::1]8080' (use [v6]:port)");
	CHECK_EQ_STR(addr("[127.0.0.1]:80", 1, buf, sizeof(buf)),
	    "error: invalid IPv6 address '127.0.0.1'");
	CHECK_EQ_STR(addr("[]:80", 1, buf, sizeof(buf)),
	    "error: invalid host in '[]:80'");
}

static void
test_listen_repeat(void)
{
	struct config	*conf;
	char		 buf[128];

	conf = parse_ok("[proxy]\nlisten = *:8080\n\nlisten = [::1]:8080\n"
	    BACKEND "[proxy]\nlisten = 127.0.0.2:80\n");
	if (conf == NULL)
		return;
	CHECK_EQ_INT(conf->proxy.nlisten, 3);	/* and no default */
	CHECK_EQ_STR(conf->proxy.listen[0].text, "*:8080");
	CHECK_EQ_INT(conf->proxy.listen[0].line, 2);
	CHECK_EQ_STR(addr_str(&conf->proxy.listen[1], buf, sizeof(buf)),
	    "[::1]:8080");
	CHECK_EQ_INT(conf->proxy.listen[1].line, 4);
	CHECK_EQ_STR(conf->proxy.listen[2].text, "127.0.0.2:80");
	CHECK_EQ_INT(conf->proxy.listen[2].line, 8);
	CHECK_EQ_INT(conf->proxy.listen[1].sslen,
	    sizeof(struct sockaddr_in6));
	config_free(conf);
}

static void
test_listen_duplicate(void)
{
	check_error("[proxy]\nlisten = 8080\nlisten = 0.0.0.0:8080\n" BACKEND,
	    "t:3: listen: 0.0.0.0:8080 is the same address as '8080' "
	    "on line 2\n");
}

static void
test_server_forms(void)
{
	char	 buf[128];

	CHECK_EQ_STR(addr("127.0.0.1:8081", 0, buf, sizeof(buf)),
	    "127.0.0.1:8081");
	CHECK_EQ_STR(addr("[::1]:8081", 0, buf, sizeof(buf)), "[::1]:8081");
	/* a host name; /etc/hosts says 127.0.0.1 or ::1 */
	addr("localhost:8081", 0, buf, sizeof(buf));
	CHECK(strcmp(buf, "127.0.0.1:8081") == 0 ||
	    strcmp(buf, "[::1]:8081") == 0);
}

static void
test_server_bad(void)
{
	char	 buf[256];

	CHECK_EQ_STR(addr("8081", 0, buf, sizeof(buf)),
	    "error: missing host or port in '8081' (use host:port)");
	CHECK_EQ_STR(addr("*:8081", 0, buf, sizeof(buf)),
	    "error: missing host in '*:8081' (use host:port)");
	CHECK_EQ_STR(addr(":8081", 0, buf, sizeof(buf)),
	    "error: missing host in ':8081' (use host:port)");
	CHECK_EQ_STR(addr("127.0.0.1", 0, buf, sizeof(buf)),
	    "error: missing host or port in '127.0.0.1' (use host:port)");
	CHECK_EQ_STR(addr("127.0.0.1:65536", 0, buf, sizeof(buf)),
	    "error: invalid port in '127.0.0.1:65536' (use 1 to 65535)");
	CHECK_EQ_STR(addr("127.0.0.1:http", 0, buf, sizeof(buf)),
	    "error: invalid port in '127.0.0.1:http' (use 1 to 65535)");
	CHECK_EQ_STR(addr("127.0.0.1:+80", 0, buf, sizeof(buf)),
	    "error: invalid port in '127.0.0.1:+80' (use 1 to 65535)");
	CHECK_EQ_STR(addr("bad host:80", 0, buf, sizeof(buf)),
	    "error: invalid host in 'bad host:80'");
	CHECK_EQ_STR(addr("a/b:80", 0, buf, sizeof(buf)),
	    "error: invalid host in 'a/b:80'");
}

/* A bad server is one error: "no backend server" would only repeat it. */
static void
test_server_in_file(void)
{
	check_error("[backend]\nserver = 127.0.0.1\n",
	    "t:2: server: missing host or port in '127.0.0.1' "
	    "(use host:port)\n");
}

static void
test_server_repeat(void)
{
	struct config	*conf;
	char		 buf[128];

	/* the same server twice is allowed: it gets twice the share */
	conf = parse_ok("[backend]\nserver = 127.0.0.1:1\n"
	    "server = [::1]:2\nserver = 127.0.0.1:1\n");
	if (conf == NULL)
		return;
	CHECK_EQ_INT(conf->backend.nservers, 3);
	CHECK_EQ_STR(addr_str(&conf->backend.servers[1], buf, sizeof(buf)),
	    "[::1]:2");
	CHECK_EQ_INT(conf->backend.servers[2].line, 4);
	config_free(conf);
}

static void
test_too_many_addresses(void)
{
	char	 text[64 * 24 + 128], line[32], *errors;
	int	 i;

	strcpy(text, BACKEND "[proxy]\n");
	for (i = 1; i <= 65; i++) {
		snprintf(line, sizeof(line), "listen = %d\n", i);
		strcat(text, line);
	}
	errors = parse_err(text);
	CHECK_EQ_STR(errors, "t:68: listen: too many (at most 64)\n");
	free(errors);
}

static void
test_numeric_hosts(void)
{
	struct config	*conf;
	char		*errors = NULL;

	conf = config_parse_flags("t", "[backend]\nserver = localhost:1\n",
	    CONFIG_NUMERIC_HOSTS, &errors);
	CHECK(conf == NULL);
	CHECK(has_line(errors, "t:2: server: cannot resolve 'localhost': "));
	free(errors);
	conf = config_parse_flags("t", "[backend]\nserver = [::1]:1\n"
	    "server = 10.0.0.1:2\n", CONFIG_NUMERIC_HOSTS, &errors);
	CHECK(conf != NULL);
	CHECK(errors == NULL);
	config_free(conf);
}

static void
test_access_log(void)
{
	struct config	*conf;

	if ((conf = parse_key("proxy", "access_log", "off")) != NULL) {
		CHECK(conf->proxy.access_log == NULL);
		config_free(conf);
	}
	if ((conf = parse_key("proxy", "access_log", "-")) != NULL) {
		CHECK_EQ_STR(conf->proxy.access_log, "-");
		config_free(conf);
	}
	if ((conf = parse_key("proxy", "access_log", "stderr")) != NULL) {
		CHECK_EQ_STR(conf->proxy.access_log, "-");
		config_free(conf);
	}
	if ((conf = parse_key("proxy", "access_log", "logs/a b.log")) != NULL) {
		CHECK_EQ_STR(conf->proxy.access_log, "logs/a b.log");
		config_free(conf);
	}
}

static void
test_balance(void)
{
	struct config	*conf;

	if ((conf = parse_key("backend", "balance", "roundrobin")) != NULL) {
		CHECK_EQ_INT(conf->backend.balance, BALANCE_ROUNDROBIN);
		config_free(conf);
	}
	if ((conf = parse_key("backend", "balance", "leastconn")) != NULL) {
		CHECK_EQ_INT(conf->backend.balance, BALANCE_LEASTCONN);
		config_free(conf);
	}
	check_error(BACKEND "balance = LeastConn\n",
	    "t:3: balance: invalid value 'LeastConn' "
	    "(use roundrobin or leastconn)\n");
	CHECK_EQ_STR(config_balance_name(BALANCE_ROUNDROBIN), "roundrobin");
	CHECK_EQ_STR(config_balance_name(BALANCE_LEASTCONN), "leastconn");
	CHECK_EQ_STR(config_balance_name((enum balance)42), "unknown");
}

static void
test_admission_keys(void)
{
	struct config	*conf;

	conf = parse_ok(BACKEND
	    "[admission]\n"
	    "rate = 1000\n"
	    "burst = 2000\n"
	    "client_rate = 10\n"
	    "client_burst = 20\n"
	    "client_key = header:X-Api-Key\n"
	    "max_clients = 5000\n"
	    "dry_run = yes\n");
	if (conf == NULL)
		return;
	CHECK_EQ_INT(conf->admission.rate, 1000ULL * 60);
	CHECK_EQ_INT(conf->admission.burst, 2000);
	CHECK_EQ_INT(conf->admission.client_rate, 10ULL * 60);
	CHECK_EQ_INT(conf->admission.client_burst, 20);
	CHECK_EQ_INT(conf->admission.client_key, CLIENT_KEY_HEADER);
	CHECK_EQ_STR(conf->admission.client_key_header, "X-Api-Key");
	CHECK_EQ_INT(conf->admission.max_clients, 5000);
	CHECK_EQ_INT(conf->admission.dry_run, 1);
	config_free(conf);
}

static void
test_admission_bounds(void)
{
	struct config	*conf;

	if ((conf = parse_key("admission", "rate", "10000000")) != NULL) {
		CHECK_EQ_INT(conf->admission.rate, 10000000ULL * 60);
		config_free(conf);
	}
	if ((conf = parse_key("admission", "max_clients", "1")) != NULL) {
		CHECK_EQ_INT(conf->admission.max_clients, 1);
		config_free(conf);
	}
	check_error("[admission]\nrate = 10000001\n" BACKEND,
	    "t:2: rate: 10000001 is out of range (0 to 10000000/s)\n");
	check_error("[admission]\nclient_burst = 1.5\n" BACKEND,
	    "t:2: client_burst: invalid number '1.5' "
	    "(use a whole number, e.g. 100)\n");
	check_error("[admission]\nmax_clients = 0\n" BACKEND,
	    "t:2: max_clients: 0 is out of range (1 to 10000000)\n");
	if ((conf = parse_key("admission", "rate", "5/m")) != NULL) {
		CHECK_EQ_INT(conf->admission.rate, 5);
		config_free(conf);
	}
	if ((conf = parse_key("admission", "client_rate", "7/s")) != NULL) {
		CHECK_EQ_INT(conf->admission.client_rate, 7 * 60);
		config_free(conf);
	}
	check_error("[admission]\nrate = 5/h\n" BACKEND,
	    "t:2: rate: invalid rate '5/h' (use requests per second or "
	    "minute, e.g. 100, 100/s, 5/m)\n");
	check_error("[admission]\nrate = /s\n" BACKEND,
	    "t:2: rate: invalid rate '/s' (use requests per second or "
	    "minute, e.g. 100, 100/s, 5/m)\n");
	check_error("[admission]\nclient_rate = 600000001/m\n" BACKEND,
	    "t:2: client_rate: 600000001/m is out of range (0 to "
	    "10000000/s)\n");
	check_error("[admission]\nrate = 5\nrate = 6\n" BACKEND,
	    "t:3: rate: given twice (first on line 2)\n");
}

static void
test_client_key_forms(void)
{
	struct config	*conf;

	if ((conf = parse_key("admission", "client_key", "ip")) != NULL) {
		CHECK_EQ_INT(conf->admission.client_key, CLIENT_KEY_IP);
		CHECK(conf->admission.client_key_header == NULL);
		config_free(conf);
	}
	if ((conf = parse_key("admission", "client_key",
	    "header:X-Forwarded-For")) != NULL) {
		CHECK_EQ_INT(conf->admission.client_key, CLIENT_KEY_HEADER);
		CHECK_EQ_STR(conf->admission.client_key_header,
		    "X-Forwarded-For");
		config_free(conf);
	}
	/* a blank after the colon is forgiven */
	if ((conf = parse_key("admission", "client_key",
	    "header: X-User")) != NULL) {
		CHECK_EQ_STR(conf->admission.client_key_header, "X-User");
		config_free(conf);
	}
}

static void
test_client_key_bad(void)
{
	check_error("[admission]\nclient_key = IP\n" BACKEND,
	    "t:2: client_key: invalid value 'IP' (use ip or header:NAME)\n");
	check_error("[admission]\nclient_key = header\n" BACKEND,
	    "t:2: client_key: invalid value 'header' "
	    "(use ip or header:NAME)\n");
	check_error("[admission]\nclient_key = header:\n" BACKEND,
	    "t:2: client_key: invalid header name in 'header:' "
	    "(use ip or header:NAME)\n");
	check_error("[admission]\nclient_key = header:X Y\n" BACKEND,
	    "t:2: client_key: invalid header name in 'header:X Y' "
	    "(use ip or header:NAME)\n");
	check_error("[admission]\nclient_key = header:X:Y\n" BACKEND,
	    "t:2: client_key: invalid header name in 'header:X:Y' "
	    "(use ip or header:NAME)\n");
	check_error("[admission]\nclient_key = cookie:sid\n" BACKEND,
	    "t:2: client_key: invalid value 'cookie:sid' "
	    "(use ip or header:NAME)\n");
}

static void
test_dry_run_forms(void)
{
	static const struct {
		const char	*value;
		int		 want;
	} forms[] = {
		{ "yes", 1 }, { "no", 0 }, { "on", 1 }, { "off", 0 },
		{ "true", 1 }, { "false", 0 }, { "1", 1 }, { "0", 0 },
		{ "YES", 1 }, { "Off", 0 }, { "True", 1 }, { "FALSE", 0 },
	};
	struct config	*conf;
	size_t		 i;

	for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		conf = parse_key("admission", "dry_run", forms[i].value);
		if (conf == NULL)
			continue;
		if (conf->admission.dry_run != forms[i].want)
			printf("# dry_run = %s\n", forms[i].value);
		CHECK_EQ_INT(conf->admission.dry_run, forms[i].want);
		config_free(conf);
	}
}

static void
test_dry_run_bad(void)
{
	check_error("[admission]\ndry_run = maybe\n" BACKEND,
	    "t:2: dry_run: invalid value 'maybe' (use yes or no)\n");
	check_error("[admission]\ndry_run = 2\n" BACKEND,
	    "t:2: dry_run: invalid value '2' (use yes or no)\n");
	check_error("[admission]\ndry_run =\n" BACKEND,
	    "t:2: dry_run: missing value (use yes or no)\n");
}

static void
test_class_order(void)
{
	struct config	*conf;

	conf = parse_ok(BACKEND
	    "[class health]\n"		/* 3 */
	    "path = /healthz\n"
	    "priority = critical\n"
	    "[class api]\n"		/* 6 */
	    "path = /api/\n"
	    "[proxy]\n"
	    "max_connections = 10\n"
	    "[class reports]\n"	/* 10 */
	    "path = /reports/\n"
	    "priority = sheddable\n");
	if (conf == NULL)
		return;
	CHECK_EQ_INT(conf->nclasses, 4);
	if (conf->nclasses == 4) {
		CHECK_EQ_STR(conf->classes[0].name, "health");
		CHECK_EQ_INT(conf->classes[0].line, 3);
		CHECK_EQ_INT(conf->classes[0].priority, PRIO_CRITICAL);
		CHECK_EQ_STR(conf->classes[1].name, "api");
		CHECK_EQ_INT(conf->classes[1].line, 6);
		CHECK_EQ_INT(conf->classes[1].priority, PRIO_NORMAL);
		CHECK_EQ_STR(conf->classes[2].name, "reports");
		CHECK_EQ_INT(conf->classes[2].line, 10);
		CHECK_EQ_INT(conf->classes[2].priority, PRIO_SHEDDABLE);
		check_default_class(&conf->classes[3], PRIO_NORMAL, 0);
	}
	CHECK_EQ_INT(conf->proxy.max_connections, 10);
	config_free(conf);
}

/* A [class default] anywhere is moved to the end, keys and all. */
static void
test_class_default_explicit(void)
{
	struct config	*conf;

	conf = parse_ok(BACKEND
	    "[class default]\n"
	    "priority = sheddable\n"
	    "[class a]\n"
	    "path = /a\n"
	    "[class b]\n"
	    "path = /b\n");
	if (conf == NULL)
		return;
	CHECK_EQ_INT(conf->nclasses, 3);
	if (conf->nclasses == 3) {
		CHECK_EQ_STR(conf->classes[0].name, "a");
		CHECK_EQ_STR(conf->classes[1].name, "b");
		check_default_class(&conf->classes[2], PRIO_SHEDDABLE, 3);
	}
	config_free(conf);

	conf = parse_ok(BACKEND "[class default]\nrate = 100\nburst = 300\n");
	if (conf == NULL)
		return;
	CHECK_EQ_INT(conf->nclasses, 1);
	CHECK_EQ_STR(conf->classes[0].name, "default");
	CHECK_EQ_INT(conf->classes[0].rate, 100ULL * 60);
	CHECK_EQ_INT(conf->classes[0].burst, 300);
	config_free(conf);
}

static void
test_class_paths_methods(void)
{
	struct config		*conf;
	struct class_conf	*cl;

	conf = parse_ok(BACKEND
	    "[class write]\n"
	    "path = /api/\n"
	    "method = POST, PUT\n"
	    "path = /v2/api/\n"
	    "method = DELETE,PATCH\tOPTIONS\n"
	    "method = ,M-SEARCH  ,\n"
	    "path = /\n");
	if (conf == NULL)
		return;
	cl = &conf->classes[0];
	CHECK_EQ_INT(cl->npaths, 3);
	if (cl->npaths == 3) {
		CHECK_EQ_STR(cl->paths[0], "/api/");
		CHECK_EQ_STR(cl->paths[1], "/v2/api/");
		CHECK_EQ_STR(cl->paths[2], "/");
	}
	CHECK_EQ_INT(cl->nmethods, 6);
	if (cl->nmethods == 6) {
		CHECK_EQ_STR(cl->methods[0], "POST");
		CHECK_EQ_STR(cl->methods[1], "PUT");
		CHECK_EQ_STR(cl->methods[2], "DELETE");
		CHECK_EQ_STR(cl->methods[3], "PATCH");
		CHECK_EQ_STR(cl->methods[4], "OPTIONS");
		CHECK_EQ_STR(cl->methods[5], "M-SEARCH");
	}
	CHECK(cl->header_name == NULL);
	config_free(conf);

	/* a method alone is enough to match on */
	conf = parse_ok(BACKEND "[class heads]\nmethod = HEAD\n");
	if (conf != NULL) {
		CHECK_EQ_INT(conf->classes[0].npaths, 0);
		CHECK_EQ_INT(conf->classes[0].nmethods, 1);
		config_free(conf);
	}
}

static void
test_class_header(void)
{
	struct config	*conf;

	conf = parse_ok(BACKEND
	    "[class bots]\nheader = User-Agent:  Mozilla/5.0 (bot)  \n"
	    "[class keyed]\nheader = X-Api-Key\n"
	    "[class tight]\nheader = X-A:b\n");
	if (conf == NULL)
		return;
	CHECK_EQ_INT(conf->nclasses, 4);
	CHECK_EQ_STR(conf->classes[0].header_name, "User-Agent");
	CHECK_EQ_STR(conf->classes[0].header_value, "Mozilla/5.0 (bot)");
	CHECK_EQ_STR(conf->classes[1].header_name, "X-Api-Key");
	CHECK(conf->classes[1].header_value == NULL);
	CHECK_EQ_STR(conf->classes[2].header_name, "X-A");
	CHECK_EQ_STR(conf->classes[2].header_value, "b");
	config_free(conf);
}

static void
test_class_priority_names(void)
{
	static const char *const names[] = { "critical", "normal",
	    "sheddable" };
	struct config	*conf;
	char		 text[256];
	size_t		 i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(text, sizeof(text), BACKEND "[class c]\npath = /\n"
		    "priority = %s\n", names[i]);
		if ((conf = parse_ok(text)) == NULL)
			continue;
		CHECK_EQ_INT(conf->classes[0].priority, i);
		CHECK_EQ_STR(config_priority_name(conf->classes[0].priority),
		    names[i]);
		config_free(conf);
	}
	CHECK_EQ_STR(config_priority_name((enum priority)PRIO_COUNT),
	    "unknown");
}

static void
test_class_rate_burst(void)
{
	struct config	*conf;

	conf = parse_ok(BACKEND
	    "[class api]\npath = /api/\nrate = 50\nburst = 100\n"
	    "[class max]\npath = /max/\nrate = 10000000\n");
	if (conf == NULL)
		return;
	CHECK_EQ_INT(conf->classes[0].rate, 50ULL * 60);
	CHECK_EQ_INT(conf->classes[0].burst, 100);
	CHECK_EQ_INT(conf->classes[1].rate, 10000000ULL * 60);
	CHECK_EQ_INT(conf->classes[1].burst, 0);
	config_free(conf);
	check_error(BACKEND "[class api]\npath = /\nrate = 10000001\n",
	    "t:5: rate: 10000001 is out of range (0 to 10000000/s)\n");
	check_error(BACKEND "[class api]\npath = /\nburst = -1\n",
	    "t:5: burst: invalid number '-1' "
	    "(use a whole number, e.g. 100)\n");
}

/* Blanks between "class" and the name: any number of spaces or tabs. */
static void
test_class_section_blanks(void)
{
	struct config	*conf;

	conf = parse_ok(BACKEND "[class   a]\npath = /a\n[class\tb]\n"
	    "path = /b\n");
	if (conf == NULL)
		return;
	CHECK_EQ_INT(conf->nclasses, 3);
	CHECK_EQ_STR(conf->classes[0].name, "a");
	CHECK_EQ_STR(conf->classes[1].name, "b");
	config_free(conf);
	check_error(BACKEND "[classy]\npath = /\n",
	    "t:3: unknown section [classy]\n");
	check_error(BACKEND "[ class a]\npath = /\n",
	    "t:3: unknown section [ class a]\n");
}

static void
test_class_duplicate(void)
{
	/* the second one's keys are skipped, not blamed */
	check_error(BACKEND "[class api]\npath = /api/\n\n"
	    "[class api]\npath = nope\n",
	    "t:6: [class api] given twice (first on line 3)\n");
	check_error(BACKEND "[class default]\n[class a]\npath = /\n"
	    "[class default]\n",
	    "t:6: [class default] given twice (first on line 3)\n");
}

static void
test_class_bad_name(void)
{
	check_error(BACKEND "[class]\npath = /\n",
	    "t:3: [class] needs a name ([class NAME])\n");
	check_error(BACKEND "[class  ]\npath = /\n",
	    "t:3: [class] needs a name ([class NAME])\n");
	check_error(BACKEND "[class a/b]\npath = /\n",
	    "t:3: invalid class name 'a/b' "
	    "(1 to 32 letters, digits, '_', '.' or '-')\n");
	check_error(BACKEND "[class two words]\npath = /\n",
	    "t:3: invalid class name 'two words' "
	    "(1 to 32 letters, digits, '_', '.' or '-')\n");
	check_error(BACKEND "[class a23456789012345678901234567890123]\n",
	    "t:3: invalid class name 'a23456789012345678901234567890123' "
	    "(1 to 32 letters, digits, '_', '.' or '-')\n");
	check_error(BACKEND "[class a]\npath = /\n[class a]]\n",
	    "t:5: syntax error: text after ']'\n");
}

static void
test_class_name_ok(void)
{
	struct config	*conf;

	conf = parse_ok(BACKEND "[class a2345678901234567890123456789012]\n"
	    "path = /\n[class Static.v2_old-1]\npath = /s/\n");
	if (conf == NULL)
		return;
	CHECK_EQ_STR(conf->classes[0].name,
	    "a2345678901234567890123456789012");
	CHECK_EQ_STR(conf->classes[1].name, "Static.v2_old-1");
	config_free(conf);
}

static void
test_class_default_criteria(void)
{
	check_error(BACKEND "[class default]\npath = /\npriority = critical\n",
	    "t:3: class default matches every request; it takes no path, "
	    "method or header\n");
	check_error(BACKEND "[class default]\n\nheader = X-A\n[proxy]\n",
	    "t:3: class default matches every request; it takes no path, "
	    "method or header\n");
	check_error(BACKEND "[class default]\nmethod = GET\n",
	    "t:3: class default matches every request; it takes no path, "
	    "method or header\n");
}

static void
test_class_no_criteria(void)
{
	check_error(BACKEND "[class slow]\npriority = sheddable\nrate = 5\n"
	    "[proxy]\n",
	    "t:3: class slow has no path, method or header to match; "
	    "name it default to change the default class\n");
	/* an empty class at the end of the file */
	check_error(BACKEND "[class a]\npath = /a\n[class empty]\n",
	    "t:5: class empty has no path, method or header to match; "
	    "name it default to change the default class\n");
}

static void
test_class_unknown_key(void)
{
	check_error(BACKEND "[class api]\npath = /api/\nserver = x\n",
	    "t:5: unknown key 'server' in [class api]\n");
	/* [admission] keys are not class keys, nor the other way round */
	check_error(BACKEND "[class api]\npath = /\nclient_rate = 1\n",
	    "t:5: unknown key 'client_rate' in [class api]\n");
	check_error(BACKEND "[admission]\npath = /\n",
	    "t:4: unknown key 'path' in [admission]\n");
}

static void
test_class_key_twice(void)
{
	struct config	*conf;

	check_error(BACKEND "[class a]\nheader = X-A\nheader = X-B: c\n",
	    "t:5: header: given twice (first on line 4)\n");
	check_error(BACKEND "[class a]\npath = /\npriority = critical\n"
	    "priority = normal\n",
	    "t:6: priority: given twice (first on line 5)\n");
	/* given once in each of two classes is fine */
	conf = parse_ok(BACKEND "[class a]\npath = /a\nrate = 1\n"
	    "[class b]\npath = /b\nrate = 2\n");
	if (conf != NULL) {
		CHECK_EQ_INT(conf->classes[0].rate, 1ULL * 60);
		CHECK_EQ_INT(conf->classes[1].rate, 2ULL * 60);
		config_free(conf);
	}
}

static void
test_class_path_bad(void)
{
	check_error(BACKEND "[class a]\npath = api/\n",
	    "t:4: path: 'api/' does not start with '/' "
	    "(use a path prefix, e.g. /api/)\n");
	check_error(BACKEND "[class a]\npath = *\n",
	    "t:4: path: '*' does not start with '/' "
	    "(use a path prefix, e.g. /api/)\n");
	check_error(BACKEND "[class a]\npath = /a b\n",
	    "t:4: path: blank or control character in '/a b'\n");
	check_error(BACKEND "[class a]\npath = /a\x01\n",
	    "t:4: path: blank or control character in '/a?'\n");
	check_error(BACKEND "[class a]\npath = /search?q=1\n",
	    "t:4: path: '?' in '/search?q=1' (a path prefix never matches "
	    "the query string)\n");
	/* one error: "class a has no path" would only repeat it */
	check_error(BACKEND "[class a]\npath =\n",
	    "t:4: path: missing value (use a path prefix, e.g. /api/)\n");
}

static void
test_class_method_bad(void)
{
	check_error(BACKEND "[class a]\nmethod = GET, HE@D\n",
	    "t:4: method: invalid method 'HE@D' "
	    "(use methods, e.g. GET, HEAD)\n");
	check_error(BACKEND "[class a]\npath = /\nmethod = GET;POST\n",
	    "t:5: method: invalid method 'GET;POST' "
	    "(use methods, e.g. GET, HEAD)\n");
	check_error(BACKEND "[class a]\npath = /\nmethod = ,,\n",
	    "t:5: method: no method in ',,' (use methods, e.g. GET, HEAD)\n");
}

static void
test_class_header_bad(void)
{
	check_error(BACKEND "[class a]\nheader = X A: b\n",
	    "t:4: header: invalid header name in 'X A: b' "
	    "(use Name or Name: value)\n");
	check_error(BACKEND "[class a]\nheader = X-A :b\n",
	    "t:4: header: invalid header name in 'X-A :b' "
	    "(use Name or Name: value)\n");
	check_error(BACKEND "[class a]\nheader = : b\n",
	    "t:4: header: invalid header name in ': b' "
	    "(use Name or Name: value)\n");
	check_error(BACKEND "[class a]\nheader = X-A:\n",
	    "t:4: header: missing value after ':' in 'X-A:' "
	    "(use Name or Name: value)\n");
	check_error(BACKEND "[class a]\nheader = X-A: b\x1b" "c\n",
	    "t:4: header: control character in 'X-A: b?c'\n");
}

static void
test_class_priority_bad(void)
{
	check_error(BACKEND "[class a]\npath = /\npriority = high\n",
	    "t:5: priority: invalid value 'high' "
	    "(use critical, normal or sheddable)\n");
	check_error(BACKEND "[class a]\npath = /\npriority = Critical\n",
	    "t:5: priority: invalid value 'Critical' "
	    "(use critical, normal or sheddable)\n");
}

/* Class errors are collected with the rest, each on its own line. */
static void
test_class_several_errors(void)
{
	char	*errors;

	errors = parse_err("[admission]\n"
	    "dry_run = perhaps\n"
	    "[class api]\n"
	    "path = api\n"
	    "method = G/T\n"
	    "weight = 3\n"
	    "[class api]\n"
	    "[class none]\n"
	    "[class default]\n"
	    "path = /x\n"
	    "[backend]\n"
	    "server = 127.0.0.1:1\n");
	CHECK_EQ_STR(errors,
	    "t:2: dry_run: invalid value 'perhaps' (use yes or no)\n"
	    "t:4: path: 'api' does not start with '/' "
	    "(use a path prefix, e.g. /api/)\n"
	    "t:5: method: invalid method 'G/T' "
	    "(use methods, e.g. GET, HEAD)\n"
	    "t:6: unknown key 'weight' in [class api]\n"
	    "t:7: [class api] given twice (first on line 3)\n"
	    "t:8: class none has no path, method or header to match; "
	    "name it default to change the default class\n"
	    "t:9: class default matches every request; it takes no path, "
	    "method or header\n");
	free(errors);
}

static void
test_class_too_many(void)
{
	char	*text, *errors;
	size_t	 i, len = 0, size = 1001 * 32 + 64;

	if ((text = malloc(size)) == NULL)
		return;
	len = (size_t)snprintf(text, size, BACKEND);
	for (i = 0; i < 1001; i++)
		len += (size_t)snprintf(text + len, size - len,
		    "[class c%zu]\npath = /\n", i);
	errors = parse_err(text);
	CHECK_EQ_STR(errors, "t:2003: too many classes (at most 1000)\n");
	free(errors);
	free(text);
}

/* Write text to a new temporary file; returns its malloc'd path. */
static char *
temp_file(const void *text, size_t len)
{
	const char	*dir = getenv("TMPDIR");
	char		*path;
	int		 fd;

	if (dir == NULL || *dir == '\0')
		dir = "/tmp";
	if ((path = malloc(strlen(dir) + 32)) == NULL)
		return NULL;
	sprintf(path, "%s/test_config.XXXXXX", dir);
	if ((fd = mkstemp(path)) == -1) {
		free(path);
		return NULL;
	}
	if (write(fd, text, len) != (ssize_t)len) {
		close(fd);
		unlink(path);
		free(path);
		return NULL;
	}
	close(fd);
	return path;
}

static void
test_load_file(void)
{
	static const char	 text[] = "[proxy]\nlisten = 9999\n" BACKEND;
	struct config		*conf;
	char			*path, *errors = NULL;

	path = temp_file(text, sizeof(text) - 1);
	CHECK(path != NULL);
	if (path == NULL)
		return;
	conf = config_load(path, &errors);
	CHECK(conf != NULL);
	CHECK(errors == NULL);
	if (conf != NULL) {
		CHECK_EQ_STR(conf->path, path);
		CHECK_EQ_STR(conf->proxy.listen[0].text, "9999");
	}
	config_free(conf);
	unlink(path);
	free(path);
}

static void
test_load_errors_name_file(void)
{
	static const char	 text[] = "[proxy]\nlisten = x\n" BACKEND;
	struct config		*conf;
	char			*path, *errors = NULL, want[512];

	if ((path = temp_file(text, sizeof(text) - 1)) == NULL) {
		CHECK(0);
		return;
	}
	conf = config_load(path, &errors);
	CHECK(conf == NULL);
	snprintf(want, sizeof(want), "%s:2: listen: missing port in 'x' "
	    "(use host:port)\n", path);
	CHECK_EQ_STR(errors, want);
	free(errors);
	unlink(path);
	free(path);
}

/* A NUL byte ends a C string but not a file: it is reported. */
static void
test_load_nul(void)
{
	static const char	 text[] = BACKEND "keep\0alive = 1\nx = 1\n";
	struct config		*conf;
	char			*path, *errors = NULL, want[512];

	if ((path = temp_file(text, sizeof(text) - 1)) == NULL) {
		CHECK(0);
		return;
	}
	conf = config_load(path, &errors);
	CHECK(conf == NULL);
	snprintf(want, sizeof(want), "%s:3: NUL character in line\n"
	    "%s:4: unknown key 'x' in [backend]\n", path, path);
	CHECK_EQ_STR(errors, want);
	free(errors);
	unlink(path);
	free(path);
}

static void
test_load_missing(void)
{
	struct config	*conf;
	char		*errors = NULL;

	conf = config_load("/nonexistent/spillway.ini", &errors);
	CHECK(conf == NULL);
	CHECK_EQ_STR(errors, "/nonexistent/spillway.ini: cannot open: "
	    "No such file or directory\n");
	free(errors);
}

static void
test_load_directory(void)
{
	struct config	*conf;
	char		*errors = NULL;

	conf = config_load("/", &errors);
	CHECK(conf == NULL);
	CHECK_EQ_STR(errors, "/: cannot read: Is a directory\n");
	free(errors);
}

static void
test_too_large(void)
{
	char	*text, *errors;
	size_t	 len = 1024 * 1024 + 1;

	if ((text = malloc(len + 1)) == NULL)
		return;
	memset(text, '\n', len);
	text[len] = '\0';
	errors = parse_err(text);
	CHECK_EQ_STR(errors, "t: too large (more than 1048576 bytes)\n");
	free(errors);
	free(text);
}

/* Control characters in a message are shown as '?', never raw. */
static void
test_error_sanitized(void)
{
	check_error(BACKEND "keepalive = 1\x1b[2J\n",
	    "t:3: keepalive: invalid number '1?[2J' "
	    "(use a whole number, e.g. 100)\n");
}

static void
test_free_null(void)
{
	config_free(NULL);
	CHECK(1);
}

static void
test_tls(void)
{
	struct config	*conf;

	/* defaults: no TLS; TLS 1.2 and 1.3; a plain listener on 8080 */
	if ((conf = parse_ok(BACKEND)) != NULL) {
		CHECK_EQ_INT(conf->tls.nlisten, 0);
		CHECK_EQ_INT(conf->tls.protocols, TLS_PROTO_1_2 |
		    TLS_PROTO_1_3);
		CHECK_EQ_INT(conf->tls.session_tickets, 1);
		CHECK_EQ_INT(conf->tls.session_cache, 20000);
		CHECK_EQ_INT(conf->tls.handshake_timeout_ms, 10000);
		CHECK_EQ_STR(conf->tls.ciphers.text, "HIGH:!aNULL:!MD5");
		CHECK(conf->tls.ciphersuites.text == NULL);
		CHECK_EQ_INT(conf->proxy.nlisten, 1);
		CHECK_EQ_STR(conf->proxy.listen[0].text, "127.0.0.1:8080");
		CHECK_EQ_INT(conf->backend.tls, 0);
		CHECK_EQ_INT(conf->backend.tls_verify, 1);
		config_free(conf);
	}
	/* TLS only: no plain listener; pairs in order; lines kept */
	conf = parse_ok(BACKEND "[tls]\nlisten = 127.0.0.1:8443\n"
	    "certificate = /a.pem\ncertificate = /b.pem\n"
	    "private_key = /a.key\nprivate_key = /b.key\n"
	    "protocols = tlsv1.1, TLSv1.2\nciphersuites = TLS_AES_128_GCM_SHA256\n"
	    "session_tickets = no\nsession_cache = 0\n"
	    "handshake_timeout = 3s\n");
	if (conf != NULL) {
		CHECK_EQ_INT(conf->proxy.nlisten, 0);
		CHECK_EQ_INT(conf->tls.nlisten, 1);
		CHECK_EQ_INT(conf->tls.ncerts, 2);
		CHECK_EQ_INT(conf->tls.nkeys, 2);
		CHECK_EQ_STR(conf->tls.certs[1].text, "/b.pem");
		CHECK_EQ_INT(conf->tls.certs[1].line, 6);
		CHECK_EQ_STR(conf->tls.keys[0].text, "/a.key");
		CHECK_EQ_INT(conf->tls.protocols, TLS_PROTO_1_1 |
		    TLS_PROTO_1_2);
		CHECK_EQ_STR(conf->tls.ciphersuites.text,
		    "TLS_AES_128_GCM_SHA256");
		CHECK_EQ_INT(conf->tls.session_tickets, 0);
		CHECK_EQ_INT(conf->tls.session_cache, 0);
		CHECK_EQ_INT(conf->tls.handshake_timeout_ms, 3000);
		config_free(conf);
	}
	if ((conf = parse_ok("[backend]\nserver = 127.0.0.1:8443\n"
	    "tls = yes\nverify = no\nca_file = /ca.pem\n"
	    "server_name = app.internal\n")) != NULL) {
		CHECK_EQ_INT(conf->backend.tls, 1);
		CHECK_EQ_INT(conf->backend.tls_verify, 0);
		CHECK_EQ_STR(conf->backend.ca_file.text, "/ca.pem");
		CHECK_EQ_INT(conf->backend.ca_file.line, 5);
		CHECK_EQ_STR(conf->backend.server_name.text, "app.internal");
		config_free(conf);
	}
	check_error(BACKEND "[tls]\nlisten = 127.0.0.1:8443\n",
	    "t:4: [tls] listen needs a certificate (certificate = "
	    "/etc/spillway/site.pem)\n");
	check_error(BACKEND "[tls]\ncertificate = /a\ncertificate = /b\n"
	    "private_key = /k\n", "t:6: private_key: 1 given for 2 "
	    "certificates (give one per certificate, in order, or none when "
	    "each certificate file holds its key)\n");
	check_error(BACKEND "[tls]\nprotocols = TLSv1 TLSv1.2\n",
	    "t:4: protocols: 'TLSv1 TLSv1.2' is not a range of versions "
	    "without a gap (use a range of TLSv1, TLSv1.1, TLSv1.2, "
	    "TLSv1.3)\n");
	check_error(BACKEND "[tls]\nprotocols = SSLv3\n",
	    "t:4: protocols: unknown protocol 'SSLv3' (use a range of TLSv1, "
	    "TLSv1.1, TLSv1.2, TLSv1.3)\n");
	check_error(BACKEND "[tls]\nprotocols = ,\n",
	    "t:4: protocols: ',' is not a range of versions without a gap "
	    "(use a range of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3)\n");
	check_error("[proxy]\nlisten = 127.0.0.1:443\n" BACKEND
	    "[tls]\nlisten = 127.0.0.1:443\ncertificate = /c\n",
	    "t:6: listen: 127.0.0.1:443 is also a plain listener (line 2)\n");
	check_error(BACKEND "[tls]\nciphers = \n",
	    "t:4: ciphers: missing value (use text)\n");
}

static void
test_admin_listen(void)
{
	struct config		*conf;
	struct sockaddr_in	*sin;

	if ((conf = parse_ok(BACKEND)) != NULL) {
		CHECK_EQ_INT(conf->admin.nlisten, 0);
		config_free(conf);
	}
	/* a bare port is loopback for the admin listener */
	if ((conf = parse_key("admin", "listen", "8082")) != NULL) {
		CHECK_EQ_INT(conf->admin.nlisten, 1);
		sin = (struct sockaddr_in *)&conf->admin.listen[0].ss;
		CHECK_EQ_INT(sin->sin_family, AF_INET);
		CHECK_EQ_INT(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
		CHECK_EQ_INT(ntohs(sin->sin_port), 8082);
		config_free(conf);
	}
	if ((conf = parse_key("admin", "listen", "*:8082")) != NULL) {
		sin = (struct sockaddr_in *)&conf->admin.listen[0].ss;
		CHECK_EQ_INT(ntohl(sin->sin_addr.s_addr), INADDR_ANY);
		config_free(conf);
	}
	check_error("[admin]\nlisten = 127.0.0.1:1\nlisten = 127.0.0.1:2\n"
	    BACKEND, "t:3: listen: given twice (first on line 2)\n");
}

static void
test_admin_max_connections(void)
{
	struct config	*conf;

	if ((conf = parse_ok(BACKEND)) != NULL) {
		CHECK_EQ_INT(conf->admin.max_connections, 64);
		config_free(conf);
	}
	if ((conf = parse_key("admin", "max_connections", "1")) != NULL) {
		CHECK_EQ_INT(conf->admin.max_connections, 1);
		config_free(conf);
	}
	if ((conf = parse_key("admin", "max_connections", "10000")) != NULL) {
		CHECK_EQ_INT(conf->admin.max_connections, 10000);
		config_free(conf);
	}
	check_error("[admin]\nmax_connections = 0\n" BACKEND,
	    "t:2: max_connections: 0 is out of range (1 to 10000)\n");
	check_error("[admin]\nmax_connections = 10001\n" BACKEND,
	    "t:2: max_connections: 10001 is out of range (1 to 10000)\n");
}

static void
test_limiter_defaults(void)
{
	struct config		*conf;
	struct limiter_conf	 lc;
	struct queue_conf	 qc;

	if ((conf = parse_ok(BACKEND)) == NULL)
		return;
	CHECK_EQ_INT(conf->limiter.algorithm, LIMITER_GRADIENT);
	CHECK_EQ_INT(conf->limiter.limit, 4);
	CHECK_EQ_INT(conf->limiter.min_limit, 2);
	CHECK_EQ_INT(conf->limiter.max_limit, 1000);
	CHECK_EQ_INT(conf->limiter.queue_size, 1000);
	CHECK_EQ_INT(conf->limiter.latency_budget_ms, 500);
	CHECK(conf->limiter.queue_timeout_ms == CONFIG_AUTO);
	CHECK(conf->limiter.codel_target_ms == CONFIG_AUTO);
	CHECK_EQ_INT(conf->limiter.codel_interval_ms, 100);
	CHECK_EQ_INT(conf->limiter.dry_run, 0);
	CHECK_EQ_INT(conf->limiter.adaptive_lifo, 1);
	CHECK(conf->limiter.backoff > 0.8999 && conf->limiter.backoff < 0.9001);
	CHECK(conf->limiter.tolerance > 1.4999 &&
	    conf->limiter.tolerance < 1.5001);
	config_limiter_conf(conf, &lc);
	CHECK_EQ_INT(lc.algo, LIMITER_GRADIENT);
	CHECK_EQ_INT(lc.aimd_latency_usec, 1000000);
	config_queue_conf(conf, &qc);
	CHECK_EQ_INT(qc.size, 1000);
	CHECK_EQ_INT(qc.budget_usec, 500000);
	CHECK_EQ_INT(qc.timeout_usec, 0);	/* derived from the budget */
	CHECK_EQ_INT(qc.target_usec, 50000);	/* a tenth of the budget */
	CHECK_EQ_INT(qc.interval_usec, 100000);
	config_free(conf);
}

/* auto or a duration; 0 turns the target off; anything else is refused. */
static void
test_limiter_auto(void)
{
	struct config		*conf;
	struct queue_conf	 qc;

	if ((conf = parse_ok("[limiter]\nlatency_budget = 2s\n"
	    "queue_timeout = 300ms\ncodel_target = 0\ndry_run = yes\n"
	    BACKEND)) != NULL) {
		CHECK_EQ_INT(conf->limiter.queue_timeout_ms, 300);
		CHECK_EQ_INT(conf->limiter.dry_run, 1);
		config_queue_conf(conf, &qc);
		CHECK_EQ_INT(qc.budget_usec, 2000000);
		CHECK_EQ_INT(qc.timeout_usec, 300000);
		CHECK_EQ_INT(qc.target_usec, 0);
		config_free(conf);
	}
	if ((conf = parse_ok("[limiter]\nlatency_budget = 2s\n"
	    "codel_target = auto\n" BACKEND)) != NULL) {
		config_queue_conf(conf, &qc);
		CHECK_EQ_INT(qc.target_usec, 200000);
		config_free(conf);
	}
	check_error("[limiter]\nqueue_timeout = soon\n" BACKEND,
	    "t:2: queue_timeout: invalid duration 'soon' (auto, or use e.g. "
	    "250ms, 10s, 1m)\n");
	check_error("[limiter]\nlatency_budget = auto\n" BACKEND,
	    "t:2: latency_budget: invalid duration 'auto' (use e.g. 250ms, "
	    "10s, 1m)\n");
}

static void
test_limiter_keys(void)
{
	struct config	*conf;

	if ((conf = parse_key("limiter", "algorithm", "aimd")) != NULL) {
		CHECK_EQ_INT(conf->limiter.algorithm, LIMITER_AIMD);
		config_free(conf);
	}
	if ((conf = parse_key("limiter", "smoothing", "0.05")) != NULL) {
		CHECK(conf->limiter.smoothing > 0.0499 &&
		    conf->limiter.smoothing < 0.0501);
		config_free(conf);
	}
	if ((conf = parse_key("limiter", "tolerance", "2")) != NULL) {
		CHECK(conf->limiter.tolerance == 2.0);
		config_free(conf);
	}
	if ((conf = parse_key("limiter", "queue_size", "0")) != NULL) {
		CHECK_EQ_INT(conf->limiter.queue_size, 0);
		config_free(conf);
	}
	check_error("[limiter]\nalgorithm = bbr\n" BACKEND,
	    "t:2: algorithm: invalid value 'bbr' (use fixed, aimd, "
	    "vegas or gradient)\n");
	check_error("[limiter]\nbackoff = 1.5\n" BACKEND,
	    "t:2: backoff: 1.5 is out of range (0.5 to 0.999)\n");
	check_error("[limiter]\nbackoff = .5\n" BACKEND,
	    "t:2: backoff: invalid ratio '.5' (use a decimal number, "
	    "e.g. 0.9)\n");
	check_error("[limiter]\nsmoothing = 0.5x\n" BACKEND,
	    "t:2: smoothing: invalid ratio '0.5x' (use a decimal number, "
	    "e.g. 0.9)\n");
	check_error("[limiter]\nmin_limit = 50\nmax_limit = 10\n" BACKEND,
	    "t:5: [limiter] needs min_limit <= limit <= max_limit "
	    "(now 50, 4, 10)\n");
	/* fixed: the limit is the limit, whatever min_limit says */
	if ((conf = parse_ok("[limiter]\nalgorithm = fixed\nlimit = 1\n"
	    BACKEND)) != NULL) {
		struct limiter_conf	 lc;

		config_limiter_conf(conf, &lc);
		CHECK_EQ_INT(lc.limit, 1);
		CHECK_EQ_INT(lc.min_limit, 1);
		CHECK_EQ_INT(lc.max_limit, 1);
		config_free(conf);
	}
	check_error("[limiter]\nlimit = 0\n" BACKEND,
	    "t:2: limit: 0 is out of range (1 to 100000)\n");
}

/*
 * trusted_proxies (networks, repeatable, adding up), forwarded_header, and
 * the proxy_protocol option of a listener, with their errors.
 */
static void
test_client_identity_keys(void)
{
	struct config	*conf;
	struct mbuf	 mb = { NULL, 0, 0, 0 };

	conf = parse_ok("[proxy]\nlisten = 127.0.0.1:8080 proxy_protocol\n"
	    "listen = 127.0.0.1:8081\n"
	    "trusted_proxies = 10.0.0.0/8, 192.0.2.7\n"
	    "trusted_proxies = 2001:db8::/32\nforwarded_header = forwarded\n"
	    "[tls]\nlisten = 127.0.0.1:8443\tproxy_protocol\n"
	    "certificate = /nonexistent.pem\n"
	    "[backend]\nserver = 127.0.0.1:9000\n");
	if (conf == NULL)
		return;
	CHECK_EQ_INT(conf->proxy.nlisten, 2);
	CHECK_EQ_INT(conf->proxy.listen[0].proxy_protocol, 1);
	CHECK_EQ_INT(conf->proxy.listen[1].proxy_protocol, 0);
	CHECK_EQ_STR(conf->proxy.listen[0].text, "127.0.0.1:8080 proxy_protocol");
	CHECK_EQ_INT(conf->tls.listen[0].proxy_protocol, 1);
	CHECK_EQ_INT(conf->proxy.ntrusted_proxies, 3);
	CHECK_EQ_INT(conf->proxy.forwarded_header, REALIP_FORWARDED);
	CHECK(realip_trusted(conf->proxy.trusted_proxies,
	    conf->proxy.ntrusted_proxies, "2001:db8::9"));
	CHECK(!realip_trusted(conf->proxy.trusted_proxies,
	    conf->proxy.ntrusted_proxies, "192.0.2.8"));
	config_json(conf, &mb);
	CHECK(strstr(mb.mb_data, "\"trusted_proxies\": [\"10.0.0.0/8\", "
	    "\"192.0.2.7/32\", \"2001:db8::/32\"]") != NULL);
	CHECK(strstr(mb.mb_data, "\"forwarded_header\": \"forwarded\"") !=
	    NULL);
	mbuf_free(&mb);
	config_free(conf);

	conf = parse_ok(BACKEND);
	if (conf != NULL) {
		CHECK_EQ_INT(conf->proxy.ntrusted_proxies, 0);
		CHECK_EQ_INT(conf->proxy.forwarded_header, REALIP_XFF);
		config_free(conf);
	}
	check_error("[proxy]\ntrusted_proxies = 10.0.0.1/8\n" BACKEND,
	    "t:2: trusted_proxies: 10.0.0.1/8: bits set past the /8 prefix\n");
	check_error("[proxy]\ntrusted_proxies = 10.0.0.0/8 lb.example\n"
	    BACKEND, "t:2: trusted_proxies: lb.example: not an IPv4 or IPv6 "
	    "address (use e.g. 10.0.0.0/8 or 2001:db8::/32)\n");
	check_error("[proxy]\ntrusted_proxies = ,\n" BACKEND,
	    "t:2: trusted_proxies: no network given (use addresses or CIDR "
	    "networks, e.g. 10.0.0.0/8 2001:db8::/32)\n");
	check_error("[proxy]\nforwarded_header = X-Forwarded-For\n" BACKEND,
	    "t:2: forwarded_header: invalid value 'X-Forwarded-For' (use "
	    "x-forwarded-for or forwarded)\n");
	check_error("[proxy]\nlisten = 127.0.0.1:8080 proxy\n" BACKEND,
	    "t:2: listen: unknown option 'proxy' (use proxy_protocol or "
	    "fault_injection)\n");
	check_error("[proxy]\nlisten = 127.0.0.1:8080 proxy_protocolx\n"
	    BACKEND, "t:2: listen: unknown option 'proxy_protocolx' (use "
	    "proxy_protocol or fault_injection)\n");
	check_error("[admin]\nlisten = 127.0.0.1:8082 proxy_protocol\n"
	    BACKEND, "t:2: listen: unknown option 'proxy_protocol' (this "
	    "address takes none)\n");
	check_error(BACKEND "server = 127.0.0.1:8082 proxy_protocol\n",
	    "t:3: server: unknown option 'proxy_protocol' (this address "
	    "takes none)\n");
}

/*
 * GET /status shows the configuration from the key table: every key of
 * the table appears in its section (class keys in every class), named as
 * in the file, with its unit where it has one.
 */
static void
test_json_every_key(void)
{
	struct config	*conf;
	struct mbuf	 mb = { NULL, 0, 0, 0 };
	const char	*section, *name, *at, *p;
	char		 want[128];
	size_t		 i, n = 0;

	conf = parse_ok("[backend]\nserver = 127.0.0.1:1\n"
	    "[admin]\nlisten = 8082\n"
	    "[class api]\npath = /api/\nheader = X-Api: \"1\"\n");
	if (conf == NULL)
		return;
	config_json(conf, &mb);
	CHECK(!mb.mb_failed);
	for (i = 0; config_key(i, &section, &name) == 0; i++, n++) {
		if (strcmp(section, "class") == 0)
			snprintf(want, sizeof(want), "\"classes\": [");
		else
			snprintf(want, sizeof(want), "\"%s\": {", section);
		CHECK((at = strstr(mb.mb_data, want)) != NULL);
		if (at == NULL)
			continue;
		snprintf(want, sizeof(want), "\"%s", name);
		for (p = strstr(at, want); p != NULL; p = strstr(p + 1, want))
			if (p[strlen(want)] == '"' ||
			    strncmp(p + strlen(want), "_ms\"", 4) == 0 ||
			    strncmp(p + strlen(want), "_per_minute\"", 12) == 0)
				break;
		if (p == NULL)
			printf("# key %s.%s not in %s\n", section, name,
			    mb.mb_data);
		CHECK(p != NULL);
	}
	CHECK(n > 50);
	CHECK(strstr(mb.mb_data, "\"listen\": [\"127.0.0.1:8082\"]") != NULL);
	CHECK(strstr(mb.mb_data, "\"header\": \"X-Api: \\\"1\\\"\"") != NULL);
	CHECK(strstr(mb.mb_data, "\"protocols\": [\"TLSv1.2\", \"TLSv1.3\"]") !=
	    NULL);
	mbuf_free(&mb);
	config_free(conf);
}

/*
 * Each clause of the limiter's bounds alone: min_limit <= limit <=
 * max_limit. With min_limit > max_limit one of the other two is always
 * broken too, so only these files tell whether each clause is there.
 */
static void
test_limiter_bounds(void)
{
	struct config	*conf;
	char		*errors;

	/* limit above max_limit, min_limit fine */
	errors = parse_err("[limiter]\nlimit = 50\nmax_limit = 10\n"
	    "min_limit = 2\n" BACKEND);
	CHECK(has_line(errors, "limit <= max_limit"));
	CHECK(has_line(errors, "t:6: "));
	free(errors);
	/* limit below min_limit, max_limit fine */
	errors = parse_err("[limiter]\nlimit = 5\nmin_limit = 10\n" BACKEND);
	CHECK(has_line(errors, "min_limit <= limit"));
	free(errors);
	/* the bounds themselves are allowed */
	if ((conf = parse_ok("[limiter]\nlimit = 10\nmin_limit = 10\n"
	    "max_limit = 10\n" BACKEND)) != NULL) {
		CHECK_EQ_INT(conf->limiter.limit, 10);
		config_free(conf);
	}
	/* a fixed limit ignores min_limit and max_limit */
	if ((conf = parse_ok("[limiter]\nalgorithm = fixed\nlimit = 50\n"
	    "max_limit = 10\n" BACKEND)) != NULL) {
		CHECK_EQ_INT(conf->limiter.limit, 50);
		config_free(conf);
	}
	/* the key table's bounds: memory is sized from these */
	check_error("[limiter]\nqueue_size = 100001\n" BACKEND,
	    "t:2: queue_size: 100001 is out of range (0 to 100000)\n");
	check_error("[limiter]\nmax_limit = 100001\n" BACKEND,
	    "t:2: max_limit: 100001 is out of range (1 to 100000)\n");
	check_error("[limiter]\nmin_limit = 0\n" BACKEND,
	    "t:2: min_limit: 0 is out of range (1 to 100000)\n");
	if ((conf = parse_key("limiter", "queue_size", "100000")) != NULL) {
		CHECK_EQ_INT(conf->limiter.queue_size, 100000);
		config_free(conf);
	}
}


/* [admin] listen may not take a proxy listener's connections. */
static void
test_admin_clash(void)
{
	check_error(BACKEND "[admin]\nlisten = 8080\n",
	    "t:4: listen: admin address 127.0.0.1:8080 is the same as [proxy] "
	    "listen 127.0.0.1:8080 (the default)\n");
	check_error("[proxy]\nlisten = *:9000\n" BACKEND
	    "[admin]\nlisten = 127.0.0.1:9000\n",
	    "t:6: listen: admin address 127.0.0.1:9000 overlaps [proxy] listen "
	    "*:9000 on line 2\n");
	check_error("[proxy]\nlisten = 127.0.0.1:9000\n"
	    "listen = 127.0.0.2:9001\n" BACKEND
	    "[admin]\nlisten = 0.0.0.0:9001\n",
	    "t:7: listen: admin address 0.0.0.0:9001 overlaps [proxy] listen "
	    "127.0.0.2:9001 on line 3\n");
	check_error("[tls]\nlisten = 127.0.0.1:9443\ncertificate = /x.pem\n"
	    BACKEND "[admin]\nlisten = 9443\n",
	    "t:7: listen: admin address 127.0.0.1:9443 is the same as [tls] "
	    "listen 127.0.0.1:9443 on line 2\n");
	check_error("[proxy]\nlisten = [::]:9000\n" BACKEND
	    "[admin]\nlisten = [::1]:9000\n",
	    "t:6: listen: admin address [::1]:9000 overlaps [proxy] listen "
	    "[::]:9000 on line 2\n");
	/* another port, another address, another family: no clash */
	config_free(parse_ok("[proxy]\nlisten = *:9000\n" BACKEND
	    "[admin]\nlisten = 127.0.0.1:9001\n"));
	config_free(parse_ok("[proxy]\nlisten = 127.0.0.1:9000\n" BACKEND
	    "[admin]\nlisten = 127.0.0.2:9000\n"));
	config_free(parse_ok("[proxy]\nlisten = [::]:9000\n" BACKEND
	    "[admin]\nlisten = 127.0.0.1:9000\n"));
}

/* [class] fault_* keys, and the listener that must allow them. */
static void
test_fault_keys(void)
{
	struct config		*conf;
	const struct fault_rule	*fr;

	conf = parse_ok("[proxy]\nlisten = 127.0.0.1:8080\n"
	    "listen = 127.0.0.1:8090 fault_injection\n" BACKEND
	    "[class api]\npath = /api/\nfault_delay = 200ms\n"
	    "fault_delay_percent = 12.5\nfault_abort = 500\n"
	    "fault_abort_percent = 0.5\n");
	if (conf == NULL)
		return;
	CHECK_EQ_INT(conf->proxy.listen[0].flags, 0);
	CHECK_EQ_INT(conf->proxy.listen[1].flags, ADDR_F_FAULT_INJECTION);
	CHECK_EQ_STR(conf->proxy.listen[1].text,
	    "127.0.0.1:8090 fault_injection");
	fr = &conf->classes[0].fault;
	CHECK_EQ_INT(fr->delay_ms, 200);
	CHECK(fr->delay_percent == 12.5);
	CHECK_EQ_INT(fr->abort_status, 500);
	CHECK(fr->abort_percent == 0.5);
	CHECK_EQ_INT(conf->classes[0].fault_line, 8);
	CHECK(fault_active(fr));
	/* the default class injects nothing, and says 503 if it did */
	fr = &conf->classes[1].fault;
	CHECK(!fault_active(fr));
	CHECK_EQ_INT(fr->abort_status, 503);
	CHECK_EQ_INT(fr->delay_ms, 0);
	config_free(conf);

	/* marked, on a TLS listener */
	conf = parse_ok("[tls]\nlisten = 127.0.0.1:8443 fault_injection\n"
	    "certificate = /x.pem\n" BACKEND
	    "[class default]\nfault_abort_percent = 100\n");
	if (conf != NULL)
		CHECK_EQ_INT(conf->tls.listen[0].flags, ADDR_F_FAULT_INJECTION);
	config_free(conf);

	/* a share of 0 is off: allowed without a marked listener */
	config_free(parse_ok(BACKEND "[class default]\nfault_delay = 1s\n"
	    "fault_delay_percent = 0\nfault_abort = 500\n"));
}

static void
test_fault_refused(void)
{
	check_error(BACKEND "[class api]\npath = /api/\n"
	    "fault_abort_percent = 5\n",
	    "t:5: class api: fault injection needs a listener marked for it "
	    "(listen = 127.0.0.1:8080 fault_injection); refused so that it "
	    "cannot be left on in production\n");
	/* the default listener is not marked either */
	check_error("[proxy]\nlisten = 127.0.0.1:8080\n" BACKEND
	    "[class default]\nfault_delay = 1s\nfault_delay_percent = 1\n",
	    "t:6: class default: fault injection needs a listener marked for "
	    "it (listen = 127.0.0.1:8080 fault_injection); refused so that it "
	    "cannot be left on in production\n");
	check_error("[proxy]\nlisten = 127.0.0.1:8080 fault_injection\n"
	    BACKEND "[class default]\nfault_delay_percent = 10\n",
	    "t:6: class default: fault_delay_percent needs a fault_delay (the "
	    "time to add, e.g. 200ms)\n");
	check_error("[proxy]\nlisten = 127.0.0.1:8080 fault_injection\n"
	    BACKEND "[class default]\nfault_abort = 302\n",
	    "t:6: fault_abort: 302 is out of range (400 to 599)\n");
	check_error("[proxy]\nlisten = 127.0.0.1:8080 fault_injection\n"
	    BACKEND "[class default]\nfault_abort_percent = 100.5\n",
	    "t:6: fault_abort_percent: 100.5 is out of range (0 to 100)\n");
	check_error("[proxy]\nlisten = 127.0.0.1:8080 fault_injections\n"
	    BACKEND, "t:2: listen: unknown option 'fault_injections' (use "
	    "proxy_protocol or fault_injection)\n");
	/* not on the admin listener, nor on servers */
	check_error(BACKEND "[admin]\nlisten = 127.0.0.1:8082 fault_injection\n",
	    "t:4: listen: unknown option 'fault_injection' (this address takes "
	    "none)\n");
}

int
main(int argc, char **argv)
{
	static char	 path[4096];
	const char	*top = getenv("top_srcdir");

	if (argc > 1)
		example_path = argv[1];
	else {
		snprintf(path, sizeof(path), "%s/conf/spillway.ini",
		    top != NULL && *top != '\0' ? top : ".");
		example_path = path;
	}

	RUN(test_defaults);
	RUN(test_fault_keys);
	RUN(test_admin_clash);
	RUN(test_fault_refused);
	RUN(test_example_file);
	RUN(test_duration_units);
	RUN(test_duration_bad);
	RUN(test_size_units);
	RUN(test_size_bad);
	RUN(test_every_key);
	RUN(test_bounds_ok);
	RUN(test_bounds_duration);
	RUN(test_bounds_size);
	RUN(test_bounds_uint);
	RUN(test_bad_number);
	RUN(test_bad_duration);
	RUN(test_bad_size);
	RUN(test_missing_value);
	RUN(test_unknown_section);
	RUN(test_unknown_key);
	RUN(test_key_outside_section);
	RUN(test_repeated_key);
	RUN(test_missing_backend);
	RUN(test_several_errors);
	RUN(test_error_cap);
	RUN(test_syntax_errors);
	RUN(test_broken_section_skips_keys);
	RUN(test_line_too_long);
	RUN(test_long_line_ok);
	RUN(test_inline_comments);
	RUN(test_indented_lines);
	RUN(test_crlf_and_bom);
	RUN(test_listen_ipv4);
	RUN(test_listen_any);
	RUN(test_listen_ipv6);
	RUN(test_listen_bad);
	RUN(test_listen_repeat);
	RUN(test_listen_duplicate);
	RUN(test_server_forms);
	RUN(test_server_bad);
	RUN(test_server_in_file);
	RUN(test_server_repeat);
	RUN(test_too_many_addresses);
	RUN(test_numeric_hosts);
	RUN(test_access_log);
	RUN(test_balance);
	RUN(test_admission_keys);
	RUN(test_admission_bounds);
	RUN(test_client_key_forms);
	RUN(test_client_key_bad);
	RUN(test_dry_run_forms);
	RUN(test_dry_run_bad);
	RUN(test_class_order);
	RUN(test_class_default_explicit);
	RUN(test_class_paths_methods);
	RUN(test_class_header);
	RUN(test_class_priority_names);
	RUN(test_class_rate_burst);
	RUN(test_class_section_blanks);
	RUN(test_class_duplicate);
	RUN(test_class_bad_name);
	RUN(test_class_name_ok);
	RUN(test_class_default_criteria);
	RUN(test_class_no_criteria);
	RUN(test_class_unknown_key);
	RUN(test_class_key_twice);
	RUN(test_admin_listen);
	RUN(test_admin_max_connections);
	RUN(test_limiter_defaults);
	RUN(test_limiter_keys);
	RUN(test_limiter_auto);
	RUN(test_limiter_bounds);
	RUN(test_class_path_bad);
	RUN(test_class_method_bad);
	RUN(test_class_header_bad);
	RUN(test_class_priority_bad);
	RUN(test_class_several_errors);
	RUN(test_class_too_many);
	RUN(test_load_file);
	RUN(test_load_errors_name_file);
	RUN(test_load_nul);
	RUN(test_load_missing);
	RUN(test_load_directory);
	RUN(test_too_large);
	RUN(test_error_sanitized);
	RUN(test_free_null);
	RUN(test_tls);
	RUN(test_json_every_key);
	RUN(test_client_identity_keys);
	return tap_done();
}

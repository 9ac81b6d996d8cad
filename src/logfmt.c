/*
 * logfmt.c: an access log line in spillway's own format, in the combined
 * format of Apache and nginx, or as a JSON object.
 *
 * Invariants:
 * - Every line is one line: whatever bytes a client sent (quotes,
 *   backslashes, controls, bytes that are not UTF-8) come out escaped, so
 *   a reader splits on '\n' and on the format's quotes and never misreads.
 * - spillway: fields as before this file existed; the request's '"' and
 *   '\' are escaped with a backslash.
 * - combined: '"', '\', controls and bytes >= 0x7f as \xHH (as nginx's
 *   default escaping), "-" for what is absent; bytes count the body only.
 * - json: strings escaped as JSON and made valid UTF-8 (mbuf_escaped);
 *   absent fields are null; numbers are finite.
 *
 * Pure: no libevent, no globals, no clock.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "logfmt.h"

/* Append s, or "-" for NULL or empty, escaped as nginx escapes. */
static void
esc_combined(struct mbuf *mb, const char *str)
{
	const unsigned char	*s = (const unsigned char *)str;
	size_t			 run;

	if (s == NULL || *s == '\0') {
		mbuf_printf(mb, "-");
		return;
	}
	while (*s != '\0') {
		for (run = 0; s[run] >= 0x20 && s[run] < 0x7f &&
		    s[run] != '"' && s[run] != '\\'; run++)
			;
		if (run > 0) {
			mbuf_printf(mb, "%.*s", (int)run, (const char *)s);
			s += run;
			continue;
		}
		mbuf_printf(mb, "\\x%02X", *s++);
	}
}

/* Append s with '"' and '\' behind a backslash (spillway's format). */
static void
esc_quotes(struct mbuf *mb, const char *str)
{
	const char	*s = str;
	size_t		 run;

	while (*s != '\0') {
		run = strcspn(s, "\"\\");
		if (run > 0) {
			mbuf_printf(mb, "%.*s", (int)run, s);
			s += run;
			continue;
		}
		mbuf_printf(mb, "\\%c", *s++);
	}
}

static const char *
dash(const char *s)
{
	return s != NULL && *s != '\0' ? s : "-";
}

static void
line_spillway(struct mbuf *mb, const struct access_entry *e, time_t when,
    long nsec)
{
	struct tm	 tm;
	char		 ts[40], up[32];

	gmtime_r(&when, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	if (e->upstream_usec >= 0)
		snprintf(up, sizeof(up), "%.3f", e->upstream_usec / 1e6);
	else
		snprintf(up, sizeof(up), "-");
	mbuf_printf(mb, "%s.%03ldZ %s \"", ts, nsec / 1000000, e->client);
	esc_quotes(mb, e->request);
	mbuf_printf(mb, " HTTP/1.%d\" %d %" PRIu64 " %.3f %s %s %s %s\n",
	    e->version_minor, e->status, e->bytes, e->total_usec / 1e6, up,
	    dash(e->server), dash(e->class), dash(e->reason));
}

/*
 * %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i". A request whose
 * line could not be read logs "-" as its request, as Apache does.
 */
static void
line_combined(struct mbuf *mb, const struct access_entry *e, time_t when)
{
	struct tm	 tm;
	char		 ts[64];

	localtime_r(&when, &tm);
	strftime(ts, sizeof(ts), "%d/%b/%Y:%H:%M:%S %z", &tm);
	mbuf_printf(mb, "%s - - [%s] \"", dash(e->client_ip), ts);
	if (e->request == NULL || strcmp(e->request, "- -") == 0)
		mbuf_printf(mb, "-");
	else {
		esc_combined(mb, e->request);
		mbuf_printf(mb, " HTTP/1.%d", e->version_minor);
	}
	mbuf_printf(mb, "\" %d ", e->status);
	if (e->body_bytes > 0)
		mbuf_printf(mb, "%" PRIu64, e->body_bytes);
	else
		mbuf_printf(mb, "-");
	mbuf_printf(mb, " \"");
	esc_combined(mb, e->referer);
	mbuf_printf(mb, "\" \"");
	esc_combined(mb, e->user_agent);
	mbuf_printf(mb, "\"\n");
}

static void
json_field(struct mbuf *mb, const char *name, const char *value)
{
	mbuf_printf(mb, ", \"%s\": ", name);
	mbuf_json_str(mb, value);
}

/* Seconds with microseconds, or null for a negative (absent) duration. */
static void
json_seconds(struct mbuf *mb, const char *name, int64_t usec)
{
	if (usec < 0)
		mbuf_printf(mb, ", \"%s\": null", name);
	else
		mbuf_printf(mb, ", \"%s\": %" PRId64 ".%06" PRId64, name,
		    usec / 1000000, usec % 1000000);
}

static void
line_json(struct mbuf *mb, const struct access_entry *e, time_t when,
    long nsec)
{
	struct tm	 tm;
	char		 ts[40], method[32];
	const char	*req = e->request, *sp;
	size_t		 n;

	gmtime_r(&when, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	mbuf_printf(mb, "{\"time\": \"%s.%03ldZ\"", ts, nsec / 1000000);
	json_field(mb, "request_id", e->request_id);
	json_field(mb, "client", e->client_ip);
	json_field(mb, "peer", e->client);
	if (req == NULL || strcmp(req, "- -") == 0 ||
	    (sp = strchr(req, ' ')) == NULL) {
		json_field(mb, "method", NULL);
		json_field(mb, "path", NULL);
		json_field(mb, "protocol", NULL);
	} else {
		n = (size_t)(sp - req);
		if (n >= sizeof(method))
			n = sizeof(method) - 1;
		memcpy(method, req, n);
		method[n] = '\0';
		json_field(mb, "method", method);
		json_field(mb, "path", sp + 1);
		mbuf_printf(mb, ", \"protocol\": \"HTTP/1.%d\"",
		    e->version_minor);
	}
	json_field(mb, "host", e->host);
	json_field(mb, "user_agent", e->user_agent);
	json_field(mb, "referer", e->referer);
	mbuf_printf(mb, ", \"status\": %d, \"bytes\": %" PRIu64 ", "
	    "\"body_bytes\": %" PRIu64, e->status, e->bytes, e->body_bytes);
	json_seconds(mb, "request_time", (int64_t)e->total_usec);
	json_seconds(mb, "upstream_time", e->upstream_usec);
	json_field(mb, "upstream", e->server);
	json_field(mb, "class", e->class);
	json_field(mb, "reason", e->reason);
	mbuf_printf(mb, "}\n");
}

void
logfmt_line(struct mbuf *mb, int format, const struct access_entry *e,
    time_t when, long nsec)
{
	switch (format) {
	case LOG_FORMAT_COMBINED:
		line_combined(mb, e, when);
		break;
	case LOG_FORMAT_JSON:
		line_json(mb, e, when, nsec);
		break;
	default:
		line_spillway(mb, e, when, nsec);
		break;
	}
}

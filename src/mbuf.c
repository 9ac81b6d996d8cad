/*
 * mbuf.c: a growable text buffer for the renderers (Prometheus text, JSON
 * of the metrics, the status and the configuration), and the one escaper
 * of strings for JSON and Prometheus label values, which also makes sure
 * what it writes is UTF-8. Pure: no libevent, no globals, no clock.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbuf.h"

#define MBUF_INITIAL	1024

/* Make room for need more bytes plus the NUL; -1 if out of memory. */
static int
mbuf_reserve(struct mbuf *mb, size_t need)
{
	size_t	 ncap;
	char	*p;

	if (need > SIZE_MAX / 2 - mb->mb_len)
		return -1;
	if (mb->mb_len + need < mb->mb_cap)
		return 0;
	ncap = mb->mb_cap == 0 ? MBUF_INITIAL : mb->mb_cap;
	while (ncap <= mb->mb_len + need)
		ncap *= 2;
	if ((p = realloc(mb->mb_data, ncap)) == NULL)
		return -1;
	mb->mb_data = p;
	mb->mb_cap = ncap;
	return 0;
}

/*
 * Append formatted text. After a failure (out of memory or a bad format)
 * mb_failed is set and later calls append nothing, so a cut output never
 * has a hole in its middle; the data stays NUL-terminated throughout.
 */
void
mbuf_printf(struct mbuf *mb, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;
	size_t	 room;

	if (mb->mb_failed)
		return;
	if (mbuf_reserve(mb, 0) == -1)
		goto fail;
	room = mb->mb_cap - mb->mb_len;
	va_start(ap, fmt);
	n = vsnprintf(mb->mb_data + mb->mb_len, room, fmt, ap);
	va_end(ap);
	if (n < 0)
		goto fail;
	if ((size_t)n >= room) {
		if (mbuf_reserve(mb, (size_t)n) == -1)
			goto fail;
		va_start(ap, fmt);
		n = vsnprintf(mb->mb_data + mb->mb_len,
		    mb->mb_cap - mb->mb_len, fmt, ap);
		va_end(ap);
		if (n < 0)
			goto fail;
	}
	mb->mb_len += (size_t)n;
	return;
fail:
	mb->mb_failed = 1;
	if (mb->mb_data != NULL)
		mb->mb_data[mb->mb_len] = '\0';
}

void
mbuf_free(struct mbuf *mb)
{
	free(mb->mb_data);
	memset(mb, 0, sizeof(*mb));
}

/*
 * The length of the valid UTF-8 sequence at s (1 to 4), or 0 if the bytes
 * there are not one (overlong forms, surrogates and > U+10FFFF included).
 */
static size_t
utf8_len(const unsigned char *s)
{
	size_t		 n, i;
	uint32_t	 cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		cp = s[0] & 0x07;
	} else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)	/* the NUL stops here too */
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

/*
 * Append s escaped as a Prometheus label value (json == 0) or as the
 * inside of a JSON string (json == 1). Bytes that are not UTF-8 become
 * U+FFFD: both formats require UTF-8, and a name cut by a caller may end
 * inside a sequence. Runs of plain bytes go out in one call.
 */
void
mbuf_escaped(struct mbuf *mb, const char *str, int json)
{
	const unsigned char	*s = (const unsigned char *)str;
	size_t			 run, n;

	if (s == NULL)
		return;
	while (*s != '\0') {
		for (run = 0; s[run] >= 0x20 && s[run] < 0x80 &&
		    s[run] != '"' && s[run] != '\\'; run++)
			;
		if (run > 0) {
			mbuf_printf(mb, "%.*s", (int)run, (const char *)s);
			s += run;
			continue;
		}
		if (*s == '"' || *s == '\\')
			mbuf_printf(mb, "\\%c", *s);
		else if (*s == '\n' && !json)
			mbuf_printf(mb, "\\n");
		else if (*s < 0x20 && json)
			mbuf_printf(mb, "\\u%04x", *s);
		else if (*s < 0x80) {
			/* other control bytes are legal in a label value */
			mbuf_printf(mb, "%c", *s);
		} else if ((n = utf8_len(s)) > 0) {
			mbuf_printf(mb, "%.*s", (int)n, (const char *)s);
			s += n;
			continue;
		} else
			mbuf_printf(mb, json ? "\\ufffd" : "\xef\xbf\xbd");
		s++;
	}
}

/* A JSON string: quoted, escaped, UTF-8; NULL is null. */
void
mbuf_json_str(struct mbuf *mb, const char *s)
{
	if (s == NULL) {
		mbuf_printf(mb, "null");
		return;
	}
	mbuf_printf(mb, "\"");
	mbuf_escaped(mb, s, 1);
	mbuf_printf(mb, "\"");
}

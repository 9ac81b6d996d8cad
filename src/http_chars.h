/*
 * http_chars.h: byte classes and small helpers shared by the head parser
 * (http.c) and the body decoder (http_body.c). Not for other modules.
 */
#ifndef SPILLWAY_HTTP_CHARS_H
#define SPILLWAY_HTTP_CHARS_H

#include <stddef.h>

/*
 * Byte classes, one lookup per byte:
 * C_STOP	stops the scan of a line: CR, LF, and the controls allowed
 *		nowhere in a head (all below SP but HTAB, and DEL);
 * C_TCHAR	token character (RFC 9110 5.6.2);
 * C_HOST	uri-host and port character (RFC 3986): no space, '@', '/'
 *		or '\'.
 */
#define C_STOP	0x01
#define C_TCHAR	0x02
#define C_HOST	0x04

extern const unsigned char	http_cclass[256];

static inline int
is_tchar(unsigned char c)
{
	return (http_cclass[c] & C_TCHAR) != 0;
}

/* Field value characters: HTAB, SP, VCHAR, obs-text. */
static inline int
is_vchar_ws(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static inline int
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static inline int
hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Content-Length, Transfer-Encoding, Host: never in a trailer section. */
int		 http_frames_or_routes(const char *name, size_t n);

#endif /* SPILLWAY_HTTP_CHARS_H */

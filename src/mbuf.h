/*
 * mbuf.h: a growable text buffer, and JSON strings written into it.
 * Pure: see mbuf.c.
 */
#ifndef SPILLWAY_MBUF_H
#define SPILLWAY_MBUF_H

#include <stddef.h>

struct mbuf {
	char		*mb_data;
	size_t		 mb_len;
	size_t		 mb_cap;
	int		 mb_failed;	/* an allocation failed: output cut */
};

void		 mbuf_printf(struct mbuf *, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
void		 mbuf_free(struct mbuf *);

/*
 * Append s escaped as the inside of a JSON string (json 1) or as a
 * Prometheus label value (json 0); bytes that are not UTF-8 become U+FFFD.
 */
void		 mbuf_escaped(struct mbuf *, const char *s, int json);

/* Append s as a JSON string, quoted; NULL as null. */
void		 mbuf_json_str(struct mbuf *, const char *s);

#endif /* SPILLWAY_MBUF_H */

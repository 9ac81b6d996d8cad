/*
 * addr.h: addresses (listeners, backend servers, the admin listener,
 * clients): parsing, formatting, comparing. Pure: see addr.c.
 */
#ifndef SPILLWAY_ADDR_H
#define SPILLWAY_ADDR_H

#include <sys/types.h>
#include <sys/socket.h>
#include <stddef.h>
#include <stdint.h>

/* A listen address or a backend server, resolved at load time. */
struct config_addr {
	char			*text;	/* as written in the file */
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	int			 line;	/* where it was written */
	int			 proxy_protocol; /* listener: PROXY header first */
	int			 flags;	/* ADDR_F_*: words after a listen address */
	unsigned int		 maxconn; /* server: fixed limit, 0 learned */
};

/* "listen = ADDRESS fault_injection": faults may be injected there. */
#define ADDR_F_FAULT_INJECTION	0x01

/*
 * Parse "host:port", "[v6]:port", and when passive "*:port", ":port" or
 * "port" (every IPv4 address) into a->ss and a->sslen; a->text and a->line
 * are left to the caller. numeric: never ask a resolver. Returns 0, or -1
 * with err set.
 */
int		 addr_parse(const char *text, int passive, int numeric,
		    struct config_addr *a, char *err, size_t errlen);
int		 addr_same(const struct config_addr *,
		    const struct config_addr *);
/* Same address, or same port with either one 0.0.0.0 or [::]. */
int		 addr_overlap(const struct config_addr *,
		    const struct config_addr *);
void		 addr_format(const struct sockaddr *, char *ip, size_t iplen,
		    char *full, size_t fulllen);

#endif /* SPILLWAY_ADDR_H */

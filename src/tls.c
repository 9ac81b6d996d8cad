/*
 * tls.c: OpenSSL contexts for the TLS listeners and for TLS to backends.
 *
 * tls_new() builds every context one configuration generation needs: one
 * server context per [tls] certificate (the first is the default, another
 * is switched to when the client's SNI name matches its certificate) and
 * one client context for the backends. It loads and checks every file, so
 * `spillway -t` and a reload report a bad certificate, key or cipher list
 * as FILE:LINE and change nothing.
 *
 * The contexts belong to the generation (gen->g_tls, gen.c) and go with it. A
 * connection's SSL object holds a reference on the context it was made
 * from, so a handshake already under way, and every established
 * connection, keeps the certificate it started with across a reload; new
 * handshakes get the new one. A client connection holds its generation
 * until its first request begins, so the SNI callback's struct tls is
 * alive for the whole handshake.
 *
 * Policy for every server context: the configured protocol range (TLS 1.2
 * and 1.3 by default), no renegotiation, no compression, server cipher
 * preference, ALPN http/1.1 only, buffers released while idle (an idle
 * connection costs no 34 KiB of OpenSSL buffers), session resumption by
 * tickets and/or a server-side cache.
 *
 * The I/O of an established connection (tls_send(), tls_read_pending())
 * takes two short cuts past libevent's OpenSSL bufferevent, which would
 * otherwise cost three system calls per request more than plain HTTP:
 * - Read-ahead: OpenSSL reads whatever the socket holds in one read(2)
 *   instead of a record header and then its body in two. What it read
 *   past the record libevent asked for stays in OpenSSL's buffer, where
 *   the bufferevent does not look (it waits for the socket to be readable
 *   again), so every place that expects input drains it with
 *   tls_read_pending().
 * - A response is written with SSL_write at once when nothing is queued
 *   ahead of it, without arming EPOLLOUT and waiting a loop turn for it
 *   (as relay_send() does over plain TCP).
 */
#include <sys/stat.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "spillway.h"
#include "log.h"

struct tls_cert {
	SSL_CTX		*tc_ctx;
	X509		*tc_leaf;	/* borrowed from tc_ctx */
};

struct tls {
	struct tls_cert	*certs;		/* [0] is the default */
	size_t		 ncerts;
	SSL_CTX		*client;	/* to backends; NULL: plain */
};

static const unsigned char alpn_http11[] = "\x08http/1.1";

/* The newest OpenSSL error as text, the queue emptied. */
static const char *
ssl_error(char *buf, size_t len)
{
	unsigned long	 e, last = 0;

	while ((e = ERR_get_error()) != 0)
		last = e;
	if (last == 0)
		snprintf(buf, len, "unknown error");
	else
		ERR_error_string_n(last, buf, len);
	return buf;
}

static void
fail(const struct config *conf, int line, char *err, size_t errlen,
    const char *fmt, const char *arg)
{
	char	 where[1100], why[256];

	config_where(conf, line, where, sizeof(where));
	ssl_error(why, sizeof(why));
	snprintf(err, errlen, "%s %s %s: %s", where, fmt, arg, why);
}

/*
 * OpenSSL failed to load path: if the file itself is the trouble (missing,
 * unreadable, a directory), say so with strerror, as OpenSSL 3 reports
 * only "system lib"; else OpenSSL's own reason (not PEM, wrong key...).
 */
static void
fail_file(const struct config *conf, int line, char *err, size_t errlen,
    const char *what, const char *path)
{
	char		 where[1100];
	struct stat	 st;
	int		 fd, e = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		e = errno;
	else if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
		e = EISDIR;
	if (fd != -1)
		close(fd);
	if (e == 0) {
		fail(conf, line, err, errlen, what, path);
		return;
	}
	ERR_clear_error();
	config_where(conf, line, where, sizeof(where));
	snprintf(err, errlen, "%s %s %s: %s", where, what, path, strerror(e));
}

static int
proto_version(unsigned int bit)
{
	switch (bit) {
	case TLS_PROTO_1_0:
		return TLS1_VERSION;
	case TLS_PROTO_1_1:
		return TLS1_1_VERSION;
	case TLS_PROTO_1_2:
		return TLS1_2_VERSION;
	default:
		return TLS1_3_VERSION;
	}
}

/* ALPN: http/1.1 if the client offers it; else go on without ALPN. */
static int
alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	unsigned char	*sel;

	if (SSL_select_next_proto(&sel, outlen, alpn_http11,
	    sizeof(alpn_http11) - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

/* SNI: the first certificate, in file order, that names the host. */
static int
sni_cb(SSL *ssl, int *alert, void *arg)
{
	struct tls	*tls = arg;
	const char	*name;
	size_t		 i;

	name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	if (name == NULL || tls->ncerts < 2)
		return SSL_TLSEXT_ERR_OK;
	for (i = 0; i < tls->ncerts; i++) {
		if (X509_check_host(tls->certs[i].tc_leaf, name, 0, 0,
		    NULL) == 1) {
			if (i > 0)
				SSL_set_SSL_CTX(ssl, tls->certs[i].tc_ctx);
			break;
		}
	}
	return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *
server_ctx(const struct config *conf, struct tls *tls, size_t i, char *err,
    size_t errlen)
{
	const struct tls_conf	*tc = &conf->tls;
	const struct config_str	*cert = &tc->certs[i];
	const struct config_str	*key = tc->nkeys > 0 ? &tc->keys[i] : cert;
	unsigned int		 lo = tc->protocols & -tc->protocols;
	unsigned int		 hi = 1U << (31 - __builtin_clz(tc->protocols));
	SSL_CTX			*ctx;
	long			 mode;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		fail(conf, cert->line, err, errlen, "certificate", cert->text);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, proto_version(lo));
	SSL_CTX_set_max_proto_version(ctx, proto_version(hi));
	/*
	 * A peer that closes without close_notify ends the stream, as it does
	 * over plain TCP (HTTP framing tells a cut message), and keeps its
	 * session resumable: OpenSSL 3 would otherwise make that a fatal error
	 * and drop the session from the cache.
	 */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
	    SSL_OP_IGNORE_UNEXPECTED_EOF |
	    (tc->session_tickets ? 0 : SSL_OP_NO_TICKET));
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_read_ahead(ctx, 1);
	/* OpenSSL 3 refuses TLS 1.0 and 1.1 above security level 0 */
	if (tc->protocols & (TLS_PROTO_1_0 | TLS_PROTO_1_1))
		SSL_CTX_set_security_level(ctx, 0);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert->text) != 1) {
		fail_file(conf, cert->line, err, errlen, "certificate",
		    cert->text);
		goto bad;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key->text,
	    SSL_FILETYPE_PEM) != 1) {
		fail_file(conf, key->line, err, errlen, key == cert ?
		    "certificate (its private key)" : "private_key",
		    key->text);
		goto bad;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		fail(conf, key->line, err, errlen, "private_key does not match "
		    "the certificate:", key->text);
		goto bad;
	}
	if (tc->ciphers.text != NULL &&
	    SSL_CTX_set_cipher_list(ctx, tc->ciphers.text) != 1) {
		fail(conf, tc->ciphers.line, err, errlen, "ciphers",
		    tc->ciphers.text);
		goto bad;
	}
	if (tc->ciphersuites.text != NULL &&
	    SSL_CTX_set_ciphersuites(ctx, tc->ciphersuites.text) != 1) {
		fail(conf, tc->ciphersuites.line, err, errlen, "ciphersuites",
		    tc->ciphersuites.text);
		goto bad;
	}
	SSL_CTX_set_dh_auto(ctx, 1);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"spillway",
	    8);
	mode = tc->session_cache > 0 ? SSL_SESS_CACHE_SERVER :
	    SSL_SESS_CACHE_OFF;
	SSL_CTX_set_session_cache_mode(ctx, mode);
	if (tc->session_cache > 0)
		SSL_CTX_sess_set_cache_size(ctx, tc->session_cache);
	SSL_CTX_set_timeout(ctx, (long)(tc->session_timeout_ms / 1000 > 0 ?
	    tc->session_timeout_ms / 1000 : 1));
	if (!tc->session_tickets && tc->session_cache == 0)
		SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
	SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
	SSL_CTX_set_tlsext_servername_arg(ctx, tls);
	SSL_CTX_set_info_callback(ctx, conn_tls_info);
	return ctx;
 bad:
	SSL_CTX_free(ctx);
	return NULL;
}

static SSL_CTX *
client_ctx(const struct config *conf, char *err, size_t errlen)
{
	const struct backend_conf	*bc = &conf->backend;
	SSL_CTX				*ctx;
	int				 ok;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		fail(conf, 0, err, errlen, "backend", "tls");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_read_ahead(ctx, 1);
	/* each server's newest session is kept by upstream.c, to resume */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
	    SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, upstream_tls_session);
	if (bc->tls_verify) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		if (bc->ca_file.text != NULL)
			ok = SSL_CTX_load_verify_locations(ctx,
			    bc->ca_file.text, NULL);
		else
			ok = SSL_CTX_set_default_verify_paths(ctx);
		if (ok != 1 && bc->ca_file.text != NULL)
			fail_file(conf, bc->ca_file.line, err, errlen,
			    "ca_file", bc->ca_file.text);
		else if (ok != 1)
			fail(conf, 0, err, errlen, "ca_file",
			    "(system store)");
		if (ok != 1) {
			SSL_CTX_free(ctx);
			return NULL;
		}
	}
	return ctx;
}

/*
 * Build the contexts conf asks for. Returns them (or NULL when conf has no
 * TLS at all, err empty), or NULL with "FILE:LINE: why" in err.
 */
struct tls *
tls_new(const struct config *conf, char *err, size_t errlen)
{
	const struct tls_conf	*tc = &conf->tls;
	struct tls		*tls;
	size_t			 i;

	err[0] = '\0';
	if (tc->ncerts == 0 && !conf->backend.tls)
		return NULL;
	if ((tls = calloc(1, sizeof(*tls))) == NULL ||
	    (tc->ncerts > 0 && (tls->certs = calloc(tc->ncerts,
	    sizeof(*tls->certs))) == NULL)) {
		free(tls);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (i = 0; i < tc->ncerts; i++) {
		if ((tls->certs[i].tc_ctx = server_ctx(conf, tls, i, err,
		    errlen)) == NULL)
			goto bad;
		tls->certs[i].tc_leaf =
		    SSL_CTX_get0_certificate(tls->certs[i].tc_ctx);
		tls->ncerts++;
	}
	if (conf->backend.tls &&
	    (tls->client = client_ctx(conf, err, errlen)) == NULL)
		goto bad;
	return tls;
 bad:
	tls_free(tls);
	return NULL;
}

void
tls_free(struct tls *tls)
{
	size_t	 i;

	if (tls == NULL)
		return;
	for (i = 0; i < tls->ncerts; i++)
		SSL_CTX_free(tls->certs[i].tc_ctx);
	free(tls->certs);
	SSL_CTX_free(tls->client);
	free(tls);
}

/* A server-side SSL for a new client, or NULL. */
SSL *
tls_accept(struct tls *tls)
{
	if (tls == NULL || tls->ncerts == 0)
		return NULL;
	return SSL_new(tls->certs[0].tc_ctx);
}

/*
 * A client-side SSL for a backend server: SNI and the name to verify are
 * server_name if given, else the host part of the server's address; an
 * address literal is verified as an IP address and sent no SNI.
 */
SSL *
tls_connect(struct tls *tls, const struct config *conf,
    const struct config_addr *addr)
{
	const struct backend_conf	*bc = &conf->backend;
	struct in6_addr			 a6;
	char				 host[256];
	const char			*name;
	size_t				 len;
	SSL				*ssl;

	if (tls == NULL || tls->client == NULL ||
	    (ssl = SSL_new(tls->client)) == NULL)
		return NULL;
	if ((name = bc->server_name.text) == NULL) {
		/* "host:port" or "[v6]:port" as written */
		name = addr->text;
		if (*name == '[') {
			name++;
			len = strcspn(name, "]");
		} else
			len = strcspn(name, ":");
		if (len >= sizeof(host))
			len = sizeof(host) - 1;
		memcpy(host, name, len);
		host[len] = '\0';
		name = host;
	}
	if (inet_pton(AF_INET, name, &a6) == 1 ||
	    inet_pton(AF_INET6, name, &a6) == 1) {
		if (bc->tls_verify &&
		    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
		    name) != 1)
			goto bad;
	} else {
		if (SSL_set_tlsext_host_name(ssl, name) != 1)
			goto bad;
		if (bc->tls_verify && SSL_set1_host(ssl, name) != 1)
			goto bad;
	}
	SSL_set_alpn_protos(ssl, alpn_http11, sizeof(alpn_http11) - 1);
	return ssl;
 bad:
	SSL_free(ssl);
	return NULL;
}

/*
 * Before a connection's SSL goes with its bufferevent: no more callbacks
 * into the owner, and, with keep_session and a finished handshake, marked
 * shut down without sending anything. OpenSSL drops from its cache, and
 * makes unresumable, the session of a connection freed without a shutdown;
 * spillway closes finished connections that way on purpose (as nginx
 * does), and those sessions should resume. A connection closed for
 * misbehaving passes keep_session 0.
 */
void
tls_release(SSL *ssl, int keep_session)
{
	if (ssl == NULL)
		return;
	SSL_set_app_data(ssl, NULL);
	if (keep_session && SSL_is_init_finished(ssl))
		SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
}

/* Why the last TLS operation on this connection failed, for the log. */
const char *
tls_why(SSL *ssl, unsigned long err, char *buf, size_t len)
{
	long	 v;

	if (ssl != NULL && (v = SSL_get_verify_result(ssl)) != X509_V_OK) {
		snprintf(buf, len, "certificate verify failed: %s",
		    X509_verify_cert_error_string(v));
		return buf;
	}
	if (err == 0)
		snprintf(buf, len, "connection closed during the handshake");
	else
		ERR_error_string_n(err, buf, len);
	return buf;
}

/*
 * Write what pend holds over bev's TLS connection: at once, one record per
 * SSL_write (and so one write(2)), if the handshake is over and nothing is
 * queued ahead of it; what cannot go now (the socket is full) goes to the
 * bufferevent's output, which writes it when the socket is writable. An
 * SSL_write that could not finish must be offered the same bytes again:
 * they lead the output, in its first chain (SSL_MODE_ACCEPT_MOVING_WRITE_-
 * BUFFER lets them move), and libevent's next SSL_write offers them.
 * A small output is made one chain, so that a head and its body go out as
 * one record.
 */
void
tls_send(struct bufferevent *bev, struct evbuffer *pend)
{
	struct evbuffer	*out = bufferevent_get_output(bev);
	SSL		*ssl = bufferevent_openssl_get_ssl(bev);
	unsigned char	*p;
	size_t		 len, n, done;

	if (evbuffer_get_length(out) == 0 && ssl != NULL &&
	    SSL_is_init_finished(ssl)) {
		while ((len = evbuffer_get_length(pend)) > 0) {
			n = len < TLS_RECORD_MAX ? len : TLS_RECORD_MAX;
			if ((p = evbuffer_pullup(pend, (ssize_t)n)) == NULL)
				break;
			if (SSL_write_ex(ssl, p, n, &done) != 1) {
				/* libevent retries, and sees any error */
				ERR_clear_error();
				evbuffer_add_buffer(out, pend);
				(void)evbuffer_pullup(out, (ssize_t)n);
				return;
			}
			evbuffer_drain(pend, done);
		}
		if (evbuffer_get_length(pend) == 0)
			return;
	}
	evbuffer_add_buffer(out, pend);
	if (evbuffer_get_length(out) <= TLS_RECORD_MAX)
		(void)evbuffer_pullup(out, -1);
}

/*
 * Move into bev's input what OpenSSL holds already decrypted or read
 * ahead, as far as the read watermark and EV_READ allow; no system call
 * unless a record is incomplete (then one read(2) that would block).
 * Returns the bytes added. A TLS error or a close_notify is passed to the
 * event callback (as an error, an end of file), as libevent would.
 */
size_t
tls_read_pending(struct bufferevent *bev)
{
	struct evbuffer		*in = bufferevent_get_input(bev);
	SSL			*ssl = bufferevent_openssl_get_ssl(bev);
	struct evbuffer_iovec	 v;
	size_t			 lo, hi, len, room, got, total = 0;
	int			 e;

	if (ssl == NULL || !SSL_is_init_finished(ssl) ||
	    !(bufferevent_get_enabled(bev) & EV_READ))
		return 0;
	bufferevent_getwatermark(bev, EV_READ, &lo, &hi);
	while (SSL_has_pending(ssl)) {
		len = evbuffer_get_length(in);
		if (hi > 0 && len >= hi)
			break;
		room = hi > 0 ? hi - len : TLS_RECORD_MAX;
		if (room > TLS_RECORD_MAX)
			room = TLS_RECORD_MAX;
		if (evbuffer_reserve_space(in, (ssize_t)room, &v, 1) != 1)
			break;
		if (v.iov_len > room)
			v.iov_len = room;
		ERR_clear_error();
		if (SSL_read_ex(ssl, v.iov_base, v.iov_len, &got) != 1) {
			e = SSL_get_error(ssl, 0);
			ERR_clear_error();
			v.iov_len = 0;
			(void)evbuffer_commit_space(in, &v, 1);
			if (e == SSL_ERROR_SSL || e == SSL_ERROR_ZERO_RETURN)
				bufferevent_trigger_event(bev, BEV_EVENT_READING |
				    (e == SSL_ERROR_SSL ? BEV_EVENT_ERROR :
				    BEV_EVENT_EOF), BEV_OPT_DEFER_CALLBACKS);
			break;
		}
		v.iov_len = got;
		if (evbuffer_commit_space(in, &v, 1) == -1)
			break;
		total += got;
	}
	return total;
}

/*
 * config.c: the configuration file, from text to a validated struct config.
 *
 * One table, config_keys[] (config_keys.c), describes every key; each
 * type's values are parsed by config_value.c. inih splits the file into
 * sections and key = value pairs; the handler looks each pair up in the
 * table and hands the value to its type's setter.
 *
 * [class NAME] sections repeat, one per request class, so their keys have
 * a table of their own, config_class_keys[], whose offsets are into struct
 * class_conf: a class section appends a class to conf->classes and its keys
 * land in that class. When the section ends, the class's keys it left out
 * take their defaults, through the same code, and the class is checked.
 * At the end the default class is moved to, or made at, the end of the
 * list, so a configuration always has at least one class, "default", last.
 *
 * inih is fed through our own reader, one physical line per call, so that:
 *  - we count lines ourselves: Debian's libinih is built without
 *    INI_HANDLER_LINENO, so the handler is never told the line;
 *  - a line longer than inih's buffer is reported ("line too long") instead
 *    of being cut in two and the rest read as a line of its own;
 *  - every syntax error is reported, not just the first one inih returns;
 *  - leading blanks are stripped, which turns off inih's multi-line values
 *    (an indented line would otherwise be another value for the key above);
 *  - "key: value" is refused: inih splits on ':' too, and "server
 *    127.0.0.1:8081" (no '=') would become key "server 127.0.0.1";
 *  - inline comments (';' after a blank) are cut here, by inih's default
 *    rule, so they behave the same whichever way the library was built.
 * The reader hands inih a blank line in place of any line it rejected, so
 * inih's line count and ours stay equal and the handler is called at most
 * once per line, for the line the reader returned last.
 *
 * Errors are collected, never fatal: parsing goes on so that one run lists
 * every problem as "NAME:LINE: message". A problem with no line (a file
 * that cannot be opened) is "NAME: message".
 *
 * Pure: no libevent, no global state, no clock. getaddrinfo() may look up
 * host names unless CONFIG_NUMERIC_HOSTS is given.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L	/* strdup under -std=c11 */
#endif

#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "config_keys.h"

#define CONFIG_MAX_SIZE		(1024 * 1024)	/* bounds lines and errors */
#define CONFIG_MAX_ERRORS	100		/* listed; the rest counted */
#define CLASS_MAX		1000		/* [class NAME] sections */
#define CLASS_NAME_MAX		32

static const char	 class_section[] = "class";
static const char	 default_class[] = "default";

/* State of one parse, shared by the reader, the handler and validation. */
struct parse {
	const char	*p_name;	/* file name, for messages */
	struct config	*p_conf;
	int		 p_flags;	/* CONFIG_* */

	const char	*p_text;	/* whole input, not NUL-terminated */
	size_t		 p_len;
	size_t		 p_off;
	int		 p_line;	/* line last handed to inih */

	const char	*p_section;	/* table's name; NULL before any */
	int		 p_skip;	/* in an unknown or broken section */
	int		 p_section_line[CONFIG_NKEYS];	/* [section] header of key */
	int		 p_seen[CONFIG_NKEYS];	/* line a key was first given */
	int		 p_in_class;	/* keys go to the last class */
	int		 p_class_seen[CONFIG_NCLASS_KEYS]; /* the same, for it */

	char		*p_err;		/* "NAME:LINE: message\n"... */
	size_t		 p_errlen;
	size_t		 p_errsize;
	int		 p_nerr;
};

/*
 * Append "NAME:LINE: message\n" (or "NAME: message\n" for line 0) to the
 * error list. Bytes that could upset a terminal are shown as '?': values
 * come from the file, and fuzzed files hold anything.
 */
void
config_error(struct parse *p, int line, const char *fmt, ...)
{
	char	 msg[512], where[32], *nbuf;
	size_t	 need, i, start;
	va_list	 ap;
	int	 n;

	if (++p->p_nerr > CONFIG_MAX_ERRORS)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(where, sizeof(where), ":%d: ", line);
	else
		snprintf(where, sizeof(where), ": ");

	need = p->p_errlen + strlen(p->p_name) + strlen(where) +
	    strlen(msg) + 2;
	if (need > p->p_errsize) {
		if ((nbuf = realloc(p->p_err, need * 2)) == NULL)
			return;		/* counted all the same */
		p->p_err = nbuf;
		p->p_errsize = need * 2;
	}
	start = p->p_errlen;
	n = snprintf(p->p_err + start, p->p_errsize - start, "%s%s%s\n",
	    p->p_name, where, msg);
	p->p_errlen += (size_t)n;
	for (i = start; i < p->p_errlen - 1; i++) {
		if ((unsigned char)p->p_err[i] < 0x20 || p->p_err[i] == 0x7f)
			p->p_err[i] = '?';
	}
}

int
config_numeric_hosts(const struct parse *p)
{
	return (p->p_flags & CONFIG_NUMERIC_HOSTS) != 0;
}

static const struct key *
key_find(const struct key *table, size_t n, const char *section,
    const char *name)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		if (strcmp(table[i].k_section, section) == 0 &&
		    strcmp(table[i].k_name, name) == 0)
			return &table[i];
	}
	return NULL;
}

/* The table's own copy of a section name, or NULL if there is none. */
static const char *
section_find(const char *name, size_t len)
{
	size_t	 i;

	for (i = 0; i < CONFIG_NKEYS; i++) {
		if (strlen(config_keys[i].k_section) == len &&
		    memcmp(config_keys[i].k_section, name, len) == 0)
			return config_keys[i].k_section;
	}
	return NULL;
}

/*
 * inih calls this for each "key = value" on the line the reader returned
 * last. It always returns 1: errors are recorded here with the line, and
 * inih's own return value is kept for syntax errors only.
 */
static int
#if INI_HANDLER_LINENO
handler(void *arg, const char *section, const char *name, const char *value,
    int lineno)
#else
handler(void *arg, const char *section, const char *name, const char *value)
#endif
{
	struct parse		*p = arg;
	const struct key	*table = config_keys, *k;
	struct class_conf	*cl = NULL;
	size_t			 n = CONFIG_NKEYS, i;
	int			*seen = p->p_seen;
	void			*obj = p->p_conf;

	(void)section;	/* ours is not cut at 50 bytes and knows errors */
#if INI_HANDLER_LINENO
	(void)lineno;
#endif
	if (name == NULL || p->p_skip)	/* a section start, if inih says */
		return 1;
	if (p->p_section == NULL) {
		config_error(p, p->p_line, "key '%s' outside any section "
		    "(start with [proxy] or [backend])", name);
		return 1;
	}
	if (p->p_in_class) {
		cl = &p->p_conf->classes[p->p_conf->nclasses - 1];
		table = config_class_keys;
		n = CONFIG_NCLASS_KEYS;
		seen = p->p_class_seen;
		obj = cl;
	}
	if ((k = key_find(table, n, p->p_section, name)) == NULL) {
		if (cl != NULL)
			config_error(p, p->p_line, "unknown key '%s' in "
			    "[class %s]", name, cl->name);
		else
			config_error(p, p->p_line, "unknown key '%s' in [%s]",
			    name, p->p_section);
		return 1;
	}
	i = (size_t)(k - table);
	if (seen[i] && !(k->k_flags & KEY_REPEAT)) {
		config_error(p, p->p_line, "%s: given twice (first on line %d)",
		    k->k_name, seen[i]);
		return 1;
	}
	if (seen[i] == 0)
		seen[i] = p->p_line;
	if (*value == '\0') {
		config_error(p, p->p_line, "%s: missing value (%s)", k->k_name,
		    config_types[k->k_type].t_form);
		return 1;
	}
	config_types[k->k_type].t_set(p, k, obj, value, p->p_line);
	return 1;
}

/*
 * Cut an inline comment, a ';' after a blank, off the line s, and the
 * blanks before it. inih's default rule, applied here so that it holds
 * whichever way the library was built.
 */
static void
cut_comment(char *s)
{
	char	*c;

	for (c = s; *c != '\0'; c++) {
		if (*c == ';' && c > s && isspace((unsigned char)c[-1]))
			break;
	}
	while (c > s && isspace((unsigned char)c[-1]))
		c--;
	*c = '\0';
}

/* Give each key of table that seen says was left out its default, in obj. */
static void
set_defaults(struct parse *p, const struct key *table, size_t n,
    const int *seen, void *obj)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		if (!seen[i] && table[i].k_default != NULL)
			config_types[table[i].k_type].t_set(p, &table[i], obj,
			    table[i].k_default, 0);
	}
}

static int
is_default_class(const struct class_conf *cl)
{
	return strcmp(cl->name, default_class) == 0;
}

/*
 * The class being defined ends (a new section starts, or the file): its
 * left-out keys take their defaults, and it must match something, unless
 * it is the default class, which must match everything. A criterion given
 * with a bad value counts as given: its error says all there is to say.
 */
static void
class_end(struct parse *p)
{
	struct class_conf	*cl;
	size_t			 i;
	int			 criteria = 0;

	if (!p->p_in_class)
		return;
	p->p_in_class = 0;
	cl = &p->p_conf->classes[p->p_conf->nclasses - 1];
	set_defaults(p, config_class_keys, CONFIG_NCLASS_KEYS, p->p_class_seen, cl);
	for (i = 0; i < CONFIG_NCLASS_KEYS; i++) {
		if (p->p_class_seen[i] &&
		    (config_class_keys[i].k_flags & KEY_CRITERION))
			criteria = 1;
	}
	for (i = 0; i < CONFIG_NCLASS_KEYS; i++) {
		if (p->p_class_seen[i] &&
		    (config_class_keys[i].k_flags & KEY_FAULT) &&
		    (cl->fault_line == 0 || p->p_class_seen[i] < cl->fault_line))
			cl->fault_line = p->p_class_seen[i];
	}
	if (cl->fault.delay_percent > 0 && cl->fault.delay_ms == 0)
		config_error(p, cl->fault_line, "class %s: fault_delay_percent "
		    "needs a fault_delay (the time to add, e.g. 200ms)",
		    cl->name);
	if (is_default_class(cl) && criteria)
		config_error(p, cl->line, "class default matches every "
		    "request; it takes no path, method or header");
	else if (!is_default_class(cl) && !criteria)
		config_error(p, cl->line, "class %s has no path, method or "
		    "header to match; name it default to change the default "
		    "class", cl->name);
}

/* Append a class called name, defined on line, to the configuration. */
static struct class_conf *
class_add(struct parse *p, const char *name, size_t len, int line)
{
	struct config		*conf = p->p_conf;
	struct class_conf	*nlist, *cl;

	nlist = realloc(conf->classes,
	    (conf->nclasses + 1) * sizeof(*conf->classes));
	if (nlist == NULL)
		return NULL;
	conf->classes = nlist;
	cl = &conf->classes[conf->nclasses];
	memset(cl, 0, sizeof(*cl));
	if ((cl->name = strndup(name, len)) == NULL)
		return NULL;
	cl->line = line;
	conf->nclasses++;
	return cl;
}

/*
 * "[class NAME]", name pointing past "class" and its blanks: start a new
 * class, or report why not and skip the section's keys.
 */
static void
class_begin(struct parse *p, const char *name, size_t len)
{
	struct config	*conf = p->p_conf;
	size_t		 i;

	p->p_skip = 1;
	if (len == 0) {
		config_error(p, p->p_line, "[class] needs a name ([class NAME])");
		return;
	}
	for (i = 0; i < len; i++) {
		if (!isalnum((unsigned char)name[i]) &&
		    strchr("_.-", name[i]) == NULL)
			break;
	}
	if (i < len || len > CLASS_NAME_MAX) {
		config_error(p, p->p_line, "invalid class name '%.*s' (1 to %d "
		    "letters, digits, '_', '.' or '-')", (int)len, name,
		    CLASS_NAME_MAX);
		return;
	}
	for (i = 0; i < conf->nclasses; i++) {
		if (strlen(conf->classes[i].name) == len &&
		    memcmp(conf->classes[i].name, name, len) == 0) {
			config_error(p, p->p_line, "[class %.*s] given twice "
			    "(first on line %d)", (int)len, name,
			    conf->classes[i].line);
			return;
		}
	}
	if (conf->nclasses >= CLASS_MAX) {
		config_error(p, p->p_line, "too many classes (at most %d)",
		    CLASS_MAX);
		return;
	}
	if (class_add(p, name, len, p->p_line) == NULL) {
		config_error(p, p->p_line, "out of memory");
		return;
	}
	memset(p->p_class_seen, 0, sizeof(p->p_class_seen));
	p->p_section = class_section;
	p->p_in_class = 1;
	p->p_skip = 0;
}

/*
 * After the last line: the default class goes last, as given or with
 * every key at its default.
 */
static void
classes_end(struct parse *p)
{
	struct config		*conf = p->p_conf;
	struct class_conf	 cl, *last;
	static const int	 none[CONFIG_NCLASS_KEYS];
	size_t			 i;

	for (i = 0; i < conf->nclasses; i++) {
		if (is_default_class(&conf->classes[i])) {
			cl = conf->classes[i];
			memmove(&conf->classes[i], &conf->classes[i + 1],
			    (conf->nclasses - i - 1) * sizeof(cl));
			conf->classes[conf->nclasses - 1] = cl;
			return;
		}
	}
	if ((last = class_add(p, default_class, strlen(default_class), 0))
	    == NULL) {
		config_error(p, 0, "out of memory");
		return;
	}
	set_defaults(p, config_class_keys, CONFIG_NCLASS_KEYS, none, last);
}

/*
 * If the section name, len bytes of s, is "class", blanks and a name, or
 * "class" alone, return where the name starts (s + len if it has none);
 * else NULL.
 */
static const char *
class_name(const char *s, size_t len)
{
	size_t	 n = sizeof(class_section) - 1;

	if (len < n || memcmp(s, class_section, n) != 0 ||
	    (len > n && s[n] != ' ' && s[n] != '\t'))
		return NULL;
	while (n < len && (s[n] == ' ' || s[n] == '\t'))
		n++;
	return s + n;
}

/* A "[section]" line: note which section the following keys belong to. */
static int
check_section(struct parse *p, const char *s)
{
	const char	*end, *rest, *name;
	size_t		 i, len;

	class_end(p);
	if ((end = strchr(s, ']')) == NULL) {
		config_error(p, p->p_line, "syntax error: missing ']'");
		p->p_skip = 1;
		return -1;
	}
	for (rest = end + 1; isspace((unsigned char)*rest); rest++)
		;
	if (*rest != '\0') {
		config_error(p, p->p_line, "syntax error: text after ']'");
		p->p_skip = 1;
		return -1;
	}
	len = (size_t)(end - s - 1);
	if ((name = class_name(s + 1, len)) != NULL) {
		class_begin(p, name, (size_t)(end - name));
		return 0;
	}
	p->p_section = section_find(s + 1, len);
	p->p_skip = p->p_section == NULL;
	if (p->p_skip) {
		config_error(p, p->p_line, "unknown section [%.*s]",
		    (int)(end - s - 1), s + 1);
		return 0;
	}
	for (i = 0; i < CONFIG_NKEYS; i++) {
		if (config_keys[i].k_section == p->p_section &&
		    p->p_section_line[i] == 0)
			p->p_section_line[i] = p->p_line;
	}
	return 0;
}

/*
 * Check one line (blanks stripped from both ends) the way inih will read
 * it, and report what it would reject. Returns 0 if inih may have it.
 */
static int
check_line(struct parse *p, char *s, int indented)
{
	const char	*sep;

	if (*s == '\0' || *s == ';' || *s == '#')
		return 0;
	cut_comment(s);
	if (*s == '[')
		return check_section(p, s);
	sep = s + strcspn(s, "=:");
	if (*sep != '=') {
		config_error(p, p->p_line, "syntax error: expected "
		    "'key = value'%s", indented ?
		    " (an indented line does not continue a value)" : "");
		return -1;
	}
	if (sep == s) {
		config_error(p, p->p_line, "syntax error: missing key before "
		    "'='");
		return -1;
	}
	return 0;
}

/*
 * inih's reader: return the next physical line in buf (of num bytes),
 * stripped of blanks at both ends and ended by "\n". A line that inih must
 * not see is reported here and replaced by an empty one.
 */
static char *
reader(char *buf, int num, void *arg)
{
	struct parse	*p = arg;
	const char	*s, *nl;
	size_t		 len, max;
	int		 indented;

	if (p->p_off >= p->p_len || num < 3)
		return NULL;
	s = p->p_text + p->p_off;
	len = p->p_len - p->p_off;
	if ((nl = memchr(s, '\n', len)) != NULL)
		len = (size_t)(nl - s);
	p->p_off += len + (nl != NULL);
	p->p_line++;
	strcpy(buf, "\n");

	/* inih's "3 more than the longest line": '\r', '\n' and NUL */
	max = (size_t)num - 3;
	if (len > 0 && s[len - 1] == '\r')
		len--;
	if (len > max) {
		config_error(p, p->p_line, "line too long (more than %zu "
		    "characters)", max);
		while (len > 0 && isspace((unsigned char)*s)) {
			s++;
			len--;
		}
		if (len > 0 && *s == '[') {
			class_end(p);
			p->p_skip = 1;	/* keys below are in no known section */
		}
		return buf;
	}
	if (memchr(s, '\0', len) != NULL) {
		config_error(p, p->p_line, "NUL character in line");
		return buf;
	}
	if (p->p_line == 1 && len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) {
		s += 3;		/* UTF-8 byte order mark */
		len -= 3;
	}
	for (indented = 0; len > 0 && isspace((unsigned char)*s); len--, s++)
		indented = 1;
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (check_line(p, buf, indented) == -1)
		buf[0] = '\0';
	strcat(buf, "\n");
	return buf;
}

/* Give every key the file left out its default; report required ones. */
static void
apply_defaults(struct parse *p)
{
	const struct key	*k;
	size_t			 i;
	int			 line;

	set_defaults(p, config_keys, CONFIG_NKEYS, p->p_seen, p->p_conf);
	for (i = 0; i < CONFIG_NKEYS; i++) {
		k = &config_keys[i];
		if (!p->p_seen[i] && (k->k_flags & KEY_REQUIRED)) {
			line = p->p_section_line[i] ? p->p_section_line[i] :
			    p->p_line;
			config_error(p, line > 0 ? line : 1, "no %s %s ([%s] %s "
			    "= %s)", k->k_section, k->k_name, k->k_section,
			    k->k_name, config_types[k->k_type].t_example);
		}
	}
}

/* Keys that make sense only together. */
static void
check_limits(struct parse *p)
{
	const struct shed_conf	*sc = &p->p_conf->limiter;

	if (p->p_nerr > 0)	/* a bad value was reported already */
		return;
	if (sc->algorithm == LIMITER_FIXED)	/* the limit is the limit */
		return;
	if (sc->min_limit > sc->max_limit || sc->limit < sc->min_limit ||
	    sc->limit > sc->max_limit)
		config_error(p, p->p_line > 0 ? p->p_line : 1, "[limiter] "
		    "needs min_limit <= limit <= max_limit (now %u, %u, %u)",
		    sc->min_limit, sc->limit, sc->max_limit);
}

/* The line a key of config_keys[] was first given on, else a line to blame. */
static int
key_line(struct parse *p, const char *section, const char *name)
{
	const struct key	*k = key_find(config_keys, CONFIG_NKEYS, section, name);
	size_t			 i = (size_t)(k - config_keys);

	if (p->p_seen[i])
		return p->p_seen[i];
	if (p->p_section_line[i])
		return p->p_section_line[i];
	return p->p_line > 0 ? p->p_line : 1;
}

/*
 * The admin listener may not take a proxy listener's connections: the
 * same address, or the same port with either one the "any" address. A
 * proxy listener given by default has no line: the error then points at
 * the admin's.
 */
static void
admin_clash(struct parse *p, const struct config_addr *adm,
    const struct config_addr *pl, const char *section)
{
	char	 where[32] = "";

	if (!addr_overlap(adm, pl))
		return;
	if (pl->line > 0)
		snprintf(where, sizeof(where), " on line %d", pl->line);
	config_error(p, adm->line, "listen: admin address %s %s [%s] listen "
	    "%s%s%s", adm->text, addr_same(adm, pl) ? "is the same as" :
	    "overlaps", section, pl->text, pl->line > 0 ? "" : " (the default)",
	    where);
}

/*
 * Health: the back-off starts at most at its cap; a check's request is
 * valid (as built for a server without a host of its own) and a check
 * ends before the next is due, so checks never pile up.
 */
static void
check_health(struct parse *p)
{
	struct backend_conf	*bc = &p->p_conf->backend;
	struct health_conf	*hc = &bc->health;
	const char		*why;
	char			 req[2048];

	if (p->p_nerr > 0)
		return;
	hc->check_on = bc->health_check.text != NULL;
	if (hc->check_on && health_check_request(bc->health_check.text,
	    "localhost", req, sizeof(req), &why) == -1)
		config_error(p, key_line(p, "backend", "health_check"),
		    "health_check: %s (e.g. GET /healthz)", why);
	if (hc->check_on && bc->check_timeout_ms > bc->check_interval_ms)
		config_error(p, key_line(p, "backend", "check_timeout"),
		    "[backend] needs check_timeout <= check_interval "
		    "(now %llums, %llums)",
		    (unsigned long long)bc->check_timeout_ms,
		    (unsigned long long)bc->check_interval_ms);
	if (bc->check_status != 0 && bc->check_status < 100)
		config_error(p, key_line(p, "backend", "check_status"),
		    "check_status: %u is no HTTP status (use 100 to 599, or "
		    "0 for any 2xx or 3xx)", bc->check_status);
	if (hc->fail_timeout_ms > hc->max_ejection_time_ms)
		config_error(p, key_line(p, "backend", "fail_timeout"),
		    "[backend] needs fail_timeout <= max_ejection_time "
		    "(now %llums, %llums)",
		    (unsigned long long)hc->fail_timeout_ms,
		    (unsigned long long)hc->max_ejection_time_ms);
}

/*
 * Listeners: plain ones default to 127.0.0.1:8080 unless TLS ones are
 * given; no address may be both; a TLS listener needs a certificate, and
 * private keys, if given, pair up with the certificates.
 */
static void
check_listeners(struct parse *p)
{
	struct config		*conf = p->p_conf;
	const struct tls_conf	*tc = &conf->tls;
	const struct key	*k;
	size_t			 i, j;

	if (conf->proxy.nlisten == 0 && tc->nlisten == 0) {
		k = key_find(config_keys, CONFIG_NKEYS, "proxy", "listen");
		config_types[KT_ADDRS].t_set(p, k, conf, "127.0.0.1:8080", 0);
	}
	for (i = 0; i < tc->nlisten; i++) {
		for (j = 0; j < conf->proxy.nlisten; j++) {
			if (addr_same(&tc->listen[i],
			    &conf->proxy.listen[j]))
				config_error(p, tc->listen[i].line, "listen: %s "
				    "is also a plain listener (line %d)",
				    tc->listen[i].text,
				    conf->proxy.listen[j].line);
		}
	}
	for (i = 0; i < conf->admin.nlisten; i++) {
		for (j = 0; j < conf->proxy.nlisten; j++)
			admin_clash(p, &conf->admin.listen[i],
			    &conf->proxy.listen[j], "proxy");
		for (j = 0; j < tc->nlisten; j++)
			admin_clash(p, &conf->admin.listen[i], &tc->listen[j],
			    "tls");
	}
	if (tc->nlisten > 0 && tc->ncerts == 0)
		config_error(p, key_line(p, "tls", "listen"), "[tls] listen "
		    "needs a certificate (certificate = %s)",
		    config_types[KT_STRINGS].t_example);
	if (tc->nkeys > 0 && tc->nkeys != tc->ncerts)
		config_error(p, key_line(p, "tls", "private_key"), "private_key: "
		    "%zu given for %zu certificates (give one per certificate, "
		    "in order, or none when each certificate file holds its "
		    "key)", tc->nkeys, tc->ncerts);
}

/*
 * Fault injection is for game days: a class that injects faults needs a
 * listener marked for them ("listen = ADDRESS fault_injection"), and only
 * requests that arrive there get them. A configuration with faults and no
 * such listener is refused, so that a fault left in a file cannot reach
 * production traffic by accident (a reload with it keeps the old one).
 */
static void
check_faults(struct parse *p)
{
	const struct config	*conf = p->p_conf;
	size_t			 i;
	int			 marked = 0;

	for (i = 0; i < conf->proxy.nlisten; i++)
		marked |= conf->proxy.listen[i].flags & ADDR_F_FAULT_INJECTION;
	for (i = 0; i < conf->tls.nlisten; i++)
		marked |= conf->tls.listen[i].flags & ADDR_F_FAULT_INJECTION;
	for (i = 0; i < conf->nclasses && !marked; i++) {
		if (fault_active(&conf->classes[i].fault))
			config_error(p, conf->classes[i].fault_line, "class %s: "
			    "fault injection needs a listener marked for it "
			    "(listen = 127.0.0.1:8080 fault_injection); refused "
			    "so that it cannot be left on in production",
			    conf->classes[i].name);
	}
}

/*
 * [cluster]: redis needs a build with hiredis; the prefix names keys in
 * Redis, so it may not hold blanks or control characters (a key made of
 * it is sent as one argument, but an operator reading KEYS output should
 * see what was meant).
 */
static void
check_cluster(struct parse *p)
{
	const struct cluster_conf	*cc = &p->p_conf->cluster;
	const unsigned char		*s;

#ifndef HAVE_HIREDIS
	if (cc->nredis > 0)
		config_error(p, cc->redis[0].line, "redis: this spillway was "
		    "built without hiredis (spillway -V lists \"redis\" when "
		    "it has it); install libhiredis-dev and rebuild");
#endif
	if (cc->prefix.text == NULL)
		return;
	if (strlen(cc->prefix.text) > 64)
		config_error(p, key_line(p, "cluster", "prefix"), "prefix: "
		    "longer than 64 bytes");
	for (s = (const unsigned char *)cc->prefix.text; *s != '\0'; s++)
		if (*s <= ' ' || *s == 0x7f) {
			config_error(p, key_line(p, "cluster", "prefix"),
			    "prefix: no blanks or control characters");
			break;
		}
}

/* Feed the text to inih through reader(), then fill in the defaults. */
static void
parse_lines(struct parse *p)
{
	int	 rc;

	rc = ini_parse_stream(reader, p, handler, p);
	if (rc > 0)		/* a line our reader let through: a bug */
		config_error(p, rc, "syntax error");
	else if (rc < 0)
		config_error(p, 0, "out of memory");
	class_end(p);
	apply_defaults(p);
	classes_end(p);
	check_limits(p);
	check_health(p);
	check_listeners(p);
	check_faults(p);
	check_cluster(p);
}

static struct config *
parse(const char *name, const char *text, size_t len, int flags,
    char **errors)
{
	struct parse	 p;
	int		 rc;

	memset(&p, 0, sizeof(p));
	p.p_name = name;
	p.p_flags = flags;
	p.p_text = text;
	p.p_len = len;

	if (len > CONFIG_MAX_SIZE)
		config_error(&p, 0, "too large (more than %d bytes)",
		    CONFIG_MAX_SIZE);
	else if ((p.p_conf = calloc(1, sizeof(*p.p_conf))) == NULL ||
	    (p.p_conf->path = strdup(name)) == NULL)
		config_error(&p, 0, "out of memory");
	else
		parse_lines(&p);

	if (p.p_nerr == 0) {
		*errors = NULL;
		return p.p_conf;
	}
	if (p.p_nerr > CONFIG_MAX_ERRORS) {
		rc = p.p_nerr - CONFIG_MAX_ERRORS;
		p.p_nerr = 0;	/* let this one through */
		config_error(&p, 0, "%d more error%s not shown", rc,
		    rc == 1 ? "" : "s");
	}
	config_free(p.p_conf);
	*errors = p.p_err;	/* NULL only if even that was out of memory */
	return NULL;
}

struct config *
config_parse_flags(const char *name, const char *text, int flags,
    char **errors)
{
	return parse(name, text, strlen(text), flags, errors);
}

struct config *
config_parse(const char *name, const char *text, char **errors)
{
	return parse(name, text, strlen(text), 0, errors);
}

/* Read a whole file, up to one byte more than CONFIG_MAX_SIZE. */
static char *
read_file(FILE *f, size_t *lenp)
{
	char	*buf = NULL, *nbuf;
	size_t	 len = 0, size = 0, n;

	do {
		if (len == size) {
			size = size ? size * 2 : 8192;
			if ((nbuf = realloc(buf, size)) == NULL)
				goto fail;
			buf = nbuf;
		}
		n = fread(buf + len, 1, size - len, f);
		len += n;
	} while (n > 0 && len <= CONFIG_MAX_SIZE);
	if (ferror(f))
		goto fail;
	*lenp = len;
	return buf;
fail:
	free(buf);
	return NULL;
}

struct config *
config_load(const char *path, char **errors)
{
	struct config	*conf;
	struct parse	 p;
	FILE		*f;
	char		*text;
	size_t		 len;

	memset(&p, 0, sizeof(p));
	p.p_name = path;
	if ((f = fopen(path, "r")) == NULL) {
		config_error(&p, 0, "cannot open: %s", strerror(errno));
		goto fail;
	}
	errno = 0;
	text = read_file(f, &len);
	if (text == NULL)
		config_error(&p, 0, "cannot read: %s",
		    strerror(errno ? errno : EIO));
	fclose(f);
	if (text == NULL)
		goto fail;
	conf = parse(path, text, len, 0, errors);
	free(text);
	return conf;
fail:
	*errors = p.p_err;
	return NULL;
}

void
config_where(const struct config *conf, int line, char *buf, size_t len)
{
	if (line > 0)
		snprintf(buf, len, "%s:%d:", conf->path, line);
	else
		snprintf(buf, len, "%s:", conf->path);
}

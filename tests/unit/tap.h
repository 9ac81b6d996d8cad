/*
 * tap.h: a few macros that make a C test program speak TAP, so that
 * automake's tap-driver counts each check.
 *
 *	static void test_thing(void) { CHECK(x == 1); CHECK_EQ_INT(y, 2); }
 *	int main(void) { RUN(test_thing); return tap_done(); }
 *
 * Each RUN() is one TAP test point: "ok" if every CHECK inside passed.
 */
#ifndef SPILLWAY_TAP_H
#define SPILLWAY_TAP_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed, tap_cur_failed;

#define CHECK(cond) do {						\
	if (!(cond)) {							\
		tap_cur_failed++;					\
		printf("# %s:%d: check failed: %s\n",			\
		    __FILE__, __LINE__, #cond);				\
	}								\
} while (0)

#define CHECK_EQ_INT(a, b) do {						\
	long long tap_a = (long long)(a), tap_b = (long long)(b);	\
	if (tap_a != tap_b) {						\
		tap_cur_failed++;					\
		printf("# %s:%d: %s == %s: %lld != %lld\n",		\
		    __FILE__, __LINE__, #a, #b, tap_a, tap_b);		\
	}								\
} while (0)

#define CHECK_EQ_STR(a, b) do {						\
	const char *tap_a = (a), *tap_b = (b);				\
	if (tap_a == NULL || tap_b == NULL || strcmp(tap_a, tap_b) != 0) { \
		tap_cur_failed++;					\
		printf("# %s:%d: %s == %s: \"%s\" != \"%s\"\n",		\
		    __FILE__, __LINE__, #a, #b,				\
		    tap_a ? tap_a : "(null)", tap_b ? tap_b : "(null)"); \
	}								\
} while (0)

#define RUN(fn) do {							\
	tap_cur_failed = 0;						\
	fn();								\
	tap_n++;							\
	if (tap_cur_failed)						\
		tap_failed++;						\
	printf("%s %d - %s\n", tap_cur_failed ? "not ok" : "ok",	\
	    tap_n, #fn);						\
	fflush(stdout);							\
} while (0)

static inline int
tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif /* SPILLWAY_TAP_H */

/*
 * fuzz_config.c: libFuzzer target for the configuration parser.
 *
 * The input is a configuration file. Host names are never looked up
 * (CONFIG_NUMERIC_HOSTS): a fuzzer must not send made-up names to DNS.
 * Whatever comes back, a configuration or an error list, is freed, so
 * LeakSanitizer checks every error path as well.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config	*conf;
	char		*text, *errors = NULL;

	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	conf = config_parse_flags("fuzz", text, CONFIG_NUMERIC_HOSTS, &errors);
	/* exactly one of them, and errors end with a newline */
	if ((conf == NULL) == (errors == NULL))
		abort();
	if (errors != NULL && errors[strlen(errors) - 1] != '\n')
		abort();
	config_free(conf);
	free(errors);
	free(text);
	return 0;
}

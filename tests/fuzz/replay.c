/*
 * replay.c: a main() for a libFuzzer target built without libFuzzer, so
 * that `make check` runs every fuzz target over its seed corpus (and any
 * files or folders named on the command line). One TAP point per input.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int	n;

static int
replay_file(const char *path)
{
	FILE		*f;
	uint8_t		*buf = NULL;
	size_t		 len = 0, cap = 0, got;

	if ((f = fopen(path, "rb")) == NULL) {
		printf("not ok %d - %s: cannot open\n", ++n, path);
		return -1;
	}
	do {
		if (len == cap) {
			cap = cap ? cap * 2 : 4096;
			if ((buf = realloc(buf, cap)) == NULL)
				abort();
		}
		got = fread(buf + len, 1, cap - len, f);
		len += got;
	} while (got > 0);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	printf("ok %d - %s (%zu bytes)\n", ++n, path, len);
	fflush(stdout);
	return 0;
}

static int
replay_path(const char *path)
{
	struct stat	 st;
	struct dirent	**names;
	char		 sub[4096];
	int		 i, count, rc = 0;

	if (stat(path, &st) == -1) {
		printf("not ok %d - %s: missing\n", ++n, path);
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return replay_file(path);
	if ((count = scandir(path, &names, NULL, alphasort)) == -1)
		return -1;
	for (i = 0; i < count; i++) {
		if (names[i]->d_name[0] != '.') {
			snprintf(sub, sizeof(sub), "%s/%s", path,
			    names[i]->d_name);
			if (replay_file(sub) == -1)
				rc = -1;
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

int
main(int argc, char *argv[])
{
	const char	*top = getenv("top_srcdir");
	char		 dir[4096];
	int		 i, rc = 0;

	if (argc > 1) {
		for (i = 1; i < argc; i++)
			if (replay_path(argv[i]) == -1)
				rc = 1;
	} else {
		snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/%s",
		    top ? top : ".", CORPUS);
		if (replay_path(dir) == -1)
			rc = 1;
	}
	printf("1..%d\n", n);
	return rc;
}

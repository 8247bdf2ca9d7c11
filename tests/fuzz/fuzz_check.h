/* CHECK(): a promise of the code under fuzzing; breaking it aborts, which libFuzzer reports
 * as a crash with the input that did it. */
#ifndef EBSFS_FUZZ_CHECK_H
#define EBSFS_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#endif

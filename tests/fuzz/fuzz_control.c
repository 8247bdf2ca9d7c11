/* What a write(2) to a control file may carry. control_parse_input() is the only gate in front
 * of a FailoverDiskReplicaPair call: it must accept exactly "1" and "1\n" at offset 0 and refuse
 * everything else with -EINVAL. The first byte picks the offset: below 0x80 it is 0, otherwise
 * the next 8 bytes (native order) are the offset. The rest is the written buffer. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ebsfs/control.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	long long off = 0;
	size_t skip = 1;

	if (size < 1)
		return 0;
	if (data[0] >= 0x80) {
		if (size < 9)
			return 0;
		memcpy(&off, data + 1, sizeof(off));
		skip = 9;
	}

	size_t len = size - skip;
	/* Exactly len bytes, no terminator: reading past them is an ASan report. */
	char *buf = malloc(len ? len : 1);
	if (!buf)
		return 0;
	if (len)
		memcpy(buf, data + skip, len);

	int expect_ok = off == 0 && ((len == 1 && buf[0] == '1') ||
				     (len == 2 && buf[0] == '1' && buf[1] == '\n'));
	int rc = control_parse_input(buf, len, off);
	if (expect_ok ? rc != 0 : rc != -EINVAL) {
		fprintf(stderr, "control_parse_input(%zu bytes, off %lld) = %d, expected %d\n", len,
			off, rc, expect_ok ? 0 : -EINVAL);
		abort();
	}

	/* The same bytes as a file name. */
	char *name = malloc(len + 1);
	if (name) {
		memcpy(name, buf, len);
		name[len] = '\0';
		int a = control_find(name);
		CHECK(a >= -1 && a < EBS_ACTION_COUNT);
		if (a >= 0)
			CHECK(strcmp(control_names[a], name) == 0);
		else
			for (int i = 0; i < EBS_ACTION_COUNT; i++)
				CHECK(strcmp(control_names[i], name) != 0);
		free(name);
	}
	free(buf);
	return 0;
}

/* State files rendered from whatever a server sent: parse a page, then render every state file
 * of every record into an exact buffer, a truncating buffer and no buffer. The length returned
 * must be the full length (strlen of the output when it fits), and truncated output a prefix. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ebsfs/attrs.h"
#include "ebsfs/ebs.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void render_one(const struct attr_def *a, const struct ebs_pair *p, size_t small)
{
	size_t n = attr_render(a, p, NULL, 0);
	char *full = malloc(n + 1);

	CHECK(full != NULL);
	CHECK(attr_render(a, p, full, n + 1) == n);
	CHECK(strlen(full) == n);
	if (a->kind != ATTR_TAGS)
		CHECK(n > 0 && full[n - 1] == '\n');
	else
		CHECK(n == 0 || full[n - 1] == '\n');
	/* A string file is the value on one line: control characters became spaces. */
	if (a->kind == ATTR_STR) {
		const char *v = p->str[a->field];
		CHECK(n == strlen(v) + 1);
		for (size_t i = 0; i + 1 < n; i++)
			CHECK(full[i] == v[i] ||
			      (full[i] == ' ' && ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)));
		CHECK(!memchr(full, '\n', n - 1));
	}
	if (a->kind == ATTR_JSON)
		CHECK(n == strlen(p->json) + 1);

	/* A buffer of small + 1 bytes (small < n when possible): a terminated prefix. */
	size_t cap = (n ? small % n : 0) + 1;
	char *part = malloc(cap);
	CHECK(part != NULL);
	CHECK(attr_render(a, p, part, cap) == n);
	CHECK(strlen(part) == cap - 1 || (cap > n && strlen(part) == n));
	CHECK(memcmp(part, full, strlen(part)) == 0);
	free(part);
	free(full);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ebs_pair_list list = {0};
	struct ebs_error err = {0};
	char *body = malloc(size ? size : 1);
	size_t small = size;

	if (!body)
		return 0;
	if (size)
		memcpy(body, data, size);
	if (ebs_parse_pairs_page(body, size, &list, NULL, &err) == 0) {
		for (size_t i = 0; i < list.n; i++) {
			for (size_t k = 0; k < attr_count; k++) {
				const struct attr_def *a = &attr_table[k];

				CHECK(attr_find(a->name) == (int)k);
				if (a->kind == ATTR_PROGRESS)
					continue;
				render_one(a, list.items[i], small);
				small = small * 31 + k + 7;
			}
		}
	}
	ebs_pair_list_free(&list);

	/* Progress and time formatting over arbitrary numbers. */
	long long t = 0;
	int percent = 0;
	char tbuf[64], pbuf[16];
	if (size) {
		memcpy(&t, data, size < sizeof(t) ? size : sizeof(t));
		memcpy(&percent, data, size < sizeof(percent) ? size : sizeof(percent));
	}
	attr_format_time(t, tbuf, sizeof(tbuf));
	CHECK(strnlen(tbuf, sizeof(tbuf)) < sizeof(tbuf));
	if (t <= 0)
		CHECK(tbuf[0] == '\0');
	size_t n = attr_render_progress(percent, pbuf, sizeof(pbuf));
	CHECK(n == strlen(pbuf) && n > 0 && pbuf[n - 1] == '\n');
	free(body);
	return 0;
}

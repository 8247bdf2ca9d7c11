/* DescribeDiskReplicaPairs pages and error bodies, as any server (or a man in the middle of a
 * plain-HTTP endpoint) could send them: ebs_parse_pairs_page() and ebs_parse_error() must never
 * crash, leak, or hand out a record that breaks the promises of ebs.h. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ebsfs/ebs.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A field of struct ebs_error is a NUL-terminated, control-character-free string. */
static void check_error_field(const char *s, size_t size)
{
	size_t n = strnlen(s, size);

	CHECK(n < size);
	for (size_t i = 0; i < n; i++)
		CHECK((unsigned char)s[i] >= 0x20 && s[i] != 0x7f);
}

static void check_error(const struct ebs_error *err)
{
	check_error_field(err->code, sizeof(err->code));
	check_error_field(err->message, sizeof(err->message));
	check_error_field(err->request_id, sizeof(err->request_id));
}

static void check_pair(const struct ebs_pair *p)
{
	CHECK(p != NULL);
	for (int i = 0; i < EBS_STR_COUNT; i++)
		CHECK(p->str[i] != NULL);
	CHECK(p->str[EBS_ID][0] != '\0');
	CHECK(p->enable_rtc == -1 || p->enable_rtc == 0 || p->enable_rtc == 1);
	CHECK((p->num_present >> EBS_NUM_COUNT) == 0);
	CHECK(p->tags != NULL && p->json != NULL);

	/* tags: "" or newline-terminated "key=value" lines. */
	for (const char *line = p->tags; *line;) {
		const char *nl = strchr(line, '\n');

		CHECK(nl != NULL && nl > line);
		CHECK(memchr(line, '=', (size_t)(nl - line)) != NULL);
		CHECK(memchr(line, '\r', (size_t)(nl - line)) == NULL);
		line = nl + 1;
	}

	/* pair.json: the record, compact JSON that parses back to an object with the same id. */
	json_t *rec = json_loads(p->json, 0, NULL);
	CHECK(json_is_object(rec));
	CHECK(strcmp(json_string_value(json_object_get(rec, "ReplicaPairId")), p->str[EBS_ID]) ==
	      0);
	CHECK(strchr(p->json, '\n') == NULL);
	json_decref(rec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy without a terminator, so a read past len is an ASan report. */
	char *body = malloc(size ? size : 1);
	struct ebs_pair_list list = {0};
	struct ebs_error err = {0};
	char *next = (char *)"untouched";
	int rc;

	if (!body)
		return 0;
	if (size)
		memcpy(body, data, size);

	rc = ebs_parse_pairs_page(body, size, &list, &next, &err);
	CHECK(rc == 0 || rc < 0);
	if (rc == 0) {
		for (size_t i = 0; i < list.n; i++)
			check_pair(list.items[i]);
		CHECK(next == NULL || next[0] != '\0');
	} else {
		CHECK(list.n == 0);
		CHECK(next == NULL);
		check_error(&err);
	}
	free(next);

	/* A second page appends; a failing one leaves what was there. */
	size_t before = list.n;
	rc = ebs_parse_pairs_page(body, size, &list, NULL, &err);
	CHECK(rc == 0 ? list.n == 2 * before : list.n == before);
	ebs_pair_list_free(&list);
	CHECK(list.n == 0 && list.items == NULL);

	/* The same bytes as an error answer. */
	memset(&err, 0x55, sizeof(err));
	rc = ebs_parse_error(body, size, 403, &err);
	CHECK(rc == 0 || rc < 0);
	CHECK(err.http_status == 403);
	check_error(&err);
	CHECK(err.code[0] != '\0');
	if (rc < 0)
		CHECK(strcmp(err.code, "MalformedResponse") == 0);
	(void)ebs_error_errno(&err);

	free(body);
	return 0;
}

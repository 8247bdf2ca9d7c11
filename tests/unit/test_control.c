/* The gate in front of every mutating API call: control_parse_input() accepts "1" or "1\n" at
 * offset 0 and nothing else; control_find() maps file names to actions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ebsfs/control.h"

/* Parses exactly len bytes from a heap copy with no terminator, so that a read past len would
 * be caught under ASan. */
static int parse(const char *bytes, size_t len, long long off)
{
	char *copy = malloc(len ? len : 1);
	int rc;

	assert_non_null(copy);
	memcpy(copy, bytes, len);
	rc = control_parse_input(copy, len, off);
	free(copy);
	return rc;
}

static void one_with_or_without_newline_is_accepted(void **state)
{
	(void)state;
	assert_int_equal(parse("1", 1, 0), 0);
	assert_int_equal(parse("1\n", 2, 0), 0);
	/* The length, not a terminator, delimits the input. */
	assert_int_equal(parse("1\n\n", 2, 0), 0);
	assert_int_equal(parse("1junk", 1, 0), 0);
}

static void everything_else_is_einval(void **state)
{
	static const struct {
		const char *bytes;
		size_t len;
	} cases[] = {
	    {"", 0},
	    {"0", 1},
	    {"2", 1},
	    {"11", 2},
	    {"1 1", 3},
	    {"yes", 3},
	    {"1\n\n", 3},
	    {" 1", 2},
	    {"1\r\n", 3},
	    {"1\r", 2},
	    {"1 ", 2},
	    {"\n", 1},
	    {"\n1", 2},
	    {"01", 2},
	    {"+1", 2},
	    {"1.0", 3},
	    {"true", 4},
	    {"\x00", 1},
	    {"1\x00", 2},
	    {"\x001", 2},
	    {"1\n\x00", 3},
	    {"1\x00\n", 3},
	    {"\xef\xbc\x91", 3}, /* FULLWIDTH DIGIT ONE */
	    {"1\t", 2},
	    {"l", 1},
	    {"I", 1},
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = parse(cases[i].bytes, cases[i].len, 0);
		if (rc != -EINVAL)
			fail_msg("case %zu (%zu bytes) gave %d", i, cases[i].len, rc);
	}
}

static void four_kib_of_garbage_is_einval(void **state)
{
	char *buf = malloc(4096);
	(void)state;

	assert_non_null(buf);
	for (size_t i = 0; i < 4096; i++)
		buf[i] = (char)(i * 131 + 7);
	assert_int_equal(control_parse_input(buf, 4096, 0), -EINVAL);
	/* A "1\n" followed by more: still one write of 4 KiB. */
	memset(buf, '\n', 4096);
	buf[0] = '1';
	assert_int_equal(control_parse_input(buf, 4096, 0), -EINVAL);
	memset(buf, '1', 4096);
	assert_int_equal(control_parse_input(buf, 4096, 0), -EINVAL);
	free(buf);
}

static void any_offset_but_zero_is_einval(void **state)
{
	static const long long offsets[] = {1, 2, 4096, -1, 1LL << 40, -(1LL << 62)};
	(void)state;

	for (size_t i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
		assert_int_equal(parse("1", 1, offsets[i]), -EINVAL);
		assert_int_equal(parse("1\n", 2, offsets[i]), -EINVAL);
	}
	/* "echo 1 >> failover" on a file that already holds a byte. */
	assert_int_equal(parse("\n", 1, 1), -EINVAL);
	assert_int_equal(parse("", 0, 1), -EINVAL);
}

static void control_names_map_to_actions(void **state)
{
	(void)state;
	assert_int_equal(control_find("reprotect"), EBS_REPROTECT);
	assert_int_equal(control_find("failover"), EBS_FAILOVER);
	assert_int_equal(control_find("start"), EBS_START);
	assert_int_equal(control_find("stop"), EBS_STOP);
	for (int a = 0; a < EBS_ACTION_COUNT; a++) {
		assert_non_null(control_names[a]);
		assert_int_equal(control_find(control_names[a]), a);
	}
	assert_string_equal(control_names[EBS_REPROTECT], "reprotect");
	assert_string_equal(control_names[EBS_FAILOVER], "failover");
	assert_string_equal(control_names[EBS_START], "start");
	assert_string_equal(control_names[EBS_STOP], "stop");
}

static void other_names_are_not_controls(void **state)
{
	static const char *const names[] = {
	    "",	      "Failover", "failover\n", "failover ",  "fail",	 "failovers",
	    "status", "refresh",  "progress",	"pair.json",  "stop/",	 ".",
	    "..",     "Stop",	  "START",	"reprotect.", "restart",
	};
	(void)state;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_int_equal(control_find(names[i]), -1);
}

static void stats_list_every_file_and_outcome(void **state)
{
	size_t need = control_format_stats(NULL, 0);
	char *buf = malloc(need + 1);
	size_t lines = 0;
	(void)state;

	assert_non_null(buf);
	assert_int_equal(control_format_stats(buf, need + 1), need);
	assert_int_equal(strlen(buf), need);
	for (const char *p = buf; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, (EBS_ACTION_COUNT + 1) * 8);
	assert_non_null(strstr(buf, "control_writes_failover_ok 0\n"));
	assert_non_null(strstr(buf, "control_writes_reprotect_EBUSY 0\n"));
	assert_non_null(strstr(buf, "control_writes_refresh_EINVAL 0\n"));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(one_with_or_without_newline_is_accepted),
	    cmocka_unit_test(everything_else_is_einval),
	    cmocka_unit_test(four_kib_of_garbage_is_einval),
	    cmocka_unit_test(any_offset_but_zero_is_einval),
	    cmocka_unit_test(control_names_map_to_actions),
	    cmocka_unit_test(other_names_are_not_controls),
	    cmocka_unit_test(stats_list_every_file_and_outcome),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

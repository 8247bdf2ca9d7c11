/* Counters and their text form. Tests run in order in one process: the first one sees zeros. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ebsfs/stats.h"

#define API_LINES   (STATS_API_COUNT * STATS_OUTCOME_COUNT)
#define OTHER_LINES 6

static char *format_all(void)
{
	size_t need = stats_format_api(NULL, 0);
	char *buf = malloc(need + 1);

	assert_non_null(buf);
	assert_int_equal(stats_format_api(buf, need + 1), need);
	assert_int_equal(strlen(buf), need);
	return buf;
}

/* The value printed for name, or -1 when there is no such line. */
static long counter(const char *name)
{
	char *text = format_all();
	size_t len = strlen(name);
	long value = -1;

	for (char *line = text; *line; line = strchr(line, '\n') + 1) {
		if (strncmp(line, name, len) == 0 && line[len] == ' ') {
			value = strtol(line + len + 1, NULL, 10);
			break;
		}
	}
	free(text);
	return value;
}

static void test_every_counter_printed_even_zero(void **state)
{
	char *text = format_all();
	size_t lines = 0;
	(void)state;

	for (const char *p = text; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, API_LINES + OTHER_LINES);
	assert_non_null(strstr(text, "api_calls_DescribeRegions_ok 0\n"));
	assert_non_null(strstr(text, "api_calls_DescribeDiskReplicaPairProgress_transport 0\n"));
	assert_non_null(strstr(text, "api_calls_StopDiskReplicaPair_throttled 0\n"));
	assert_non_null(strstr(text, "api_attempts 0\napi_retries 0\napi_throttles 0\ncache_hits "
				     "0\ncache_misses 0\nreads_stale 0\n"));
	free(text);
}

static void test_counts(void **state)
{
	(void)state;
	for (int i = 0; i < 3; i++)
		stats_api_call(STATS_API_DESCRIBE_PAIRS, STATS_OK);
	stats_api_call(STATS_API_REPROTECT, STATS_CLIENT_ERROR);
	stats_api_call(STATS_API_FAILOVER, STATS_SERVER_ERROR);
	stats_api_call(STATS_API_COUNT, STATS_OK);	      /* out of range: ignored */
	stats_api_call(STATS_API_START, STATS_OUTCOME_COUNT); /* likewise */
	stats_api_attempt();
	stats_api_attempt();
	stats_api_retry();
	stats_api_throttle();
	stats_cache_hit();
	stats_cache_miss();
	stats_cache_miss();
	stats_read_stale();

	assert_int_equal(counter("api_calls_DescribeDiskReplicaPairs_ok"), 3);
	assert_int_equal(counter("api_calls_ReprotectDiskReplicaPair_client_error"), 1);
	assert_int_equal(counter("api_calls_FailoverDiskReplicaPair_server_error"), 1);
	assert_int_equal(counter("api_calls_StartDiskReplicaPair_ok"), 0);
	assert_int_equal(counter("api_attempts"), 2);
	assert_int_equal(counter("api_retries"), 1);
	assert_int_equal(counter("api_throttles"), 1);
	assert_int_equal(counter("cache_hits"), 1);
	assert_int_equal(counter("cache_misses"), 2);
	assert_int_equal(counter("reads_stale"), 1);
}

static void test_truncation_reports_needed_length(void **state)
{
	char *full = format_all();
	size_t need = strlen(full);
	char small[40];
	(void)state;

	memset(small, 'x', sizeof(small));
	assert_int_equal(stats_format_api(small, sizeof(small)), need);
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_memory_equal(small, full, sizeof(small) - 1);

	char one[1] = {'x'};
	assert_int_equal(stats_format_api(one, 1), need);
	assert_int_equal(one[0], '\0');
	free(full);
}

static void *hammer(void *arg)
{
	(void)arg;
	for (int i = 0; i < 10000; i++) {
		stats_cache_hit();
		stats_api_call(STATS_API_STOP, STATS_TRANSPORT);
	}
	return NULL;
}

static void test_concurrent_increments_are_not_lost(void **state)
{
	pthread_t threads[4];
	long before = counter("cache_hits");
	(void)state;

	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, hammer, NULL), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(threads[i], NULL);
	assert_int_equal(counter("cache_hits"), before + 40000);
	assert_int_equal(counter("api_calls_StopDiskReplicaPair_transport"), 40000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_counter_printed_even_zero),
	    cmocka_unit_test(test_counts),
	    cmocka_unit_test(test_truncation_reports_needed_length),
	    cmocka_unit_test(test_concurrent_increments_are_not_lost),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* State files rendered from records parsed out of real-shaped DescribeDiskReplicaPairs pages:
 * every kind (strings, numbers, times, enable_rtc, tags, pair.json), absent values, and the
 * snprintf-like truncation contract of attr_render(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ebsfs/attrs.h"
#include "ebsfs/ebs.h"

/* docs/ebs-api.md section 2.2.1's example, one record. */
static const char example_page[] =
    "{\"RequestId\": \"AAA478A0-BEE6-1D42-BEB6-A9CFEAD60001\", \"NextToken\": \"\",\n"
    " \"PageNumber\": 1, \"PageSize\": 10, \"TotalCount\": 1,\n"
    " \"ReplicaPairs\": [\n"
    "  {\"ReplicaPairId\": \"pair-cn-abc123\", \"PairName\": \"db-data\", \"Description\": \"\",\n"
    "   \"Status\": \"normal\", \"StatusMessage\": \"\",\n"
    "   \"SourceDiskId\": \"d-bp1aaaa\", \"SourceRegion\": \"cn-beijing\",\n"
    "   \"SourceZoneId\": \"cn-beijing-f\",\n"
    "   \"DestinationDiskId\": \"d-uf6bbbb\", \"DestinationRegion\": \"cn-shanghai\",\n"
    "   \"DestinationZoneId\": \"cn-shanghai-e\",\n"
    "   \"PrimaryRegion\": \"cn-beijing\", \"PrimaryZone\": \"cn-beijing-f\",\n"
    "   \"StandbyRegion\": \"cn-shanghai\", \"StandbyZone\": \"cn-shanghai-e\",\n"
    "   \"RPO\": 900, \"Bandwidth\": 10240, \"LastRecoverPoint\": 1704067200,\n"
    "   \"ChargeType\": \"PREPAY\", \"ExpiredTime\": 1706745600, \"CreateTime\": 1704060000,\n"
    "   \"ReplicaGroupId\": \"pg-0001\", \"ReplicaGroupName\": \"pg-name\",\n"
    "   \"Site\": \"production\", \"ResourceGroupId\": \"rg-acfmvs0001\", \"EnableRtc\": false,\n"
    "   \"Tags\": [ { \"TagKey\": \"env\", \"TagValue\": \"prod\" } ]\n"
    "  }\n"
    " ]\n"
    "}\n";

/* Parses a one-record page; the list owns the record. */
static const struct ebs_pair *parse_page(const char *body, struct ebs_pair_list *l)
{
	struct ebs_error err = {0};

	assert_int_equal(ebs_parse_pairs_page(body, strlen(body), l, NULL, &err), 0);
	assert_int_equal(l->n, 1);
	return l->items[0];
}

static const struct ebs_pair *parse_record(const char *record, struct ebs_pair_list *l)
{
	char body[4096];

	snprintf(body, sizeof(body), "{\"RequestId\":\"R\",\"ReplicaPairs\":[%s]}", record);
	return parse_page(body, l);
}

static const struct attr_def *attr(const char *name)
{
	int i = attr_find(name);

	assert_true(i >= 0);
	return &attr_table[i];
}

/* The whole content of state file name; checks the length contract on the way. */
static char *render(const char *name, const struct ebs_pair *p)
{
	const struct attr_def *a = attr(name);
	size_t n = attr_render(a, p, NULL, 0);
	char *buf = malloc(n + 1);

	assert_non_null(buf);
	assert_int_equal(attr_render(a, p, buf, n + 1), n);
	assert_int_equal(strlen(buf), n);
	return buf;
}

static void assert_renders(const char *name, const struct ebs_pair *p, const char *expected)
{
	char *got = render(name, p);

	assert_string_equal(got, expected);
	free(got);
}

/* A record of only an id plus extra, e.g. "\"RPO\": 5". */
static void assert_record_renders(const char *extra, const char *name, const char *expected)
{
	struct ebs_pair_list l = {0};
	char record[1024];

	snprintf(record, sizeof(record), "{\"ReplicaPairId\":\"pair-x\"%s%s}", extra[0] ? "," : "",
		 extra);
	assert_renders(name, parse_record(record, &l), expected);
	ebs_pair_list_free(&l);
}

static void strings_render_as_one_line(void **state)
{
	static const struct {
		const char *name, *value;
	} cases[] = {
	    {"status", "normal\n"},
	    {"status_message", "\n"},
	    {"site", "production\n"},
	    {"name", "db-data\n"},
	    {"description", "\n"},
	    {"source_disk_id", "d-bp1aaaa\n"},
	    {"source_region", "cn-beijing\n"},
	    {"source_zone_id", "cn-beijing-f\n"},
	    {"destination_disk_id", "d-uf6bbbb\n"},
	    {"destination_region", "cn-shanghai\n"},
	    {"destination_zone_id", "cn-shanghai-e\n"},
	    {"primary_region", "cn-beijing\n"},
	    {"primary_zone", "cn-beijing-f\n"},
	    {"standby_region", "cn-shanghai\n"},
	    {"standby_zone", "cn-shanghai-e\n"},
	    {"charge_type", "PREPAY\n"},
	    {"replica_group_id", "pg-0001\n"},
	    {"replica_group_name", "pg-name\n"},
	    {"resource_group_id", "rg-acfmvs0001\n"},
	};
	struct ebs_pair_list l = {0};
	const struct ebs_pair *p = parse_page(example_page, &l);
	size_t n_str = 0;
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_renders(cases[i].name, p, cases[i].value);
	/* Every string attribute of the table is in the list above. */
	for (size_t i = 0; i < attr_count; i++)
		n_str += attr_table[i].kind == ATTR_STR;
	assert_int_equal(n_str, sizeof(cases) / sizeof(cases[0]));
	ebs_pair_list_free(&l);
}

static void missing_or_null_strings_are_empty_lines(void **state)
{
	(void)state;
	assert_record_renders("", "status", "\n");
	assert_record_renders("\"Status\": null", "status", "\n");
	assert_record_renders("\"Status\": 42", "status", "\n");
	assert_record_renders("\"PairName\": \"d\\u00e9j\\u00e0 vu\"", "name",
			      "d\xc3\xa9j\xc3\xa0 vu\n");
	assert_record_renders("\"Status\": \"some_future_status\"", "status",
			      "some_future_status\n");
}

static void numbers_render_in_decimal(void **state)
{
	struct ebs_pair_list l = {0};
	const struct ebs_pair *p = parse_page(example_page, &l);
	(void)state;

	assert_renders("rpo", p, "900\n");
	assert_renders("bandwidth", p, "10240\n");
	ebs_pair_list_free(&l);

	assert_record_renders("\"Bandwidth\": 0", "bandwidth", "0\n");
	assert_record_renders("\"RPO\": -1", "rpo", "-1\n");
	assert_record_renders("\"RPO\": 9223372036854775807", "rpo", "9223372036854775807\n");
	assert_record_renders("\"RPO\": 900.0", "rpo", "900\n");
}

static void absent_numbers_are_empty_lines(void **state)
{
	(void)state;
	assert_record_renders("", "rpo", "\n");
	assert_record_renders("", "bandwidth", "\n");
	assert_record_renders("\"RPO\": null", "rpo", "\n");
	assert_record_renders("\"RPO\": \"900\"", "rpo", "\n");
	assert_record_renders("\"Bandwidth\": true", "bandwidth", "\n");
	assert_record_renders("\"Bandwidth\": [1]", "bandwidth", "\n");
}

static void times_render_as_iso8601_utc(void **state)
{
	struct ebs_pair_list l = {0};
	const struct ebs_pair *p = parse_page(example_page, &l);
	(void)state;

	assert_renders("last_recover_point", p, "2024-01-01T00:00:00Z\n");
	assert_renders("create_time", p, "2023-12-31T22:00:00Z\n");
	assert_renders("expired_time", p, "2024-02-01T00:00:00Z\n");
	ebs_pair_list_free(&l);

	/* Milliseconds are detected by magnitude. */
	assert_record_renders("\"CreateTime\": 1704060000123", "create_time",
			      "2023-12-31T22:00:00Z\n");
	assert_record_renders("\"LastRecoverPoint\": 1", "last_recover_point",
			      "1970-01-01T00:00:01Z\n");
	assert_record_renders("\"ExpiredTime\": 4102444800", "expired_time",
			      "2100-01-01T00:00:00Z\n");
}

static void absent_or_zero_times_are_empty_lines(void **state)
{
	(void)state;
	assert_record_renders("", "last_recover_point", "\n");
	assert_record_renders("\"LastRecoverPoint\": 0", "last_recover_point", "\n");
	assert_record_renders("\"ExpiredTime\": 0", "expired_time", "\n");
	assert_record_renders("\"CreateTime\": null", "create_time", "\n");
	assert_record_renders("\"CreateTime\": \"2024-01-01T00:00:00Z\"", "create_time", "\n");
	assert_record_renders("\"CreateTime\": -5", "create_time", "\n");
}

static void enable_rtc_is_true_false_or_empty(void **state)
{
	struct ebs_pair_list l = {0};
	(void)state;

	assert_renders("enable_rtc", parse_page(example_page, &l), "false\n");
	ebs_pair_list_free(&l);
	assert_record_renders("\"EnableRtc\": true", "enable_rtc", "true\n");
	assert_record_renders("\"EnableRtc\": false", "enable_rtc", "false\n");
	assert_record_renders("", "enable_rtc", "\n");
	assert_record_renders("\"EnableRtc\": null", "enable_rtc", "\n");
	assert_record_renders("\"EnableRtc\": \"true\"", "enable_rtc", "\n");
	assert_record_renders("\"EnableRtc\": 1", "enable_rtc", "\n");
}

static void tags_are_sorted_lines(void **state)
{
	struct ebs_pair_list l = {0};
	(void)state;

	assert_renders("tags", parse_page(example_page, &l), "env=prod\n");
	ebs_pair_list_free(&l);
	assert_record_renders("\"Tags\": [{\"TagKey\": \"zone\", \"TagValue\": \"b\"},"
			      " {\"TagKey\": \"app\", \"TagValue\": \"db\"},"
			      " {\"TagKey\": \"owner\", \"TagValue\": \"\"},"
			      " {\"TagKey\": \"Env\", \"TagValue\": \"x=y\"}]",
			      "tags", "Env=x=y\napp=db\nowner=\nzone=b\n");
	/* A line break inside a key or value would split a line. */
	assert_record_renders("\"Tags\": [{\"TagKey\": \"a\\nb\", \"TagValue\": \"c\\r\\nd\"}]",
			      "tags", "a b=c  d\n");
	/* Tags without a key are dropped. */
	assert_record_renders("\"Tags\": [{\"TagKey\": \"\", \"TagValue\": \"v\"}, {\"TagValue\": "
			      "\"w\"}, {\"TagKey\": \"k\", \"TagValue\": \"v\"}]",
			      "tags", "k=v\n");
}

static void no_tags_is_an_empty_file(void **state)
{
	(void)state;
	assert_record_renders("", "tags", "");
	assert_record_renders("\"Tags\": []", "tags", "");
	assert_record_renders("\"Tags\": null", "tags", "");
	assert_record_renders("\"Tags\": {\"TagKey\": \"k\"}", "tags", "");
}

static void pair_json_is_the_compact_record_and_a_newline(void **state)
{
	struct ebs_pair_list l = {0};
	const struct ebs_pair *p = parse_page(example_page, &l);
	char *json = render("pair.json", p);
	size_t n = strlen(json);
	(void)state;

	assert_true(n > 2);
	assert_int_equal(json[n - 1], '\n');
	assert_null(strstr(json, "\": ")); /* compact */
	assert_null(strstr(json, ", \""));
	assert_null(memchr(json, '\n', n - 1));
	assert_non_null(strstr(json, "{\"ReplicaPairId\":\"pair-cn-abc123\",\"PairName\":"
				     "\"db-data\",\"Description\":\"\","));
	assert_non_null(strstr(json, "\"Tags\":[{\"TagKey\":\"env\",\"TagValue\":\"prod\"}]}\n"));
	free(json);
	ebs_pair_list_free(&l);

	assert_record_renders(
	    "\"RPO\": 900, \"Extra\": {\"a\": [1, 2]}", "pair.json",
	    "{\"ReplicaPairId\":\"pair-x\",\"RPO\":900,\"Extra\":{\"a\":[1,2]}}\n");
	/* As the API returned it: milliseconds stay milliseconds, unknown keys stay. */
	assert_record_renders("\"CreateTime\": 1704060000123", "pair.json",
			      "{\"ReplicaPairId\":\"pair-x\",\"CreateTime\":1704060000123}\n");
}

static void truncation_returns_the_full_length(void **state)
{
	struct ebs_pair_list l = {0};
	const struct ebs_pair *p = parse_page(example_page, &l);
	char buf[64];
	(void)state;

	/* "normal\n" is 7 bytes. */
	assert_int_equal(attr_render(attr("status"), p, NULL, 0), 7);
	memset(buf, 'X', sizeof(buf));
	assert_int_equal(attr_render(attr("status"), p, buf, 0), 7);
	assert_int_equal(buf[0], 'X'); /* len 0: nothing written */
	assert_int_equal(attr_render(attr("status"), p, buf, 1), 7);
	assert_string_equal(buf, "");
	assert_int_equal(attr_render(attr("status"), p, buf, 4), 7);
	assert_string_equal(buf, "nor");
	assert_int_equal(attr_render(attr("status"), p, buf, 7), 7);
	assert_string_equal(buf, "normal");
	assert_int_equal(attr_render(attr("status"), p, buf, 8), 7);
	assert_string_equal(buf, "normal\n");

	/* Every kind follows the same rule. */
	static const char *const names[] = {"rpo",  "create_time", "enable_rtc",
					    "tags", "pair.json",   "status_message"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char *full = render(names[i], p);
		size_t n = strlen(full);

		for (size_t cap = 1; cap <= n + 1 && cap <= sizeof(buf); cap++) {
			memset(buf, 'X', sizeof(buf));
			assert_int_equal(attr_render(attr(names[i]), p, buf, cap), n);
			size_t got = strlen(buf);
			assert_int_equal(got, cap - 1 < n ? cap - 1 : n);
			assert_memory_equal(buf, full, got);
		}
		memset(buf, 'X', sizeof(buf));
		assert_int_equal(attr_render(attr(names[i]), p, buf, 0), n);
		assert_int_equal(buf[0], 'X');
		free(full);
	}
	ebs_pair_list_free(&l);
}

static void every_state_file_ends_with_a_newline(void **state)
{
	struct ebs_pair_list l = {0};
	const struct ebs_pair *p = parse_page(example_page, &l);
	(void)state;

	for (size_t i = 0; i < attr_count; i++) {
		if (attr_table[i].kind == ATTR_PROGRESS)
			continue;
		char *v = render(attr_table[i].name, p);
		size_t n = strlen(v);

		assert_true(n >= 1);
		assert_int_equal(v[n - 1], '\n');
		free(v);
	}
	ebs_pair_list_free(&l);
}

static void attr_find_knows_every_name(void **state)
{
	static const char *const expected[] = {
	    "status",
	    "status_message",
	    "site",
	    "name",
	    "description",
	    "source_disk_id",
	    "source_region",
	    "source_zone_id",
	    "destination_disk_id",
	    "destination_region",
	    "destination_zone_id",
	    "primary_region",
	    "primary_zone",
	    "standby_region",
	    "standby_zone",
	    "rpo",
	    "bandwidth",
	    "last_recover_point",
	    "create_time",
	    "expired_time",
	    "charge_type",
	    "enable_rtc",
	    "replica_group_id",
	    "replica_group_name",
	    "resource_group_id",
	    "tags",
	    "pair.json",
	    "progress",
	};
	(void)state;

	assert_int_equal(attr_count, sizeof(expected) / sizeof(expected[0]));
	for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
		int k = attr_find(expected[i]);

		assert_true(k >= 0);
		assert_string_equal(attr_table[k].name, expected[i]);
	}
	for (size_t i = 0; i < attr_count; i++)
		assert_int_equal(attr_find(attr_table[i].name), (int)i);
	assert_int_equal(attr_table[attr_find("progress")].kind, ATTR_PROGRESS);
	assert_int_equal(attr_table[attr_find("pair.json")].kind, ATTR_JSON);
	assert_int_equal(attr_table[attr_find("tags")].kind, ATTR_TAGS);
	assert_int_equal(attr_table[attr_find("enable_rtc")].kind, ATTR_BOOL);
	assert_int_equal(attr_table[attr_find("rpo")].kind, ATTR_NUM);
	assert_int_equal(attr_table[attr_find("create_time")].kind, ATTR_TIME);
}

static void attr_find_refuses_other_names(void **state)
{
	static const char *const names[] = {
	    "",		 "Status",   "status\n",  "status ", "stat",
	    "statuses",	 "pair",     "pair.JSON", ".",	     "..",
	    "reprotect", "failover", "start",	  "stop",    "source_region_id",
	    "progress/"};
	(void)state;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_int_equal(attr_find(names[i]), -1);
}

static void progress_renders_a_percent_line(void **state)
{
	char buf[16];
	(void)state;

	assert_int_equal(attr_render_progress(0, buf, sizeof(buf)), 2);
	assert_string_equal(buf, "0\n");
	assert_int_equal(attr_render_progress(42, buf, sizeof(buf)), 3);
	assert_string_equal(buf, "42\n");
	assert_int_equal(attr_render_progress(100, buf, sizeof(buf)), 4);
	assert_string_equal(buf, "100\n");
	assert_int_equal(attr_render_progress(100, buf, 3), 4);
	assert_string_equal(buf, "10");
	assert_int_equal(attr_render_progress(7, NULL, 0), 2);
}

static void format_time_edges(void **state)
{
	char buf[32];
	(void)state;

	attr_format_time(1704067200, buf, sizeof(buf));
	assert_string_equal(buf, "2024-01-01T00:00:00Z");
	attr_format_time(951782400, buf, sizeof(buf)); /* leap day */
	assert_string_equal(buf, "2000-02-29T00:00:00Z");
	memset(buf, 'X', sizeof(buf));
	attr_format_time(0, buf, sizeof(buf));
	assert_string_equal(buf, "");
	memset(buf, 'X', sizeof(buf));
	attr_format_time(-1, buf, sizeof(buf));
	assert_string_equal(buf, "");
	memset(buf, 'X', sizeof(buf));
	attr_format_time(0, buf, 0);
	assert_int_equal(buf[0], 'X');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(strings_render_as_one_line),
	    cmocka_unit_test(missing_or_null_strings_are_empty_lines),
	    cmocka_unit_test(numbers_render_in_decimal),
	    cmocka_unit_test(absent_numbers_are_empty_lines),
	    cmocka_unit_test(times_render_as_iso8601_utc),
	    cmocka_unit_test(absent_or_zero_times_are_empty_lines),
	    cmocka_unit_test(enable_rtc_is_true_false_or_empty),
	    cmocka_unit_test(tags_are_sorted_lines),
	    cmocka_unit_test(no_tags_is_an_empty_file),
	    cmocka_unit_test(pair_json_is_the_compact_record_and_a_newline),
	    cmocka_unit_test(truncation_returns_the_full_length),
	    cmocka_unit_test(every_state_file_ends_with_a_newline),
	    cmocka_unit_test(attr_find_knows_every_name),
	    cmocka_unit_test(attr_find_refuses_other_names),
	    cmocka_unit_test(progress_renders_a_percent_line),
	    cmocka_unit_test(format_time_edges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

#include "ebsfs/attrs.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

const struct attr_def attr_table[] = {
    {"status", ATTR_STR, EBS_STATUS},
    {"status_message", ATTR_STR, EBS_STATUS_MESSAGE},
    {"site", ATTR_STR, EBS_SITE},
    {"name", ATTR_STR, EBS_NAME},
    {"description", ATTR_STR, EBS_DESCRIPTION},
    {"source_disk_id", ATTR_STR, EBS_SOURCE_DISK_ID},
    {"source_region", ATTR_STR, EBS_SOURCE_REGION},
    {"source_zone_id", ATTR_STR, EBS_SOURCE_ZONE_ID},
    {"destination_disk_id", ATTR_STR, EBS_DESTINATION_DISK_ID},
    {"destination_region", ATTR_STR, EBS_DESTINATION_REGION},
    {"destination_zone_id", ATTR_STR, EBS_DESTINATION_ZONE_ID},
    {"primary_region", ATTR_STR, EBS_PRIMARY_REGION},
    {"primary_zone", ATTR_STR, EBS_PRIMARY_ZONE},
    {"standby_region", ATTR_STR, EBS_STANDBY_REGION},
    {"standby_zone", ATTR_STR, EBS_STANDBY_ZONE},
    {"rpo", ATTR_NUM, EBS_RPO},
    {"bandwidth", ATTR_NUM, EBS_BANDWIDTH},
    {"last_recover_point", ATTR_TIME, EBS_LAST_RECOVER_POINT},
    {"create_time", ATTR_TIME, EBS_CREATE_TIME},
    {"expired_time", ATTR_TIME, EBS_EXPIRED_TIME},
    {"charge_type", ATTR_STR, EBS_CHARGE_TYPE},
    {"enable_rtc", ATTR_BOOL, 0},
    {"replica_group_id", ATTR_STR, EBS_REPLICA_GROUP_ID},
    {"replica_group_name", ATTR_STR, EBS_REPLICA_GROUP_NAME},
    {"resource_group_id", ATTR_STR, EBS_RESOURCE_GROUP_ID},
    {"tags", ATTR_TAGS, 0},
    {"pair.json", ATTR_JSON, 0},
    {"progress", ATTR_PROGRESS, 0},
};

const size_t attr_count = sizeof(attr_table) / sizeof(attr_table[0]);

int attr_find(const char *name)
{
	for (size_t i = 0; i < attr_count; i++)
		if (strcmp(attr_table[i].name, name) == 0)
			return (int)i;
	return -1;
}

void attr_format_time(long long t, char *buf, size_t len)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (t <= 0 || !gmtime_r(&tt, &tm)) {
		if (len)
			buf[0] = '\0';
		return;
	}
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Copies s into buf the way snprintf would, returning strlen(s). */
static size_t copy_out(const char *s, char *buf, size_t len)
{
	size_t n = strlen(s);

	if (len) {
		size_t c = n < len - 1 ? n : len - 1;
		memcpy(buf, s, c);
		buf[c] = '\0';
	}
	return n;
}

/* The value and a newline, snprintf-style. Control characters become spaces: a Description
 * holding a line break must not turn a one-value file into two lines. */
static size_t render_line(const char *value, char *buf, size_t len)
{
	size_t n = strlen(value);

	if (len == 0)
		return n + 1;
	size_t copied = n + 1 < len - 1 ? n + 1 : len - 1;
	for (size_t i = 0; i < copied; i++) {
		unsigned char c = i < n ? (unsigned char)value[i] : '\n';
		buf[i] = (i < n && (c < 0x20 || c == 0x7f)) ? ' ' : (char)c;
	}
	buf[copied] = '\0';
	return n + 1;
}

size_t attr_render(const struct attr_def *a, const struct ebs_pair *p, char *buf, size_t len)
{
	char tmp[64];

	switch (a->kind) {
	case ATTR_STR:
		return render_line(p->str[a->field], buf, len);
	case ATTR_NUM:
		tmp[0] = '\0';
		if (p->num_present & (1u << a->field))
			snprintf(tmp, sizeof(tmp), "%" PRId64, p->num[a->field]);
		return render_line(tmp, buf, len);
	case ATTR_TIME:
		tmp[0] = '\0';
		if (p->num_present & (1u << a->field))
			attr_format_time(p->num[a->field], tmp, sizeof(tmp));
		return render_line(tmp, buf, len);
	case ATTR_BOOL:
		return render_line(p->enable_rtc < 0 ? ""
				   : p->enable_rtc   ? "true"
						     : "false",
				   buf, len);
	case ATTR_TAGS:
		return copy_out(p->tags, buf, len);
	case ATTR_JSON:
		return render_line(p->json, buf, len);
	case ATTR_PROGRESS:
		break;
	}
	return copy_out("", buf, len);
}

size_t attr_render_progress(int percent, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%d\n", percent);
	return n < 0 ? 0 : (size_t)n;
}

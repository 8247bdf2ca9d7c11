/* Process-wide counters. Relaxed atomics: each counter is independent and only ever read
 * for display, so no ordering between them is needed. */
#include "ebsfs/stats.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

static const char *const api_names[STATS_API_COUNT] = {
    [STATS_API_DESCRIBE_REGIONS] = "DescribeRegions",
    [STATS_API_DESCRIBE_PAIRS] = "DescribeDiskReplicaPairs",
    [STATS_API_DESCRIBE_PROGRESS] = "DescribeDiskReplicaPairProgress",
    [STATS_API_REPROTECT] = "ReprotectDiskReplicaPair",
    [STATS_API_FAILOVER] = "FailoverDiskReplicaPair",
    [STATS_API_START] = "StartDiskReplicaPair",
    [STATS_API_STOP] = "StopDiskReplicaPair",
};

static const char *const outcome_names[STATS_OUTCOME_COUNT] = {
    [STATS_OK] = "ok",
    [STATS_CLIENT_ERROR] = "client_error",
    [STATS_SERVER_ERROR] = "server_error",
    [STATS_THROTTLED] = "throttled",
    [STATS_TRANSPORT] = "transport",
};

static atomic_ulong api_calls[STATS_API_COUNT][STATS_OUTCOME_COUNT];
static atomic_ulong api_attempts;
static atomic_ulong api_retries;
static atomic_ulong api_throttles;
static atomic_ulong cache_hits;
static atomic_ulong cache_misses;
static atomic_ulong reads_stale;

static void bump(atomic_ulong *counter)
{
	atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

static unsigned long peek(atomic_ulong *counter)
{
	return atomic_load_explicit(counter, memory_order_relaxed);
}

void stats_api_call(enum stats_api api, enum stats_outcome outcome)
{
	if ((unsigned)api < STATS_API_COUNT && (unsigned)outcome < STATS_OUTCOME_COUNT)
		bump(&api_calls[api][outcome]);
}

void stats_api_attempt(void)
{
	bump(&api_attempts);
}

void stats_api_retry(void)
{
	bump(&api_retries);
}

void stats_api_throttle(void)
{
	bump(&api_throttles);
}

void stats_cache_hit(void)
{
	bump(&cache_hits);
}

void stats_cache_miss(void)
{
	bump(&cache_misses);
}

void stats_read_stale(void)
{
	bump(&reads_stale);
}

/* snprintf at buf + *used, keeping *used the length the full output needs even once buf is
 * full, so the caller can size a second attempt. */
__attribute__((format(printf, 4, 5))) static void append(char *buf, size_t len, size_t *used,
							 const char *fmt, ...)
{
	va_list ap;
	size_t room = *used < len ? len - *used : 0;

	va_start(ap, fmt);
	int n = vsnprintf(room ? buf + *used : NULL, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		*used += (size_t)n;
}

size_t stats_format_api(char *buf, size_t len)
{
	size_t used = 0;

	if (len > 0)
		buf[0] = '\0';
	for (int a = 0; a < STATS_API_COUNT; a++) {
		for (int o = 0; o < STATS_OUTCOME_COUNT; o++)
			append(buf, len, &used, "api_calls_%s_%s %lu\n", api_names[a],
			       outcome_names[o], peek(&api_calls[a][o]));
	}
	append(buf, len, &used, "api_attempts %lu\n", peek(&api_attempts));
	append(buf, len, &used, "api_retries %lu\n", peek(&api_retries));
	append(buf, len, &used, "api_throttles %lu\n", peek(&api_throttles));
	append(buf, len, &used, "cache_hits %lu\n", peek(&cache_hits));
	append(buf, len, &used, "cache_misses %lu\n", peek(&cache_misses));
	append(buf, len, &used, "reads_stale %lu\n", peek(&reads_stale));
	return used;
}

/* Process-wide counters behind .ebsfs/stats. Every function is thread-safe and lock-free. */
#ifndef EBSFS_STATS_H
#define EBSFS_STATS_H

#include <stddef.h>

enum stats_api {
	STATS_API_DESCRIBE_REGIONS,
	STATS_API_DESCRIBE_PAIRS,
	STATS_API_DESCRIBE_PROGRESS,
	STATS_API_REPROTECT,
	STATS_API_FAILOVER,
	STATS_API_START,
	STATS_API_STOP,
	STATS_API_COUNT
};

/* Outcome of one logical API call (after retries). */
enum stats_outcome {
	STATS_OK,
	STATS_CLIENT_ERROR, /* 4xx answered by the API, not throttling */
	STATS_SERVER_ERROR, /* 5xx after every retry */
	STATS_THROTTLED,    /* still throttled after every retry */
	STATS_TRANSPORT,    /* connect/timeout/malformed: no usable answer */
	STATS_OUTCOME_COUNT
};

void stats_api_call(enum stats_api api, enum stats_outcome outcome);
void stats_api_attempt(void);  /* one HTTP attempt sent */
void stats_api_retry(void);    /* an attempt repeated after a retryable failure */
void stats_api_throttle(void); /* a throttling answer received */
void stats_cache_hit(void);
void stats_cache_miss(void);
void stats_read_stale(void); /* a value served while its region's last sweep failed */

/* Appends "name value\n" lines of the counters above to buf; returns bytes written or needed. */
size_t stats_format_api(char *buf, size_t len);

#endif

/* A token bucket shared by every API call (DESIGN.md section 4): Alibaba throttles per account,
 * so a find storm must leave room for the user's other tools. Thread-safe, CLOCK_MONOTONIC. */
#ifndef EBSFS_RATELIMIT_H
#define EBSFS_RATELIMIT_H

#include <stdint.h>

struct ratelimit;

/* max_rps tokens per second, burst max(1, max_rps). max_rps <= 0 means unlimited. 0 or -ENOMEM. */
int ratelimit_new(double max_rps, struct ratelimit **out);
void ratelimit_free(struct ratelimit *rl);

/* Blocks until a token is ours. deadline_ms is CLOCK_MONOTONIC milliseconds (http_now_ms());
 * -ETIMEDOUT, without taking a token, when none can be had before it. */
int ratelimit_acquire(struct ratelimit *rl, int64_t deadline_ms);

/* The accounting behind ratelimit_acquire at a given time, exposed for unit tests: reserves the
 * next token and sets *wait_ns to how long the caller must wait for it (0: at once), or returns
 * -ETIMEDOUT, reserving nothing, when that wait would end after deadline_ns. Callers waiting
 * together are served in reservation order. */
int ratelimit_reserve(struct ratelimit *rl, int64_t now_ns, int64_t deadline_ns, int64_t *wait_ns);

#endif

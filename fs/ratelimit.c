/* A token bucket written as GCRA: one "theoretical arrival time" instead of a token count, so
 * a reservation is a single addition and waiters queue up in the order they reserved. */
#include "ebsfs/ratelimit.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#define NS_PER_SEC 1000000000LL
#define NS_PER_MS  1000000LL

struct ratelimit {
	pthread_mutex_t lock;
	int64_t interval_ns;  /* one token every interval; 0: unlimited */
	int64_t tolerance_ns; /* burst * interval: how far ahead of now the schedule may run */
	int64_t tat_ns;	      /* when the bucket will be full again */
};

int ratelimit_new(double max_rps, struct ratelimit **out)
{
	struct ratelimit *rl = calloc(1, sizeof(*rl));

	if (!rl)
		return -ENOMEM;
	if (max_rps > 0) {
		double burst = max_rps < 1 ? 1 : max_rps;

		rl->interval_ns = (int64_t)((double)NS_PER_SEC / max_rps);
		if (rl->interval_ns < 1)
			rl->interval_ns = 1;
		rl->tolerance_ns = (int64_t)(burst * (double)rl->interval_ns);
	}
	pthread_mutex_init(&rl->lock, NULL);
	*out = rl;
	return 0;
}

void ratelimit_free(struct ratelimit *rl)
{
	if (!rl)
		return;
	pthread_mutex_destroy(&rl->lock);
	free(rl);
}

int ratelimit_reserve(struct ratelimit *rl, int64_t now_ns, int64_t deadline_ns, int64_t *wait_ns)
{
	int64_t base, next_tat, start;

	*wait_ns = 0;
	if (rl->interval_ns == 0)
		return 0;
	base = rl->tat_ns > now_ns ? rl->tat_ns : now_ns;
	next_tat = base + rl->interval_ns;
	start = next_tat - rl->tolerance_ns;
	if (start > now_ns) {
		if (start > deadline_ns)
			return -ETIMEDOUT;
		*wait_ns = start - now_ns;
	}
	rl->tat_ns = next_tat;
	return 0;
}

static int64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

static void sleep_until_ns(int64_t when_ns)
{
	struct timespec ts = {.tv_sec = when_ns / NS_PER_SEC, .tv_nsec = when_ns % NS_PER_SEC};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static int64_t ms_to_ns_saturated(int64_t ms)
{
	if (ms > INT64_MAX / NS_PER_MS)
		return INT64_MAX;
	if (ms < 0)
		return 0;
	return ms * NS_PER_MS;
}

int ratelimit_acquire(struct ratelimit *rl, int64_t deadline_ms)
{
	int64_t now = monotonic_ns();
	int64_t wait;
	int rc;

	pthread_mutex_lock(&rl->lock);
	rc = ratelimit_reserve(rl, now, ms_to_ns_saturated(deadline_ms), &wait);
	pthread_mutex_unlock(&rl->lock);
	if (rc == 0 && wait > 0)
		sleep_until_ns(now + wait);
	return rc;
}

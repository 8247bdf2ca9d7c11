/* The token bucket: accounting checked on a fake clock through ratelimit_reserve(), and the
 * blocking acquire checked by counting, never by timing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "ebsfs/ratelimit.h"

#define MS	1000000LL
#define T0	(1000 * MS)
#define FOREVER INT64_MAX

static struct ratelimit *bucket(double rps)
{
	struct ratelimit *rl = NULL;

	assert_int_equal(ratelimit_new(rps, &rl), 0);
	assert_non_null(rl);
	return rl;
}

static int64_t reserve_wait(struct ratelimit *rl, int64_t now, int64_t deadline)
{
	int64_t wait = -1;

	assert_int_equal(ratelimit_reserve(rl, now, deadline, &wait), 0);
	return wait;
}

static void burst_is_max_rps_then_one_per_interval(void **state)
{
	struct ratelimit *rl = bucket(10);

	for (int i = 0; i < 10; i++)
		assert_int_equal(reserve_wait(rl, T0, FOREVER), 0);
	assert_int_equal(reserve_wait(rl, T0, FOREVER), 100 * MS);
	assert_int_equal(reserve_wait(rl, T0, FOREVER), 200 * MS);
	assert_int_equal(reserve_wait(rl, T0, FOREVER), 300 * MS);
	ratelimit_free(rl);
}

static void refill_never_exceeds_the_burst(void **state)
{
	struct ratelimit *rl = bucket(5);
	int64_t later = T0 + 60000 * MS;

	assert_int_equal(reserve_wait(rl, T0, FOREVER), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(reserve_wait(rl, later, FOREVER), 0);
	assert_int_equal(reserve_wait(rl, later, FOREVER), 200 * MS);
	ratelimit_free(rl);
}

static void tokens_come_back_at_the_rate(void **state)
{
	struct ratelimit *rl = bucket(10);

	for (int i = 0; i < 10; i++)
		reserve_wait(rl, T0, FOREVER);
	/* 250 ms later two tokens are back, a third is 50 ms away. */
	assert_int_equal(reserve_wait(rl, T0 + 250 * MS, FOREVER), 0);
	assert_int_equal(reserve_wait(rl, T0 + 250 * MS, FOREVER), 0);
	assert_int_equal(reserve_wait(rl, T0 + 250 * MS, FOREVER), 50 * MS);
	ratelimit_free(rl);
}

static void deadline_refuses_without_taking_a_token(void **state)
{
	struct ratelimit *rl = bucket(10);
	int64_t wait = 0;

	for (int i = 0; i < 10; i++)
		reserve_wait(rl, T0, FOREVER);
	assert_int_equal(ratelimit_reserve(rl, T0, T0 + 99 * MS, &wait), -ETIMEDOUT);
	assert_int_equal(ratelimit_reserve(rl, T0, T0 + 99 * MS, &wait), -ETIMEDOUT);
	/* The refused callers reserved nothing: the next slot is still the first one. */
	assert_int_equal(reserve_wait(rl, T0, T0 + 100 * MS), 100 * MS);
	ratelimit_free(rl);
}

static void below_one_per_second_has_a_burst_of_one(void **state)
{
	struct ratelimit *rl = bucket(0.5);

	assert_int_equal(reserve_wait(rl, T0, FOREVER), 0);
	assert_int_equal(reserve_wait(rl, T0, FOREVER), 2000 * MS);
	ratelimit_free(rl);
}

static void zero_means_unlimited(void **state)
{
	struct ratelimit *rl = bucket(0);

	for (int i = 0; i < 100000; i++)
		assert_int_equal(reserve_wait(rl, T0, T0), 0);
	ratelimit_free(rl);
}

static int64_t monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void acquire_counts_tokens_and_honours_the_deadline(void **state)
{
	struct ratelimit *rl = bucket(20);
	int granted = 0;

	for (int i = 0; i < 20; i++)
		granted += ratelimit_acquire(rl, monotonic_ms() + 1000) == 0;
	assert_int_equal(granted, 20);
	/* The bucket is empty; the next token is 50 ms away. */
	assert_int_equal(ratelimit_acquire(rl, monotonic_ms() + 5), -ETIMEDOUT);
	assert_int_equal(ratelimit_acquire(rl, monotonic_ms() + 1000), 0);
	ratelimit_free(rl);
}

struct worker {
	struct ratelimit *rl;
	int granted;
};

static void *acquire_ten(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < 10; i++)
		w->granted += ratelimit_acquire(w->rl, monotonic_ms() + 5000) == 0;
	return NULL;
}

static void concurrent_callers_all_get_their_tokens(void **state)
{
	struct ratelimit *rl = bucket(400);
	struct worker w[4];
	pthread_t t[4];
	int total = 0;

	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){rl, 0};
		assert_int_equal(pthread_create(&t[i], NULL, acquire_ten, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		total += w[i].granted;
	}
	assert_int_equal(total, 40);
	ratelimit_free(rl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(burst_is_max_rps_then_one_per_interval),
	    cmocka_unit_test(refill_never_exceeds_the_burst),
	    cmocka_unit_test(tokens_come_back_at_the_rate),
	    cmocka_unit_test(deadline_refuses_without_taking_a_token),
	    cmocka_unit_test(below_one_per_second_has_a_burst_of_one),
	    cmocka_unit_test(zero_means_unlimited),
	    cmocka_unit_test(acquire_counts_tokens_and_honours_the_deadline),
	    cmocka_unit_test(concurrent_callers_all_get_their_tokens),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

#include "ebsfs/control.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ebsfs/attrs.h"
#include "ebsfs/log.h"
#include "ebsfs/sign.h"

const char *const control_names[EBS_ACTION_COUNT] = {
    [EBS_REPROTECT] = "reprotect",
    [EBS_FAILOVER] = "failover",
    [EBS_START] = "start",
    [EBS_STOP] = "stop",
};

/* Outcomes counted per control file, in the order of DESIGN.md's errno table. */
static const int counted_errnos[] = {0, EINVAL, EBUSY, EACCES, ENOENT, EAGAIN, ETIMEDOUT, EIO};
#define N_COUNTED (sizeof(counted_errnos) / sizeof(counted_errnos[0]))
static atomic_ulong write_counts[EBS_ACTION_COUNT + 1][N_COUNTED];

/* One API call in flight; writers of the same action on the same pair join it. */
struct inflight {
	struct inflight *next;
	char pair_id[128];
	int action;
	bool done;
	uint64_t done_ms; /* monotonic ms the call ended: later writes may still join it */
	int rc;
	int waiters;
	char line[512];
	char token[40];
	char request_id[80];
	char region[64]; /* where the call was sent */
};

#define JOIN_WINDOW_MS 200

static pthread_mutex_t inflight_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t inflight_cond = PTHREAD_COND_INITIALIZER;
static struct inflight *inflight_head;

int control_find(const char *name)
{
	for (int i = 0; i < EBS_ACTION_COUNT; i++)
		if (strcmp(control_names[i], name) == 0)
			return i;
	return -1;
}

int control_parse_input(const char *buf, size_t len, long long off)
{
	if (off != 0)
		return -EINVAL;
	if (len == 1 && buf[0] == '1')
		return 0;
	if (len == 2 && buf[0] == '1' && buf[1] == '\n')
		return 0;
	return -EINVAL;
}

static void count_write(int file, int err)
{
	for (size_t i = 0; i < N_COUNTED; i++) {
		if (counted_errnos[i] == err) {
			atomic_fetch_add_explicit(&write_counts[file][i], 1, memory_order_relaxed);
			return;
		}
	}
	atomic_fetch_add_explicit(&write_counts[file][N_COUNTED - 1], 1, memory_order_relaxed);
}

static const char *errno_name(int err)
{
	switch (err) {
	case 0:
		return "ok";
	case EINVAL:
		return "EINVAL";
	case EBUSY:
		return "EBUSY";
	case EACCES:
		return "EACCES";
	case ENOENT:
		return "ENOENT";
	case EAGAIN:
		return "EAGAIN";
	case ETIMEDOUT:
		return "ETIMEDOUT";
	default:
		return "EIO";
	}
}

/* A ClientToken: a UUID v4, ASCII and well under the API's 64 characters. */
static int make_token(char *out, size_t len)
{
	char hex[33];

	if (sign_random_hex(hex, 16) < 0)
		return -EIO;
	hex[12] = '4';
	hex[16] = "89ab"[hex[16] % 4];
	snprintf(out, len, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
	return 0;
}

static void now_iso(char *buf, size_t len)
{
	attr_format_time((long long)time(NULL), buf, len);
}

/* The region the API wants the action sent to: reprotect and failover go to the region of the
 * pair's current secondary disk; start and stop work in either, so the directory's own. */
static void action_region(struct cache *cache, uint32_t slot, int action, uint32_t dir_region,
			  char *buf, size_t len)
{
	buf[0] = '\0';
	if (action == EBS_REPROTECT || action == EBS_FAILOVER)
		cache_pair_field(cache, slot, EBS_DESTINATION_REGION, buf, len);
	if (!buf[0])
		snprintf(buf, len, "%s", cache_region_name(cache, dir_region));
}

static void call_api(struct cache *cache, struct ebs_client *ebs, uint32_t slot,
		     uint32_t dir_region, struct inflight *f)
{
	struct ebs_error err = {0};
	char region[64], ts[32], status[64] = "";

	now_iso(ts, sizeof(ts));
	action_region(cache, slot, f->action, dir_region, region, sizeof(region));
	snprintf(f->region, sizeof(f->region), "%s", region);
	if (make_token(f->token, sizeof(f->token)) < 0) {
		f->rc = -EIO;
		snprintf(f->line, sizeof(f->line), "%s error NoRandomness: cannot make a token\n",
			 ts);
		return;
	}
	f->rc = ebs_act(ebs, f->action, region, f->pair_id, f->token, f->request_id,
			sizeof(f->request_id), &err);
	if (f->rc == 0) {
		snprintf(f->line, sizeof(f->line), "%s ok request_id=%s\n", ts, f->request_id);
		cache_refresh_pair(cache, f->pair_id);
		return;
	}
	snprintf(f->request_id, sizeof(f->request_id), "%s", err.request_id);
	if (f->rc == -EBUSY) {
		/* Say which status blocked it, from a record fetched now, not the cached one. */
		cache_refresh_pair(cache, f->pair_id);
		cache_pair_field(cache, slot, EBS_STATUS, status, sizeof(status));
	}
	snprintf(f->line, sizeof(f->line), "%s error %s: %s%s%s%s request_id=%s\n", ts,
		 err.code[0] ? err.code : "Unknown", err.message, status[0] ? " (status: " : "",
		 status, status[0] ? ")" : "", err.request_id[0] ? err.request_id : "-");
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The kernel lets one write at a time into a file, so of two writers racing on the same
 * control file the second arrives just after the first call ended: it joins that call if it
 * comes within JOIN_WINDOW_MS. */
static bool joinable(const struct inflight *f, const char *pair_id, int action, uint64_t now)
{
	return f->action == action && strcmp(f->pair_id, pair_id) == 0 &&
	       (!f->done || now - f->done_ms <= JOIN_WINDOW_MS);
}

static struct inflight *inflight_join(const char *pair_id, int action, bool *leader)
{
	uint64_t now = mono_ms();
	struct inflight *f;

	for (f = inflight_head; f; f = f->next) {
		if (joinable(f, pair_id, action, now)) {
			f->waiters++;
			*leader = false;
			return f;
		}
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	snprintf(f->pair_id, sizeof(f->pair_id), "%s", pair_id);
	f->action = action;
	f->waiters = 1;
	f->next = inflight_head;
	inflight_head = f;
	*leader = true;
	return f;
}

/* Drops the finished calls nobody can join any more. */
static void inflight_prune(uint64_t now)
{
	for (struct inflight **p = &inflight_head; *p;) {
		struct inflight *f = *p;
		if (f->done && f->waiters == 0 && now - f->done_ms > JOIN_WINDOW_MS) {
			*p = f->next;
			free(f);
		} else {
			p = &f->next;
		}
	}
}

static void inflight_leave(struct inflight *f)
{
	f->waiters--;
	inflight_prune(mono_ms());
}

int control_write(struct cache *cache, struct ebs_client *ebs, uint32_t slot, int action,
		  const char *buf, size_t len, long long off, const struct control_caller *who)
{
	char pair_id[128];
	uint32_t region;
	bool leader;
	int rc;

	if (cache_pair_info(cache, slot, &region, pair_id, sizeof(pair_id)) < 0) {
		count_write(action, ENOENT);
		return -ENOENT;
	}
	const char *region_name = cache_region_name(cache, region);
	if (control_parse_input(buf, len, off) < 0) {
		log_warn("control: refused input to %s/%s/%s from uid=%u pid=%d comm=%s: "
			 "expected \"1\" at offset 0, got %zu bytes at offset %lld; no API call",
			 region_name, pair_id, control_names[action], (unsigned)who->uid,
			 (int)who->pid, who->comm, len, off);
		count_write(action, EINVAL);
		return -EINVAL;
	}

	pthread_mutex_lock(&inflight_lock);
	struct inflight *f = inflight_join(pair_id, action, &leader);
	if (!f) {
		pthread_mutex_unlock(&inflight_lock);
		return -ENOMEM;
	}
	if (leader) {
		pthread_mutex_unlock(&inflight_lock);
		call_api(cache, ebs, slot, region, f);
		pthread_mutex_lock(&inflight_lock);
		f->done = true;
		f->done_ms = mono_ms();
		pthread_cond_broadcast(&inflight_cond);
	} else {
		/* Bounded by the leader's call, which is bounded by -o timeout. */
		while (!f->done)
			pthread_cond_wait(&inflight_cond, &inflight_lock);
	}
	rc = f->rc;
	cache_set_outcome(cache, slot, action, f->line);
	log_notice("audit: uid=%u pid=%d comm=%s region=%s pair=%s action=%s client_token=%s "
		   "request_id=%s outcome=%s api_region=%s%s",
		   (unsigned)who->uid, (int)who->pid, who->comm, region_name, pair_id,
		   ebs_action_name(action), f->token, f->request_id[0] ? f->request_id : "-",
		   errno_name(-rc), f->region[0] ? f->region : "-",
		   leader ? "" : " (joined a call in flight)");
	inflight_leave(f);
	pthread_mutex_unlock(&inflight_lock);
	count_write(action, -rc);
	return rc;
}

int control_refresh(struct cache *cache, const char *buf, size_t len, long long off,
		    const struct control_caller *who)
{
	int rc = control_parse_input(buf, len, off);

	if (rc == 0)
		rc = cache_refresh_all(cache);
	log_notice("audit: uid=%u pid=%d comm=%s action=refresh outcome=%s", (unsigned)who->uid,
		   (int)who->pid, who->comm, errno_name(-rc));
	count_write(EBS_ACTION_COUNT, -rc);
	return rc;
}

size_t control_format_stats(char *buf, size_t len)
{
	size_t off = 0;

	for (int a = 0; a <= EBS_ACTION_COUNT; a++) {
		const char *file = a < EBS_ACTION_COUNT ? control_names[a] : "refresh";
		for (size_t i = 0; i < N_COUNTED; i++) {
			unsigned long n =
			    atomic_load_explicit(&write_counts[a][i], memory_order_relaxed);
			int w = snprintf(off < len ? buf + off : NULL, off < len ? len - off : 0,
					 "control_writes_%s_%s %lu\n", file,
					 errno_name(counted_errnos[i]), n);
			off += w > 0 ? (size_t)w : 0;
		}
	}
	return off;
}

#include "ebsfs/cache.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "ebsfs/attrs.h"
#include "ebsfs/log.h"
#include "ebsfs/stats.h"
#include "ebsfs/tree.h"

#define ATTR_MAX   32
#define CHUNK_BITS 12
#define CHUNK_SIZE (1u << CHUNK_BITS)
#define N_CHUNKS   (TREE_MAX_SLOTS / CHUNK_SIZE)
/* A reader of an expired region waits this long for the refresh before it is served the
 * previous value: long enough for a healthy API, short enough that a hung one is not felt. */
#define STALE_WAIT_MS 1000
/* After a failed sweep, readers are served stale values without waiting for this long. */
#define FAILED_RETRY_MS	 2000
#define WAIT_MARGIN_MS	 1000
#define KEEPER_PERIOD_MS 250
/* Pairs a sweep re-asks for by id before declaring them gone (PairIds takes 100). */
#define RECHECK_MAX 100
/* The kernel's attribute timeout ends this much before the cache's freshness, so that no
 * sweep can change a value while the kernel still trusts the size it has. */
#define KERNEL_MARGIN_S 0.1

struct outcome {
	char *line;
	struct timespec mtime;
};

struct pair_entry {
	struct ebs_pair *rec;	  /* NULL while the pair is not in the region */
	struct outcome *outcomes; /* EBS_ACTION_COUNT of them, allocated on the first write */
	uint32_t slot;
	uint32_t region;
	uint32_t seen;		 /* sweep generation that last returned the pair */
	uint32_t progress_at;	 /* monotonic seconds of the last progress fetch */
	uint32_t progress_retry; /* after a failed fetch, none before this (monotonic s) */
	uint64_t refreshed_ms;	 /* monotonic ms of the last targeted refresh (after an action) */
	int16_t progress;	 /* -1: never fetched */
	bool progress_busy;
	bool progress_gave_up;	  /* a reader stopped waiting for the fetch in flight */
	uint32_t mtime[ATTR_MAX]; /* wall seconds when each state file's value last changed */
	char id[];
};

struct region {
	struct cache *cache;
	char *name;
	uint32_t index;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool sweeping;
	bool complete;	     /* a complete sweep has succeeded: its absences are authoritative */
	bool announce;	     /* the next sweep is an explicit refresh: invalidate what it changes */
	uint64_t gave_up_on; /* a stale reader stopped waiting for the sweep that ends this count */
	int progress_threads;	       /* background progress fetches running */
	struct timespec listing_mtime; /* when a pair last appeared in or vanished from it */
	uint32_t gen;
	uint64_t sweeps_done; /* finished sweeps, whatever their outcome: waiters watch it */
	uint64_t fresh_until_ms;
	uint64_t retry_after_ms;
	time_t last_attempt, last_ok;
	int last_err;
	char last_code[96];
	uint64_t sweeps_ok, sweeps_failed;
	struct pair_entry **table; /* id -> entry, open addressing; entries are never removed */
	size_t table_cap, table_used;
	uint32_t *sorted; /* slots of the present pairs, by id */
	size_t n_sorted;
};

struct cache {
	struct ebs_client *ebs;
	int ttl_s;
	int timeout_ms;
	struct cache_hooks hooks;
	pthread_mutex_t lock; /* region discovery and slot allocation */
	pthread_cond_t cond;
	bool discovering;
	bool regions_known;
	int discover_err;
	uint64_t discover_retry_ms;
	struct region **regions;
	size_t n_regions;
	uint32_t next_slot;
	pthread_t keeper;
	bool keeper_running;
	bool stopping;
	_Atomic(struct pair_entry *) *_Atomic chunks[N_CHUNKS];
};

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void cond_deadline(struct timespec *ts, uint64_t ms_from_now)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += (time_t)(ms_from_now / 1000);
	ts->tv_nsec += (long)(ms_from_now % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

static void cond_init_monotonic(pthread_cond_t *cond)
{
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
}

uint64_t cache_ino_region(uint32_t region)
{
	struct node n = {.kind = NODE_REGION, .index = region};
	return tree_ino(&n);
}

static uint64_t ino_of(const struct pair_entry *e, enum node_kind kind, uint32_t file)
{
	struct node n = {.kind = kind, .index = e->slot, .file = file};
	return tree_ino(&n);
}

static void notify_inode(struct cache *c, uint64_t ino)
{
	if (c->hooks.inval_inode)
		c->hooks.inval_inode(c->hooks.ctx, ino);
}

static void notify_entry(struct cache *c, uint64_t parent, const char *name)
{
	if (c->hooks.inval_entry)
		c->hooks.inval_entry(c->hooks.ctx, parent, name);
}

static void notify_changed(struct cache *c, uint64_t ino)
{
	if (c->hooks.changed)
		c->hooks.changed(c->hooks.ctx, ino);
}

static void notify_sync(struct cache *c)
{
	if (c->hooks.sync)
		c->hooks.sync(c->hooks.ctx);
}

/* ---- slots ------------------------------------------------------------------------------ */

static struct pair_entry *entry_at(struct cache *c, uint32_t slot)
{
	if (slot >= TREE_MAX_SLOTS)
		return NULL;
	_Atomic(struct pair_entry *) *chunk =
	    atomic_load_explicit(&c->chunks[slot >> CHUNK_BITS], memory_order_acquire);
	if (!chunk)
		return NULL;
	return atomic_load_explicit(&chunk[slot & (CHUNK_SIZE - 1)], memory_order_acquire);
}

/* Publishes e under a new slot. Called with the region lock held; takes the cache lock. */
static int slot_publish(struct cache *c, struct pair_entry *e)
{
	int rc = 0;

	pthread_mutex_lock(&c->lock);
	uint32_t slot = c->next_slot;
	if (slot >= TREE_MAX_SLOTS) {
		rc = -ENOSPC;
		goto out;
	}
	_Atomic(struct pair_entry *) *chunk = c->chunks[slot >> CHUNK_BITS];
	if (!chunk) {
		chunk = calloc(CHUNK_SIZE, sizeof(*chunk));
		if (!chunk) {
			rc = -ENOMEM;
			goto out;
		}
		atomic_store_explicit(&c->chunks[slot >> CHUNK_BITS], chunk, memory_order_release);
	}
	e->slot = slot;
	atomic_store_explicit(&chunk[slot & (CHUNK_SIZE - 1)], e, memory_order_release);
	c->next_slot++;
out:
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/* ---- the id table of a region ----------------------------------------------------------- */

static uint64_t hash_id(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static struct pair_entry *table_find(const struct region *r, const char *id)
{
	if (!r->table_cap)
		return NULL;
	for (size_t i = hash_id(id) & (r->table_cap - 1);; i = (i + 1) & (r->table_cap - 1)) {
		struct pair_entry *e = r->table[i];
		if (!e)
			return NULL;
		if (strcmp(e->id, id) == 0)
			return e;
	}
}

static void table_place(struct pair_entry **table, size_t cap, struct pair_entry *e)
{
	size_t i = hash_id(e->id) & (cap - 1);
	while (table[i])
		i = (i + 1) & (cap - 1);
	table[i] = e;
}

static int table_insert(struct region *r, struct pair_entry *e)
{
	if ((r->table_used + 1) * 10 >= r->table_cap * 7) {
		size_t cap = r->table_cap ? r->table_cap * 2 : 64;
		struct pair_entry **t = calloc(cap, sizeof(*t));
		if (!t)
			return -ENOMEM;
		for (size_t i = 0; i < r->table_cap; i++)
			if (r->table[i])
				table_place(t, cap, r->table[i]);
		free(r->table);
		r->table = t;
		r->table_cap = cap;
	}
	table_place(r->table, r->table_cap, e);
	r->table_used++;
	return 0;
}

static struct pair_entry *entry_new(struct region *r, const char *id)
{
	size_t idlen = strlen(id);
	struct pair_entry *e = calloc(1, sizeof(*e) + idlen + 1);

	if (!e)
		return NULL;
	memcpy(e->id, id, idlen + 1);
	e->region = r->index;
	e->progress = -1;
	if (table_insert(r, e) < 0) {
		free(e);
		return NULL;
	}
	/* A table entry without a slot would be unreachable; failing here only loses the pair
	 * until the next sweep retries it. */
	if (slot_publish(r->cache, e) < 0) {
		log_error("cache: no inode slot left for %s", id);
		e->slot = UINT32_MAX;
	}
	return e;
}

/* ---- applying a sweep ------------------------------------------------------------------- */

static bool attr_differs(const struct attr_def *a, const struct ebs_pair *x,
			 const struct ebs_pair *y)
{
	char bx[1024], by[1024];
	size_t nx = attr_render(a, x, bx, sizeof(bx));
	size_t ny = attr_render(a, y, by, sizeof(by));

	if (nx != ny)
		return true;
	if (nx < sizeof(bx))
		return memcmp(bx, by, nx) != 0;
	/* Values longer than the buffers only come from the JSON-bearing files; the JSON says. */
	return strcmp(x->json, y->json) != 0;
}

/* Installs rec as e's record, stamping every file whose value changed (see cache.h on when the
 * kernel is told). */
static void entry_update(struct region *r, struct pair_entry *e, struct ebs_pair *rec, uint32_t now,
			 bool announce)
{
	struct cache *c = r->cache;
	struct ebs_pair *old = e->rec;

	if (old && strcmp(old->json, rec->json) == 0) {
		ebs_pair_free(rec);
		return;
	}
	for (size_t a = 0; a < attr_count; a++) {
		if (attr_table[a].kind == ATTR_PROGRESS)
			continue;
		if (!old || attr_differs(&attr_table[a], old, rec)) {
			e->mtime[a] = now;
			if (old && e->slot != UINT32_MAX) {
				uint64_t ino = ino_of(e, NODE_STATE, (uint32_t)a);
				if (announce)
					notify_inode(c, ino);
				notify_changed(c, ino);
			}
		}
	}
	/* The name may sit in the kernel as a negative entry, but only once a complete sweep
	 * has answered ENOENT for it. */
	if (!old && r->complete)
		notify_entry(c, cache_ino_region(r->index), e->id);
	e->rec = rec;
	ebs_pair_free(old);
}

/* A pair appeared or vanished: the region directory's mtime moves, so the kernel drops its
 * cached listing at the next getattr (or at once, for an explicit refresh). */
static void listing_touch(struct region *r, bool announce)
{
	clock_gettime(CLOCK_REALTIME, &r->listing_mtime);
	if (announce)
		notify_inode(r->cache, cache_ino_region(r->index));
}

static void entry_vanish(struct region *r, struct pair_entry *e)
{
	ebs_pair_free(e->rec);
	e->rec = NULL;
	notify_entry(r->cache, cache_ino_region(r->index), e->id);
}

static int cmp_entry_id(const void *a, const void *b)
{
	const struct pair_entry *x = *(struct pair_entry *const *)a;
	const struct pair_entry *y = *(struct pair_entry *const *)b;
	return strcmp(x->id, y->id);
}

static void rebuild_sorted(struct region *r)
{
	struct pair_entry **tmp = malloc((r->table_used + 1) * sizeof(*tmp));
	uint32_t *sorted = malloc((r->table_used + 1) * sizeof(*sorted));
	size_t n = 0;

	if (!tmp || !sorted) {
		log_error("cache: out of memory listing %s", r->name);
		free(tmp);
		free(sorted);
		return;
	}
	for (size_t i = 0; i < r->table_cap; i++) {
		struct pair_entry *e = r->table[i];
		if (e && e->rec && e->slot != UINT32_MAX)
			tmp[n++] = e;
	}
	qsort(tmp, n, sizeof(*tmp), cmp_entry_id);
	for (size_t i = 0; i < n; i++)
		sorted[i] = tmp[i]->slot;
	free(tmp);
	free(r->sorted);
	r->sorted = sorted;
	r->n_sorted = n;
}

/* Takes the records of list (production view first): the region's new complete state. */
static void region_apply(struct region *r, struct ebs_pair_list *list, bool announce,
			 uint64_t started_ms)
{
	uint32_t now = (uint32_t)time(NULL);
	bool listing_changed = false;

	r->gen++;
	for (size_t i = 0; i < list->n; i++) {
		struct ebs_pair *rec = list->items[i];
		const char *id = rec->str[EBS_ID];
		struct pair_entry *e;

		list->items[i] = NULL;
		e = *id ? table_find(r, id) : NULL;
		if (*id && !e)
			e = entry_new(r, id);
		/* A pair whose two disks are both in this region shows in both views: the
		 * production record, seen first, wins. */
		if (!e || e->seen == r->gen) {
			ebs_pair_free(rec);
			continue;
		}
		e->seen = r->gen;
		/* A control write re-described the pair after this sweep fetched it: keep the
		 * newer record. */
		if (e->rec && e->refreshed_ms > started_ms) {
			ebs_pair_free(rec);
			continue;
		}
		listing_changed |= !e->rec;
		entry_update(r, e, rec, now, announce);
	}
	for (size_t i = 0; i < r->table_cap; i++) {
		struct pair_entry *e = r->table[i];
		if (e && e->rec && e->seen != r->gen && e->refreshed_ms <= started_ms) {
			entry_vanish(r, e);
			listing_changed = true;
		}
	}
	if (listing_changed)
		listing_touch(r, announce);
	rebuild_sorted(r);
}

static void list_release(struct ebs_pair_list *list)
{
	for (size_t i = 0; i < list->n; i++)
		ebs_pair_free(list->items[i]);
	free(list->items);
	memset(list, 0, sizeof(*list));
}

/* Ids the region showed before that the sweep's list lacks. Called with r->lock held. */
static char *missing_ids_locked(struct region *r, const struct ebs_pair_list *list, size_t max)
{
	size_t len = 0, n = 0;
	char *ids = NULL;

	r->gen++;
	for (size_t i = 0; i < list->n; i++) {
		struct pair_entry *e = table_find(r, list->items[i]->str[EBS_ID]);
		if (e)
			e->seen = r->gen;
	}
	for (size_t i = 0; i < r->table_cap && n < max; i++) {
		struct pair_entry *e = r->table[i];
		if (!e || !e->rec || e->seen == r->gen)
			continue;
		size_t idlen = strlen(e->id);
		char *grown = realloc(ids, len + idlen + 2);
		if (!grown)
			break;
		ids = grown;
		if (len)
			ids[len++] = ',';
		memcpy(ids + len, e->id, idlen + 1);
		len += idlen;
		n++;
	}
	return ids;
}

/* The two views are two calls: a pair reversed (reprotect) between them shows in neither.
 * Before a pair is declared gone, ask for it by id in both views. */
static int recheck_missing(struct region *r, struct ebs_pair_list *list, struct ebs_error *err)
{
	struct cache *c = r->cache;
	char *ids;
	int rc = 0;

	pthread_mutex_lock(&r->lock);
	ids = r->complete ? missing_ids_locked(r, list, RECHECK_MAX) : NULL;
	pthread_mutex_unlock(&r->lock);
	if (!ids)
		return 0;
	rc = ebs_describe_pairs(c->ebs, r->name, "production", ids, list, err);
	if (rc == 0)
		rc = ebs_describe_pairs(c->ebs, r->name, "backup", ids, list, err);
	free(ids);
	return rc;
}

static void sweep(struct region *r)
{
	struct cache *c = r->cache;
	struct ebs_pair_list list = {0};
	struct ebs_error err = {0};
	uint64_t started = mono_ms();
	int rc = ebs_describe_pairs(c->ebs, r->name, "production", NULL, &list, &err);

	if (rc == 0)
		rc = ebs_describe_pairs(c->ebs, r->name, "backup", NULL, &list, &err);
	if (rc == 0)
		rc = recheck_missing(r, &list, &err);

	pthread_mutex_lock(&r->lock);
	r->last_attempt = time(NULL);
	if (rc == 0) {
		region_apply(r, &list, r->announce, started);
		r->complete = true;
		r->sweeps_ok++;
		r->last_ok = r->last_attempt;
		r->last_err = 0;
		r->last_code[0] = '\0';
		r->fresh_until_ms = started + (uint64_t)c->ttl_s * 1000;
		r->retry_after_ms = 0;
	} else {
		r->sweeps_failed++;
		r->last_err = rc;
		snprintf(r->last_code, sizeof(r->last_code), "%s",
			 err.code[0] ? err.code : "Unknown");
		r->retry_after_ms = mono_ms() + FAILED_RETRY_MS;
		log_warn("sweep of %s failed: %s: %s (request_id=%s)%s", r->name, r->last_code,
			 err.message, err.request_id,
			 r->complete ? "; serving the previous values" : "");
	}
	r->announce = false;
	r->sweeping = false;
	r->sweeps_done++;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	list_release(&list);
	/* A sweep frees as much as it allocated, but in whichever malloc arena its thread got:
	 * hand the pages back so the resident size stays flat across refreshes. */
	malloc_trim(0);
}

static void *sweep_thread(void *arg)
{
	sweep(arg);
	return NULL;
}

static void region_kick_locked(struct region *r)
{
	pthread_attr_t attr;
	pthread_t t;

	if (r->sweeping)
		return;
	r->sweeping = true;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, sweep_thread, r) != 0) {
		log_error("cache: cannot start a sweep of %s", r->name);
		r->sweeping = false;
	}
	pthread_attr_destroy(&attr);
}

/* With r->lock held: makes sure r has values that may be served. A fresh region answers at
 * once; an expired one gets a sweep and a short wait; a cold one waits up to the timeout. */
static int region_ready_locked(struct cache *c, struct region *r)
{
	uint64_t now = mono_ms();
	struct timespec deadline;

	if (r->complete && now < r->fresh_until_ms) {
		stats_cache_hit();
		return 0;
	}
	stats_cache_miss();
	if (now >= r->retry_after_ms)
		region_kick_locked(r);
	/* Once one reader of stale values gave up waiting for this sweep, the others are
	 * served at once: a hung API must not hold every request for the stale wait. */
	if (r->sweeping && !(r->complete && r->gave_up_on == r->sweeps_done + 1)) {
		uint64_t target = r->sweeps_done + 1;
		cond_deadline(&deadline, r->complete ? STALE_WAIT_MS
						     : (uint64_t)c->timeout_ms + WAIT_MARGIN_MS);
		while (r->sweeps_done < target)
			if (pthread_cond_timedwait(&r->cond, &r->lock, &deadline) == ETIMEDOUT) {
				r->gave_up_on = target;
				break;
			}
	}
	if (r->complete) {
		if (r->last_err || r->sweeping)
			stats_read_stale();
		return 0;
	}
	return -EIO;
}

/* ---- construction ----------------------------------------------------------------------- */

static struct region *region_new(struct cache *c, const char *name, uint32_t index)
{
	struct region *r = calloc(1, sizeof(*r));

	if (!r || !(r->name = strdup(name))) {
		free(r);
		return NULL;
	}
	r->cache = c;
	r->index = index;
	pthread_mutex_init(&r->lock, NULL);
	cond_init_monotonic(&r->cond);
	return r;
}

static int regions_install(struct cache *c, char **names, size_t n)
{
	if (n > TREE_MAX_REGIONS)
		n = TREE_MAX_REGIONS;
	c->regions = calloc(n ? n : 1, sizeof(*c->regions));
	if (!c->regions)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		c->regions[i] = region_new(c, names[i], (uint32_t)i);
		if (!c->regions[i])
			return -ENOMEM;
		c->n_regions = i + 1;
	}
	c->regions_known = true;
	return 0;
}

int cache_new(const struct cache_config *cfg, struct cache **out)
{
	struct cache *c = calloc(1, sizeof(*c));
	int rc;

	if (!c)
		return -ENOMEM;
	if (attr_count > ATTR_MAX) {
		free(c);
		return -EINVAL;
	}
	c->ebs = cfg->ebs;
	c->ttl_s = cfg->ttl_s;
	c->timeout_ms = cfg->timeout_ms;
	pthread_mutex_init(&c->lock, NULL);
	cond_init_monotonic(&c->cond);
	if (cfg->regions) {
		rc = regions_install(c, cfg->regions, cfg->n_regions);
		if (rc < 0) {
			cache_free(c);
			return rc;
		}
	}
	*out = c;
	return 0;
}

static void region_free(struct region *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->table_cap; i++) {
		struct pair_entry *e = r->table[i];
		if (!e)
			continue;
		ebs_pair_free(e->rec);
		if (e->outcomes)
			for (int a = 0; a < EBS_ACTION_COUNT; a++)
				free(e->outcomes[a].line);
		free(e->outcomes);
		free(e);
	}
	free(r->table);
	free(r->sorted);
	free(r->name);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	free(r);
}

static void keep_regions_fresh(struct cache *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct region *r = c->regions[i];
		uint64_t now = mono_ms();

		pthread_mutex_lock(&r->lock);
		if (r->complete && now >= r->fresh_until_ms && now >= r->retry_after_ms)
			region_kick_locked(r);
		pthread_mutex_unlock(&r->lock);
	}
}

/* While someone waits in poll(2), expired regions are swept without a reader asking, so the
 * waiter learns of a change within about one cache_ttl. */
static void *keeper_main(void *arg)
{
	struct cache *c = arg;
	struct timespec deadline;

	pthread_mutex_lock(&c->lock);
	while (!c->stopping) {
		cond_deadline(&deadline, KEEPER_PERIOD_MS);
		pthread_cond_timedwait(&c->cond, &c->lock, &deadline);
		if (c->stopping || !c->regions_known || !c->hooks.watching ||
		    !c->hooks.watching(c->hooks.ctx))
			continue;
		/* Sweeps take c->lock under a region lock: never hold it while taking one. */
		size_t n = c->n_regions;
		pthread_mutex_unlock(&c->lock);
		keep_regions_fresh(c, n);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

int cache_start_keeper(struct cache *c)
{
	if (pthread_create(&c->keeper, NULL, keeper_main, c) != 0)
		return -EAGAIN;
	c->keeper_running = true;
	return 0;
}

void cache_quiesce(struct cache *c)
{
	if (c->keeper_running) {
		pthread_mutex_lock(&c->lock);
		c->stopping = true;
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
		pthread_join(c->keeper, NULL);
		c->keeper_running = false;
	}
	for (size_t i = 0; i < c->n_regions; i++) {
		struct region *r = c->regions[i];
		pthread_mutex_lock(&r->lock);
		while (r->sweeping || r->progress_threads > 0)
			pthread_cond_wait(&r->cond, &r->lock);
		pthread_mutex_unlock(&r->lock);
	}
}

void cache_free(struct cache *c)
{
	if (!c)
		return;
	cache_quiesce(c);
	for (size_t i = 0; i < c->n_regions; i++)
		region_free(c->regions[i]);
	free(c->regions);
	for (size_t i = 0; i < N_CHUNKS; i++)
		free((void *)c->chunks[i]);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}

void cache_set_hooks(struct cache *c, const struct cache_hooks *hooks)
{
	c->hooks = *hooks;
}

/* ---- regions ---------------------------------------------------------------------------- */

static int discover_regions(struct cache *c)
{
	char **names = NULL;
	size_t n = 0;
	struct ebs_error err = {0};
	int rc;

	pthread_mutex_unlock(&c->lock);
	rc = ebs_describe_regions(c->ebs, &names, &n, &err);
	pthread_mutex_lock(&c->lock);
	if (rc == 0) {
		size_t kept = 0;
		for (size_t i = 0; i < n; i++) {
			if (tree_region_name_valid(names[i]))
				names[kept++] = names[i];
			else
				free(names[i]);
		}
		rc = regions_install(c, names, kept);
		ebs_strv_free(names, kept);
	} else {
		log_warn("DescribeRegions failed: %s: %s (request_id=%s)", err.code, err.message,
			 err.request_id);
		c->discover_retry_ms = mono_ms() + FAILED_RETRY_MS;
	}
	return rc;
}

int cache_regions(struct cache *c, size_t *n)
{
	int rc = 0;
	struct timespec deadline;

	pthread_mutex_lock(&c->lock);
	if (c->regions_known)
		goto out;
	if (c->discovering) {
		cond_deadline(&deadline, (uint64_t)c->timeout_ms + WAIT_MARGIN_MS);
		while (c->discovering && !c->regions_known)
			if (pthread_cond_timedwait(&c->cond, &c->lock, &deadline) == ETIMEDOUT)
				break;
		rc = c->regions_known ? 0 : -EIO;
		goto out;
	}
	if (mono_ms() < c->discover_retry_ms) {
		rc = c->discover_err ? c->discover_err : -EIO;
		goto out;
	}
	c->discovering = true;
	rc = discover_regions(c);
	c->discover_err = rc;
	c->discovering = false;
	pthread_cond_broadcast(&c->cond);
out:
	*n = c->regions_known ? c->n_regions : 0;
	pthread_mutex_unlock(&c->lock);
	return rc == 0 ? 0 : -EIO;
}

static struct region *region_at(struct cache *c, uint32_t index)
{
	struct region *r = NULL;

	pthread_mutex_lock(&c->lock);
	if (c->regions_known && index < c->n_regions)
		r = c->regions[index];
	pthread_mutex_unlock(&c->lock);
	return r;
}

const char *cache_region_name(struct cache *c, uint32_t region)
{
	struct region *r = region_at(c, region);
	return r ? r->name : NULL;
}

int cache_region_find(struct cache *c, const char *name, uint32_t *region)
{
	size_t n;
	int rc = cache_regions(c, &n);

	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(c->regions[i]->name, name) == 0) {
			*region = (uint32_t)i;
			return 0;
		}
	}
	return -ENOENT;
}

/* ---- pairs ------------------------------------------------------------------------------ */

int cache_region_slice(struct cache *c, uint32_t region, size_t start, uint32_t *slots, size_t max,
		       size_t *got)
{
	struct region *r = region_at(c, region);
	int rc;

	if (!r)
		return -ENOENT;
	pthread_mutex_lock(&r->lock);
	rc = region_ready_locked(c, r);
	*got = 0;
	if (rc == 0 && start < r->n_sorted) {
		*got = r->n_sorted - start < max ? r->n_sorted - start : max;
		memcpy(slots, r->sorted + start, *got * sizeof(*slots));
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

int cache_region_stat(struct cache *c, uint32_t region, struct timespec *mtime, double *fresh_for)
{
	struct region *r = region_at(c, region);
	double left;

	if (!r)
		return -ENOENT;
	pthread_mutex_lock(&r->lock);
	*mtime = r->listing_mtime;
	left = ((double)r->fresh_until_ms - (double)mono_ms()) / 1000 - KERNEL_MARGIN_S;
	*fresh_for = left < 0 ? 0 : left > c->ttl_s ? c->ttl_s : left;
	pthread_mutex_unlock(&r->lock);
	return 0;
}

int cache_pair_find(struct cache *c, uint32_t region, const char *id, uint32_t *slot)
{
	struct region *r = region_at(c, region);
	struct pair_entry *e;
	int rc;

	if (!r)
		return -ENOENT;
	pthread_mutex_lock(&r->lock);
	rc = region_ready_locked(c, r);
	if (rc == 0) {
		e = table_find(r, id);
		if (e && e->rec && e->slot != UINT32_MAX)
			*slot = e->slot;
		else
			rc = -ENOENT;
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

/* Locks and returns the region of a live slot, or NULL (nothing locked). */
static struct region *lock_entry(struct cache *c, uint32_t slot, struct pair_entry **e)
{
	struct region *r;

	*e = entry_at(c, slot);
	if (!*e || !(r = region_at(c, (*e)->region)))
		return NULL;
	pthread_mutex_lock(&r->lock);
	return r;
}

int cache_pair_info(struct cache *c, uint32_t slot, uint32_t *region, char *id, size_t idlen)
{
	struct pair_entry *e;
	struct region *r = lock_entry(c, slot, &e);
	int rc = 0;

	if (!r)
		return -ENOENT;
	if (e->rec) {
		*region = e->region;
		snprintf(id, idlen, "%s", e->id);
	} else {
		rc = -ENOENT;
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

int cache_pair_field(struct cache *c, uint32_t slot, enum ebs_str f, char *buf, size_t len)
{
	struct pair_entry *e;
	struct region *r = lock_entry(c, slot, &e);
	int rc = 0;

	if (!r)
		return -ENOENT;
	if (e->rec)
		snprintf(buf, len, "%s", e->rec->str[f]);
	else
		rc = -ENOENT;
	pthread_mutex_unlock(&r->lock);
	return rc;
}

static int dup_render(const struct attr_def *a, const struct ebs_pair *p, char **data, size_t *len)
{
	char small[512];
	size_t n = attr_render(a, p, small, sizeof(small));

	*data = malloc(n + 1);
	if (!*data)
		return -ENOMEM;
	if (n < sizeof(small))
		memcpy(*data, small, n + 1);
	else
		attr_render(a, p, *data, n + 1);
	*len = n;
	return 0;
}

/* With r->lock held (released during the call): one DescribeDiskReplicaPairProgress for e. The
 * caller has set e->progress_busy. */
static int progress_fetch_locked(struct cache *c, struct region *r, struct pair_entry *e)
{
	char id[128];
	struct ebs_error err = {0};
	int pct = 0, rc;
	int64_t recover_point = 0;

	snprintf(id, sizeof(id), "%s", e->id);
	pthread_mutex_unlock(&r->lock);
	rc = ebs_describe_progress(c->ebs, r->name, id, &pct, &recover_point, &err);
	pthread_mutex_lock(&r->lock);
	e->progress_busy = false;
	pthread_cond_broadcast(&r->cond);
	if (rc < 0) {
		/* From the end of the failed fetch, which may have waited the whole timeout. */
		e->progress_retry = (uint32_t)(mono_ms() / 1000) + FAILED_RETRY_MS / 1000;
		log_warn("progress of %s in %s: %s: %s", id, r->name, err.code, err.message);
		return rc == -ENOENT ? -ENOENT : -EIO;
	}
	uint32_t now = (uint32_t)(mono_ms() / 1000);
	int idx = attr_find("progress");
	if (pct != e->progress && idx >= 0)
		e->mtime[idx] = (uint32_t)time(NULL);
	e->progress = (int16_t)pct;
	e->progress_at = now ? now : 1;
	return 0;
}

struct progress_job {
	struct cache *cache;
	struct region *region;
	struct pair_entry *entry;
};

static void *progress_thread(void *arg)
{
	struct progress_job *job = arg;
	struct region *r = job->region;

	pthread_mutex_lock(&r->lock);
	progress_fetch_locked(job->cache, r, job->entry);
	r->progress_threads--;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	free(job);
	return NULL;
}

/* With r->lock held: starts a background fetch of e's progress. false if it could not. */
static bool progress_kick_locked(struct cache *c, struct region *r, struct pair_entry *e)
{
	struct progress_job *job = malloc(sizeof(*job));
	pthread_attr_t attr;
	pthread_t t;
	bool started;

	if (!job)
		return false;
	*job = (struct progress_job){c, r, e};
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	started = pthread_create(&t, &attr, progress_thread, job) == 0;
	pthread_attr_destroy(&attr);
	if (!started) {
		free(job);
		return false;
	}
	e->progress_busy = true;
	r->progress_threads++;
	return true;
}

/* With r->lock held: a progress value for e. A first one is fetched and waited for (up to the
 * timeout); a known one past cache_ttl is served at once while a background fetch renews it
 * (progress is one call per pair: a slow API must not hold every read of it). */
static int progress_locked(struct cache *c, struct region *r, struct pair_entry *e)
{
	uint32_t now = (uint32_t)(mono_ms() / 1000);
	struct timespec deadline;

	if (e->progress >= 0) {
		if (now - e->progress_at >= (uint32_t)c->ttl_s && now >= e->progress_retry &&
		    !e->progress_busy && progress_kick_locked(c, r, e))
			stats_read_stale();
		return 0;
	}
	/* The last fetch failed a moment ago: every request of one `cat` must not wait for
	 * another. */
	if (now < e->progress_retry)
		return -EIO;
	if (!e->progress_busy) {
		e->progress_busy = true;
		return progress_fetch_locked(c, r, e);
	}
	cond_deadline(&deadline, (uint64_t)c->timeout_ms + WAIT_MARGIN_MS);
	while (e->progress_busy)
		if (pthread_cond_timedwait(&r->cond, &r->lock, &deadline) == ETIMEDOUT)
			break;
	return e->progress >= 0 ? 0 : -EIO;
}

/* With r->lock held: seconds the value of attr of e stays fresh, for the kernel's timeout. */
static double fresh_for_locked(struct cache *c, const struct region *r, const struct pair_entry *e,
			       uint32_t attr)
{
	uint64_t now = mono_ms();
	double left;

	if (attr_table[attr].kind == ATTR_PROGRESS)
		left = (double)e->progress_at + c->ttl_s - (double)now / 1000;
	else
		left = ((double)r->fresh_until_ms - (double)now) / 1000;
	left -= KERNEL_MARGIN_S;
	if (left < 0)
		return 0;
	return left > c->ttl_s ? c->ttl_s : left;
}

int cache_read_state(struct cache *c, uint32_t slot, uint32_t attr, char **data, size_t *len,
		     struct timespec *mtime, double *fresh_for)
{
	struct pair_entry *e;
	struct region *r;
	int rc = 0;

	if (attr >= attr_count)
		return -ENOENT;
	r = lock_entry(c, slot, &e);
	if (!r)
		return -ENOENT;
	/* progress has its own freshness: it needs the pair, not a fresh region. */
	if (attr_table[attr].kind != ATTR_PROGRESS || !r->complete)
		rc = region_ready_locked(c, r);
	if (rc == 0 && !e->rec)
		rc = -ENOENT;
	if (rc == 0 && attr_table[attr].kind == ATTR_PROGRESS) {
		rc = progress_locked(c, r, e);
		if (rc == 0) {
			char buf[16];
			*len = attr_render_progress(e->progress, buf, sizeof(buf));
			*data = strdup(buf);
			rc = *data ? 0 : -ENOMEM;
		}
	} else if (rc == 0) {
		rc = dup_render(&attr_table[attr], e->rec, data, len);
	}
	if (rc == 0) {
		mtime->tv_sec = e->mtime[attr];
		mtime->tv_nsec = 0;
		*fresh_for = fresh_for_locked(c, r, e, attr);
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

int cache_read_outcome(struct cache *c, uint32_t slot, int action, char **data, size_t *len,
		       struct timespec *mtime)
{
	struct pair_entry *e;
	struct region *r = lock_entry(c, slot, &e);
	const char *line = "";

	if (!r)
		return -ENOENT;
	mtime->tv_sec = 0;
	mtime->tv_nsec = 0;
	if (e->outcomes && e->outcomes[action].line) {
		line = e->outcomes[action].line;
		*mtime = e->outcomes[action].mtime;
	}
	*len = strlen(line);
	*data = strdup(line);
	pthread_mutex_unlock(&r->lock);
	return *data ? 0 : -ENOMEM;
}

void cache_set_outcome(struct cache *c, uint32_t slot, int action, const char *line)
{
	struct pair_entry *e;
	struct region *r = lock_entry(c, slot, &e);
	char *copy = strdup(line);

	if (!r) {
		free(copy);
		return;
	}
	if (!e->outcomes)
		e->outcomes = calloc(EBS_ACTION_COUNT, sizeof(*e->outcomes));
	if (e->outcomes && copy) {
		free(e->outcomes[action].line);
		e->outcomes[action].line = copy;
		clock_gettime(CLOCK_REALTIME, &e->outcomes[action].mtime);
		copy = NULL;
	}
	pthread_mutex_unlock(&r->lock);
	free(copy);
}

/* ---- explicit refreshes ----------------------------------------------------------------- */

static int refresh_pair_in(struct cache *c, struct region *r, const char *pair_id)
{
	static const char *const views[2] = {"production", "backup"};
	struct ebs_pair_list list = {0};
	struct ebs_error err = {0};
	struct pair_entry *e;
	int first, rc = 0;

	pthread_mutex_lock(&r->lock);
	e = table_find(r, pair_id);
	if (!e || !e->rec) {
		pthread_mutex_unlock(&r->lock);
		return 0;
	}
	first = strcmp(e->rec->str[EBS_SITE], "backup") == 0;
	pthread_mutex_unlock(&r->lock);

	/* The view that showed the pair first; the other one only if it moved (reprotect). */
	for (int i = 0; i < 2 && list.n == 0 && rc == 0; i++)
		rc = ebs_describe_pairs(c->ebs, r->name, views[(first + i) % 2], pair_id, &list,
					&err);
	if (rc < 0) {
		log_warn("refresh of %s in %s failed: %s: %s", pair_id, r->name, err.code,
			 err.message);
		list_release(&list);
		return rc;
	}
	pthread_mutex_lock(&r->lock);
	e->refreshed_ms = mono_ms();
	if (list.n > 0 && strcmp(list.items[0]->str[EBS_ID], pair_id) == 0) {
		if (e->rec) {
			entry_update(r, e, list.items[0], (uint32_t)time(NULL), true);
			list.items[0] = NULL;
		}
	} else if (e->rec) {
		entry_vanish(r, e);
		listing_touch(r, true);
		rebuild_sorted(r);
	}
	pthread_mutex_unlock(&r->lock);
	list_release(&list);
	return 0;
}

struct pair_refresh {
	struct cache *cache;
	struct region *region;
	const char *pair_id;
	int rc;
};

static void *refresh_pair_thread(void *arg)
{
	struct pair_refresh *job = arg;
	job->rc = refresh_pair_in(job->cache, job->region, job->pair_id);
	return NULL;
}

int cache_refresh_pair(struct cache *c, const char *pair_id)
{
	struct pair_refresh *jobs;
	pthread_t *threads;
	bool *started;
	int rc = 0;
	size_t n;

	if (cache_regions(c, &n) < 0)
		return -EIO;
	jobs = calloc(n ? n : 1, sizeof(*jobs));
	threads = calloc(n ? n : 1, sizeof(*threads));
	started = calloc(n ? n : 1, sizeof(*started));
	if (!jobs || !threads || !started) {
		rc = -ENOMEM;
		goto out;
	}
	/* The regions that show the pair are asked at once, not one after the other: the write
	 * that waits for them costs one round trip more than the action, not one per region. */
	for (size_t i = 0; i < n; i++) {
		jobs[i] = (struct pair_refresh){c, c->regions[i], pair_id, 0};
		started[i] = i + 1 < n &&
			     pthread_create(&threads[i], NULL, refresh_pair_thread, &jobs[i]) == 0;
		if (!started[i])
			refresh_pair_thread(&jobs[i]);
	}
	for (size_t i = 0; i < n; i++) {
		if (started[i])
			pthread_join(threads[i], NULL);
		if (jobs[i].rc < 0 && rc == 0)
			rc = jobs[i].rc;
	}
	notify_sync(c);
out:
	free(jobs);
	free(threads);
	free(started);
	return rc;
}

static void forget_progress_locked(struct region *r)
{
	for (size_t i = 0; i < r->table_cap; i++)
		if (r->table[i])
			r->table[i]->progress_at = 0;
}

/* With r->lock held: waits until r's sweep count reaches target; false on timeout. */
static bool wait_sweeps_locked(struct cache *c, struct region *r, uint64_t target)
{
	struct timespec deadline;

	cond_deadline(&deadline, 2 * (uint64_t)c->timeout_ms + WAIT_MARGIN_MS);
	while (r->sweeps_done < target)
		if (pthread_cond_timedwait(&r->cond, &r->lock, &deadline) == ETIMEDOUT)
			return false;
	return true;
}

int cache_refresh_all(struct cache *c)
{
	uint64_t *targets;
	int rc = 0;
	size_t n;

	if (cache_regions(c, &n) < 0)
		return -EIO;
	targets = calloc(n ? n : 1, sizeof(*targets));
	if (!targets)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct region *r = c->regions[i];

		pthread_mutex_lock(&r->lock);
		forget_progress_locked(r);
		r->fresh_until_ms = 0;
		/* A region never loaded has nothing cached: its first access sweeps it. A sweep
		 * in flight may have fetched before the refresh was asked for: let it end. */
		if (r->sweeping && !wait_sweeps_locked(c, r, r->sweeps_done + 1)) {
			rc = -ETIMEDOUT;
		} else if (r->sweeps_done > 0) {
			r->retry_after_ms = 0;
			r->announce = true;
			targets[i] = r->sweeps_done + 1;
			region_kick_locked(r);
		}
		pthread_mutex_unlock(&r->lock);
	}
	for (size_t i = 0; i < n; i++) {
		struct region *r = c->regions[i];

		if (!targets[i])
			continue;
		pthread_mutex_lock(&r->lock);
		if (!wait_sweeps_locked(c, r, targets[i]))
			rc = rc ? rc : -ETIMEDOUT;
		else if (r->last_err)
			rc = rc ? rc : r->last_err;
		pthread_mutex_unlock(&r->lock);
	}
	free(targets);
	notify_sync(c);
	return rc;
}

/* ---- stats ------------------------------------------------------------------------------ */

static size_t append(char *buf, size_t len, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static size_t append(char *buf, size_t len, size_t off, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(off < len ? buf + off : NULL, off < len ? len - off : 0, fmt, ap);
	va_end(ap);
	return off + (n > 0 ? (size_t)n : 0);
}

static long long age_s(time_t t, time_t now)
{
	return t ? (long long)(now - t) : -1;
}

size_t cache_format_stats(struct cache *c, char *buf, size_t len)
{
	size_t off = 0, n = 0;
	time_t now = time(NULL);

	pthread_mutex_lock(&c->lock);
	if (c->regions_known)
		n = c->n_regions;
	pthread_mutex_unlock(&c->lock);
	off = append(buf, len, off, "regions %zu\n", n);
	for (size_t i = 0; i < n; i++) {
		struct region *r = c->regions[i];
		const char *p = r->name;

		pthread_mutex_lock(&r->lock);
		off = append(buf, len, off, "region.%s.pairs %zu\n", p, r->n_sorted);
		off = append(buf, len, off, "region.%s.sweeps_ok %" PRIu64 "\n", p, r->sweeps_ok);
		off = append(buf, len, off, "region.%s.sweeps_failed %" PRIu64 "\n", p,
			     r->sweeps_failed);
		off = append(buf, len, off, "region.%s.last_sweep_age_s %lld\n", p,
			     age_s(r->last_attempt, now));
		off = append(buf, len, off, "region.%s.last_ok_age_s %lld\n", p,
			     age_s(r->last_ok, now));
		off = append(buf, len, off, "region.%s.last_sweep_outcome %s\n", p,
			     r->sweeps_done == 0 ? "none"
			     : r->last_err	 ? r->last_code
						 : "ok");
		off = append(buf, len, off, "region.%s.stale %d\n", p,
			     r->complete && r->last_err ? 1 : 0);
		pthread_mutex_unlock(&r->lock);
	}
	return off;
}

/* The describe cache: per region, one paginated sweep of both Site views, fresh for cache_ttl,
 * one sweep at a time (concurrent readers wait for it), stale values served while the API
 * fails, change detection for mtimes and kernel invalidation. Knows nothing about FUSE. */
#ifndef EBSFS_CACHE_H
#define EBSFS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "ebsfs/ebs.h"

struct cache;

/* How the cache tells the kernel side what changed. Called with a region lock held, so a hook
 * must only queue work (notify.c), never block or call back into the cache.
 *
 * Sweeps made because a value expired announce changes only through `changed` (poll wake-ups):
 * the kernel's attribute timeout never outlives the cache's freshness, so its next getattr
 * brings the new size and mtime, and an invalidation racing with that getattr would make the
 * kernel drop the fresh reply. Explicit refreshes (a control write, .ebsfs/refresh) also
 * invalidate what changed and wait for the kernel to have heard it (`sync`), so the very next
 * read shows the new value. */
struct cache_hooks {
	void (*inval_inode)(void *ctx, uint64_t ino);
	void (*inval_entry)(void *ctx, uint64_t parent, const char *name);
	void (*changed)(void *ctx, uint64_t ino);
	bool (*watching)(void *ctx); /* someone waits in poll(2): keep the regions fresh */
	void (*sync)(void *ctx);     /* returns once the queued notifications reached the kernel */
	void *ctx;
};

struct cache_config {
	struct ebs_client *ebs;
	int ttl_s;
	int timeout_ms;
	char **regions; /* NULL: DescribeRegions on first access */
	size_t n_regions;
};

int cache_new(const struct cache_config *cfg, struct cache **out);
/* Starts the thread that keeps regions fresh while someone polls. Call after daemonizing. */
int cache_start_keeper(struct cache *c);
/* Stops the keeper and waits for the sweeps in flight (each bounded by the timeout) to end. */
void cache_quiesce(struct cache *c);
void cache_free(struct cache *c);
void cache_set_hooks(struct cache *c, const struct cache_hooks *hooks);

/* Regions, resolved on first access. 0 or -errno. */
int cache_regions(struct cache *c, size_t *n);
const char *cache_region_name(struct cache *c, uint32_t region); /* NULL past the end */
int cache_region_find(struct cache *c, const char *name, uint32_t *region);

/* Up to max slots of the region's pairs, sorted by id, from index start: *got of them (0 past
 * the end). Waits for the first sweep of a cold region. */
int cache_region_slice(struct cache *c, uint32_t region, size_t start, uint32_t *slots, size_t max,
		       size_t *got);
/* The region directory's mtime (when a pair last appeared or vanished, so the kernel knows to
 * drop its cached listing) and how long the kernel may trust it. */
int cache_region_stat(struct cache *c, uint32_t region, struct timespec *mtime, double *fresh_for);
/* The slot of pair id in region: 0, -ENOENT (a complete sweep says it is not there), -EIO. */
int cache_pair_find(struct cache *c, uint32_t region, const char *id, uint32_t *slot);
/* The pair behind slot: its region and id (copied). -ENOENT if it is gone. */
int cache_pair_info(struct cache *c, uint32_t slot, uint32_t *region, char *id, size_t idlen);
/* One string field of the pair's current record, copied. */
int cache_pair_field(struct cache *c, uint32_t slot, enum ebs_str f, char *buf, size_t len);

/* Content of state file attr of slot: *data malloc'd (caller frees), with its mtime. May wait
 * for a sweep (bounded); serves stale values when the API fails. */
int cache_read_state(struct cache *c, uint32_t slot, uint32_t attr, char **data, size_t *len,
		     struct timespec *mtime, double *fresh_for);

/* A control file's outcome line ("" if never written) and when it was set. */
int cache_read_outcome(struct cache *c, uint32_t slot, int action, char **data, size_t *len,
		       struct timespec *mtime);
void cache_set_outcome(struct cache *c, uint32_t slot, int action, const char *line);

/* Re-describe one pair in every region that shows it (after an action). 0 or -errno. */
int cache_refresh_pair(struct cache *c, const char *pair_id);
/* Drop every cache and sweep the regions already loaded again, now. */
int cache_refresh_all(struct cache *c);

/* "name value" lines per region (sweeps, last sweep age and outcome, pairs, stale). */
size_t cache_format_stats(struct cache *c, char *buf, size_t len);

/* Inode numbers the hooks use, for the cache's own nodes. */
uint64_t cache_ino_region(uint32_t region);

#endif

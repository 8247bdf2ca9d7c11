/* The FUSE low-level operations: map an inode to a node, delegate, map errors to errno. */
#ifndef EBSFS_OPS_H
#define EBSFS_OPS_H

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct cache;
struct ebs_client;
struct notifier;

/* The daemon's state, the session's userdata. */
struct ebsfs {
	struct cache *cache;
	struct ebs_client *ebs;
	struct notifier *notifier; /* started in init, after daemonizing */
	struct fuse_session *se;
	double ttl;	   /* kernel entry and attribute timeout: cache_ttl */
	bool no_open;	   /* the kernel skips OPEN/RELEASE (negotiated in init) */
	bool no_opendir;   /* and OPENDIR/RELEASEDIR */
	bool need_opendir; /* auto_unmount: fusermount3 tells a dead daemon by a failing open */
	uid_t uid;	   /* owner of every node: the mounting user */
	gid_t gid;
	gid_t ctl_gid; /* (gid_t)-1: control files are 0600 */
	struct timespec started;
	const char *endpoint;
	pthread_mutex_t stats_lock; /* the snapshot a getattr of .ebsfs/stats sized */
	char *stats_text;
	size_t stats_len;
	uint64_t stats_taken_ms;
};

extern const struct fuse_lowlevel_ops ebsfs_ops;

#endif

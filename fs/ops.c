#include "ebsfs/ops.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "ebsfs/attrs.h"
#include "ebsfs/cache.h"
#include "ebsfs/control.h"
#include "ebsfs/log.h"
#include "ebsfs/notify.h"
#include "ebsfs/stats.h"
#include "ebsfs/tree.h"

#define STATS_SNAPSHOT_MS 1000
#define NOTIFY_SYNC_MS	  2000
#define ID_MAX		  128

static struct ebsfs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- .ebsfs files ----------------------------------------------------------------------- */

static char *render_stats(struct ebsfs *fs, size_t *len)
{
	size_t cap = 4096;

	for (;;) {
		char *buf = malloc(cap);
		size_t off;

		if (!buf)
			return NULL;
		off = stats_format_api(buf, cap);
		off +=
		    control_format_stats(off < cap ? buf + off : NULL, off < cap ? cap - off : 0);
		off += cache_format_stats(fs->cache, off < cap ? buf + off : NULL,
					  off < cap ? cap - off : 0);
		if (off < cap) {
			*len = off;
			return buf;
		}
		free(buf);
		cap = off + 1;
	}
}

/* The stats text a read at offset 0 returns: the one the preceding getattr sized, if recent,
 * so that st_size and the content agree. */
static char *stats_snapshot(struct ebsfs *fs, bool fresh, size_t *len)
{
	char *copy = NULL;

	pthread_mutex_lock(&fs->stats_lock);
	if (fresh || !fs->stats_text || now_ms() - fs->stats_taken_ms > STATS_SNAPSHOT_MS) {
		size_t n;
		char *text = render_stats(fs, &n);
		if (text) {
			free(fs->stats_text);
			fs->stats_text = text;
			fs->stats_len = n;
			fs->stats_taken_ms = now_ms();
		}
	}
	if (fs->stats_text && (copy = malloc(fs->stats_len + 1))) {
		memcpy(copy, fs->stats_text, fs->stats_len + 1);
		*len = fs->stats_len;
	}
	pthread_mutex_unlock(&fs->stats_lock);
	return copy;
}

static char *meta_content(struct ebsfs *fs, uint32_t file, bool for_stat, size_t *len)
{
	char buf[128];

	switch (file) {
	case META_STATS:
		return stats_snapshot(fs, for_stat, len);
	case META_VERSION:
		*len = (size_t)snprintf(buf, sizeof(buf), "ebsfs %s\n", EBSFS_VERSION);
		return strdup(buf);
	default:
		*len = 0;
		return strdup("");
	}
}

/* ---- attributes ------------------------------------------------------------------------- */

static void fill_dir(struct ebsfs *fs, struct stat *st)
{
	st->st_mode = S_IFDIR | 0555;
	st->st_nlink = 2;
	st->st_mtim = fs->started;
}

static void fill_file(struct stat *st, mode_t mode, size_t size, struct timespec mtime)
{
	st->st_mode = S_IFREG | mode;
	st->st_size = (off_t)size;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
	st->st_mtim = mtime;
}

static mode_t control_mode(const struct ebsfs *fs)
{
	return fs->ctl_gid == (gid_t)-1 ? 0600 : 0660;
}

/* Attributes of node n, and how long the kernel may keep them. 0 or -errno. */
static int node_attr(struct ebsfs *fs, const struct node *n, struct stat *st, double *timeout)
{
	char *data = NULL, id[ID_MAX];
	struct timespec mtime = fs->started;
	size_t len = 0;
	uint32_t region;
	int rc = 0;

	memset(st, 0, sizeof(*st));
	st->st_ino = tree_ino(n);
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_nlink = 1;
	st->st_blksize = 4096;
	*timeout = fs->ttl;

	switch (n->kind) {
	case NODE_ROOT:
	case NODE_META_DIR:
		fill_dir(fs, st);
		break;
	case NODE_REGION:
		rc = cache_region_stat(fs->cache, n->index, &mtime, timeout);
		if (rc == 0) {
			fill_dir(fs, st);
			if (mtime.tv_sec)
				st->st_mtim = mtime;
		}
		break;
	case NODE_PAIR_DIR:
		rc = cache_pair_info(fs->cache, n->index, &region, id, sizeof(id));
		if (rc == 0)
			fill_dir(fs, st);
		break;
	case NODE_STATE:
		rc = cache_read_state(fs->cache, n->index, n->file, &data, &len, &mtime, timeout);
		if (rc == 0)
			fill_file(st, 0444, len, mtime);
		break;
	case NODE_CONTROL:
		rc = cache_read_outcome(fs->cache, n->index, (int)n->file, &data, &len, &mtime);
		if (rc == 0) {
			fill_file(st, control_mode(fs), len, mtime.tv_sec ? mtime : fs->started);
			if (fs->ctl_gid != (gid_t)-1)
				st->st_gid = fs->ctl_gid;
		}
		break;
	case NODE_META_FILE:
		data = meta_content(fs, n->index, true, &len);
		if (!data)
			return -ENOMEM;
		if (n->index == META_STATS) {
			clock_gettime(CLOCK_REALTIME, &mtime);
			*timeout = 0;
		}
		fill_file(st, n->index == META_REFRESH ? control_mode(fs) : 0444, len, mtime);
		if (n->index == META_REFRESH && fs->ctl_gid != (gid_t)-1)
			st->st_gid = fs->ctl_gid;
		break;
	case NODE_NONE:
		rc = -ENOENT;
		break;
	}
	st->st_ctim = st->st_mtim;
	st->st_atim = st->st_mtim;
	free(data);
	return rc;
}

static void reply_entry(fuse_req_t req, struct ebsfs *fs, const struct node *n)
{
	struct fuse_entry_param e;
	double timeout;
	int rc;

	memset(&e, 0, sizeof(e));
	rc = node_attr(fs, n, &e.attr, &timeout);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	e.ino = e.attr.st_ino;
	e.attr_timeout = timeout;
	e.entry_timeout = fs->ttl;
	fuse_reply_entry(req, &e);
}

/* ENOENT that the kernel may remember for cache_ttl. */
static void reply_negative(fuse_req_t req, struct ebsfs *fs)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	e.entry_timeout = fs->ttl;
	fuse_reply_entry(req, &e);
}

/* ---- lookups ---------------------------------------------------------------------------- */

static int lookup_child(struct ebsfs *fs, const struct node *parent, const char *name,
			struct node *child)
{
	uint32_t region, slot;
	char id[ID_MAX];
	int i, rc;

	memset(child, 0, sizeof(*child));
	switch (parent->kind) {
	case NODE_ROOT:
		if (strcmp(name, ".ebsfs") == 0) {
			child->kind = NODE_META_DIR;
			return 0;
		}
		rc = cache_region_find(fs->cache, name, &region);
		child->kind = NODE_REGION;
		child->index = region;
		return rc;
	case NODE_META_DIR:
		i = tree_meta_find(name);
		child->kind = NODE_META_FILE;
		child->index = (uint32_t)i;
		return i < 0 ? -ENOENT : 0;
	case NODE_REGION:
		rc = cache_pair_find(fs->cache, parent->index, name, &slot);
		child->kind = NODE_PAIR_DIR;
		child->index = slot;
		return rc;
	case NODE_PAIR_DIR:
		rc = cache_pair_info(fs->cache, parent->index, &region, id, sizeof(id));
		if (rc < 0)
			return rc;
		child->index = parent->index;
		if ((i = attr_find(name)) >= 0) {
			child->kind = NODE_STATE;
		} else if ((i = control_find(name)) >= 0) {
			child->kind = NODE_CONTROL;
		} else {
			return -ENOENT;
		}
		child->file = (uint32_t)i;
		return 0;
	default:
		return -ENOTDIR;
	}
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct ebsfs *fs = fs_of(req);
	struct node p, child;
	int rc;

	if (!tree_node(parent, &p)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	rc = lookup_child(fs, &p, name, &child);
	if (rc == -ENOENT)
		reply_negative(req, fs);
	else if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		reply_entry(req, fs, &child);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	/* Inode numbers are derived from stable slots: there is nothing to release. */
	(void)ino;
	(void)nlookup;
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	(void)count;
	(void)forgets;
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ebsfs *fs = fs_of(req);
	struct node n;
	struct stat st;
	double timeout;
	int rc;

	(void)fi;
	if (!tree_node(ino, &n)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	rc = node_attr(fs, &n, &st, &timeout);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, timeout);
}

static bool is_control_like(const struct node *n)
{
	return n->kind == NODE_CONTROL || (n->kind == NODE_META_FILE && n->index == META_REFRESH);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct node n;

	(void)fi;
	if (!tree_node(ino, &n)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	/* Truncation to 0 is what the shell's ">" asks of a control file; it changes nothing.
	 * Modes, owners and times are the daemon's to say. */
	if (is_control_like(&n) && to_set == FUSE_SET_ATTR_SIZE && attr->st_size == 0) {
		op_getattr(req, ino, NULL);
		return;
	}
	fuse_reply_err(req, EPERM);
}

/* ---- directories ------------------------------------------------------------------------ */

/* Directories are listed without state between calls: with no-opendir the kernel sends no
 * OPENDIR, caches the listing itself and drops it when the directory's mtime moves. */
static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ebsfs *fs = fs_of(req);
	struct node n;

	if (fs->no_opendir) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if (!tree_node(ino, &n)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (n.kind != NODE_ROOT && n.kind != NODE_META_DIR && n.kind != NODE_REGION &&
	    n.kind != NODE_PAIR_DIR) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

/* A directory being listed: its node and, for a region, a window of its pairs. */
struct listing {
	struct node node;
	size_t n_regions;
	size_t first; /* index of slots[0] among the region's pairs */
	size_t n_slots;
	uint32_t slots[256];
};

static int listing_start(struct ebsfs *fs, fuse_ino_t ino, struct listing *l)
{
	char id[ID_MAX];
	uint32_t region;

	memset(l, 0, sizeof(*l));
	if (!tree_node(ino, &l->node))
		return -ENOENT;
	switch (l->node.kind) {
	case NODE_ROOT:
		return cache_regions(fs->cache, &l->n_regions);
	case NODE_META_DIR:
		return 0;
	case NODE_REGION:
		/* Waits for a cold region, and says EIO if it cannot be listed. */
		return cache_region_slice(fs->cache, l->node.index, 0, l->slots, 0, &l->n_slots);
	case NODE_PAIR_DIR:
		return cache_pair_info(fs->cache, l->node.index, &region, id, sizeof(id));
	default:
		return -ENOTDIR;
	}
}

/* Entry i of the directory (after "." and ".."): its name and node. false past the end. */
static bool dir_entry(struct ebsfs *fs, struct listing *l, size_t i, char *name, size_t len,
		      struct node *child, bool *gone)
{
	uint32_t region;

	*gone = false;
	memset(child, 0, sizeof(*child));
	child->index = l->node.index;
	switch (l->node.kind) {
	case NODE_ROOT:
		if (i == 0) {
			child->kind = NODE_META_DIR;
			snprintf(name, len, ".ebsfs");
			return true;
		}
		if (i - 1 >= l->n_regions)
			return false;
		child->kind = NODE_REGION;
		child->index = (uint32_t)(i - 1);
		snprintf(name, len, "%s", cache_region_name(fs->cache, child->index));
		return true;
	case NODE_META_DIR:
		if (i >= META_COUNT)
			return false;
		child->kind = NODE_META_FILE;
		child->index = (uint32_t)i;
		snprintf(name, len, "%s", tree_meta_names[i]);
		return true;
	case NODE_REGION:
		if (i < l->first || i >= l->first + l->n_slots) {
			l->first = i;
			if (cache_region_slice(fs->cache, l->node.index, i, l->slots,
					       sizeof(l->slots) / sizeof(l->slots[0]),
					       &l->n_slots) < 0 ||
			    l->n_slots == 0)
				return false;
		}
		child->kind = NODE_PAIR_DIR;
		child->index = l->slots[i - l->first];
		*gone = cache_pair_info(fs->cache, child->index, &region, name, len) < 0;
		return true;
	case NODE_PAIR_DIR:
		if (i < attr_count) {
			child->kind = NODE_STATE;
			child->file = (uint32_t)i;
			snprintf(name, len, "%s", attr_table[i].name);
			return true;
		}
		if (i - attr_count >= EBS_ACTION_COUNT)
			return false;
		child->kind = NODE_CONTROL;
		child->file = (uint32_t)(i - attr_count);
		snprintf(name, len, "%s", control_names[child->file]);
		return true;
	default:
		return false;
	}
}

/* Fills one readdir(plus) entry at buf; returns the size it needs. */
static size_t add_entry(fuse_req_t req, struct ebsfs *fs, char *buf, size_t room, bool plus,
			const char *name, const struct node *child, uint64_t self_ino, off_t next)
{
	struct fuse_entry_param e;
	double timeout;

	memset(&e, 0, sizeof(e));
	if (!child) {
		e.attr.st_ino = self_ino;
		e.attr.st_mode = S_IFDIR;
	} else if (plus &&
		   !(child->kind == NODE_STATE && attr_table[child->file].kind == ATTR_PROGRESS) &&
		   node_attr(fs, child, &e.attr, &timeout) == 0) {
		e.ino = e.attr.st_ino;
		e.attr_timeout = timeout;
		e.entry_timeout = fs->ttl;
	} else {
		/* No attributes (progress would cost an API call): the kernel looks it up
		 * when it is used. */
		e.attr.st_ino = tree_ino(child);
		e.attr.st_mode = child->kind == NODE_STATE || child->kind == NODE_CONTROL ||
					 child->kind == NODE_META_FILE
				     ? S_IFREG
				     : S_IFDIR;
	}
	if (plus)
		return fuse_add_direntry_plus(req, buf, room, name, &e, next);
	return fuse_add_direntry(req, buf, room, name, &e.attr, next);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
	struct ebsfs *fs = fs_of(req);
	struct listing *l = malloc(sizeof(*l));
	char *buf = malloc(size), name[ID_MAX];
	size_t used = 0;
	int rc;

	if (!buf || !l) {
		fuse_reply_err(req, ENOMEM);
		goto out;
	}
	rc = listing_start(fs, ino, l);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		goto out;
	}
	for (off_t i = off;; i++) {
		struct node child;
		bool gone;
		size_t need;

		if (i < 2) {
			need = add_entry(req, fs, buf + used, size - used, plus, i ? ".." : ".",
					 NULL, ino, i + 1);
		} else if (!dir_entry(fs, l, (size_t)(i - 2), name, sizeof(name), &child, &gone)) {
			break;
		} else if (gone) {
			continue;
		} else {
			need = add_entry(req, fs, buf + used, size - used, plus, name, &child, 0,
					 i + 1);
		}
		if (need > size - used)
			break;
		used += need;
	}
	fuse_reply_buf(req, buf, used);
out:
	free(buf);
	free(l);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, true);
}

/* ---- files ------------------------------------------------------------------------------ */

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct ebsfs *fs = fs_of(req);
	struct timespec mtime;
	struct node n;
	char *data = NULL;
	double fresh_for;
	size_t len = 0;
	int rc = 0;

	(void)fi;
	if (!tree_node(ino, &n)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	switch (n.kind) {
	case NODE_STATE:
		rc = cache_read_state(fs->cache, n.index, n.file, &data, &len, &mtime, &fresh_for);
		if (rc == 0 && off == 0)
			notifier_read(fs->notifier, ino);
		break;
	case NODE_CONTROL:
		rc = cache_read_outcome(fs->cache, n.index, (int)n.file, &data, &len, &mtime);
		break;
	case NODE_META_FILE:
		data = meta_content(fs, n.index, false, &len);
		rc = data ? 0 : -ENOMEM;
		break;
	default:
		rc = -EISDIR;
		break;
	}
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else if ((size_t)off >= len)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, data + off,
			       len - (size_t)off < size ? len - (size_t)off : size);
	free(data);
}

static void caller_of(fuse_req_t req, struct control_caller *who, char *comm, size_t len)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	char path[64];
	FILE *f;

	who->uid = ctx->uid;
	who->pid = ctx->pid;
	snprintf(comm, len, "?");
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)ctx->pid);
	if ((f = fopen(path, "re"))) {
		if (fgets(comm, (int)len, f))
			comm[strcspn(comm, "\n")] = '\0';
		fclose(f);
	}
	who->comm = comm;
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct ebsfs *fs = fs_of(req);
	struct control_caller who;
	char comm[32];
	struct node n;
	int rc;

	(void)fi;
	if (!tree_node(ino, &n)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	caller_of(req, &who, comm, sizeof(comm));
	if (n.kind == NODE_CONTROL)
		rc = control_write(fs->cache, fs->ebs, n.index, (int)n.file, buf, size, off, &who);
	else if (n.kind == NODE_META_FILE && n.index == META_REFRESH)
		rc = control_refresh(fs->cache, buf, size, off, &who);
	else
		rc = -EPERM;
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_write(req, size);
}

/* Replying ENOSYS once makes the kernel stop sending OPEN and RELEASE for good (no-open): a warm
 * read then never leaves the kernel. libfuse 3.14 answers OPEN itself when no handler exists,
 * so the handler is needed to say it. */
static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ebsfs *fs = fs_of(req);
	struct node n;

	if (fs->no_open) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	/* A kernel without no-open: state files keep their pages, control files are direct. */
	if (tree_node(ino, &n) && is_control_like(&n))
		fi->direct_io = 1;
	else
		fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

static void op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		    struct fuse_pollhandle *ph)
{
	struct ebsfs *fs = fs_of(req);
	unsigned revents = POLLIN | POLLRDNORM;
	struct node n;

	(void)fi;
	if (tree_node(ino, &n) && (n.kind == NODE_STATE || n.kind == NODE_CONTROL))
		revents |= notifier_poll(fs->notifier, ino, ph);
	else if (ph)
		fuse_pollhandle_destroy(ph);
	fuse_reply_poll(req, revents);
}

/* ---- everything that would change the namespace ---------------------------------------- */

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	(void)parent, (void)name, (void)mode, (void)rdev;
	fuse_reply_err(req, EPERM);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	(void)parent, (void)name, (void)mode;
	fuse_reply_err(req, EPERM);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent, (void)name;
	fuse_reply_err(req, EPERM);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	(void)link, (void)parent, (void)name;
	fuse_reply_err(req, EPERM);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	(void)parent, (void)name, (void)newparent, (void)newname, (void)flags;
	fuse_reply_err(req, EPERM);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino, (void)newparent, (void)newname;
	fuse_reply_err(req, EPERM);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	(void)parent, (void)name, (void)mode, (void)fi;
	fuse_reply_err(req, EPERM);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs st;

	(void)ino;
	memset(&st, 0, sizeof(st));
	st.f_bsize = 4096;
	st.f_frsize = 4096;
	st.f_namemax = 255;
	fuse_reply_statfs(req, &st);
}

/* ---- lifecycle -------------------------------------------------------------------------- */

static void hook_inval_inode(void *ctx, uint64_t ino)
{
	struct ebsfs *fs = ctx;
	notifier_inval_inode(fs->notifier, ino);
}

static void hook_inval_entry(void *ctx, uint64_t parent, const char *name)
{
	struct ebsfs *fs = ctx;
	notifier_inval_entry(fs->notifier, parent, name);
}

static void hook_changed(void *ctx, uint64_t ino)
{
	struct ebsfs *fs = ctx;
	notifier_changed(fs->notifier, ino);
}

static bool hook_watching(void *ctx)
{
	struct ebsfs *fs = ctx;
	return notifier_watching(fs->notifier);
}

static void hook_sync(void *ctx)
{
	struct ebsfs *fs = ctx;
	notifier_sync(fs->notifier, NOTIFY_SYNC_MS);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct ebsfs *fs = userdata;
	struct cache_hooks hooks = {
	    .inval_inode = hook_inval_inode,
	    .inval_entry = hook_inval_entry,
	    .changed = hook_changed,
	    .watching = hook_watching,
	    .sync = hook_sync,
	    .ctx = fs,
	};

	/* Warm reads cost no upcall: no OPEN/RELEASE, cached pages kept, and dropped when the
	 * daemon announces a change or a getattr shows a new mtime. */
	if ((conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) && !fs->need_opendir) {
		conn->want |= FUSE_CAP_NO_OPENDIR_SUPPORT;
		fs->no_opendir = true;
	}
	if (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT) {
		conn->want |= FUSE_CAP_NO_OPEN_SUPPORT;
		fs->no_open = true;
	}
	if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)
		conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~(unsigned)(FUSE_CAP_READDIRPLUS_AUTO | FUSE_CAP_WRITEBACK_CACHE);

	/* Threads start here, after fuse_daemonize() has forked. */
	if (notifier_start(fs->se, &fs->notifier) < 0)
		log_error("cannot start the notifier: changes reach the kernel only by timeout");
	cache_set_hooks(fs->cache, &hooks);
	if (cache_start_keeper(fs->cache) < 0)
		log_error("cannot start the keeper: poll(2) wakes only when files are read");
}

static void op_destroy(void *userdata)
{
	struct ebsfs *fs = userdata;

	/* No request runs any more; once the sweeps end nothing queues notifications. */
	cache_quiesce(fs->cache);
	notifier_stop(fs->notifier);
	fs->notifier = NULL;
}

const struct fuse_lowlevel_ops ebsfs_ops = {
    .init = op_init,
    .destroy = op_destroy,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_unlink,
    .symlink = op_symlink,
    .rename = op_rename,
    .link = op_link,
    .create = op_create,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .statfs = op_statfs,
    .poll = op_poll,
};

/* The table of control files of a pair directory: name -> API action, the input they accept,
 * and what a write does (one signed call, its outcome line, the audit trail). */
#ifndef EBSFS_CONTROL_H
#define EBSFS_CONTROL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ebsfs/cache.h"
#include "ebsfs/ebs.h"

extern const char *const control_names[EBS_ACTION_COUNT];

/* The action of control file name, or -1. */
int control_find(const char *name);

/* 0 when buf is "1" or "1\n" written at offset 0; -EINVAL otherwise. */
int control_parse_input(const char *buf, size_t len, long long off);

struct control_caller {
	uid_t uid;
	pid_t pid;
	const char *comm;
};

/* A write of buf to control file action of pair slot. Two writers of the same action on the
 * same pair at once make one API call and both get its outcome. 0 or -errno. */
int control_write(struct cache *cache, struct ebs_client *ebs, uint32_t slot, int action,
		  const char *buf, size_t len, long long off, const struct control_caller *who);

/* "control_writes_<file>_<outcome> n" lines. */
size_t control_format_stats(char *buf, size_t len);

/* "1" written to .ebsfs/refresh: the same input rules, logged with the caller. */
int control_refresh(struct cache *cache, const char *buf, size_t len, long long off,
		    const struct control_caller *who);

#endif

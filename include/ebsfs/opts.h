/* ebsfs's own -o options (DESIGN.md section 2): parsed out of the FUSE argument list and
 * validated, so a mistake is a clear error at mount, before any network I/O. */
#ifndef EBSFS_OPTS_H
#define EBSFS_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

struct fuse_args;

struct ebsfs_opts {
	char **regions; /* NULL: ask DescribeRegions on first access */
	size_t n_regions;
	char *endpoint; /* NULL: https://ebs.{region}.aliyuncs.com */
	int cache_ttl;
	int timeout;
	int retries;
	double max_rps;
	int signature; /* enum ebs_signature */
	char *profile;
	char *ctl_group;
	gid_t ctl_gid;
	char *ca_file;
	bool show_help;
	bool show_version;
};

/* The argument list FUSE will parse, from main's argv: the SOURCE of "ebsfs SOURCE MOUNTPOINT"
 * (mount.fuse3's form) dropped into *source, and the commas inside regions=a,b turned into ':'
 * so that fuse_opt does not split the list. 0 or -ENOMEM. */
int opts_prepare_args(int argc, char **argv, struct fuse_args *out, char **source);

/* Removes ebsfs's options from args (FUSE's stay), fills o. 0, or -EINVAL with err set. */
int opts_parse(struct fuse_args *args, struct ebsfs_opts *o, char *err, size_t errlen);
void opts_free(struct ebsfs_opts *o);
/* The option table of --help, with defaults. */
void opts_print_help(FILE *out);

#endif

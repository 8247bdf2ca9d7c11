/* ebsfs: options, credentials, mount, the FUSE loop. */
#include <errno.h>
#include <stdbool.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "ebsfs/cache.h"
#include "ebsfs/creds.h"
#include "ebsfs/ebs.h"
#include "ebsfs/http.h"
#include "ebsfs/log.h"
#include "ebsfs/ops.h"
#include "ebsfs/opts.h"

/* Exit codes, documented in ebsfs(1). */
enum { EXIT_OK = 0, EXIT_USAGE = 1, EXIT_CREDENTIALS = 2, EXIT_MOUNT = 3, EXIT_RUNTIME = 4 };

#define MIN_WORKER_THREADS 64
#define MAX_WORKER_THREADS 100000

static void usage(FILE *out, const char *prog)
{
	fprintf(out,
		"usage: %s [SOURCE] MOUNTPOINT [-f] [-d] [-s] [-o OPTION[,OPTION...]]\n"
		"\n"
		"Mounts Alibaba Cloud EBS asynchronous replication pairs as files.\n"
		"\n"
		"    -h, --help         this help\n"
		"    -V, --version      versions of ebsfs and libfuse\n"
		"    -f                 stay in the foreground, log to stderr\n"
		"    -d                 debug: foreground, every API call logged\n"
		"    -s                 single-threaded\n"
		"\n",
		prog);
	opts_print_help(out);
	fprintf(out, "\nFUSE options:\n");
	fflush(out);
	fuse_lowlevel_help();
}

/* A mount point left by a daemon that died answers ENOTCONN; clear it when we may. */
static void clear_dead_mount(const char *mountpoint)
{
	struct statfs st;
	char why[128];

	/* statfs, not stat: the kernel may answer stat from its attribute cache for a while
	 * after the daemon died, but never statfs. */
	if (statfs(mountpoint, &st) == 0 || errno != ENOTCONN)
		return;
	if (umount2(mountpoint, MNT_DETACH) == 0) {
		log_notice("cleared a dead mount at %s", mountpoint);
		return;
	}
	log_error("%s is a dead mount (%s); clear it with: fusermount3 -u %s", mountpoint,
		  log_strerror(errno, why, sizeof(why)), mountpoint);
}

static int run_loop(struct fuse_session *se, const struct fuse_cmdline_opts *cmd)
{
	struct fuse_loop_config *cfg;
	int rc;

	if (cmd->singlethread)
		return fuse_session_loop(se);
	/* Readers of a cold region wait for its sweep; keep enough workers that they never
	 * starve the requests the kernel could answer at once. */
	cfg = fuse_loop_cfg_create();
	if (!cfg)
		return -ENOMEM;
	fuse_loop_cfg_set_clone_fd(cfg, (unsigned)cmd->clone_fd);
	/* libfuse 3.14 reports "not given" as UINT_MAX. */
	fuse_loop_cfg_set_max_threads(cfg, cmd->max_threads > MIN_WORKER_THREADS &&
						   cmd->max_threads <= MAX_WORKER_THREADS
					       ? cmd->max_threads
					       : MIN_WORKER_THREADS);
	if (cmd->max_idle_threads <= MAX_WORKER_THREADS)
		fuse_loop_cfg_set_idle_threads(cfg, cmd->max_idle_threads);
	rc = fuse_session_loop_mt(se, cfg);
	fuse_loop_cfg_destroy(cfg);
	return rc;
}

static int add_mount_options(struct fuse_args *args, const char *source)
{
	char fsname[256];

	snprintf(fsname, sizeof(fsname), "-ofsname=%s", source ? source : "ebsfs");
	if (strchr(fsname + 9, ','))
		snprintf(fsname, sizeof(fsname), "-ofsname=ebsfs");
	if (fuse_opt_add_arg(args, "-odefault_permissions") < 0 ||
	    fuse_opt_add_arg(args, "-osubtype=ebsfs") < 0 || fuse_opt_add_arg(args, fsname) < 0)
		return -ENOMEM;
	return 0;
}

/* Whether -o auto_unmount was given: fusermount3 then unmounts after a crash only if opening
 * the mount point fails, which it does not when the kernel skips OPENDIR. */
static bool wants_auto_unmount(const struct fuse_args *args)
{
	for (int i = 1; i < args->argc; i++) {
		const char *a = args->argv[i];
		const char *opts = strncmp(a, "-o", 2) == 0 && a[2] ? a + 2
				   : (strcmp(a, "-o") == 0 && i + 1 < args->argc)
				       ? args->argv[i + 1]
				       : NULL;
		for (const char *p = opts; p && (p = strstr(p, "auto_unmount")); p++)
			if ((p == opts || p[-1] == ',') && (p[12] == ',' || p[12] == '\0'))
				return true;
	}
	return false;
}

static int serve(struct fuse_args *args, const struct fuse_cmdline_opts *cmd,
		 const struct ebsfs_opts *o, struct ebsfs *fs)
{
	struct fuse_session *se = fuse_session_new(args, &ebsfs_ops, sizeof(ebsfs_ops), fs);
	int rc = EXIT_OK;

	if (!se)
		return EXIT_USAGE; /* libfuse said which option it did not know */
	fs->se = se;
	if (fuse_set_signal_handlers(se) != 0) {
		rc = EXIT_RUNTIME;
		goto destroy;
	}
	clear_dead_mount(cmd->mountpoint);
	if (fuse_session_mount(se, cmd->mountpoint) != 0) {
		rc = EXIT_MOUNT;
		goto signals;
	}
	log_notice("mounted %s: %s%s, endpoint %s, cache_ttl %d s, timeout %d s", cmd->mountpoint,
		   o->regions ? "regions " : "regions from DescribeRegions",
		   o->regions ? o->regions[0] : "", fs->endpoint, o->cache_ttl, o->timeout);
	fuse_daemonize(cmd->foreground);
	if (run_loop(se, cmd) != 0)
		rc = EXIT_RUNTIME;
	fuse_session_unmount(se);
	log_notice("unmounted %s", cmd->mountpoint);
      signals:
	fuse_remove_signal_handlers(se);
destroy:
	fuse_session_destroy(se);
	return rc;
}

static int start(struct fuse_args *args, const struct fuse_cmdline_opts *cmd,
		 const struct ebsfs_opts *o)
{
	struct creds_options copts = {.profile = o->profile};
	struct creds_chain *chain = NULL;
	struct ebs_client *ebs = NULL;
	struct ebsfs fs = {0};
	char err[512];
	int rc;

	if (creds_chain_open(&copts, &chain, err, sizeof(err)) < 0) {
		log_error("no credentials: %s", err);
		return EXIT_CREDENTIALS;
	}
	log_info("credentials from %s", creds_source(chain));
	struct ebs_config cfg = {
	    .endpoint = o->endpoint,
	    .timeout_ms = o->timeout * 1000,
	    .retries = o->retries,
	    .max_rps = o->max_rps,
	    .signature = o->signature,
	    .ca_file = o->ca_file,
	    .creds = chain,
	};
	struct cache_config ccfg = {
	    .ttl_s = o->cache_ttl,
	    .timeout_ms = o->timeout * 1000,
	    .regions = o->regions,
	    .n_regions = o->n_regions,
	};
	rc = EXIT_USAGE;
	if (ebs_client_new(&cfg, &ebs, err, sizeof(err)) < 0) {
		log_error("%s", err);
		goto out;
	}
	ccfg.ebs = ebs;
	if (cache_new(&ccfg, &fs.cache) < 0) {
		log_error("out of memory");
		rc = EXIT_RUNTIME;
		goto out;
	}
	fs.ebs = ebs;
	fs.ttl = o->cache_ttl;
	fs.uid = getuid();
	fs.gid = getgid();
	fs.ctl_gid = o->ctl_group ? o->ctl_gid : (gid_t)-1;
	fs.need_opendir = wants_auto_unmount(args);
	fs.endpoint = o->endpoint ? o->endpoint : "https://ebs.{region}.aliyuncs.com";
	clock_gettime(CLOCK_REALTIME, &fs.started);
	pthread_mutex_init(&fs.stats_lock, NULL);
	rc = serve(args, cmd, o, &fs);
	cache_free(fs.cache);
	free(fs.stats_text);
	pthread_mutex_destroy(&fs.stats_lock);
out:
	ebs_client_free(ebs);
	creds_chain_close(chain);
	return rc;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_cmdline_opts cmd = {0};
	struct ebsfs_opts o;
	char *source = NULL, err[512];
	int rc = EXIT_USAGE;

	if (opts_prepare_args(argc, argv, &args, &source) < 0) {
		fprintf(stderr, "ebsfs: out of memory\n");
		fuse_opt_free_args(&args);
		return EXIT_RUNTIME;
	}
	if (opts_parse(&args, &o, err, sizeof(err)) < 0) {
		fprintf(stderr, "ebsfs: %s\n", err);
		fuse_opt_free_args(&args);
		return EXIT_USAGE;
	}
	if (o.show_help || o.show_version) {
		if (o.show_help)
			usage(stdout, argv[0]);
		else
			printf("ebsfs %s\nlibfuse %s\n", EBSFS_VERSION, fuse_pkgversion());
		rc = EXIT_OK;
		goto out;
	}
	if (fuse_parse_cmdline(&args, &cmd) != 0)
		goto out;
	if (!cmd.mountpoint) {
		fprintf(stderr, "ebsfs: no mount point (try --help)\n");
		goto out;
	}
	if (add_mount_options(&args, source) < 0)
		goto out;
	log_init(cmd.foreground, cmd.debug);
	if (http_global_init() != 0) {
		log_error("cannot initialise libcurl");
		rc = EXIT_RUNTIME;
		goto out;
	}
	rc = start(&args, &cmd, &o);
	http_global_cleanup();
out:
	free(cmd.mountpoint);
	opts_free(&o);
	fuse_opt_free_args(&args);
	return rc;
}

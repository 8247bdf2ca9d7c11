#include "ebsfs/opts.h"

#include <errno.h>
#include <fuse_opt.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ebsfs/ebs.h"
#include "ebsfs/http.h"
#include "ebsfs/tree.h"

enum {
	KEY_REGIONS,
	KEY_ENDPOINT,
	KEY_CACHE_TTL,
	KEY_TIMEOUT,
	KEY_RETRIES,
	KEY_MAX_RPS,
	KEY_SIGNATURE,
	KEY_PROFILE,
	KEY_CTL_GROUP,
	KEY_CA_FILE,
	KEY_SECRET,
	KEY_HELP,
	KEY_VERSION,
};

static const struct fuse_opt opt_spec[] = {
    FUSE_OPT_KEY("regions=", KEY_REGIONS),
    FUSE_OPT_KEY("endpoint=", KEY_ENDPOINT),
    FUSE_OPT_KEY("cache_ttl=", KEY_CACHE_TTL),
    FUSE_OPT_KEY("timeout=", KEY_TIMEOUT),
    FUSE_OPT_KEY("retries=", KEY_RETRIES),
    FUSE_OPT_KEY("max_rps=", KEY_MAX_RPS),
    FUSE_OPT_KEY("signature=", KEY_SIGNATURE),
    FUSE_OPT_KEY("profile=", KEY_PROFILE),
    FUSE_OPT_KEY("ctl_group=", KEY_CTL_GROUP),
    FUSE_OPT_KEY("ca_file=", KEY_CA_FILE),
    FUSE_OPT_KEY("access_key_id=", KEY_SECRET),
    FUSE_OPT_KEY("access_key_secret=", KEY_SECRET),
    FUSE_OPT_KEY("secret=", KEY_SECRET),
    FUSE_OPT_KEY("security_token=", KEY_SECRET),
    FUSE_OPT_KEY("sts_token=", KEY_SECRET),
    FUSE_OPT_KEY("password=", KEY_SECRET),
    FUSE_OPT_KEY("-h", KEY_HELP),
    FUSE_OPT_KEY("--help", KEY_HELP),
    FUSE_OPT_KEY("-V", KEY_VERSION),
    FUSE_OPT_KEY("--version", KEY_VERSION),
    FUSE_OPT_END,
};

struct parse_ctx {
	struct ebsfs_opts *o;
	char *err;
	size_t errlen;
};

static int fail(struct parse_ctx *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct parse_ctx *p, const char *fmt, ...)
{
	va_list ap;

	if (p->err[0])
		return -1; /* keep the first complaint */
	va_start(ap, fmt);
	vsnprintf(p->err, p->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

static int set_string(char **dst, const char *value)
{
	char *copy = strdup(value);

	if (!copy)
		return -ENOMEM;
	free(*dst);
	*dst = copy;
	return 0;
}

static void free_regions(struct ebsfs_opts *o)
{
	for (size_t i = 0; i < o->n_regions; i++)
		free(o->regions[i]);
	free(o->regions);
	o->regions = NULL;
	o->n_regions = 0;
}

static bool region_listed(const struct ebsfs_opts *o, const char *name)
{
	for (size_t i = 0; i < o->n_regions; i++)
		if (strcmp(o->regions[i], name) == 0)
			return true;
	return false;
}

static int parse_regions(struct parse_ctx *p, const char *value)
{
	struct ebsfs_opts *o = p->o;
	char *copy = strdup(value), *save = NULL;
	int rc = 0;

	if (!copy)
		return fail(p, "out of memory");
	free_regions(o);
	for (char *tok = strtok_r(copy, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
		if (!tree_region_name_valid(tok)) {
			rc = fail(p, "regions: '%s' is not a region id (like cn-shanghai)", tok);
			break;
		}
		if (region_listed(o, tok))
			continue;
		char **grown = realloc(o->regions, (o->n_regions + 1) * sizeof(*grown));
		if (!grown || !(grown[o->n_regions] = strdup(tok))) {
			if (grown)
				o->regions = grown;
			rc = fail(p, "out of memory");
			break;
		}
		o->regions = grown;
		o->n_regions++;
	}
	free(copy);
	if (rc == 0 && o->n_regions == 0)
		rc = fail(p, "regions: the list is empty");
	return rc;
}

static int parse_endpoint(struct parse_ctx *p, const char *value)
{
	char why[256] = "";

	if (strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0)
		return fail(p, "endpoint: '%s' is not an http:// or https:// URL", value);
	if (http_url_allowed(value, why, sizeof(why)) < 0)
		return fail(p, "endpoint: %s", why[0] ? why : "not allowed");
	if (set_string(&p->o->endpoint, value) < 0)
		return fail(p, "out of memory");
	return 0;
}

static int parse_ctl_group(struct parse_ctx *p, const char *value)
{
	struct group gr, *found = NULL;
	char buf[4096];
	long gid;

	if (parse_long(value, 0, INT_MAX, &gid) == 0) {
		p->o->ctl_gid = (gid_t)gid;
	} else if (getgrnam_r(value, &gr, buf, sizeof(buf), &found) == 0 && found) {
		p->o->ctl_gid = found->gr_gid;
	} else {
		return fail(p, "ctl_group: no group named '%s'", value);
	}
	if (set_string(&p->o->ctl_group, value) < 0)
		return fail(p, "out of memory");
	return 0;
}

static int parse_profile(struct parse_ctx *p, const char *value)
{
	if (!*value || strspn(value, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				     "0123456789_.-") != strlen(value))
		return fail(p, "profile: '%s' is not a profile name", value);
	return set_string(&p->o->profile, value) < 0 ? fail(p, "out of memory") : 0;
}

static int parse_number(struct parse_ctx *p, const char *name, const char *value, long lo, long hi,
			int *out)
{
	long v;

	if (parse_long(value, lo, hi, &v) < 0)
		return fail(p, "%s: '%s' is not a whole number from %ld to %ld", name, value, lo,
			    hi);
	*out = (int)v;
	return 0;
}

static int parse_rps(struct parse_ctx *p, const char *value)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(value, &end);
	if (errno || end == value || *end || !(v > 0) || v > 10000)
		return fail(p, "max_rps: '%s' is not a rate above 0 and at most 10000", value);
	p->o->max_rps = v;
	return 0;
}

static int process(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct parse_ctx *p = data;
	const char *value = strchr(arg, '=');
	char list[4096];

	(void)outargs;
	value = value ? value + 1 : "";
	switch (key) {
	case KEY_REGIONS:
		/* fuse_opt splits -o at commas, so "regions=a,b" arrives as "regions=a" and
		 * "b"; main.c rewrites the list with ':' before parsing. */
		if (strlen(value) >= sizeof(list))
			return fail(p, "regions: the list is longer than %zu bytes",
				    sizeof(list) - 1);
		snprintf(list, sizeof(list), "%s", value);
		return parse_regions(p, list) < 0 ? -1 : 0;
	case KEY_ENDPOINT:
		return parse_endpoint(p, value) < 0 ? -1 : 0;
	case KEY_CACHE_TTL:
		return parse_number(p, "cache_ttl", value, 0, 86400, &p->o->cache_ttl) < 0 ? -1 : 0;
	case KEY_TIMEOUT:
		return parse_number(p, "timeout", value, 1, 600, &p->o->timeout) < 0 ? -1 : 0;
	case KEY_RETRIES:
		return parse_number(p, "retries", value, 1, 10, &p->o->retries) < 0 ? -1 : 0;
	case KEY_MAX_RPS:
		return parse_rps(p, value) < 0 ? -1 : 0;
	case KEY_SIGNATURE:
		if (strcmp(value, "v3") == 0)
			p->o->signature = EBS_SIG_V3;
		else if (strcmp(value, "v1") == 0)
			p->o->signature = EBS_SIG_V1;
		else
			return fail(p, "signature: '%s' is neither v3 nor v1", value);
		return 0;
	case KEY_PROFILE:
		return parse_profile(p, value) < 0 ? -1 : 0;
	case KEY_CTL_GROUP:
		return parse_ctl_group(p, value) < 0 ? -1 : 0;
	case KEY_CA_FILE:
		if (access(value, R_OK) != 0)
			return fail(p, "ca_file: cannot read '%s'", value);
		return set_string(&p->o->ca_file, value) < 0 ? fail(p, "out of memory") : 0;
	case KEY_SECRET:
		return fail(p, "secrets are never accepted as options (they would show in ps and "
			       "/proc/mounts); use the environment, ~/.alibabacloud/credentials "
			       "or ~/.aliyun/config.json");
	case KEY_HELP:
		p->o->show_help = true;
		return 0;
	case KEY_VERSION:
		p->o->show_version = true;
		return 0;
	}
	return 1;
}

/* Flags (options without '=') that FUSE, mount(8) or systemd may pass along. */
static const char *const mount_flags[] = {
    "allow_other", "allow_root",  "auto_unmount", "default_permissions",
    "_netdev",	   "nofail",	  "ro",		  "rw",
    "suid",	   "nosuid",	  "dev",	  "nodev",
    "exec",	   "noexec",	  "async",	  "sync",
    "dirsync",	   "atime",	  "noatime",	  "nodiratime",
    "relatime",	   "strictatime", "lazytime",	  "user",
    "users",	   "owner",	  "group",	  "auto",
    "noauto",	   "nonempty",	  "debug",	  "defaults",
    "clone_fd",
};

/* Whether the word after "regions=a," continues the region list: anything that is not an
 * option (no '=', not a known flag) is, so that a bad region is reported as one. */
static bool continues_regions(const char *s, size_t len)
{
	if (len == 0 || memchr(s, '=', len) || (len > 2 && strncmp(s, "x-", 2) == 0))
		return false;
	for (size_t i = 0; i < sizeof(mount_flags) / sizeof(mount_flags[0]); i++)
		if (strlen(mount_flags[i]) == len && strncmp(mount_flags[i], s, len) == 0)
			return false;
	return true;
}

/* "regions=a,b,allow_other" -> "regions=a:b,allow_other", so that fuse_opt does not split the
 * list. */
static char *join_region_lists(const char *optstr)
{
	char *out = strdup(optstr);
	bool in_regions = false;

	if (!out)
		return NULL;
	for (char *tok = out;;) {
		char *comma = strchr(tok, ',');

		if (strncmp(tok, "regions=", 8) == 0)
			in_regions = true;
		if (!comma)
			break;
		tok = comma + 1;
		if (in_regions && continues_regions(tok, strcspn(tok, ",")))
			*comma = ':';
		else
			in_regions = false;
	}
	return out;
}

int opts_prepare_args(int argc, char **argv, struct fuse_args *out, char **source)
{
	int nonopt_first = -1, nonopts = 0;

	*source = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-o") == 0) {
			i++;
			continue;
		}
		if (argv[i][0] != '-' && nonopts++ == 0)
			nonopt_first = i;
	}
	if (fuse_opt_add_arg(out, argv[0]) < 0)
		return -ENOMEM;
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		char *joined = NULL;
		int rc;

		if (nonopts == 2 && i == nonopt_first) {
			*source = argv[i];
			continue;
		}
		if (strncmp(arg, "-o", 2) == 0 && arg[2]) {
			char *o = join_region_lists(arg + 2);
			if (o && (joined = malloc(strlen(o) + 3)))
				snprintf(joined, strlen(o) + 3, "-o%s", o);
			free(o);
		} else if (i > 1 && strcmp(argv[i - 1], "-o") == 0) {
			joined = join_region_lists(arg);
		} else {
			joined = strdup(arg);
		}
		if (!joined)
			return -ENOMEM;
		rc = fuse_opt_add_arg(out, joined);
		free(joined);
		if (rc < 0)
			return -ENOMEM;
	}
	return 0;
}

int opts_parse(struct fuse_args *args, struct ebsfs_opts *o, char *err, size_t errlen)
{
	struct parse_ctx p = {.o = o, .err = err, .errlen = errlen};

	memset(o, 0, sizeof(*o));
	o->cache_ttl = 5;
	o->timeout = 10;
	o->retries = 3;
	o->max_rps = 10;
	o->signature = EBS_SIG_V3;
	o->ctl_gid = (gid_t)-1;
	err[0] = '\0';
	if (fuse_opt_parse(args, &p, opt_spec, process) != 0) {
		if (!err[0])
			snprintf(err, errlen, "cannot parse the options");
		opts_free(o);
		return -EINVAL;
	}
	return 0;
}

void opts_free(struct ebsfs_opts *o)
{
	free_regions(o);
	free(o->endpoint);
	free(o->profile);
	free(o->ctl_group);
	free(o->ca_file);
	memset(o, 0, sizeof(*o));
}

void opts_print_help(FILE *out)
{
	fprintf(
	    out,
	    "ebsfs options (-o name=value):\n"
	    "    regions=a,b        regions exposed (default: DescribeRegions on first access)\n"
	    "    endpoint=URL       API endpoint, {region} substituted\n"
	    "                       (default: https://ebs.{region}.aliyuncs.com;\n"
	    "                       http:// only to loopback)\n"
	    "    cache_ttl=S        seconds a describe result stays fresh (default: 5)\n"
	    "    timeout=S          one API call's limit, retries included (default: 10)\n"
	    "    retries=N          attempts for retryable failures (default: 3)\n"
	    "    max_rps=N          API calls per second, all regions together (default: 10)\n"
	    "    signature=v3|v1    ACS3-HMAC-SHA256 or RPC HMAC-SHA1 (default: v3)\n"
	    "    profile=NAME       credential profile (default: ALIBABA_CLOUD_PROFILE, then\n"
	    "                       the configuration's default)\n"
	    "    ctl_group=GROUP    group allowed to write control files (default: none)\n"
	    "    ca_file=PATH       extra CA bundle (default: the system store)\n"
	    "\n"
	    "default_permissions is always on. Secrets are never accepted as options.\n");
}

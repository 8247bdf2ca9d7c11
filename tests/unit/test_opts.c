/* ebsfs's -o options: the argument list handed to FUSE (SOURCE dropped, region lists joined),
 * defaults, every option's valid and invalid values, refused secrets, help and version. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fuse_opt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ebsfs/ebs.h"
#include "ebsfs/http.h"
#include "ebsfs/opts.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

static void assert_args(const struct fuse_args *args, const char *const *expected, int n)
{
	if (args->argc != n) {
		for (int i = 0; i < args->argc; i++)
			print_message("args[%d] = '%s'\n", i, args->argv[i]);
		fail_msg("%d arguments, expected %d", args->argc, n);
	}
	for (int i = 0; i < n; i++)
		assert_string_equal(args->argv[i], expected[i]);
}

/* ---- opts_prepare_args ------------------------------------------------------------------- */

static void source_is_dropped_when_two_non_options(void **state)
{
	char *argv[] = {"ebsfs", "ebsfs", "/mnt/ebs"};
	const char *const want[] = {"ebsfs", "/mnt/ebs"};
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	char *source = (char *)"sentinel";
	(void)state;

	assert_int_equal(opts_prepare_args(ARGC(argv), argv, &args, &source), 0);
	assert_ptr_equal(source, argv[1]);
	assert_args(&args, want, ARGC(want));
	fuse_opt_free_args(&args);
}

static void single_non_option_is_the_mountpoint(void **state)
{
	char *argv[] = {"ebsfs", "/mnt/ebs", "-f"};
	const char *const want[] = {"ebsfs", "/mnt/ebs", "-f"};
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	char *source = (char *)"sentinel";
	(void)state;

	assert_int_equal(opts_prepare_args(ARGC(argv), argv, &args, &source), 0);
	assert_null(source);
	assert_args(&args, want, ARGC(want));
	fuse_opt_free_args(&args);
}

static void option_values_are_not_non_options(void **state)
{
	/* mount.fuse3's form: SOURCE MOUNTPOINT -o OPTIONS, with options first too. */
	char *argv[] = {"ebsfs", "-f", "-o", "ro", "src", "/mnt/ebs", "-o", "allow_other"};
	const char *const want[] = {"ebsfs", "-f", "-o", "ro", "/mnt/ebs", "-o", "allow_other"};
	char *argv1[] = {"ebsfs", "-o", "ro", "/mnt/ebs"};
	const char *const want1[] = {"ebsfs", "-o", "ro", "/mnt/ebs"};
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	char *source = NULL;
	(void)state;

	assert_int_equal(opts_prepare_args(ARGC(argv), argv, &args, &source), 0);
	assert_string_equal(source, "src");
	assert_args(&args, want, ARGC(want));
	fuse_opt_free_args(&args);

	assert_int_equal(opts_prepare_args(ARGC(argv1), argv1, &args, &source), 0);
	assert_null(source);
	assert_args(&args, want1, ARGC(want1));
	fuse_opt_free_args(&args);
}

static void three_non_options_are_left_for_fuse(void **state)
{
	char *argv[] = {"ebsfs", "a", "b", "c"};
	const char *const want[] = {"ebsfs", "a", "b", "c"};
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	char *source = NULL;
	(void)state;

	assert_int_equal(opts_prepare_args(ARGC(argv), argv, &args, &source), 0);
	assert_null(source);
	assert_args(&args, want, ARGC(want));
	fuse_opt_free_args(&args);
}

static void region_lists_are_joined(void **state)
{
	char *argv[] = {"ebsfs",
			"/mnt/ebs",
			"-o",
			"regions=cn-shanghai,cn-beijing,allow_other",
			"-oro,regions=ap-southeast-1,us-west-1,cache_ttl=3",
			"-o",
			"allow_other,regions=cn-hangzhou",
			"-o",
			"default_permissions,cn-shanghai"};
	const char *const want[] = {"ebsfs",
				    "/mnt/ebs",
				    "-o",
				    "regions=cn-shanghai:cn-beijing,allow_other",
				    "-oro,regions=ap-southeast-1:us-west-1,cache_ttl=3",
				    "-o",
				    "allow_other,regions=cn-hangzhou",
				    "-o",
				    "default_permissions,cn-shanghai"};
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	char *source = NULL;
	(void)state;

	assert_int_equal(opts_prepare_args(ARGC(argv), argv, &args, &source), 0);
	assert_null(source);
	assert_args(&args, want, ARGC(want));
	fuse_opt_free_args(&args);
}

/* ---- opts_parse ---------------------------------------------------------------------------- */

/* Runs prepare + parse over "ebsfs /mnt/ebs -o OPTIONS" (OPTIONS NULL: no -o). */
static int parse_o(const char *options, struct ebsfs_opts *o, char *err, size_t errlen)
{
	char *argv[] = {"ebsfs", "/mnt/ebs", "-o", (char *)options};
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	char *source = NULL;
	int rc;

	assert_int_equal(opts_prepare_args(options ? 4 : 2, argv, &args, &source), 0);
	rc = opts_parse(&args, o, err, errlen);
	fuse_opt_free_args(&args);
	return rc;
}

static void assert_defaults(const struct ebsfs_opts *o)
{
	assert_null(o->regions);
	assert_int_equal(o->n_regions, 0);
	assert_null(o->endpoint);
	assert_int_equal(o->cache_ttl, 5);
	assert_int_equal(o->timeout, 10);
	assert_int_equal(o->retries, 3);
	assert_true(o->max_rps == 10.0);
	assert_int_equal(o->signature, EBS_SIG_V3);
	assert_null(o->profile);
	assert_null(o->ctl_group);
	assert_int_equal(o->ctl_gid, (gid_t)-1);
	assert_null(o->ca_file);
	assert_false(o->show_help);
	assert_false(o->show_version);
}

static void defaults(void **state)
{
	struct ebsfs_opts o;
	char err[256] = "x";
	(void)state;

	assert_int_equal(parse_o(NULL, &o, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_defaults(&o);
	opts_free(&o);

	/* FUSE's own options leave ours at their defaults. */
	assert_int_equal(parse_o("allow_other,ro,auto_unmount", &o, err, sizeof(err)), 0);
	assert_defaults(&o);
	opts_free(&o);
}

static void fuse_options_stay_for_fuse(void **state)
{
	char *argv[] = {
	    "ebsfs", "/mnt/ebs", "-f",	       "-o", "allow_other,regions=cn-shanghai,ro",
	    "-d",    "-o",	 "cache_ttl=7"};
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct ebsfs_opts o;
	char *source = NULL;
	char err[256];
	(void)state;

	assert_int_equal(opts_prepare_args(ARGC(argv), argv, &args, &source), 0);
	assert_int_equal(opts_parse(&args, &o, err, sizeof(err)), 0);
	assert_int_equal(o.cache_ttl, 7);
	assert_int_equal(o.n_regions, 1);
	/* What is left mentions none of ours. */
	for (int i = 0; i < args.argc; i++) {
		assert_null(strstr(args.argv[i], "regions="));
		assert_null(strstr(args.argv[i], "cache_ttl="));
	}
	bool has_mnt = false, has_allow = false, has_f = false;
	for (int i = 0; i < args.argc; i++) {
		has_mnt |= strcmp(args.argv[i], "/mnt/ebs") == 0;
		has_allow |= strstr(args.argv[i], "allow_other") != NULL;
		has_f |= strcmp(args.argv[i], "-f") == 0;
	}
	assert_true(has_mnt && has_allow && has_f);
	opts_free(&o);
	fuse_opt_free_args(&args);
}

static void regions_are_parsed(void **state)
{
	struct ebsfs_opts o;
	char err[256];
	(void)state;

	assert_int_equal(
	    parse_o("regions=cn-shanghai,cn-beijing,allow_other", &o, err, sizeof(err)), 0);
	assert_int_equal(o.n_regions, 2);
	assert_string_equal(o.regions[0], "cn-shanghai");
	assert_string_equal(o.regions[1], "cn-beijing");
	opts_free(&o);

	/* Duplicates collapse; the last regions= wins. */
	assert_int_equal(
	    parse_o("regions=cn-shanghai,cn-shanghai,cn-beijing", &o, err, sizeof(err)), 0);
	assert_int_equal(o.n_regions, 2);
	opts_free(&o);
	assert_int_equal(parse_o("regions=cn-beijing,regions=us-west-1", &o, err, sizeof(err)), 0);
	assert_int_equal(o.n_regions, 1);
	assert_string_equal(o.regions[0], "us-west-1");
	opts_free(&o);
}

/* Valid settings and the value they give. */
static void valid_values(void **state)
{
	struct ebsfs_opts o;
	char err[256];
	char path[] = "/tmp/test_opts_ca_XXXXXX";
	int fd = mkstemp(path);
	char opt[300];
	(void)state;

	assert_true(fd >= 0);
	close(fd);

#define OK(options) assert_int_equal(parse_o(options, &o, err, sizeof(err)), 0)
	OK("endpoint=https://ebs.cn-hangzhou.aliyuncs.com");
	assert_string_equal(o.endpoint, "https://ebs.cn-hangzhou.aliyuncs.com");
	opts_free(&o);
	OK("endpoint=http://127.0.0.1:8080");
	assert_string_equal(o.endpoint, "http://127.0.0.1:8080");
	opts_free(&o);
	OK("endpoint=http://localhost:9/x,endpoint=http://[::1]:9");
	assert_string_equal(o.endpoint, "http://[::1]:9");
	opts_free(&o);
	OK("cache_ttl=0");
	assert_int_equal(o.cache_ttl, 0);
	opts_free(&o);
	OK("cache_ttl=86400");
	assert_int_equal(o.cache_ttl, 86400);
	opts_free(&o);
	OK("timeout=1");
	assert_int_equal(o.timeout, 1);
	opts_free(&o);
	OK("timeout=600");
	assert_int_equal(o.timeout, 600);
	opts_free(&o);
	OK("retries=1");
	assert_int_equal(o.retries, 1);
	opts_free(&o);
	OK("retries=10");
	assert_int_equal(o.retries, 10);
	opts_free(&o);
	OK("max_rps=0.5");
	assert_true(o.max_rps == 0.5);
	opts_free(&o);
	OK("max_rps=10000");
	assert_true(o.max_rps == 10000.0);
	opts_free(&o);
	OK("max_rps=1e3");
	assert_true(o.max_rps == 1000.0);
	opts_free(&o);
	OK("signature=v1");
	assert_int_equal(o.signature, EBS_SIG_V1);
	opts_free(&o);
	OK("signature=v3");
	assert_int_equal(o.signature, EBS_SIG_V3);
	opts_free(&o);
	OK("profile=prod-2_a.b");
	assert_string_equal(o.profile, "prod-2_a.b");
	opts_free(&o);
	OK("ctl_group=0");
	assert_int_equal(o.ctl_gid, 0);
	assert_string_equal(o.ctl_group, "0");
	opts_free(&o);
	OK("ctl_group=root");
	assert_int_equal(o.ctl_gid, 0);
	assert_string_equal(o.ctl_group, "root");
	opts_free(&o);
	snprintf(opt, sizeof(opt), "ca_file=%s", path);
	OK(opt);
	assert_string_equal(o.ca_file, path);
	opts_free(&o);
	OK("cache_ttl=1,cache_ttl=2");
	assert_int_equal(o.cache_ttl, 2);
	opts_free(&o);
#undef OK
	unlink(path);
}

/* The documented form of the option (DESIGN.md section 2, and the default itself) is a
 * template: "{region}" is substituted per call, so the host is checked with a region in it. */
static void endpoint_template_is_accepted(void **state)
{
	static const char *const templates[] = {
	    "https://ebs.{region}.aliyuncs.com",
	    "https://ebs-{region}.example.com:8443",
	    "http://127.0.0.1:8080",
	};
	(void)state;

	for (size_t i = 0; i < sizeof(templates) / sizeof(templates[0]); i++) {
		struct ebsfs_opts o;
		char options[128], err[256] = "";
		int rc;

		snprintf(options, sizeof(options), "endpoint=%s", templates[i]);
		rc = parse_o(options, &o, err, sizeof(err));
		if (rc != 0)
			fail_msg("'%s' refused: %s", options, err);
		assert_string_equal(o.endpoint, templates[i]);
		opts_free(&o);
	}
	/* A template is still checked: plain http to a remote host stays refused. */
	struct ebsfs_opts o;
	char err[256] = "";
	assert_int_equal(parse_o("endpoint=http://{region}.example.com", &o, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "endpoint"));
}

/* Invalid settings: -EINVAL, an error naming the option, and everything freed. */
static void invalid_values(void **state)
{
	static const struct {
		const char *options;
		const char *mention;
	} cases[] = {
	    {"regions=", "regions"},
	    {"regions=Cn-Shanghai", "regions"},
	    {"regions=cn_shanghai", "regions"},
	    {"regions=cn-shanghai:x", "regions"},
	    {"endpoint=", "endpoint"},
	    {"endpoint=ftp://ebs.example.com", "endpoint"},
	    {"endpoint=ebs.cn-shanghai.aliyuncs.com", "endpoint"},
	    {"endpoint=http://ebs.cn-shanghai.aliyuncs.com", "endpoint"},
	    {"endpoint=http://10.0.0.1:80", "endpoint"},
	    {"endpoint=https://", "endpoint"},
	    {"cache_ttl=", "cache_ttl"},
	    {"cache_ttl=-1", "cache_ttl"},
	    {"cache_ttl=86401", "cache_ttl"},
	    {"cache_ttl=5s", "cache_ttl"},
	    {"cache_ttl=abc", "cache_ttl"},
	    {"cache_ttl=0x10", "cache_ttl"},
	    {"cache_ttl=99999999999999999999", "cache_ttl"},
	    {"timeout=0", "timeout"},
	    {"timeout=601", "timeout"},
	    {"timeout=", "timeout"},
	    {"timeout=1.5", "timeout"},
	    {"retries=0", "retries"},
	    {"retries=11", "retries"},
	    {"retries=three", "retries"},
	    {"max_rps=0", "max_rps"},
	    {"max_rps=-1", "max_rps"},
	    {"max_rps=10001", "max_rps"},
	    {"max_rps=nan", "max_rps"},
	    {"max_rps=inf", "max_rps"},
	    {"max_rps=", "max_rps"},
	    {"max_rps=5/s", "max_rps"},
	    {"signature=v2", "signature"},
	    {"signature=V3", "signature"},
	    {"signature=", "signature"},
	    {"profile=", "profile"},
	    {"profile=a b", "profile"},
	    {"profile=../x", "profile"},
	    {"ctl_group=no-such-group-ebsfs-test", "ctl_group"},
	    {"ctl_group=-1", "ctl_group"},
	    {"ctl_group=", "ctl_group"},
	    {"ca_file=/nonexistent/ebsfs-test-ca.pem", "ca_file"},
	    /* The first complaint is kept; earlier valid settings are freed. */
	    {"regions=cn-shanghai,endpoint=http://example.com,profile=p", "endpoint"},
	    {"profile=p,ctl_group=root,timeout=0,cache_ttl=x", "timeout"},
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ebsfs_opts o;
		char err[256] = "";
		int rc = parse_o(cases[i].options, &o, err, sizeof(err));

		if (rc != -EINVAL)
			fail_msg("'%s' gave %d", cases[i].options, rc);
		if (!strstr(err, cases[i].mention))
			fail_msg("'%s': error '%s' does not mention %s", cases[i].options, err,
				 cases[i].mention);
		/* opts_parse freed and cleared o. */
		assert_null(o.regions);
		assert_null(o.endpoint);
		assert_null(o.profile);
		assert_null(o.ctl_group);
	}
}

static void secrets_are_refused(void **state)
{
	static const char *const names[] = {"access_key_id",  "access_key_secret", "secret",
					    "security_token", "sts_token",	   "password"};
	(void)state;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct ebsfs_opts o;
		char options[128], err[256] = "";

		snprintf(options, sizeof(options), "ro,%s=LTAIverysecretvalue", names[i]);
		assert_int_equal(parse_o(options, &o, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "secrets are never accepted"));
		/* The value is never echoed. */
		assert_null(strstr(err, "LTAIverysecretvalue"));
	}
}

static void help_and_version(void **state)
{
	static const struct {
		const char *flag;
		bool help, version;
	} cases[] = {
	    {"-h", true, false},
	    {"--help", true, false},
	    {"-V", false, true},
	    {"--version", false, true},
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *argv[] = {"ebsfs", (char *)cases[i].flag};
		struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
		struct ebsfs_opts o;
		char *source = NULL, err[256];

		assert_int_equal(opts_prepare_args(ARGC(argv), argv, &args, &source), 0);
		assert_int_equal(opts_parse(&args, &o, err, sizeof(err)), 0);
		assert_int_equal(o.show_help, cases[i].help);
		assert_int_equal(o.show_version, cases[i].version);
		opts_free(&o);
		fuse_opt_free_args(&args);
	}
}

static void help_text_lists_every_option(void **state)
{
	static const char *const names[] = {
	    "regions=", "endpoint=",  "cache_ttl=", "timeout=",	  "retries=",
	    "max_rps=", "signature=", "profile=",   "ctl_group=", "ca_file="};
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	(void)state;

	assert_non_null(f);
	opts_print_help(f);
	fclose(f);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_non_null(strstr(text, names[i]));
	free(text);
}

static int setup(void **state)
{
	(void)state;
	return http_global_init();
}

static int teardown(void **state)
{
	(void)state;
	http_global_cleanup();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(source_is_dropped_when_two_non_options),
	    cmocka_unit_test(single_non_option_is_the_mountpoint),
	    cmocka_unit_test(option_values_are_not_non_options),
	    cmocka_unit_test(three_non_options_are_left_for_fuse),
	    cmocka_unit_test(region_lists_are_joined),
	    cmocka_unit_test(defaults),
	    cmocka_unit_test(fuse_options_stay_for_fuse),
	    cmocka_unit_test(regions_are_parsed),
	    cmocka_unit_test(valid_values),
	    cmocka_unit_test(endpoint_template_is_accepted),
	    cmocka_unit_test(invalid_values),
	    cmocka_unit_test(secrets_are_refused),
	    cmocka_unit_test(help_and_version),
	    cmocka_unit_test(help_text_lists_every_option),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

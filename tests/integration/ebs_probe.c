/* ebs_probe: drives ebs.c against an endpoint and prints one JSON line per call, for the
 * Python suites. Credentials come from the normal chain (the environment in tests).
 *
 *   ebs_probe --endpoint URL [--signature v1|v3] [--timeout-ms N] [--retries N]
 *             [--max-rps N] [--ca-file F] [--profile P] [--debug] [--repeat N]
 *             [--interval-ms N] COMMAND
 *   COMMAND: describe-pairs REGION SITE [PAIR_IDS] | describe-regions |
 *            progress REGION PAIR | act ACTION REGION PAIR [TOKEN]
 *   ACTION:  reprotect | failover | start | stop
 *
 * Exit status: 0 when every call succeeded, 1 when one failed, 2 on bad usage. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ebsfs/creds.h"
#include "ebsfs/ebs.h"
#include "ebsfs/http.h"
#include "ebsfs/log.h"

struct probe {
	struct ebs_config cfg;
	struct creds_options creds;
	bool debug;
	int repeat;
	long interval_ms;
	char **args; /* the command and its operands */
	int n_args;
};

static const char *errno_name(int e)
{
	static const struct {
		int e;
		const char *name;
	} names[] = {{EBUSY, "EBUSY"},	 {EACCES, "EACCES"},	   {ENOENT, "ENOENT"},
		     {EAGAIN, "EAGAIN"}, {ETIMEDOUT, "ETIMEDOUT"}, {EIO, "EIO"},
		     {EINVAL, "EINVAL"}, {ENOMEM, "ENOMEM"}};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].e == e)
			return names[i].name;
	return "EOTHER";
}

static void print_line(json_t *obj)
{
	char *line = json_dumps(obj, JSON_COMPACT);

	if (line)
		printf("%s\n", line);
	fflush(stdout);
	free(line);
	json_decref(obj);
}

static json_t *failure(int rc, const struct ebs_error *err)
{
	return json_pack("{s:b, s:s, s:s, s:s, s:s, s:I}", "ok", 0, "errno", errno_name(-rc),
			 "code", err->code, "message", err->message, "request_id", err->request_id,
			 "http_status", (json_int_t)err->http_status);
}

static json_t *pair_summary(const struct ebs_pair *p)
{
	json_t *record = json_loads(p->json, 0, NULL);
	json_t *o = json_pack(
	    "{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:o*}", "id", p->str[EBS_ID], "status",
	    p->str[EBS_STATUS], "site", p->str[EBS_SITE], "source_region",
	    p->str[EBS_SOURCE_REGION], "destination_region", p->str[EBS_DESTINATION_REGION], "name",
	    p->str[EBS_NAME], "enable_rtc", p->enable_rtc, "tags", p->tags, "record", record);

	if (p->num_present & (1u << EBS_CREATE_TIME))
		json_object_set_new(o, "create_time", json_integer(p->num[EBS_CREATE_TIME]));
	if (p->num_present & (1u << EBS_LAST_RECOVER_POINT))
		json_object_set_new(o, "last_recover_point",
				    json_integer(p->num[EBS_LAST_RECOVER_POINT]));
	return o;
}

static json_t *run_describe_pairs(struct ebs_client *c, char **a, int n)
{
	struct ebs_pair_list l = {0};
	struct ebs_error err;
	json_t *pairs, *out;
	int rc;

	if (n < 3)
		return NULL;
	rc = ebs_describe_pairs(c, a[1], a[2], n > 3 ? a[3] : NULL, &l, &err);
	if (rc < 0)
		return failure(rc, &err);
	pairs = json_array();
	for (size_t i = 0; i < l.n; i++)
		json_array_append_new(pairs, pair_summary(l.items[i]));
	out = json_pack("{s:b, s:I, s:o}", "ok", 1, "count", (json_int_t)l.n, "pairs", pairs);
	ebs_pair_list_free(&l);
	return out;
}

static json_t *run_describe_regions(struct ebs_client *c, char **a, int n)
{
	struct ebs_error err;
	char **regions;
	size_t count;
	json_t *arr;
	int rc = ebs_describe_regions(c, &regions, &count, &err);

	if (rc < 0)
		return failure(rc, &err);
	arr = json_array();
	for (size_t i = 0; i < count; i++)
		json_array_append_new(arr, json_string(regions[i]));
	ebs_strv_free(regions, count);
	return json_pack("{s:b, s:o}", "ok", 1, "regions", arr);
}

static json_t *run_progress(struct ebs_client *c, char **a, int n)
{
	struct ebs_error err;
	int percent = 0, rc;
	int64_t point = 0;

	if (n < 3)
		return NULL;
	rc = ebs_describe_progress(c, a[1], a[2], &percent, &point, &err);
	if (rc < 0)
		return failure(rc, &err);
	return json_pack("{s:b, s:i, s:I}", "ok", 1, "progress", percent, "recover_point",
			 (json_int_t)point);
}

static int parse_action(const char *s, enum ebs_action *a)
{
	static const char *const short_names[EBS_ACTION_COUNT] = {[EBS_REPROTECT] = "reprotect",
								  [EBS_FAILOVER] = "failover",
								  [EBS_START] = "start",
								  [EBS_STOP] = "stop"};

	for (int i = 0; i < EBS_ACTION_COUNT; i++) {
		if (strcmp(s, short_names[i]) == 0 || strcmp(s, ebs_action_name(i)) == 0) {
			*a = i;
			return 0;
		}
	}
	return -EINVAL;
}

static json_t *run_act(struct ebs_client *c, char **a, int n)
{
	struct ebs_error err;
	char request_id[80];
	enum ebs_action action;
	int rc;

	if (n < 4 || parse_action(a[1], &action) < 0)
		return NULL;
	rc = ebs_act(c, action, a[2], a[3], n > 4 ? a[4] : NULL, request_id, sizeof(request_id),
		     &err);
	if (rc < 0)
		return failure(rc, &err);
	return json_pack("{s:b, s:s, s:s}", "ok", 1, "action", ebs_action_name(action),
			 "request_id", request_id);
}

static const struct {
	const char *name;
	json_t *(*run)(struct ebs_client *c, char **a, int n);
} commands[] = {
    {"describe-pairs", run_describe_pairs},
    {"describe-regions", run_describe_regions},
    {"progress", run_progress},
    {"act", run_act},
};

static int usage(void)
{
	fprintf(stderr, "usage: ebs_probe --endpoint URL [--signature v1|v3] [--timeout-ms N] "
			"[--retries N] [--max-rps N] [--ca-file F] [--profile P] [--debug] "
			"[--repeat N] [--interval-ms N] describe-pairs REGION SITE [PAIR_IDS] | "
			"describe-regions | progress REGION PAIR | act ACTION REGION PAIR "
			"[TOKEN]\n");
	return 2;
}

static int parse_number(const char *s, double *out)
{
	char *end;

	*out = strtod(s, &end);
	return end != s && *end == '\0' && *out >= 0 ? 0 : -EINVAL;
}

static int set_option(struct probe *p, int opt, const char *arg)
{
	double v = 0;

	if (opt && strchr("trmni", opt) && parse_number(arg, &v) < 0)
		return -EINVAL;
	switch (opt) {
	case 'e':
		p->cfg.endpoint = arg;
		return 0;
	case 's':
		p->cfg.signature = strcmp(arg, "v1") == 0 ? EBS_SIG_V1 : EBS_SIG_V3;
		return strcmp(arg, "v1") == 0 || strcmp(arg, "v3") == 0 ? 0 : -EINVAL;
	case 't':
		p->cfg.timeout_ms = (int)v;
		return 0;
	case 'r':
		p->cfg.retries = (int)v;
		return 0;
	case 'm':
		p->cfg.max_rps = v;
		return 0;
	case 'c':
		p->cfg.ca_file = arg;
		return 0;
	case 'p':
		p->creds.profile = arg;
		return 0;
	case 'd':
		p->debug = true;
		return 0;
	case 'n':
		p->repeat = (int)v;
		return 0;
	case 'i':
		p->interval_ms = (long)v;
		return 0;
	default:
		return -EINVAL;
	}
}

static int parse_options(int argc, char **argv, struct probe *p)
{
	static const struct option longopts[] = {{"endpoint", required_argument, NULL, 'e'},
						 {"signature", required_argument, NULL, 's'},
						 {"timeout-ms", required_argument, NULL, 't'},
						 {"retries", required_argument, NULL, 'r'},
						 {"max-rps", required_argument, NULL, 'm'},
						 {"ca-file", required_argument, NULL, 'c'},
						 {"profile", required_argument, NULL, 'p'},
						 {"debug", no_argument, NULL, 'd'},
						 {"repeat", required_argument, NULL, 'n'},
						 {"interval-ms", required_argument, NULL, 'i'},
						 {NULL, 0, NULL, 0}};
	int opt;

	while ((opt = getopt_long(argc, argv, "+", longopts, NULL)) != -1)
		if (set_option(p, opt, optarg) < 0)
			return -EINVAL;
	p->args = argv + optind;
	p->n_args = argc - optind;
	return p->n_args > 0 ? 0 : -EINVAL;
}

static int find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return (int)i;
	return -1;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Runs the command p->repeat times; 0 if every call succeeded, 1 if one failed, 2 on usage. */
static int run(struct ebs_client *c, const struct probe *p, int cmd)
{
	int status = 0;

	for (int i = 0; i < p->repeat; i++) {
		int64_t start = http_now_ms();
		json_t *out = commands[cmd].run(c, p->args, p->n_args);

		if (!out)
			return usage();
		json_object_set_new(out, "ms", json_integer(http_now_ms() - start));
		if (!json_is_true(json_object_get(out, "ok")))
			status = 1;
		print_line(out);
		if (i + 1 < p->repeat)
			sleep_ms(p->interval_ms);
	}
	return status;
}

static int open_and_run(struct probe *p, int cmd)
{
	struct ebs_client *c = NULL;
	struct creds_chain *chain = NULL;
	char err[256] = "";
	int rc = creds_chain_open(&p->creds, &chain, err, sizeof(err));

	if (rc < 0) {
		print_line(json_pack("{s:b, s:s, s:s, s:s}", "ok", 0, "errno", "EACCES", "code",
				     "Credentials.Unavailable", "message", err));
		return 1;
	}
	p->cfg.creds = chain;
	rc = ebs_client_new(&p->cfg, &c, err, sizeof(err));
	if (rc < 0) {
		print_line(json_pack("{s:b, s:s, s:s, s:s}", "ok", 0, "errno", "EINVAL", "code",
				     "InvalidParameter.Endpoint", "message", err));
		creds_chain_close(chain);
		return 1;
	}
	rc = run(c, p, cmd);
	ebs_client_free(c);
	creds_chain_close(chain);
	return rc;
}

int main(int argc, char **argv)
{
	struct probe p = {.cfg = {.timeout_ms = 10000, .retries = 3, .max_rps = 10}, .repeat = 1};
	int cmd, rc;

	if (parse_options(argc, argv, &p) < 0 || p.repeat < 1)
		return usage();
	cmd = find_command(p.args[0]);
	if (cmd < 0)
		return usage();
	log_init(true, p.debug ? 1 : 0);
	if (http_global_init() < 0)
		return 1;
	rc = open_and_run(&p, cmd);
	http_global_cleanup();
	return rc;
}

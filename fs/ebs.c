/* The EBS API: builds RPC requests (V3 headers or V1 query), signs every attempt anew through
 * sign.c with fresh credentials, rate limits every attempt, and parses the answers liberally. */
#include "ebsfs/ebs.h"
#include "ebsfs/creds.h"
#include "ebsfs/http.h"
#include "ebsfs/log.h"
#include "ebsfs/ratelimit.h"
#include "ebsfs/sign.h"
#include "ebsfs/stats.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define API_VERSION	  "2021-07-30"
#define DEFAULT_ENDPOINT  "https://ebs.{region}.aliyuncs.com"
#define REGION_TOKEN	  "{region}"
#define FALLBACK_REGION	  "cn-shanghai"
#define SAMPLE_REGION	  "cn-hangzhou"
#define PAGE_SIZE	  "500"
#define MAX_PAGES	  10000
#define MAX_REGION_LEN	  63
#define MAX_TOKEN_LEN	  64
#define DEFAULT_TIMEOUT	  10000
#define EMPTY_BODY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define USER_AGENT	  "ebsfs/" EBSFS_VERSION
#define MS_TIMESTAMP_MIN  100000000000LL /* 1e11: later than year 5138 in seconds */
#define MAX_PARAMS	  8
#define MAX_SIGNED_PARAMS (MAX_PARAMS + 9)
#define V3_HEADERS	  10

/* ---- Errors ---------------------------------------------------------------------------------- */

static void copy_clean(char *dst, size_t len, const char *src)
{
	size_t i = 0;

	for (; src && src[i] && i + 1 < len; i++)
		dst[i] = iscntrl((unsigned char)src[i]) ? ' ' : src[i];
	dst[i] = '\0';
}

static void set_error(struct ebs_error *err, long status, const char *code, const char *message)
{
	err->http_status = status;
	copy_clean(err->code, sizeof(err->code), code);
	copy_clean(err->message, sizeof(err->message), message);
}

static void error_reset(struct ebs_error *err)
{
	memset(err, 0, sizeof(*err));
}

static const char *json_str(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s ? s : "";
}

/* SignatureDoesNotMatch answers echo the server's string to sign, which holds the V1
 * SecurityToken: keep only what precedes it. */
static void strip_signing_echo(char *message)
{
	static const char *const markers[] = {"server string to sign", "string to sign",
					      "stringtosign", "canonical"};
	size_t n;

	for (size_t i = 0; i < sizeof(markers) / sizeof(markers[0]); i++) {
		char *at = strcasestr(message, markers[i]);

		if (at)
			*at = '\0';
	}
	n = strlen(message);
	while (n > 0 && (message[n - 1] == ' ' || message[n - 1] == ':'))
		message[--n] = '\0';
}

static const char *first_of(const json_t *obj, const char *a, const char *b)
{
	const char *s = json_str(obj, a);

	return s[0] ? s : json_str(obj, b);
}

int ebs_parse_error(const char *body, size_t len, long http_status, struct ebs_error *err)
{
	json_t *root = body ? json_loadb(body, len, 0, NULL) : NULL;
	const char *code = json_is_object(root) ? first_of(root, "Code", "code") : "";
	int rc = 0;

	error_reset(err);
	if (code[0]) {
		set_error(err, http_status, code, first_of(root, "Message", "message"));
		strip_signing_echo(err->message);
		copy_clean(err->request_id, sizeof(err->request_id),
			   first_of(root, "RequestId", "requestId"));
	} else {
		char msg[64];

		snprintf(msg, sizeof(msg), "HTTP %ld answer without an error code", http_status);
		set_error(err, http_status, "MalformedResponse", msg);
		rc = -EIO;
	}
	json_decref(root);
	return rc;
}

static bool starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool ends(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool says_invalid_status(const struct ebs_error *e)
{
	return (strcasestr(e->code, "status") &&
		(strcasestr(e->code, "invalid") || strcasestr(e->code, "incorrect"))) ||
	       strcasestr(e->message, "invalid status");
}

static bool is_throttling(const char *code)
{
	return starts(code, "Throttling") || strcmp(code, "Rejected.Throttling") == 0;
}

static bool is_auth_refusal(const char *code)
{
	static const char *const prefixes[] = {"InvalidAccessKeyId",  "SignatureDoesNotMatch",
					       "IncompleteSignature", "InvalidSecurityToken",
					       "Forbidden",	      "InvalidTimeStamp",
					       "SignatureNonceUsed",  "InvalidAccountStatus",
					       "Credentials."};

	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (starts(code, prefixes[i]))
			return true;
	return false;
}

static bool is_bad_request(const char *code)
{
	return starts(code, "InvalidParameter") || starts(code, "Missing") ||
	       starts(code, "InvalidAction") || strcmp(code, "InvalidVersion") == 0 ||
	       strcmp(code, "IdempotentParameterMismatch") == 0;
}

static int errno_by_status(long status)
{
	if (status == 401 || status == 403)
		return EACCES;
	if (status == 404)
		return ENOENT;
	if (status == 429)
		return EAGAIN;
	return EIO;
}

int ebs_error_errno(const struct ebs_error *e)
{
	const char *code = e->code;

	if (!code[0])
		return e->http_status >= 200 && e->http_status < 300 ? 0 : EIO;
	if (strcmp(code, "Transport.Timeout") == 0)
		return ETIMEDOUT;
	if (starts(code, "Transport.") || strcmp(code, "MalformedResponse") == 0)
		return EIO;
	if (is_throttling(code) || strcmp(code, "LastTokenProcessing") == 0)
		return EAGAIN;
	if (starts(code, "OperationDenied") || says_invalid_status(e))
		return EBUSY;
	if (is_auth_refusal(code))
		return EACCES;
	if (starts(code, "NoSuchResource") || ends(code, ".NotFound"))
		return starts(code, "InvalidAction") ? EINVAL : ENOENT;
	if (is_bad_request(code))
		return EINVAL;
	if (e->http_status >= 500)
		return EIO;
	return errno_by_status(e->http_status);
}

/* ---- Records ------------------------------------------------------------------------------- */

static const char *const str_keys[EBS_STR_COUNT] = {
    [EBS_ID] = "ReplicaPairId",
    [EBS_NAME] = "PairName",
    [EBS_DESCRIPTION] = "Description",
    [EBS_STATUS] = "Status",
    [EBS_STATUS_MESSAGE] = "StatusMessage",
    [EBS_SOURCE_DISK_ID] = "SourceDiskId",
    [EBS_SOURCE_REGION] = "SourceRegion",
    [EBS_SOURCE_ZONE_ID] = "SourceZoneId",
    [EBS_DESTINATION_DISK_ID] = "DestinationDiskId",
    [EBS_DESTINATION_REGION] = "DestinationRegion",
    [EBS_DESTINATION_ZONE_ID] = "DestinationZoneId",
    [EBS_PRIMARY_REGION] = "PrimaryRegion",
    [EBS_PRIMARY_ZONE] = "PrimaryZone",
    [EBS_STANDBY_REGION] = "StandbyRegion",
    [EBS_STANDBY_ZONE] = "StandbyZone",
    [EBS_CHARGE_TYPE] = "ChargeType",
    [EBS_REPLICA_GROUP_ID] = "ReplicaGroupId",
    [EBS_REPLICA_GROUP_NAME] = "ReplicaGroupName",
    [EBS_SITE] = "Site",
    [EBS_RESOURCE_GROUP_ID] = "ResourceGroupId",
};

static const char *const num_keys[EBS_NUM_COUNT] = {
    [EBS_RPO] = "RPO",
    [EBS_BANDWIDTH] = "Bandwidth",
    [EBS_LAST_RECOVER_POINT] = "LastRecoverPoint",
    [EBS_EXPIRED_TIME] = "ExpiredTime",
    [EBS_CREATE_TIME] = "CreateTime",
};

static bool num_is_timestamp(enum ebs_num i)
{
	return i == EBS_LAST_RECOVER_POINT || i == EBS_EXPIRED_TIME || i == EBS_CREATE_TIME;
}

void ebs_pair_free(struct ebs_pair *p)
{
	if (!p)
		return;
	free(p->arena);
	free(p);
}

void ebs_pair_list_free(struct ebs_pair_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		ebs_pair_free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->n = 0;
	l->cap = 0;
}

static void pair_list_truncate(struct ebs_pair_list *l, size_t n)
{
	while (l->n > n)
		ebs_pair_free(l->items[--l->n]);
}

static int pair_list_append(struct ebs_pair_list *l, struct ebs_pair *p)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct ebs_pair **items = realloc(l->items, cap * sizeof(*items));

		if (!items)
			return -ENOMEM;
		l->items = items;
		l->cap = cap;
	}
	l->items[l->n++] = p;
	return 0;
}

/* A JSON integer (or an integral real) as int64; false for anything else. */
static bool json_int64(const json_t *v, int64_t *out)
{
	double d;

	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return true;
	}
	if (!json_is_real(v))
		return false;
	d = json_real_value(v);
	if (!isfinite(d) || d < -9.2e18 || d > 9.2e18)
		return false;
	*out = (int64_t)d;
	return true;
}

static int64_t seconds_from_timestamp(int64_t t)
{
	return t > MS_TIMESTAMP_MIN ? t / 1000 : t;
}

static void read_numbers(const json_t *rec, struct ebs_pair *p)
{
	for (int i = 0; i < EBS_NUM_COUNT; i++) {
		int64_t v;

		if (!json_int64(json_object_get(rec, num_keys[i]), &v))
			continue;
		p->num[i] = num_is_timestamp(i) ? seconds_from_timestamp(v) : v;
		p->num_present |= 1u << i;
	}
}

static int read_enable_rtc(const json_t *rec)
{
	const json_t *v = json_object_get(rec, "EnableRtc");

	return json_is_boolean(v) ? json_is_true(v) : -1;
}

struct tag {
	const char *key;
	const char *value;
};

static int tag_cmp(const void *a, const void *b)
{
	const struct tag *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	return c ? c : strcmp(x->value, y->value);
}

/* The record's tags with a non-empty key, sorted; *out is malloc'd (NULL when none). */
static int collect_tags(const json_t *rec, struct tag **out, size_t *n)
{
	const json_t *arr = json_object_get(rec, "Tags");
	size_t count = 0, i;
	const json_t *t;
	struct tag *tags;

	*out = NULL;
	*n = 0;
	if (!json_is_array(arr) || json_array_size(arr) == 0)
		return 0;
	tags = calloc(json_array_size(arr), sizeof(*tags));
	if (!tags)
		return -ENOMEM;
	json_array_foreach(arr, i, t)
	{
		const char *key = json_str(t, "TagKey");

		if (key[0])
			tags[count++] = (struct tag){key, json_str(t, "TagValue")};
	}
	qsort(tags, count, sizeof(*tags), tag_cmp);
	*out = tags;
	*n = count;
	return 0;
}

static size_t tags_text_len(const struct tag *tags, size_t n)
{
	size_t len = 0;

	for (size_t i = 0; i < n; i++)
		len += strlen(tags[i].key) + strlen(tags[i].value) + 2;
	return len;
}

/* Line breaks inside a key or value would split a "k=v" line in two. */
static char *put_one_line(char *dst, const char *s)
{
	for (; *s; s++)
		*dst++ = (*s == '\n' || *s == '\r') ? ' ' : *s;
	return dst;
}

static char *put_tags(char *dst, const struct tag *tags, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		dst = put_one_line(dst, tags[i].key);
		*dst++ = '=';
		dst = put_one_line(dst, tags[i].value);
		*dst++ = '\n';
	}
	*dst++ = '\0';
	return dst;
}

static char *put_string(char *dst, const char *s, const char **field)
{
	size_t n = strlen(s) + 1;

	memcpy(dst, s, n);
	*field = dst;
	return dst + n;
}

/* Lays the strings, the tag text and the compact JSON out in one arena. */
static int fill_arena(struct ebs_pair *p, const json_t *rec, const char *const *strs,
		      const struct tag *tags, size_t n_tags)
{
	size_t json_len = json_dumpb(rec, NULL, 0, JSON_COMPACT);
	size_t len = tags_text_len(tags, n_tags) + 1 + json_len + 1;
	char *dst;

	for (int i = 0; i < EBS_STR_COUNT; i++)
		len += strlen(strs[i]) + 1;
	p->arena = malloc(len);
	if (!p->arena)
		return -ENOMEM;
	dst = p->arena;
	for (int i = 0; i < EBS_STR_COUNT; i++)
		dst = put_string(dst, strs[i], &p->str[i]);
	p->tags = dst;
	dst = put_tags(dst, tags, n_tags);
	p->json = dst;
	json_dumpb(rec, dst, json_len, JSON_COMPACT);
	dst[json_len] = '\0';
	return 0;
}

static int pair_from_json(const json_t *rec, struct ebs_pair **out)
{
	const char *strs[EBS_STR_COUNT];
	struct ebs_pair *p = calloc(1, sizeof(*p));
	struct tag *tags = NULL;
	size_t n_tags = 0;
	int rc;

	if (!p)
		return -ENOMEM;
	for (int i = 0; i < EBS_STR_COUNT; i++)
		strs[i] = json_str(rec, str_keys[i]);
	read_numbers(rec, p);
	p->enable_rtc = read_enable_rtc(rec);
	rc = collect_tags(rec, &tags, &n_tags);
	if (rc == 0)
		rc = fill_arena(p, rec, strs, tags, n_tags);
	free(tags);
	if (rc < 0) {
		ebs_pair_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

static void set_malformed(struct ebs_error *err, long status, const char *why)
{
	set_error(err, status, "MalformedResponse", why);
}

/* The array of records: "ReplicaPairs": [...] as documented, or the older wrapper style
 * "ReplicaPairs": {"ReplicaPair": [...]}. Missing or null means none. */
static int find_records(const json_t *root, const json_t **records)
{
	const json_t *v = json_object_get(root, "ReplicaPairs");

	if (json_is_object(v))
		v = json_object_get(v, "ReplicaPair");
	if (!v || json_is_null(v) || json_is_array(v)) {
		*records = v;
		return 0;
	}
	return -EIO;
}

static int append_records(const json_t *records, struct ebs_pair_list *out)
{
	size_t i;
	const json_t *rec;

	json_array_foreach(records, i, rec)
	{
		struct ebs_pair *p;
		int rc;

		/* A record without an id cannot be named in the tree: skip it. */
		if (!json_is_object(rec) || json_str(rec, "ReplicaPairId")[0] == '\0')
			continue;
		rc = pair_from_json(rec, &p);
		if (rc == 0 && (rc = pair_list_append(out, p)) < 0)
			ebs_pair_free(p);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int take_next_token(const json_t *root, char **next_token)
{
	const char *token = json_str(root, "NextToken");

	if (!next_token)
		return 0;
	*next_token = NULL;
	if (!token[0])
		return 0;
	*next_token = strdup(token);
	return *next_token ? 0 : -ENOMEM;
}

static json_t *load_object(const char *body, size_t len, struct ebs_error *err)
{
	json_t *root = body ? json_loadb(body, len, 0, NULL) : NULL;

	if (json_is_object(root))
		return root;
	json_decref(root);
	set_malformed(err, err->http_status, "answer is not a JSON object");
	return NULL;
}

int ebs_parse_pairs_page(const char *body, size_t len, struct ebs_pair_list *out, char **next_token,
			 struct ebs_error *err)
{
	size_t start = out->n;
	const json_t *records;
	json_t *root = load_object(body, len, err);
	int rc;

	if (next_token)
		*next_token = NULL;
	if (!root)
		return -EIO;
	rc = find_records(root, &records);
	if (rc < 0)
		set_malformed(err, err->http_status, "ReplicaPairs is not a list");
	if (rc == 0 && records)
		rc = append_records(records, out);
	if (rc == 0)
		rc = take_next_token(root, next_token);
	if (rc < 0)
		pair_list_truncate(out, start);
	json_decref(root);
	return rc;
}

/* ---- The client ---------------------------------------------------------------------------- */

struct ebs_client {
	char *endpoint; /* template */
	int timeout_ms;
	int attempts;
	enum ebs_signature signature;
	struct creds_chain *creds;
	struct http_client *http;
	struct ratelimit *limit;
	pthread_mutex_t lock;
	char first_region[MAX_REGION_LEN + 1]; /* where DescribeRegions goes */
};

static bool region_valid(const char *region)
{
	size_t n = region ? strlen(region) : 0;

	if (n == 0 || n > MAX_REGION_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!islower((unsigned char)region[i]) && !isdigit((unsigned char)region[i]) &&
		    region[i] != '-')
			return false;
	return true;
}

/* endpoint with every "{region}" replaced; malloc'd or NULL. */
static char *endpoint_for(const char *tmpl, const char *region)
{
	size_t tlen = strlen(REGION_TOKEN), len = strlen(tmpl) + 1;
	char *url, *dst;

	for (const char *p = strstr(tmpl, REGION_TOKEN); p; p = strstr(p + tlen, REGION_TOKEN))
		len += strlen(region);
	url = malloc(len);
	if (!url)
		return NULL;
	dst = url;
	while (*tmpl) {
		if (strncmp(tmpl, REGION_TOKEN, tlen) == 0) {
			memcpy(dst, region, strlen(region));
			dst += strlen(region);
			tmpl += tlen;
		} else {
			*dst++ = *tmpl++;
		}
	}
	*dst = '\0';
	return url;
}

static int check_endpoint(const char *tmpl, char *err, size_t errlen)
{
	char *url = endpoint_for(tmpl, SAMPLE_REGION);
	char host[256], path[256];
	int rc;

	if (!url)
		return -ENOMEM;
	rc = http_url_allowed(url, err, errlen);
	if (rc == 0 && (strpbrk(url, "?#") ||
			http_url_authority(url, host, sizeof(host), path, sizeof(path)) < 0 ||
			strcmp(path, "/") != 0)) {
		snprintf(err, errlen, "endpoint must be scheme://host[:port] without a path");
		rc = -EINVAL;
	}
	free(url);
	return rc;
}

static int client_init(struct ebs_client *c, const struct ebs_config *cfg)
{
	struct http_client_config hc = {.ca_file = cfg->ca_file};
	int rc;

	c->endpoint = strdup(cfg->endpoint ? cfg->endpoint : DEFAULT_ENDPOINT);
	if (!c->endpoint)
		return -ENOMEM;
	c->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : DEFAULT_TIMEOUT;
	c->attempts = cfg->retries > 0 ? cfg->retries : 1;
	c->signature = cfg->signature;
	c->creds = cfg->creds;
	rc = ratelimit_new(cfg->max_rps, &c->limit);
	if (rc == 0)
		rc = http_client_new(&hc, &c->http);
	return rc;
}

int ebs_client_new(const struct ebs_config *cfg, struct ebs_client **out, char *err, size_t errlen)
{
	struct ebs_client *c;
	int rc = check_endpoint(cfg->endpoint ? cfg->endpoint : DEFAULT_ENDPOINT, err, errlen);

	if (rc < 0)
		return rc;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	rc = client_init(c, cfg);
	if (rc < 0) {
		snprintf(err, errlen, "cannot set up the API client");
		ebs_client_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void ebs_client_free(struct ebs_client *c)
{
	if (!c)
		return;
	http_client_free(c->http);
	ratelimit_free(c->limit);
	pthread_mutex_destroy(&c->lock);
	free(c->endpoint);
	free(c);
}

static void remember_region(struct ebs_client *c, const char *region)
{
	pthread_mutex_lock(&c->lock);
	if (!c->first_region[0])
		snprintf(c->first_region, sizeof(c->first_region), "%s", region);
	pthread_mutex_unlock(&c->lock);
}

static void home_region(struct ebs_client *c, char *out, size_t len)
{
	pthread_mutex_lock(&c->lock);
	snprintf(out, len, "%s", c->first_region[0] ? c->first_region : FALLBACK_REGION);
	pthread_mutex_unlock(&c->lock);
}

/* ---- One logical call ---------------------------------------------------------------------- */

struct api_call {
	struct ebs_client *c;
	const char *action;
	const char *region;
	enum stats_api stat;
	struct sign_kv params[MAX_PARAMS]; /* business parameters, RegionId first */
	size_t n_params;
	char *base_url; /* endpoint without the trailing slash */
	char host[256];
	int64_t started_ms;
	bool creds_refreshed;
	bool nonce_retried;
	bool failed_locally; /* err already says why nothing (more) was sent */
	struct ebs_error *err;
};

static void add_param(struct api_call *call, const char *key, const char *value)
{
	call->params[call->n_params++] = (struct sign_kv){key, value};
}

static int fail_locally(struct api_call *call, int rc, const char *code, const char *message)
{
	set_error(call->err, 0, code, message);
	call->failed_locally = true;
	return rc;
}

static int credentials(struct api_call *call, struct creds *cr)
{
	int rc = call->c->creds ? creds_get(call->c->creds, cr) : -ENOKEY;

	if (rc < 0)
		return fail_locally(call, rc, "Credentials.Unavailable",
				    "no usable credentials from the credential chain");
	return 0;
}

struct attempt_ids {
	char nonce[33];
	char date[32];
};

static int fresh_ids(struct attempt_ids *ids)
{
	int rc = sign_random_hex(ids->nonce, 16);

	if (rc == 0)
		sign_iso8601(time(NULL), ids->date, sizeof(ids->date));
	return rc;
}

static int set_url(struct api_call *call, struct http_request *req, const char *query,
		   const char *signature)
{
	const char *parts[] = {call->base_url, "/?", query, signature ? "&Signature=" : NULL,
			       signature,      NULL};

	return http_request_set_url(req, parts);
}

static int add_headers(struct http_request *req, const struct sign_kv *h, size_t n)
{
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i++)
		rc = http_request_add_header(req, h[i].key, h[i].value);
	return rc;
}

static size_t v3_headers(const struct api_call *call, const struct creds *cr,
			 const struct attempt_ids *ids, struct sign_kv *h)
{
	size_t n = 0;

	h[n++] = (struct sign_kv){"host", call->host};
	h[n++] = (struct sign_kv){"x-acs-action", call->action};
	h[n++] = (struct sign_kv){"x-acs-version", API_VERSION};
	h[n++] = (struct sign_kv){"x-acs-date", ids->date};
	h[n++] = (struct sign_kv){"x-acs-signature-nonce", ids->nonce};
	h[n++] = (struct sign_kv){"x-acs-content-sha256", EMPTY_BODY_SHA256};
	if (cr->security_token) {
		h[n++] = (struct sign_kv){"x-acs-accesskey-id", cr->access_key_id};
		h[n++] = (struct sign_kv){"x-acs-security-token", cr->security_token};
	}
	h[n++] = (struct sign_kv){"accept", "application/json"};
	h[n++] = (struct sign_kv){"user-agent", USER_AGENT};
	return n;
}

static int build_v3(struct api_call *call, const struct creds *cr, struct http_request *req)
{
	struct attempt_ids ids;
	struct sign_kv h[V3_HEADERS];
	char *query = NULL, *auth = NULL;
	int rc = fresh_ids(&ids);
	struct sign_v3_request r = {.method = req->method,
				    .headers = h,
				    .n_headers = v3_headers(call, cr, &ids, h),
				    .payload_hash = EMPTY_BODY_SHA256,
				    .access_key_id = cr->access_key_id,
				    .secret = cr->access_key_secret};

	if (rc < 0)
		return rc;
	query = sign_canonical_query(call->params, call->n_params);
	r.canonical_query = query;
	rc = query ? sign_v3_authorization(&r, &auth) : -ENOMEM;
	if (rc == 0)
		rc = set_url(call, req, query, NULL);
	if (rc == 0)
		rc = add_headers(req, h, r.n_headers);
	if (rc == 0)
		rc = http_request_add_header(req, "Authorization", auth);
	free(query);
	free(auth);
	return rc;
}

static size_t v1_params(const struct api_call *call, const struct creds *cr,
			const struct attempt_ids *ids, struct sign_kv *p)
{
	size_t n = 0;

	for (size_t i = 0; i < call->n_params; i++)
		p[n++] = call->params[i];
	p[n++] = (struct sign_kv){"Action", call->action};
	p[n++] = (struct sign_kv){"Version", API_VERSION};
	p[n++] = (struct sign_kv){"Format", "JSON"};
	p[n++] = (struct sign_kv){"AccessKeyId", cr->access_key_id};
	p[n++] = (struct sign_kv){"SignatureMethod", "HMAC-SHA1"};
	p[n++] = (struct sign_kv){"SignatureVersion", "1.0"};
	p[n++] = (struct sign_kv){"SignatureNonce", ids->nonce};
	p[n++] = (struct sign_kv){"Timestamp", ids->date};
	if (cr->security_token)
		p[n++] = (struct sign_kv){"SecurityToken", cr->security_token};
	return n;
}

static int build_v1(struct api_call *call, const struct creds *cr, struct http_request *req)
{
	struct attempt_ids ids;
	struct sign_kv p[MAX_SIGNED_PARAMS];
	char signature[64], *query = NULL, *encoded = NULL;
	int rc = fresh_ids(&ids);

	if (rc < 0)
		return rc;
	query = sign_canonical_query(p, v1_params(call, cr, &ids, p));
	rc = query
		 ? sign_v1(req->method, query, cr->access_key_secret, signature, sizeof(signature))
		 : -ENOMEM;
	if (rc == 0 && !(encoded = sign_pct(signature)))
		rc = -ENOMEM;
	if (rc == 0)
		rc = set_url(call, req, query, encoded);
	if (rc == 0)
		rc = http_request_add_header(req, "accept", "application/json");
	if (rc == 0)
		rc = http_request_add_header(req, "user-agent", USER_AGENT);
	if (query)
		explicit_bzero(query, strlen(query));
	free(query);
	free(encoded);
	return rc;
}

static int prepare_attempt(void *ctx, int attempt, int64_t deadline_ms, struct http_request *req)
{
	struct api_call *call = ctx;
	struct creds cr = {0};
	int rc;

	if (ratelimit_acquire(call->c->limit, deadline_ms) < 0)
		return fail_locally(call, -ETIMEDOUT, "Transport.Timeout",
				    "no rate-limit token before the deadline");
	rc = credentials(call, &cr);
	if (rc < 0)
		return rc;
	rc = call->c->signature == EBS_SIG_V1 ? build_v1(call, &cr, req) : build_v3(call, &cr, req);
	creds_clear(&cr);
	if (rc < 0)
		fail_locally(call, rc, "Transport.Failed", "cannot build the request");
	return rc;
}

static bool succeeded(long status)
{
	return status >= 200 && status < 300;
}

static enum http_verdict classify_answer(void *ctx, int attempt, const struct http_response *resp)
{
	struct api_call *call = ctx;
	struct ebs_error *err = call->err;

	error_reset(err);
	err->http_status = resp->status;
	if (!succeeded(resp->status)) {
		ebs_parse_error(resp->body.data, resp->body.len, resp->status, err);
		if (!err->request_id[0])
			copy_clean(err->request_id, sizeof(err->request_id), resp->request_id);
	}
	log_debug("ebs: %s region=%s attempt=%d http=%ld code=%s request_id=%s ms=%lld",
		  call->action, call->region, attempt, resp->status,
		  err->code[0] ? err->code : "OK",
		  err->request_id[0] ? err->request_id : resp->request_id,
		  (long long)(http_now_ms() - call->started_ms));
	if (starts(err->code, "InvalidSecurityToken.Expired") && !call->creds_refreshed &&
	    call->c->creds) {
		call->creds_refreshed = true;
		creds_invalidate(call->c->creds);
		return HTTP_RETRY_AT_ONCE;
	}
	/* libcurl resends a request unchanged when a reused connection turns out dead; the API
	 * then refuses the nonce. A freshly signed attempt (same ClientToken) is the cure. */
	if (strcmp(err->code, "SignatureNonceUsed") == 0) {
		/* Every attempt has a fresh nonce: a refused one is libcurl's resend of an attempt
		 * whose connection died, and that is what the caller is told if it persists. */
		set_error(err, resp->status, "Transport.Failed",
			  "the connection was lost; its resent request was refused as a replay");
		if (call->nonce_retried)
			return HTTP_RETRY;
		call->nonce_retried = true;
		return HTTP_RETRY_AT_ONCE;
	}
	return succeeded(resp->status) ? HTTP_DONE : http_api_verdict(resp->status, err->code);
}

static void transport_failure(struct api_call *call, int rc, const struct http_response *resp)
{
	const char *code = rc == -ETIMEDOUT ? "Transport.Timeout" : "Transport.Failed";

	set_error(call->err, 0, code, resp->error[0] ? resp->error : "no answer");
}

static enum stats_outcome outcome_of(const struct ebs_error *err)
{
	if (!err->code[0])
		return STATS_OK;
	if (starts(err->code, "Transport.") || strcmp(err->code, "MalformedResponse") == 0)
		return STATS_TRANSPORT;
	if (is_throttling(err->code))
		return STATS_THROTTLED;
	return err->http_status >= 500 ? STATS_SERVER_ERROR : STATS_CLIENT_ERROR;
}

static int call_setup(struct api_call *call)
{
	char path[256];
	char *url = endpoint_for(call->c->endpoint, call->region);
	size_t len;

	if (!url)
		return -ENOMEM;
	/* Checked again with the real region: the template was only checked with a sample. */
	if (http_url_allowed(url, NULL, 0) < 0 ||
	    http_url_authority(url, call->host, sizeof(call->host), path, sizeof(path)) < 0) {
		free(url);
		return fail_locally(call, -EINVAL, "InvalidParameter.Endpoint",
				    "endpoint does not parse for this region");
	}
	len = strlen(url);
	if (len > 0 && url[len - 1] == '/')
		url[len - 1] = '\0';
	call->base_url = url;
	return 0;
}

/* Sends the call with retries. 0 with a 2xx answer in resp (to be parsed by the caller), or
 * -errno with call->err filled. resp is freed by the caller either way. */
static int api_send(struct api_call *call, struct http_response *resp)
{
	static const struct http_call_ops ops = {prepare_attempt, classify_answer};
	char label[128];
	struct http_call_options opts = {
	    .timeout_ms = call->c->timeout_ms, .max_attempts = call->c->attempts, .label = label};
	int rc;

	memset(resp, 0, sizeof(*resp));
	snprintf(label, sizeof(label), "%s %s", call->action, call->region);
	call->started_ms = http_now_ms();
	rc = call_setup(call);
	if (rc == 0)
		rc = http_call(call->c->http, &opts, &ops, call, resp);
	/* The last attempt decides: an earlier attempt's answer may still be in err. */
	if (rc < 0 && !call->failed_locally)
		transport_failure(call, rc, resp);
	if (rc == 0 && !succeeded(resp->status))
		rc = -ebs_error_errno(call->err);
	free(call->base_url);
	call->base_url = NULL;
	return rc;
}

static void call_init(struct api_call *call, struct ebs_client *c, const char *action,
		      const char *region, enum stats_api stat, struct ebs_error *err)
{
	memset(call, 0, sizeof(*call));
	call->c = c;
	call->action = action;
	call->region = region;
	call->stat = stat;
	call->err = err;
	error_reset(err);
	add_param(call, "RegionId", region);
}

/* Records one logical call's outcome; returns the errno-style result for the caller. */
static int call_finish(struct api_call *call, int rc)
{
	if (rc < 0 && !call->err->code[0])
		set_error(call->err, call->err->http_status, "Transport.Failed",
			  "cannot process the answer");
	stats_api_call(call->stat, rc < 0 ? outcome_of(call->err) : STATS_OK);
	return rc < 0 ? -ebs_error_errno(call->err) : 0;
}

static int reject_input(struct ebs_error *err, const char *message)
{
	error_reset(err);
	set_error(err, 0, "InvalidParameter", message);
	return -EINVAL;
}

/* ---- DescribeRegions ------------------------------------------------------------------------- */

void ebs_strv_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

static int strv_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static size_t strv_dedup(char **v, size_t n)
{
	size_t kept = 0;

	for (size_t i = 0; i < n; i++) {
		if (kept > 0 && strcmp(v[kept - 1], v[i]) == 0)
			free(v[i]);
		else
			v[kept++] = v[i];
	}
	return kept;
}

static const json_t *regions_array(const json_t *root)
{
	const json_t *v = json_object_get(root, "Regions");

	return json_is_object(v) ? json_object_get(v, "Region") : v;
}

/* Only well-formed ids: they become directory names and host names. */
static int collect_regions(const json_t *arr, char ***regions, size_t *n)
{
	size_t i, count = 0;
	const json_t *item;
	char **v = calloc(json_array_size(arr) + 1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	json_array_foreach(arr, i, item)
	{
		const char *id = json_str(item, "RegionId");

		if (!region_valid(id))
			continue;
		v[count] = strdup(id);
		if (!v[count]) {
			ebs_strv_free(v, count);
			return -ENOMEM;
		}
		count++;
	}
	qsort(v, count, sizeof(*v), strv_cmp);
	*regions = v;
	*n = strv_dedup(v, count);
	return 0;
}

static int parse_regions(const struct http_response *resp, char ***regions, size_t *n,
			 struct ebs_error *err)
{
	json_t *root = load_object(resp->body.data, resp->body.len, err);
	const json_t *arr;
	int rc;

	if (!root)
		return -EIO;
	arr = regions_array(root);
	if (json_is_array(arr)) {
		rc = collect_regions(arr, regions, n);
	} else {
		set_malformed(err, resp->status, "Regions is not a list");
		rc = -EIO;
	}
	json_decref(root);
	return rc;
}

int ebs_describe_regions(struct ebs_client *c, char ***regions, size_t *n, struct ebs_error *err)
{
	char region[MAX_REGION_LEN + 1];
	struct http_response resp;
	struct api_call call;
	int rc;

	*regions = NULL;
	*n = 0;
	home_region(c, region, sizeof(region));
	call_init(&call, c, "DescribeRegions", region, STATS_API_DESCRIBE_REGIONS, err);
	add_param(&call, "ResourceType", "ear");
	rc = api_send(&call, &resp);
	if (rc == 0)
		rc = parse_regions(&resp, regions, n, err);
	http_response_free(&resp);
	return call_finish(&call, rc);
}

/* ---- DescribeDiskReplicaPairs ---------------------------------------------------------------- */

static int describe_page(struct ebs_client *c, const char *region, const char *site,
			 const char *pair_ids, const char *token, struct ebs_pair_list *out,
			 char **next, struct ebs_error *err)
{
	struct http_response resp;
	struct api_call call;
	int rc;

	call_init(&call, c, "DescribeDiskReplicaPairs", region, STATS_API_DESCRIBE_PAIRS, err);
	add_param(&call, "MaxResults", PAGE_SIZE);
	if (site)
		add_param(&call, "Site", site);
	if (pair_ids)
		add_param(&call, "PairIds", pair_ids);
	if (token)
		add_param(&call, "NextToken", token);
	rc = api_send(&call, &resp);
	if (rc == 0)
		rc = ebs_parse_pairs_page(resp.body.data, resp.body.len, out, next, err);
	http_response_free(&resp);
	return call_finish(&call, rc);
}

static int pagination_broken(struct ebs_error *err, const char *why)
{
	set_malformed(err, err->http_status, why);
	return -EIO;
}

static int describe_all_pages(struct ebs_client *c, const char *region, const char *site,
			      const char *pair_ids, struct ebs_pair_list *out,
			      struct ebs_error *err)
{
	char *token = NULL, *next = NULL;
	int rc = 0;

	for (int page = 0; rc == 0; page++) {
		if (page == MAX_PAGES) {
			rc = pagination_broken(err, "more pages than the client accepts");
			break;
		}
		rc = describe_page(c, region, site, pair_ids, token, out, &next, err);
		if (rc < 0 || !next)
			break;
		if (token && strcmp(token, next) == 0)
			rc = pagination_broken(err, "NextToken repeated");
		free(token);
		token = next;
		next = NULL;
	}
	free(token);
	free(next);
	return rc;
}

int ebs_describe_pairs(struct ebs_client *c, const char *region, const char *site,
		       const char *pair_ids, struct ebs_pair_list *out, struct ebs_error *err)
{
	size_t start = out->n;
	int rc;

	if (!region_valid(region))
		return reject_input(err, "malformed region id");
	remember_region(c, region);
	rc = describe_all_pages(c, region, site, pair_ids, out, err);
	if (rc < 0)
		pair_list_truncate(out, start);
	return rc;
}

/* ---- DescribeDiskReplicaPairProgress -------------------------------------------------------- */

static int parse_progress(const struct http_response *resp, int *percent, int64_t *recover_point,
			  struct ebs_error *err)
{
	json_t *root = load_object(resp->body.data, resp->body.len, err);
	int64_t progress, point;
	int rc = 0;

	if (!root)
		return -EIO;
	if (json_int64(json_object_get(root, "Progress"), &progress) && progress >= INT32_MIN &&
	    progress <= INT32_MAX) {
		*percent = (int)progress;
		*recover_point = json_int64(json_object_get(root, "RecoverPoint"), &point)
				     ? seconds_from_timestamp(point)
				     : 0;
	} else {
		set_malformed(err, resp->status, "answer without a Progress number");
		rc = -EIO;
	}
	json_decref(root);
	return rc;
}

int ebs_describe_progress(struct ebs_client *c, const char *region, const char *pair_id,
			  int *percent, int64_t *recover_point, struct ebs_error *err)
{
	struct http_response resp;
	struct api_call call;
	int rc;

	if (!region_valid(region) || !pair_id || !pair_id[0])
		return reject_input(err, "malformed region or pair id");
	remember_region(c, region);
	call_init(&call, c, "DescribeDiskReplicaPairProgress", region, STATS_API_DESCRIBE_PROGRESS,
		  err);
	add_param(&call, "ReplicaPairId", pair_id);
	rc = api_send(&call, &resp);
	if (rc == 0)
		rc = parse_progress(&resp, percent, recover_point, err);
	http_response_free(&resp);
	return call_finish(&call, rc);
}

/* ---- Actions -------------------------------------------------------------------------------- */

static const struct {
	const char *name;
	enum stats_api stat;
} actions[EBS_ACTION_COUNT] = {
    [EBS_REPROTECT] = {"ReprotectDiskReplicaPair", STATS_API_REPROTECT},
    [EBS_FAILOVER] = {"FailoverDiskReplicaPair", STATS_API_FAILOVER},
    [EBS_START] = {"StartDiskReplicaPair", STATS_API_START},
    [EBS_STOP] = {"StopDiskReplicaPair", STATS_API_STOP},
};

const char *ebs_action_name(enum ebs_action a)
{
	return (unsigned)a < EBS_ACTION_COUNT ? actions[a].name : NULL;
}

static bool token_valid(const char *token)
{
	size_t n = strlen(token);

	if (n == 0 || n > MAX_TOKEN_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isgraph((unsigned char)token[i]))
			return false;
	return true;
}

/* An accepted action answers {"RequestId": ...}; anything else leaves its fate unknown. */
static int parse_action_answer(const struct http_response *resp, char *request_id, size_t len,
			       struct ebs_error *err)
{
	json_t *root = load_object(resp->body.data, resp->body.len, err);
	const char *id;

	if (!root) {
		if (!err->request_id[0])
			copy_clean(err->request_id, sizeof(err->request_id), resp->request_id);
		return -EIO;
	}
	id = first_of(root, "RequestId", "requestId");
	if (request_id && len)
		copy_clean(request_id, len, id[0] ? id : resp->request_id);
	json_decref(root);
	return 0;
}

static int send_action(struct ebs_client *c, enum ebs_action a, const char *region,
		       const char *pair_id, const char *token, char *request_id,
		       size_t request_id_len, struct ebs_error *err)
{
	struct http_response resp;
	struct api_call call;
	int rc;

	call_init(&call, c, actions[a].name, region, actions[a].stat, err);
	add_param(&call, "ReplicaPairId", pair_id);
	add_param(&call, "ClientToken", token);
	if (a == EBS_REPROTECT)
		add_param(&call, "ReverseReplicate", "true");
	rc = api_send(&call, &resp);
	if (rc == 0)
		rc = parse_action_answer(&resp, request_id, request_id_len, err);
	http_response_free(&resp);
	return call_finish(&call, rc);
}

int ebs_act(struct ebs_client *c, enum ebs_action a, const char *region, const char *pair_id,
	    const char *client_token, char *request_id, size_t request_id_len,
	    struct ebs_error *err)
{
	char generated[2 * 16 + 1];

	if (request_id && request_id_len)
		request_id[0] = '\0';
	if ((unsigned)a >= EBS_ACTION_COUNT || !region_valid(region) || !pair_id || !pair_id[0])
		return reject_input(err, "unknown action or malformed region or pair id");
	if (client_token && !token_valid(client_token))
		return reject_input(err, "ClientToken must be 1-64 printable ASCII characters");
	if (!client_token) {
		if (sign_random_hex(generated, 16) < 0)
			return reject_input(err, "no randomness for a ClientToken");
		client_token = generated;
	}
	remember_region(c, region);
	return send_action(c, a, region, pair_id, client_token, request_id, request_id_len, err);
}

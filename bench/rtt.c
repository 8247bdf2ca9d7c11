/* rtt: the floor under a control write: N signed EBS API calls made the plainest way there
 * is, one libcurl handle (so one kept-alive connection), V3 signatures from the project's own
 * fs/sign.c, no retries, no rate limit, no cache. Optionally an unauthenticated admin request
 * between calls (to put the pair back into a state the action accepts), outside the timing.
 *
 *     rtt -e ENDPOINT -g REGION -a ACTION [-p KEY=VALUE]... [-t] [-n N] [-w WARMUP]
 *         [-R RESET_URL -B RESET_JSON]
 *
 *   -e  http://127.0.0.1:PORT (loopback emulator)     -g  RegionId
 *   -a  API action, e.g. StartDiskReplicaPair           -p  a business parameter (repeatable)
 *   -t  a fresh ClientToken per call                    -n  timed calls (default 20)
 *   -w  untimed calls first (default 1: opens the connection)
 *   -R/-B  POST this JSON to this URL before every call (admin reset), untimed
 *
 * Credentials: ALIBABA_CLOUD_ACCESS_KEY_ID / ALIBABA_CLOUD_ACCESS_KEY_SECRET.
 * Output: "call <i> <ns>" per timed call, then "median <ns>", "min <ns>", "connects <n>".
 * Exit 1 when a call does not answer 200. */
#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ebsfs/sign.h"

#define API_VERSION  "2021-07-30"
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define MAX_PARAMS   12
#define MAX_CALLS    10000

struct body {
	char data[65536];
	size_t len;
};

static size_t on_body(char *p, size_t size, size_t nmemb, void *userdata)
{
	struct body *b = userdata;
	size_t n = size * nmemb;
	size_t room = sizeof(b->data) - 1 - b->len;
	size_t c = n < room ? n : room;

	memcpy(b->data + b->len, p, c);
	b->len += c;
	b->data[b->len] = '\0';
	return n;
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct call_cfg {
	const char *endpoint, *host, *action, *ak, *secret;
	struct sign_kv params[MAX_PARAMS];
	size_t n_params;
	bool token;
};

/* One signed call, built like fs/ebs.c builds its V3 requests (POST, empty body, the
 * parameters in the query string). 0 on HTTP 200. */
static int api_call(CURL *h, const struct call_cfg *cfg)
{
	struct sign_kv params[MAX_PARAMS + 1], hdr[8];
	char nonce[33], date[32], token[33], line[512];
	struct curl_slist *list = NULL;
	struct body body = {.len = 0};
	char *query = NULL, *auth = NULL, *url = NULL;
	size_t n = 0, nh = 0;
	long status = 0;
	int rc = -1;

	for (size_t i = 0; i < cfg->n_params; i++)
		params[n++] = cfg->params[i];
	if (cfg->token) {
		if (sign_random_hex(token, 16) < 0)
			return -1;
		params[n++] = (struct sign_kv){"ClientToken", token};
	}
	if (sign_random_hex(nonce, 16) < 0)
		return -1;
	sign_iso8601(time(NULL), date, sizeof(date));
	hdr[nh++] = (struct sign_kv){"host", cfg->host};
	hdr[nh++] = (struct sign_kv){"x-acs-action", cfg->action};
	hdr[nh++] = (struct sign_kv){"x-acs-version", API_VERSION};
	hdr[nh++] = (struct sign_kv){"x-acs-date", date};
	hdr[nh++] = (struct sign_kv){"x-acs-signature-nonce", nonce};
	hdr[nh++] = (struct sign_kv){"x-acs-content-sha256", EMPTY_SHA256};
	hdr[nh++] = (struct sign_kv){"accept", "application/json"};
	hdr[nh++] = (struct sign_kv){"user-agent", "ebsfs-bench-rtt"};

	query = sign_canonical_query(params, n);
	struct sign_v3_request r = {.method = "POST",
				    .canonical_query = query,
				    .headers = hdr,
				    .n_headers = nh,
				    .payload_hash = EMPTY_SHA256,
				    .access_key_id = cfg->ak,
				    .secret = cfg->secret};
	if (!query || sign_v3_authorization(&r, &auth) < 0)
		goto out;
	if (asprintf(&url, "%s/?%s", cfg->endpoint, query) < 0) {
		url = NULL;
		goto out;
	}
	for (size_t i = 0; i < nh; i++) {
		snprintf(line, sizeof(line), "%s: %s", hdr[i].key, hdr[i].value);
		list = curl_slist_append(list, line);
	}
	snprintf(line, sizeof(line), "Authorization: %s", auth);
	list = curl_slist_append(list, line);
	list = curl_slist_append(list, "Content-Type:");
	if (!list)
		goto out;

	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
	if (curl_easy_perform(h) != CURLE_OK) {
		fprintf(stderr, "rtt: %s: transport failure\n", cfg->action);
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		fprintf(stderr, "rtt: %s: HTTP %ld: %s\n", cfg->action, status, body.data);
		goto out;
	}
	rc = 0;
out:
	curl_slist_free_all(list);
	free(query);
	free(auth);
	free(url);
	return rc;
}

static int admin_post(CURL *h, const char *url, const char *json)
{
	struct curl_slist *list = curl_slist_append(NULL, "Content-Type: application/json");
	struct body body = {.len = 0};
	long status = 0;
	CURLcode code;

	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
	code = curl_easy_perform(h);
	curl_slist_free_all(list);
	if (code == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		fprintf(stderr, "rtt: admin %s: HTTP %ld: %s\n", url, status, body.data);
		return -1;
	}
	return 0;
}

static void setup_handle(CURL *h)
{
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
}

int main(int argc, char **argv)
{
	static double ns[MAX_CALLS];
	struct call_cfg cfg = {0};
	const char *region = NULL, *reset_url = NULL, *reset_body = NULL;
	long calls = 20, warmup = 1, connects = 0;
	char host[256];
	int opt, rc = 1;

	while ((opt = getopt(argc, argv, "e:g:a:p:tn:w:R:B:")) != -1) {
		switch (opt) {
		case 'e':
			cfg.endpoint = optarg;
			break;
		case 'g':
			region = optarg;
			break;
		case 'a':
			cfg.action = optarg;
			break;
		case 'p': {
			char *eq = strchr(optarg, '=');
			if (!eq || cfg.n_params + 2 >= MAX_PARAMS) {
				fprintf(stderr, "rtt: -p KEY=VALUE (at most %d)\n", MAX_PARAMS - 2);
				return 2;
			}
			*eq = '\0';
			cfg.params[cfg.n_params++] = (struct sign_kv){optarg, eq + 1};
			break;
		}
		case 't':
			cfg.token = true;
			break;
		case 'n':
			calls = atol(optarg);
			break;
		case 'w':
			warmup = atol(optarg);
			break;
		case 'R':
			reset_url = optarg;
			break;
		case 'B':
			reset_body = optarg;
			break;
		default:
			return 2;
		}
	}
	cfg.ak = getenv("ALIBABA_CLOUD_ACCESS_KEY_ID");
	cfg.secret = getenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET");
	if (!cfg.endpoint || !region || !cfg.action || !cfg.ak || !cfg.secret || calls < 1 ||
	    calls > MAX_CALLS || warmup < 0 || (!reset_url != !reset_body) ||
	    strncmp(cfg.endpoint, "http://", 7) != 0) {
		fprintf(stderr, "rtt: -e http://HOST:PORT -g REGION -a ACTION [-p K=V]... [-t] "
				"[-n N] [-w W] [-R URL -B JSON]; credentials in the environment\n");
		return 2;
	}
	snprintf(host, sizeof(host), "%s", cfg.endpoint + 7);
	host[strcspn(host, "/")] = '\0';
	cfg.host = host;
	/* RegionId first, as fs/ebs.c adds it (the canonical query sorts them anyway). */
	memmove(cfg.params + 1, cfg.params, cfg.n_params * sizeof(cfg.params[0]));
	cfg.params[0] = (struct sign_kv){"RegionId", region};
	cfg.n_params++;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		return 1;
	CURL *api = curl_easy_init(), *admin = curl_easy_init();
	if (!api || !admin)
		goto out;
	setup_handle(api);
	setup_handle(admin);
	for (long i = 0; i < warmup + calls; i++) {
		if (reset_url && admin_post(admin, reset_url, reset_body) < 0)
			goto out;
		double t0 = now_ns();
		if (api_call(api, &cfg) < 0)
			goto out;
		double dt = now_ns() - t0;
		long c = 0;
		curl_easy_getinfo(api, CURLINFO_NUM_CONNECTS, &c);
		if (i >= warmup) {
			ns[i - warmup] = dt;
			connects += c;
			printf("call %ld %.0f\n", i - warmup, dt);
		}
	}
	qsort(ns, (size_t)calls, sizeof(ns[0]), cmp_double);
	printf("median %.0f\n",
	       calls % 2 ? ns[calls / 2] : (ns[calls / 2 - 1] + ns[calls / 2]) / 2);
	printf("min %.0f\n", ns[0]);
	printf("connects %ld\n", connects);
	rc = 0;
out:
	if (api)
		curl_easy_cleanup(api);
	if (admin)
		curl_easy_cleanup(admin);
	curl_global_cleanup();
	return rc;
}

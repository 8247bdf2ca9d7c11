/* libcurl transport: one share (DNS cache, TLS sessions) for the client and a small pool of
 * easy handles, each keeping its own live connections. The connection cache itself is not
 * shared: libcurl does not support sharing it between concurrent threads. */
#include "ebsfs/http.h"
#include "ebsfs/log.h"
#include "ebsfs/stats.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define POOL_SIZE	      8
#define DEFAULT_CONNECT_MS    5000L
#define BACKOFF_BASE_MS	      200L
#define BACKOFF_CAP_MS	      10000L
#define MIN_ATTEMPT_BUDGET_MS 1L
#define MAX_THROTTLE_MS	      3600000L

int http_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

void http_global_cleanup(void)
{
	curl_global_cleanup();
}

void http_buf_free(struct http_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
}

int64_t http_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* ---- URL checks ---------------------------------------------------------------------------- */

static int url_parse(const char *url, CURLU **out)
{
	CURLU *u = curl_url();

	if (!u)
		return -ENOMEM;
	if (!url || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
		curl_url_cleanup(u);
		return -EINVAL;
	}
	*out = u;
	return 0;
}

static bool host_is_loopback(const char *host)
{
	char bare[64];
	size_t len = strlen(host);
	struct in_addr a4;
	struct in6_addr a6;

	if (strcasecmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (len < 3 || len - 2 >= sizeof(bare) || host[0] != '[' || host[len - 1] != ']')
		return false;
	memcpy(bare, host + 1, len - 2);
	bare[len - 2] = '\0';
	return inet_pton(AF_INET6, bare, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

static int refuse(char *err, size_t errlen, const char *why)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", why);
	return -EINVAL;
}

static int check_scheme_and_host(CURLU *u, char *err, size_t errlen)
{
	char *scheme = NULL, *host = NULL;
	int rc = 0;

	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		rc = refuse(err, errlen, "URL without a scheme or host");
	else if (strcasecmp(scheme, "https") == 0)
		rc = 0;
	else if (strcasecmp(scheme, "http") != 0)
		rc = refuse(err, errlen, "only https:// URLs are allowed");
	else if (!host_is_loopback(host))
		rc = refuse(err, errlen, "plain http:// is allowed only to a loopback host");
	curl_free(scheme);
	curl_free(host);
	return rc;
}

/* url with each "{region}" of an endpoint template replaced by a region-shaped label (never
 * longer than the placeholder); malloc'd, NULL when out of memory. */
static char *fill_placeholders(const char *url)
{
	static const char placeholder[] = "{region}", label[] = "region";
	char *out = malloc(strlen(url) + 1), *dst = out;

	if (!out)
		return NULL;
	while (*url) {
		if (strncmp(url, placeholder, sizeof(placeholder) - 1) == 0) {
			memcpy(dst, label, sizeof(label) - 1);
			dst += sizeof(label) - 1;
			url += sizeof(placeholder) - 1;
		} else {
			*dst++ = *url++;
		}
	}
	*dst = '\0';
	return out;
}

int http_url_allowed(const char *url, char *err, size_t errlen)
{
	CURLU *u;
	char *filled = url ? fill_placeholders(url) : NULL;
	int rc = url && !filled ? -ENOMEM : url_parse(filled, &u);

	free(filled);
	if (rc == -EINVAL)
		return refuse(err, errlen, "malformed URL");
	if (rc < 0)
		return rc;
	rc = check_scheme_and_host(u, err, errlen);
	curl_url_cleanup(u);
	return rc;
}

static int copy_out(const char *s, char *out, size_t outlen)
{
	if (snprintf(out, outlen, "%s", s) >= (int)outlen)
		return -EINVAL;
	return 0;
}

static int format_authority(CURLU *u, char *host, size_t hostlen)
{
	char *name = NULL, *scheme = NULL, *port = NULL;
	int rc = -EINVAL;

	if (curl_url_get(u, CURLUPART_HOST, &name, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
		bool default_port =
		    (strcasecmp(scheme, "https") == 0 && strcmp(port, "443") == 0) ||
		    (strcasecmp(scheme, "http") == 0 && strcmp(port, "80") == 0);
		int n = default_port ? snprintf(host, hostlen, "%s", name)
				     : snprintf(host, hostlen, "%s:%s", name, port);

		rc = n >= 0 && (size_t)n < hostlen ? 0 : -EINVAL;
	}
	curl_free(name);
	curl_free(scheme);
	curl_free(port);
	return rc;
}

int http_url_authority(const char *url, char *host, size_t hostlen, char *path, size_t pathlen)
{
	CURLU *u;
	char *p = NULL;
	int rc = url_parse(url, &u);

	if (rc < 0)
		return rc;
	rc = format_authority(u, host, hostlen);
	if (rc == 0)
		rc = curl_url_get(u, CURLUPART_PATH, &p, 0) == CURLUE_OK
			 ? copy_out(p, path, pathlen)
			 : -EINVAL;
	curl_free(p);
	curl_url_cleanup(u);
	return rc;
}

/* ---- Throttling headers and backoff -------------------------------------------------------- */

static bool header_is(const char *line, size_t len, const char *name, const char **value)
{
	size_t n = strlen(name);

	if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
		return false;
	*value = line + n + 1;
	return true;
}

/* Digits at s (bounded by end) as a non-negative long, -1 when there are none. */
static long parse_ms(const char *s, const char *end)
{
	long v = 0;
	bool any = false;

	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	for (; s < end && isdigit((unsigned char)*s); s++) {
		any = true;
		v = v * 10 + (*s - '0');
		if (v > MAX_THROTTLE_MS)
			v = MAX_THROTTLE_MS;
	}
	return any ? v : -1;
}

static long time_left_field(const char *value, const char *end)
{
	static const char key[] = "TimeLeft:";
	const char *p = value;

	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *item_end = comma ? comma : end;

		while (p < item_end && *p == ' ')
			p++;
		if ((size_t)(item_end - p) > sizeof(key) - 1 &&
		    strncasecmp(p, key, sizeof(key) - 1) == 0)
			return parse_ms(p + sizeof(key) - 1, item_end);
		p = item_end + 1;
	}
	return -1;
}

long http_throttle_header_ms(const char *line, size_t len)
{
	const char *value, *end = line + len;

	if (header_is(line, len, "x-ratelimit-user-api", &value) ||
	    header_is(line, len, "x-ratelimit-user", &value))
		return time_left_field(value, end);
	if (header_is(line, len, "x-acs-retry-after", &value))
		return parse_ms(value, end);
	return -1;
}

long http_backoff_ms(int retry, long throttle_ms, uint32_t random)
{
	long ceiling = BACKOFF_BASE_MS;
	long delay;

	for (int i = 1; i < retry && ceiling < BACKOFF_CAP_MS; i++)
		ceiling *= 2;
	if (ceiling > BACKOFF_CAP_MS)
		ceiling = BACKOFF_CAP_MS;
	delay = (long)(random % (uint32_t)(ceiling + 1));
	return throttle_ms > delay ? throttle_ms : delay;
}

static bool code_starts(const char *code, const char *prefix)
{
	return strncmp(code, prefix, strlen(prefix)) == 0;
}

enum http_verdict http_api_verdict(long status, const char *code)
{
	if (!code)
		code = "";
	if (code_starts(code, "Throttling") || strcmp(code, "Rejected.Throttling") == 0)
		return HTTP_RETRY_THROTTLED;
	if (strcmp(code, "LastTokenProcessing") == 0 || strcmp(code, "InternalError") == 0 ||
	    strcmp(code, "ServiceUnavailable") == 0 || strcmp(code, "RequestTimeout") == 0)
		return HTTP_RETRY;
	return status >= 500 ? HTTP_RETRY : HTTP_DONE;
}

bool http_transport_retryable(int err)
{
	return err == -ETIMEDOUT || err == -ECONNREFUSED || err == -ECONNRESET;
}

/* ---- Requests and responses ---------------------------------------------------------------- */

int http_request_add_header(struct http_request *r, const char *name, const char *value)
{
	char *line;

	if (r->n_headers >= HTTP_MAX_HEADERS)
		return -E2BIG;
	if (asprintf(&line, "%s: %s", name, value) < 0)
		return -ENOMEM;
	r->headers[r->n_headers++] = line;
	return 0;
}

int http_request_set_url(struct http_request *r, const char *const *parts)
{
	size_t len = 1, off = 0;
	char *url;

	for (size_t i = 0; parts[i]; i++)
		len += strlen(parts[i]);
	url = malloc(len);
	if (!url)
		return -ENOMEM;
	for (size_t i = 0; parts[i]; i++) {
		size_t n = strlen(parts[i]);

		memcpy(url + off, parts[i], n);
		off += n;
	}
	url[off] = '\0';
	free(r->url);
	r->url = url;
	return 0;
}

static void wipe_free(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

void http_request_clear(struct http_request *r)
{
	wipe_free(r->url);
	r->url = NULL;
	for (size_t i = 0; i < r->n_headers; i++)
		wipe_free(r->headers[i]);
	r->n_headers = 0;
}

static void response_reset(struct http_response *r)
{
	http_buf_free(&r->body);
	r->status = 0;
	r->throttle_ms = -1;
	r->request_id[0] = '\0';
	r->error[0] = '\0';
}

void http_response_free(struct http_response *r)
{
	response_reset(r);
}

/* ---- One transfer --------------------------------------------------------------------------- */

struct transfer {
	const char *method;
	const char *url;
	struct curl_slist *headers;
	const char *ca_file;
	CURLSH *share;
	long connect_timeout_ms;
	long timeout_ms;
	size_t max_body;
};

struct sink {
	struct http_response *resp;
	size_t max_body;
	size_t cap;
	bool too_big;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct sink *s = userdata;
	struct http_buf *b = &s->resp->body;
	size_t n = size * nmemb;

	if (n > s->max_body - b->len) {
		s->too_big = true;
		return 0;
	}
	if (b->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		char *grown;

		while (cap < b->len + n + 1)
			cap *= 2;
		grown = realloc(b->data, cap);
		if (!grown)
			return 0;
		b->data = grown;
		s->cap = cap;
	}
	memcpy(b->data + b->len, data, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

static void capture_request_id(struct http_response *r, const char *value, const char *end)
{
	size_t n;

	while (value < end && isspace((unsigned char)*value))
		value++;
	while (end > value && isspace((unsigned char)end[-1]))
		end--;
	n = (size_t)(end - value);
	if (n >= sizeof(r->request_id))
		n = sizeof(r->request_id) - 1;
	memcpy(r->request_id, value, n);
	r->request_id[n] = '\0';
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *userdata)
{
	struct sink *s = userdata;
	size_t n = size * nmemb;
	const char *value;
	long ms;

	if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
		/* A new response (after a 100 Continue, say): forget the previous headers. */
		s->resp->throttle_ms = -1;
		s->resp->request_id[0] = '\0';
		return n;
	}
	if (header_is(line, n, "x-acs-request-id", &value))
		capture_request_id(s->resp, value, line + n);
	ms = http_throttle_header_ms(line, n);
	if (ms > s->resp->throttle_ms)
		s->resp->throttle_ms = ms;
	return n;
}

static void set_method(CURL *h, const char *method)
{
	if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
		return;
	}
	/* An explicit empty body, so that Content-Length: 0 is sent (gateways want it on POST). */
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
	if (strcmp(method, "POST") != 0)
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
}

static void set_options(CURL *h, const struct transfer *t, struct sink *sink, char *errbuf)
{
	long connect_ms =
	    t->connect_timeout_ms < t->timeout_ms ? t->connect_timeout_ms : t->timeout_ms;

	curl_easy_setopt(h, CURLOPT_URL, t->url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	/* CAINFO replaces the bundle file only; Debian's libcurl still consults the system CA
	 * directory, so the extra file adds to the system store. */
	if (t->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, t->ca_file);
	if (t->share)
		curl_easy_setopt(h, CURLOPT_SHARE, t->share);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, t->timeout_ms);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)t->max_body);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, t->headers);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, sink);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, sink);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	set_method(h, t->method);
}

static int curl_errno(CURLcode code, bool too_big)
{
	if (too_big)
		return -EFBIG;
	switch (code) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return -ECONNRESET;
	case CURLE_FILESIZE_EXCEEDED:
		return -EFBIG;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
		return -EPROTO;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return -EINVAL;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

static void describe_failure(struct http_response *r, CURLcode code, const char *errbuf,
			     bool too_big)
{
	if (too_big)
		snprintf(r->error, sizeof(r->error), "answer larger than the limit");
	else
		snprintf(r->error, sizeof(r->error), "%s",
			 errbuf[0] ? errbuf : curl_easy_strerror(code));
}

/* 0 with resp->status set, or -errno with resp->error set. */
static int transfer_perform(CURL *h, const struct transfer *t, struct http_response *resp)
{
	struct sink sink = {.resp = resp, .max_body = t->max_body};
	char errbuf[CURL_ERROR_SIZE] = "";
	CURLcode code;

	response_reset(resp);
	curl_easy_reset(h);
	set_options(h, t, &sink, errbuf);
	code = curl_easy_perform(h);
	if (code != CURLE_OK || sink.too_big) {
		describe_failure(resp, code, errbuf, sink.too_big);
		http_buf_free(&resp->body);
		return curl_errno(code, sink.too_big);
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
	if (!resp->body.data) {
		resp->body.data = strdup("");
		if (!resp->body.data)
			return -ENOMEM;
	}
	return 0;
}

/* Our bodies are always empty: "Content-Type:" stops curl from announcing a form body that
 * is neither sent nor signed. */
static int build_header_list(const char *method, const char *const *lines, size_t n,
			     struct curl_slist **out)
{
	struct curl_slist *list = NULL;
	bool has_body = strcmp(method, "GET") != 0;

	for (size_t i = 0; i < n + has_body; i++) {
		struct curl_slist *next =
		    curl_slist_append(list, i < n ? lines[i] : "Content-Type:");

		if (!next) {
			curl_slist_free_all(list);
			return -ENOMEM;
		}
		list = next;
	}
	*out = list;
	return 0;
}

static size_t count_lines(const char *const *lines)
{
	size_t n = 0;

	while (lines && lines[n])
		n++;
	return n;
}

int http_fetch(const char *method, const char *url, const char *const *headers, long timeout_ms,
	       long *status, struct http_buf *body)
{
	struct http_response resp = {.throttle_ms = -1};
	struct transfer t = {.method = method,
			     .url = url,
			     .connect_timeout_ms = DEFAULT_CONNECT_MS,
			     .timeout_ms = timeout_ms > 0 ? timeout_ms : DEFAULT_CONNECT_MS,
			     .max_body = HTTP_DEFAULT_MAX_BODY};
	CURL *h = curl_easy_init();
	int rc;

	if (!h)
		return -ENOMEM;
	rc = build_header_list(method, headers, count_lines(headers), &t.headers);
	if (rc == 0)
		rc = transfer_perform(h, &t, &resp);
	curl_slist_free_all(t.headers);
	curl_easy_cleanup(h);
	if (rc < 0) {
		log_debug("http: %s request failed: %s", method, resp.error);
		http_response_free(&resp);
		return rc;
	}
	*status = resp.status;
	*body = resp.body;
	return 0;
}

/* ---- The client ----------------------------------------------------------------------------- */

struct http_client {
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
	pthread_mutex_t pool_lock;
	CURL *idle[POOL_SIZE];
	size_t n_idle;
	char *ca_file;
	long connect_timeout_ms;
	size_t max_body;
};

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *userptr)
{
	struct http_client *c = userptr;

	pthread_mutex_lock(&c->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *userptr)
{
	struct http_client *c = userptr;

	pthread_mutex_unlock(&c->share_locks[data]);
}

static int share_new(struct http_client *c)
{
	c->share = curl_share_init();
	if (!c->share)
		return -ENOMEM;
	if (curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock) != CURLSHE_OK ||
	    curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock) != CURLSHE_OK ||
	    curl_share_setopt(c->share, CURLSHOPT_USERDATA, c) != CURLSHE_OK ||
	    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
	    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK)
		return -EIO;
	return 0;
}

int http_client_new(const struct http_client_config *cfg, struct http_client **out)
{
	struct http_client *c = calloc(1, sizeof(*c));
	int rc;

	if (!c)
		return -ENOMEM;
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&c->share_locks[i], NULL);
	pthread_mutex_init(&c->pool_lock, NULL);
	c->connect_timeout_ms =
	    cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : DEFAULT_CONNECT_MS;
	c->max_body = cfg->max_body ? cfg->max_body : HTTP_DEFAULT_MAX_BODY;
	rc = share_new(c);
	if (rc == 0 && cfg->ca_file) {
		c->ca_file = strdup(cfg->ca_file);
		if (!c->ca_file)
			rc = -ENOMEM;
	}
	if (rc < 0) {
		http_client_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void http_client_free(struct http_client *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_idle; i++)
		curl_easy_cleanup(c->idle[i]);
	if (c->share)
		curl_share_cleanup(c->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&c->share_locks[i]);
	pthread_mutex_destroy(&c->pool_lock);
	free(c->ca_file);
	free(c);
}

static CURL *handle_take(struct http_client *c)
{
	CURL *h = NULL;

	pthread_mutex_lock(&c->pool_lock);
	if (c->n_idle > 0)
		h = c->idle[--c->n_idle];
	pthread_mutex_unlock(&c->pool_lock);
	return h ? h : curl_easy_init();
}

static void handle_give_back(struct http_client *c, CURL *h)
{
	pthread_mutex_lock(&c->pool_lock);
	if (c->n_idle < POOL_SIZE) {
		c->idle[c->n_idle++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&c->pool_lock);
	if (h)
		curl_easy_cleanup(h);
}

static int client_perform(struct http_client *c, const struct http_request *req,
			  int64_t deadline_ms, struct http_response *resp)
{
	int64_t left = deadline_ms - http_now_ms();
	struct transfer t = {.method = req->method,
			     .url = req->url,
			     .ca_file = c->ca_file,
			     .share = c->share,
			     .connect_timeout_ms = c->connect_timeout_ms,
			     .timeout_ms =
				 left > MIN_ATTEMPT_BUDGET_MS ? (long)left : MIN_ATTEMPT_BUDGET_MS,
			     .max_body = c->max_body};
	CURL *h;
	int rc = build_header_list(req->method, (const char *const *)req->headers, req->n_headers,
				   &t.headers);

	if (rc < 0)
		return rc;
	h = handle_take(c);
	rc = h ? transfer_perform(h, &t, resp) : -ENOMEM;
	if (h)
		handle_give_back(c, h);
	curl_slist_free_all(t.headers);
	return rc;
}

/* ---- The retry loop ------------------------------------------------------------------------- */

struct attempt_state {
	int attempt;
	int budget;
	bool sent; /* false when prepare() refused to build the attempt */
	int rc;
	enum http_verdict verdict;
};

static void run_attempt(struct http_client *c, const struct http_call_ops *ops, void *ctx,
			int64_t deadline_ms, struct attempt_state *st, struct http_response *resp)
{
	struct http_request req = {.method = "POST"};

	st->rc = ops->prepare(ctx, st->attempt, deadline_ms, &req);
	st->sent = st->rc == 0;
	if (st->sent) {
		stats_api_attempt();
		resp->attempts = st->attempt;
		st->rc = client_perform(c, &req, deadline_ms, resp);
	}
	http_request_clear(&req);
}

static enum http_verdict judge(const struct http_call_ops *ops, void *ctx,
			       const struct attempt_state *st, const struct http_response *resp,
			       const char *label)
{
	if (st->rc == 0)
		return ops->classify(ctx, st->attempt, resp);
	log_debug("http: %s: attempt %d: no answer: %s", label, st->attempt, resp->error);
	return http_transport_retryable(st->rc) ? HTTP_RETRY : HTTP_DONE;
}

/* The delay before the next attempt, or -1 when there must be none. */
static long next_delay(const struct attempt_state *st, const struct http_response *resp,
		       int64_t deadline_ms)
{
	long delay;

	if (st->verdict == HTTP_DONE)
		return -1;
	if (st->verdict == HTTP_RETRY_AT_ONCE)
		delay = 0;
	else if (st->attempt >= st->budget)
		return -1;
	else
		delay = http_backoff_ms(
		    st->attempt, st->verdict == HTTP_RETRY_THROTTLED ? resp->throttle_ms : -1,
		    arc4random());
	return http_now_ms() + delay < deadline_ms ? delay : -1;
}

int http_call(struct http_client *c, const struct http_call_options *opts,
	      const struct http_call_ops *ops, void *ctx, struct http_response *resp)
{
	int64_t deadline_ms = http_now_ms() + (opts->timeout_ms > 0 ? opts->timeout_ms : 1);
	struct attempt_state st = {.budget = opts->max_attempts > 1 ? opts->max_attempts : 1};
	const char *label = opts->label ? opts->label : "request";
	long delay;

	memset(resp, 0, sizeof(*resp));
	resp->throttle_ms = -1;
	for (;;) {
		st.attempt++;
		run_attempt(c, ops, ctx, deadline_ms, &st, resp);
		if (!st.sent)
			return st.rc;
		st.verdict = judge(ops, ctx, &st, resp, label);
		if (st.verdict == HTTP_RETRY_THROTTLED)
			stats_api_throttle();
		if (st.verdict == HTTP_RETRY_AT_ONCE)
			st.budget++;
		delay = next_delay(&st, resp, deadline_ms);
		if (delay < 0)
			return st.rc;
		if (delay > 0)
			sleep_ms(delay);
		stats_api_retry();
	}
}

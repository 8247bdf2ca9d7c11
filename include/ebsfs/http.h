/* libcurl transport. Nothing above this module knows about curl. TLS peer and host
 * verification are always on; plain http:// is allowed only to loopback. */
#ifndef EBSFS_HTTP_H
#define EBSFS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_buf {
	char *data; /* NUL-terminated, malloc'd */
	size_t len;
};

/* Must run once, before any thread starts. */
int http_global_init(void);
void http_global_cleanup(void);

/* 0 if url is https://, or http:// to a loopback host; -EINVAL otherwise (reason in err).
 * An endpoint template's "{region}" placeholders are checked as a region name would be. */
int http_url_allowed(const char *url, char *err, size_t errlen);

/* One unsigned request without retries (instance metadata, credentials URI). headers is a
 * NULL-terminated list of "Name: value". 0 with *status set, or -errno (-ETIMEDOUT, -EIO...).
 * The url is not held to http_url_allowed: the metadata service is plain HTTP by design. */
int http_fetch(const char *method, const char *url, const char *const *headers, long timeout_ms,
	       long *status, struct http_buf *body);

void http_buf_free(struct http_buf *b);

/* ---- Signed API calls with retries -------------------------------------------------------
 *
 * http_call() owns the retry loop of docs/ebs-api.md section 8.2 and the overall deadline; the
 * caller supplies two hooks. prepare() builds each attempt from scratch (rate limit, fresh
 * credentials, nonce, date and signature), so no two attempts share a signature while the
 * caller's ClientToken, part of its parameters, stays the same. classify() reads an HTTP
 * answer and says whether to retry. Transport failures (connect, reset, empty reply,
 * truncation, timeout) are retried by http_call itself. */

#define HTTP_DEFAULT_MAX_BODY (16u << 20)

struct http_client_config {
	const char *ca_file;	 /* extra CA bundle, NULL: system store */
	long connect_timeout_ms; /* <= 0: 5000 */
	size_t max_body;	 /* larger answers are aborted with -EFBIG; 0: 16 MiB */
};

struct http_client;

int http_client_new(const struct http_client_config *cfg, struct http_client **out);
void http_client_free(struct http_client *c);

#define HTTP_MAX_HEADERS 16

/* One attempt, filled by the prepare hook and wiped by http_call after the attempt (it may
 * carry a security token). */
struct http_request {
	const char *method;		 /* static string, e.g. "POST" */
	char *url;			 /* malloc'd */
	char *headers[HTTP_MAX_HEADERS]; /* "Name: value", malloc'd */
	size_t n_headers;
};

/* 0, -ENOMEM, or -E2BIG when the request already has HTTP_MAX_HEADERS headers. */
int http_request_add_header(struct http_request *r, const char *name, const char *value);
/* Sets r->url to the concatenation of parts (NULL-terminated list). 0 or -ENOMEM. */
int http_request_set_url(struct http_request *r, const char *const *parts);
void http_request_clear(struct http_request *r);

struct http_response {
	long status;	      /* 0: no HTTP answer */
	struct http_buf body; /* the last answer's body */
	long throttle_ms;     /* TimeLeft / x-acs-retry-after of the last answer, -1 if none */
	char request_id[80];  /* x-acs-request-id of the last answer, "" if none */
	int attempts;	      /* attempts sent */
	char error[128];      /* why the last attempt got no answer, "" otherwise */
};

void http_response_free(struct http_response *r);

enum http_verdict {
	HTTP_DONE,	      /* final: success or an error retrying cannot fix */
	HTTP_RETRY,	      /* transient: back off and retry within the attempt budget */
	HTTP_RETRY_THROTTLED, /* throttled: back off at least throttle_ms, counted as a throttle */
	HTTP_RETRY_AT_ONCE,   /* the caller fixed something (refreshed credentials): one extra
			       * attempt beyond the budget, without backoff */
};

struct http_call_ops {
	/* Builds attempt number `attempt` (1-based). May block until deadline_ms (monotonic ms,
	 * see http_now_ms). 0 or -errno, which aborts the call with that error. */
	int (*prepare)(void *ctx, int attempt, int64_t deadline_ms, struct http_request *req);
	/* Judges an HTTP answer (any status). Called for every answered attempt. */
	enum http_verdict (*classify)(void *ctx, int attempt, const struct http_response *resp);
};

struct http_call_options {
	long timeout_ms;   /* the whole call, retries and backoff included */
	int max_attempts;  /* < 1: 1 */
	const char *label; /* for debug logs (e.g. action and region); never a secret */
};

/* Runs attempts until classify() says HTTP_DONE, the attempts are spent or the next attempt
 * could not start before the deadline. 0 when the last attempt was answered (any status, in
 * resp), else the last transport error: -ETIMEDOUT (deadline), -ECONNREFUSED (connect or
 * DNS), -ECONNRESET (reset, empty or truncated answer), -EFBIG (answer too large), -EPROTO
 * (TLS verification), -EINVAL (bad url), -ENOMEM, -EIO; or prepare()'s error. resp is
 * always initialised; free it with http_response_free(). */
int http_call(struct http_client *c, const struct http_call_options *opts,
	      const struct http_call_ops *ops, void *ctx, struct http_response *resp);

/* Verdict of section 8.2 for an answered API error: Throttling* and Rejected.Throttling are
 * HTTP_RETRY_THROTTLED; 5xx, InternalError, ServiceUnavailable, RequestTimeout and
 * LastTokenProcessing are HTTP_RETRY; everything else (including 2xx) is HTTP_DONE. */
enum http_verdict http_api_verdict(long status, const char *code);

/* Whether a transport error of http_call is worth another attempt. */
bool http_transport_retryable(int err);

/* The "Name: value" header line's throttling delay in ms, or -1: TimeLeft of
 * x-ratelimit-user-api / x-ratelimit-user ("Limit:1,Remain:0,TimeLeft:2000,Reset:0"), or
 * x-acs-retry-after (ms). Other headers: -1. */
long http_throttle_header_ms(const char *line, size_t len);

/* Delay before retry number `retry` (1 = the first retry): full jitter over
 * [0, min(cap, base * 2^(retry-1))], base 200 ms, cap 10 s, but at least throttle_ms when that
 * is >= 0. random is any uniformly distributed 32-bit value. */
long http_backoff_ms(int retry, long throttle_ms, uint32_t random);

/* The Host header value curl sends for url (host[:port], the port only when it is not the
 * scheme's default) and its path ("/" when empty). 0 or -EINVAL. */
int http_url_authority(const char *url, char *host, size_t hostlen, char *path, size_t pathlen);

/* CLOCK_MONOTONIC milliseconds, the clock of every deadline here. */
int64_t http_now_ms(void);

#endif

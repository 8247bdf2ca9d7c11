/* http.c: the pure helpers (URL policy, throttling headers, backoff, verdicts) and the retry
 * loop against a scripted one-connection-per-answer server on loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ebsfs/http.h"
#include "ebsfs/stats.h"

/* ---- URL policy ------------------------------------------------------------------------------ */

static void assert_allowed(const char *url)
{
	char err[128] = "";

	if (http_url_allowed(url, err, sizeof(err)) != 0)
		fail_msg("%s refused: %s", url, err);
}

static void assert_refused(const char *url)
{
	char err[128] = "";

	assert_int_equal(http_url_allowed(url, err, sizeof(err)), -EINVAL);
	assert_true(err[0] != '\0');
}

static void https_and_loopback_http_are_allowed(void **state)
{
	assert_allowed("https://ebs.cn-shanghai.aliyuncs.com");
	assert_allowed("https://ebs.cn-shanghai.aliyuncs.com:8443/");
	assert_allowed("HTTPS://example.com/");
	assert_allowed("http://127.0.0.1");
	assert_allowed("http://127.0.0.1:8080/");
	assert_allowed("http://127.45.6.7:1");
	assert_allowed("http://localhost");
	assert_allowed("http://LOCALHOST:9000");
	assert_allowed("http://[::1]");
	assert_allowed("http://[::1]:8080/");
	assert_allowed("https://ebs.{region}.aliyuncs.com");
	assert_allowed("https://ebs-vpc.{region}.aliyuncs.com:443/");
}

static void everything_else_is_refused(void **state)
{
	assert_refused("http://10.0.0.1");
	assert_refused("http://ebs.{region}.aliyuncs.com");
	assert_refused("http://{region}");
	assert_refused("http://127.0.0.1:{region}/");
	assert_refused("http://10.0.0.1:8080/");
	assert_refused("http://ebs.cn-shanghai.aliyuncs.com");
	assert_refused("http://128.0.0.1");
	assert_refused("http://[::2]");
	assert_refused("http://localhost.example.com");
	assert_refused("http://127.0.0.1.nip.io");
	assert_refused("ftp://127.0.0.1/");
	assert_refused("file:///etc/passwd");
	assert_refused("gopher://localhost");
	assert_refused("garbage");
	assert_refused("");
	assert_refused("://nohost");
	assert_refused(NULL);
}

static void authority_is_what_curl_sends_as_host(void **state)
{
	char host[128], path[128];

	assert_int_equal(http_url_authority("https://ebs.cn-beijing.aliyuncs.com", host,
					    sizeof(host), path, sizeof(path)),
			 0);
	assert_string_equal(host, "ebs.cn-beijing.aliyuncs.com");
	assert_string_equal(path, "/");
	assert_int_equal(
	    http_url_authority("https://h.example:443/", host, sizeof(host), path, sizeof(path)),
	    0);
	assert_string_equal(host, "h.example");
	assert_int_equal(
	    http_url_authority("http://127.0.0.1:8080", host, sizeof(host), path, sizeof(path)), 0);
	assert_string_equal(host, "127.0.0.1:8080");
	assert_int_equal(
	    http_url_authority("http://[::1]:99/x", host, sizeof(host), path, sizeof(path)), 0);
	assert_string_equal(host, "[::1]:99");
	assert_string_equal(path, "/x");
	assert_int_equal(
	    http_url_authority("http://localhost:80", host, sizeof(host), path, sizeof(path)), 0);
	assert_string_equal(host, "localhost");
	assert_int_equal(http_url_authority("nonsense", host, sizeof(host), path, sizeof(path)),
			 -EINVAL);
	assert_int_equal(
	    http_url_authority("https://a-rather-long-host.example", host, 8, path, sizeof(path)),
	    -EINVAL);
}

/* ---- Throttling headers, backoff, verdicts --------------------------------------------------- */

static long throttle(const char *line)
{
	return http_throttle_header_ms(line, strlen(line));
}

static void time_left_is_read_from_ratelimit_headers(void **state)
{
	assert_int_equal(
	    throttle("x-ratelimit-user-api: Limit:1,Remain:0,TimeLeft:2000,Reset:0\r\n"), 2000);
	assert_int_equal(throttle("X-RateLimit-User-Api: TimeLeft:15\r\n"), 15);
	assert_int_equal(
	    throttle("x-ratelimit-user: Limit:10, Remain:0, TimeLeft:350, Reset:9\r\n"), 350);
	assert_int_equal(throttle("x-ratelimit-user: Limit:10,Remain:0,Reset:9\r\n"), -1);
	assert_int_equal(throttle("x-ratelimit-user: Limit:10,TimeLeft:,Reset:9\r\n"), -1);
	assert_int_equal(throttle("x-acs-retry-after: 42\r\n"), 42);
	assert_int_equal(throttle("X-Acs-Retry-After:  7 \r\n"), 7);
	assert_int_equal(throttle("x-acs-retry-after: soon\r\n"), -1);
	assert_int_equal(throttle("x-ratelimit-user-apix: TimeLeft:5\r\n"), -1);
	assert_int_equal(throttle("retry-after: 5\r\n"), -1);
	assert_int_equal(throttle("content-type: TimeLeft:5\r\n"), -1);
	assert_int_equal(throttle("x-ratelimit-user"), -1);
	assert_int_equal(throttle("x-acs-retry-after: 99999999999999999999999\r\n"), 3600000);
}

static void backoff_is_full_jitter_within_bounds(void **state)
{
	long ceiling = 200;

	for (int retry = 1; retry <= 12; retry++) {
		assert_int_equal(http_backoff_ms(retry, -1, 0), 0);
		assert_int_equal(http_backoff_ms(retry, -1, (uint32_t)ceiling), ceiling);
		for (uint32_t r = 1; r < 1000000; r += 7919) {
			long d = http_backoff_ms(retry, -1, r * 2654435761u);

			assert_true(d >= 0 && d <= ceiling);
		}
		ceiling = ceiling * 2 > 10000 ? 10000 : ceiling * 2;
	}
	assert_int_equal(http_backoff_ms(1000000, -1, UINT32_MAX), (long)(UINT32_MAX % 10001));
}

static void throttling_time_left_is_a_floor(void **state)
{
	assert_int_equal(http_backoff_ms(1, 3000, 0), 3000);
	assert_int_equal(http_backoff_ms(1, 3000, 150), 3000);
	assert_int_equal(http_backoff_ms(8, 10, 5000), 5000);
	assert_int_equal(http_backoff_ms(1, 0, 150), 150);
}

static void verdicts_follow_the_retry_table(void **state)
{
	assert_int_equal(http_api_verdict(400, "Throttling"), HTTP_RETRY_THROTTLED);
	assert_int_equal(http_api_verdict(400, "Throttling.User"), HTTP_RETRY_THROTTLED);
	assert_int_equal(http_api_verdict(429, "Throttling.Api"), HTTP_RETRY_THROTTLED);
	assert_int_equal(http_api_verdict(400, "Rejected.Throttling"), HTTP_RETRY_THROTTLED);
	assert_int_equal(http_api_verdict(500, "InternalError"), HTTP_RETRY);
	assert_int_equal(http_api_verdict(503, "ServiceUnavailable"), HTTP_RETRY);
	assert_int_equal(http_api_verdict(504, "RequestTimeout"), HTTP_RETRY);
	assert_int_equal(http_api_verdict(502, ""), HTTP_RETRY);
	assert_int_equal(http_api_verdict(403, "LastTokenProcessing"), HTTP_RETRY);
	assert_int_equal(http_api_verdict(200, ""), HTTP_DONE);
	assert_int_equal(http_api_verdict(403, "OperationDenied.InvalidStatus"), HTTP_DONE);
	assert_int_equal(http_api_verdict(400, "SignatureDoesNotMatch"), HTTP_DONE);
	assert_int_equal(http_api_verdict(404, "NoSuchResource"), HTTP_DONE);
	assert_int_equal(http_api_verdict(400, "InvalidParameter"), HTTP_DONE);
	assert_int_equal(http_api_verdict(400, "IdempotentParameterMismatch"), HTTP_DONE);
	assert_int_equal(http_api_verdict(403, NULL), HTTP_DONE);
	assert_true(http_transport_retryable(-ETIMEDOUT));
	assert_true(http_transport_retryable(-ECONNREFUSED));
	assert_true(http_transport_retryable(-ECONNRESET));
	assert_false(http_transport_retryable(-EFBIG));
	assert_false(http_transport_retryable(-EPROTO));
	assert_false(http_transport_retryable(-EINVAL));
}

static void request_headers_are_bounded_and_wiped(void **state)
{
	struct http_request r = {.method = "POST"};
	const char *parts[] = {"http://127.0.0.1:1", "/?", "A=b", NULL};

	for (int i = 0; i < HTTP_MAX_HEADERS; i++)
		assert_int_equal(http_request_add_header(&r, "x-test", "v"), 0);
	assert_int_equal(http_request_add_header(&r, "x-test", "v"), -E2BIG);
	assert_string_equal(r.headers[0], "x-test: v");
	assert_int_equal(http_request_set_url(&r, parts), 0);
	assert_string_equal(r.url, "http://127.0.0.1:1/?A=b");
	http_request_clear(&r);
	assert_null(r.url);
	assert_int_equal(r.n_headers, 0);
}

/* ---- A scripted server ---------------------------------------------------------------------- */

#define HANG "HANG" /* read the request, then wait for the client to give up */
#define DROP "DROP" /* read the request, close without an answer */

struct server {
	int fd;
	int port;
	const char *replies[8];
	char last_request[4096];
	pthread_t thread;
};

static void read_request(int fd, char *buf, size_t len)
{
	size_t used = 0;

	while (used + 1 < len) {
		ssize_t n = recv(fd, buf + used, len - 1 - used, 0);

		if (n <= 0)
			break;
		used += (size_t)n;
		buf[used] = '\0';
		if (strstr(buf, "\r\n\r\n"))
			break;
	}
	buf[used] = '\0';
}

static void wait_for_peer_close(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char c;

	if (poll(&p, 1, 10000) > 0)
		(void)recv(fd, &c, 1, 0);
}

static void *serve(void *arg)
{
	struct server *s = arg;

	for (int i = 0; s->replies[i]; i++) {
		int fd = accept(s->fd, NULL, NULL);

		if (fd < 0)
			break;
		read_request(fd, s->last_request, sizeof(s->last_request));
		if (strcmp(s->replies[i], HANG) == 0)
			wait_for_peer_close(fd);
		else if (strcmp(s->replies[i], DROP) != 0)
			(void)send(fd, s->replies[i], strlen(s->replies[i]), MSG_NOSIGNAL);
		close(fd);
	}
	return NULL;
}

static int listen_loopback(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static void server_start(struct server *s, const char *const *replies)
{
	memset(s, 0, sizeof(*s));
	for (int i = 0; replies[i]; i++)
		s->replies[i] = replies[i];
	s->fd = listen_loopback(&s->port);
	assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void server_stop(struct server *s)
{
	shutdown(s->fd, SHUT_RDWR);
	pthread_join(s->thread, NULL);
	close(s->fd);
}

#define OK_200                                                                                     \
	"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nx-acs-request-id: REQ-OK\r\n"        \
	"Content-Length: 17\r\nConnection: close\r\n\r\n{\"RequestId\":\"x\"}"
#define ERR_500                                                                                    \
	"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
#define THROTTLE_300                                                                               \
	"HTTP/1.1 400 Bad Request\r\nx-ratelimit-user-api: "                                       \
	"Limit:1,Remain:0,TimeLeft:300,Reset:0\r\n"                                                \
	"Content-Length: 2\r\nConnection: close\r\n\r\n{}"
#define ERR_403	  "HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
#define TRUNCATED "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{\"Request"

/* ---- http_call with test hooks ------------------------------------------------------------- */

struct hooks {
	int port;
	int prepared;
	int classified;
	int prepare_error;
	bool at_once_on_403;
};

static int test_prepare(void *ctx, int attempt, int64_t deadline_ms, struct http_request *req)
{
	struct hooks *h = ctx;
	char base[64], n[16];
	const char *parts[] = {base, "/?attempt=", n, NULL};

	h->prepared++;
	assert_int_equal(attempt, h->prepared);
	if (h->prepare_error)
		return h->prepare_error;
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", h->port);
	snprintf(n, sizeof(n), "%d", attempt);
	assert_int_equal(http_request_set_url(req, parts), 0);
	return http_request_add_header(req, "x-acs-signature-nonce", n);
}

static enum http_verdict test_classify(void *ctx, int attempt, const struct http_response *resp)
{
	struct hooks *h = ctx;

	h->classified++;
	if (resp->status == 403 && h->at_once_on_403)
		return HTTP_RETRY_AT_ONCE;
	if (resp->status == 400)
		return HTTP_RETRY_THROTTLED;
	return http_api_verdict(resp->status, "");
}

static const struct http_call_ops test_ops = {test_prepare, test_classify};

static struct http_client *client(size_t max_body)
{
	struct http_client_config cfg = {.max_body = max_body};
	struct http_client *c = NULL;

	assert_int_equal(http_client_new(&cfg, &c), 0);
	return c;
}

static unsigned long stat_value(const char *name)
{
	char buf[8192], key[64];
	const char *at;

	stats_format_api(buf, sizeof(buf));
	snprintf(key, sizeof(key), "\n%s ", name);
	at = strstr(buf, key);
	assert_non_null(at);
	return strtoul(at + strlen(key), NULL, 10);
}

static int run_script(const char *const *replies, struct hooks *h, long timeout_ms, int attempts,
		      size_t max_body, struct http_response *resp)
{
	struct server s;
	struct http_client *c = client(max_body);
	struct http_call_options o = {
	    .timeout_ms = timeout_ms, .max_attempts = attempts, .label = "test"};
	int rc;

	server_start(&s, replies);
	h->port = s.port;
	rc = http_call(c, &o, &test_ops, h, resp);
	http_client_free(c);
	server_stop(&s);
	assert_non_null(strstr(s.last_request, "x-acs-signature-nonce: "));
	assert_null(strstr(s.last_request, "Content-Type"));
	return rc;
}

static void server_errors_are_retried_until_success(void **state)
{
	const char *replies[] = {ERR_500, ERR_500, OK_200, NULL};
	unsigned long attempts = stat_value("api_attempts"), retries = stat_value("api_retries");
	struct hooks h = {0};
	struct http_response resp;

	assert_int_equal(run_script(replies, &h, 10000, 3, 0, &resp), 0);
	assert_int_equal(resp.status, 200);
	assert_int_equal(resp.attempts, 3);
	assert_int_equal(h.prepared, 3);
	assert_int_equal(h.classified, 3);
	assert_string_equal(resp.body.data, "{\"RequestId\":\"x\"}");
	assert_string_equal(resp.request_id, "REQ-OK");
	assert_int_equal(stat_value("api_attempts") - attempts, 3);
	assert_int_equal(stat_value("api_retries") - retries, 2);
	http_response_free(&resp);
}

static void attempts_are_bounded(void **state)
{
	const char *replies[] = {ERR_500, NULL};
	struct hooks h = {0};
	struct http_response resp;

	assert_int_equal(run_script(replies, &h, 10000, 1, 0, &resp), 0);
	assert_int_equal(resp.status, 500);
	assert_int_equal(resp.attempts, 1);
	assert_int_equal(h.prepared, 1);
	http_response_free(&resp);
}

static void throttling_waits_for_time_left(void **state)
{
	const char *replies[] = {THROTTLE_300, OK_200, NULL};
	unsigned long throttles = stat_value("api_throttles");
	struct hooks h = {0};
	struct http_response resp;
	int64_t start = http_now_ms();

	assert_int_equal(run_script(replies, &h, 10000, 3, 0, &resp), 0);
	assert_true(http_now_ms() - start >= 300);
	assert_int_equal(resp.status, 200);
	assert_int_equal(resp.attempts, 2);
	assert_int_equal(stat_value("api_throttles") - throttles, 1);
	http_response_free(&resp);
}

static void throttling_past_the_deadline_gives_up_at_once(void **state)
{
	const char *replies[] = {THROTTLE_300, NULL};
	struct hooks h = {0};
	struct http_response resp;

	assert_int_equal(run_script(replies, &h, 200, 3, 0, &resp), 0);
	assert_int_equal(resp.status, 400);
	assert_int_equal(resp.throttle_ms, 300);
	assert_int_equal(resp.attempts, 1);
	http_response_free(&resp);
}

static void dropped_and_truncated_answers_are_retried(void **state)
{
	const char *replies[] = {DROP, TRUNCATED, OK_200, NULL};
	struct hooks h = {0};
	struct http_response resp;

	assert_int_equal(run_script(replies, &h, 10000, 3, 0, &resp), 0);
	assert_int_equal(resp.status, 200);
	assert_int_equal(resp.attempts, 3);
	assert_int_equal(h.classified, 1);
	http_response_free(&resp);
}

static void a_hang_ends_at_the_deadline(void **state)
{
	const char *replies[] = {HANG, NULL};
	struct hooks h = {0};
	struct http_response resp;
	int64_t start = http_now_ms(), took;

	assert_int_equal(run_script(replies, &h, 300, 3, 0, &resp), -ETIMEDOUT);
	took = http_now_ms() - start;
	assert_true(took >= 290 && took < 1300);
	assert_int_equal(resp.attempts, 1);
	assert_true(resp.error[0] != '\0');
	http_response_free(&resp);
}

static void oversized_answers_are_refused_without_retry(void **state)
{
	static char big[8192];
	const char *replies[] = {big, NULL};
	struct hooks h = {0};
	struct http_response resp;
	int n = snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");

	memset(big + n, 'x', sizeof(big) - (size_t)n - 1);
	assert_int_equal(run_script(replies, &h, 5000, 3, 1024, &resp), -EFBIG);
	assert_int_equal(resp.attempts, 1);
	assert_null(resp.body.data);
	http_response_free(&resp);
}

static void at_once_retry_goes_beyond_the_budget(void **state)
{
	const char *replies[] = {ERR_403, OK_200, NULL};
	struct hooks h = {.at_once_on_403 = true};
	struct http_response resp;

	assert_int_equal(run_script(replies, &h, 5000, 1, 0, &resp), 0);
	assert_int_equal(resp.status, 200);
	assert_int_equal(resp.attempts, 2);
	http_response_free(&resp);
}

static void prepare_failure_sends_nothing(void **state)
{
	struct http_client *c = client(0);
	struct hooks h = {.prepare_error = -EACCES};
	struct http_call_options o = {.timeout_ms = 1000, .max_attempts = 3};
	struct http_response resp;

	assert_int_equal(http_call(c, &o, &test_ops, &h, &resp), -EACCES);
	assert_int_equal(h.prepared, 1);
	assert_int_equal(resp.attempts, 0);
	http_response_free(&resp);
	http_client_free(c);
}

static void refused_connections_are_retried_then_reported(void **state)
{
	struct http_client *c = client(0);
	struct hooks h = {0};
	struct http_call_options o = {.timeout_ms = 5000, .max_attempts = 2};
	struct http_response resp;
	int fd = listen_loopback(&h.port);

	close(fd);
	assert_int_equal(http_call(c, &o, &test_ops, &h, &resp), -ECONNREFUSED);
	assert_int_equal(resp.attempts, 2);
	assert_int_equal(h.classified, 0);
	http_response_free(&resp);
	http_client_free(c);
}

static void fetch_returns_status_and_body(void **state)
{
	const char *replies[] = {OK_200, NULL};
	const char *headers[] = {"X-aliyun-ecs-metadata-token: t", NULL};
	struct server s;
	struct http_buf body = {0};
	char url[64];
	long status = 0;

	server_start(&s, replies);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/latest/meta-data/", s.port);
	assert_int_equal(http_fetch("GET", url, headers, 2000, &status, &body), 0);
	server_stop(&s);
	assert_int_equal(status, 200);
	assert_string_equal(body.data, "{\"RequestId\":\"x\"}");
	assert_non_null(strstr(s.last_request, "GET /latest/meta-data/ HTTP/1.1"));
	assert_non_null(strstr(s.last_request, "X-aliyun-ecs-metadata-token: t"));
	http_buf_free(&body);
}

static void fetch_put_sends_an_empty_body(void **state)
{
	const char *replies[] = {OK_200, NULL};
	struct server s;
	struct http_buf body = {0};
	char url[64];
	long status = 0;

	server_start(&s, replies);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/latest/api/token", s.port);
	assert_int_equal(http_fetch("PUT", url, NULL, 2000, &status, &body), 0);
	server_stop(&s);
	assert_non_null(strstr(s.last_request, "PUT /latest/api/token HTTP/1.1"));
	assert_non_null(strstr(s.last_request, "Content-Length: 0"));
	http_buf_free(&body);
}

static void fetch_reports_transport_errors(void **state)
{
	struct http_buf body = {0};
	long status = 0;
	int port;
	char url[64];

	close(listen_loopback(&port));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
	assert_int_equal(http_fetch("GET", url, NULL, 2000, &status, &body), -ECONNREFUSED);
	assert_null(body.data);
	assert_int_equal(http_fetch("GET", "ftp://127.0.0.1/", NULL, 2000, &status, &body),
			 -EINVAL);
}

static int setup(void **state)
{
	return http_global_init();
}

static int teardown(void **state)
{
	http_global_cleanup();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(https_and_loopback_http_are_allowed),
	    cmocka_unit_test(everything_else_is_refused),
	    cmocka_unit_test(authority_is_what_curl_sends_as_host),
	    cmocka_unit_test(time_left_is_read_from_ratelimit_headers),
	    cmocka_unit_test(backoff_is_full_jitter_within_bounds),
	    cmocka_unit_test(throttling_time_left_is_a_floor),
	    cmocka_unit_test(verdicts_follow_the_retry_table),
	    cmocka_unit_test(request_headers_are_bounded_and_wiped),
	    cmocka_unit_test(server_errors_are_retried_until_success),
	    cmocka_unit_test(attempts_are_bounded),
	    cmocka_unit_test(throttling_waits_for_time_left),
	    cmocka_unit_test(throttling_past_the_deadline_gives_up_at_once),
	    cmocka_unit_test(dropped_and_truncated_answers_are_retried),
	    cmocka_unit_test(a_hang_ends_at_the_deadline),
	    cmocka_unit_test(oversized_answers_are_refused_without_retry),
	    cmocka_unit_test(at_once_retry_goes_beyond_the_budget),
	    cmocka_unit_test(prepare_failure_sends_nothing),
	    cmocka_unit_test(refused_connections_are_retried_then_reported),
	    cmocka_unit_test(fetch_returns_status_and_body),
	    cmocka_unit_test(fetch_put_sends_an_empty_body),
	    cmocka_unit_test(fetch_reports_transport_errors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

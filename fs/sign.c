/* Request signing, docs/ebs-api.md section 6. Pure functions over OpenSSL one-shot APIs. */
#include "ebsfs/sign.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#define V3_ALGORITHM "ACS3-HMAC-SHA256"

/* A growing string whose append operations remember the first allocation failure, so that the
 * builders below check once at the end instead of after every piece. */
struct strbuf {
	char *data;
	size_t len;
	size_t cap;
	bool failed;
};

static void sb_append(struct strbuf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *grown = realloc(b->data, cap);
		if (!grown) {
			b->failed = true;
			return;
		}
		b->data = grown;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void sb_puts(struct strbuf *b, const char *s)
{
	sb_append(b, s, strlen(s));
}

/* Hands the string over to the caller; NULL if any append failed. An empty builder yields "". */
static char *sb_finish(struct strbuf *b)
{
	sb_append(b, "", 0);
	if (b->failed) {
		free(b->data);
		return NULL;
	}
	return b->data;
}

static const char *or_empty(const char *s)
{
	return s ? s : "";
}

static bool is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.' || c == '~';
}

static void sb_put_pct(struct strbuf *b, const char *s)
{
	static const char hexdigits[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (is_unreserved(*p)) {
			sb_append(b, (const char *)p, 1);
		} else {
			char esc[3] = {'%', hexdigits[*p >> 4], hexdigits[*p & 0xf]};
			sb_append(b, esc, sizeof(esc));
		}
	}
}

char *sign_pct(const char *s)
{
	struct strbuf b = {0};

	sb_put_pct(&b, or_empty(s));
	return sb_finish(&b);
}

static int compare_kv(const void *a, const void *b)
{
	const struct sign_kv *x = *(const struct sign_kv *const *)a;
	const struct sign_kv *y = *(const struct sign_kv *const *)b;
	int c = strcmp(or_empty(x->key), or_empty(y->key));

	return c ? c : strcmp(or_empty(x->value), or_empty(y->value));
}

char *sign_canonical_query(const struct sign_kv *params, size_t n)
{
	struct strbuf b = {0};
	const struct sign_kv **sorted = calloc(n ? n : 1, sizeof(*sorted));

	if (!sorted)
		return NULL;
	for (size_t i = 0; i < n; i++)
		sorted[i] = &params[i];
	qsort(sorted, n, sizeof(*sorted), compare_kv);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			sb_puts(&b, "&");
		sb_put_pct(&b, or_empty(sorted[i]->key));
		sb_puts(&b, "=");
		sb_put_pct(&b, or_empty(sorted[i]->value));
	}
	free(sorted);
	return sb_finish(&b);
}

char *sign_v1_string_to_sign(const char *method, const char *canonical_query)
{
	struct strbuf b = {0};

	sb_puts(&b, or_empty(method));
	sb_puts(&b, "&%2F&");
	sb_put_pct(&b, or_empty(canonical_query));
	return sb_finish(&b);
}

static void to_hex(const unsigned char *in, size_t n, char *out)
{
	static const char hexdigits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hexdigits[in[i] >> 4];
		out[2 * i + 1] = hexdigits[in[i] & 0xf];
	}
	out[2 * n] = '\0';
}

/* V1 keys the HMAC with the secret followed by "&" (the empty token-secret slot of OAuth 1). */
static int hmac_sha1_v1(const char *secret, const char *data, unsigned char mac[20])
{
	size_t slen = strlen(secret);
	char *key = malloc(slen + 2);
	unsigned int maclen = 0;
	int rc = 0;

	if (!key)
		return -ENOMEM;
	memcpy(key, secret, slen);
	memcpy(key + slen, "&", 2);
	if (!HMAC(EVP_sha1(), key, (int)(slen + 1), (const unsigned char *)data, strlen(data), mac,
		  &maclen) ||
	    maclen != 20)
		rc = -EIO;
	OPENSSL_cleanse(key, slen + 1);
	free(key);
	return rc;
}

int sign_v1(const char *method, const char *canonical_query, const char *secret, char *out,
	    size_t outlen)
{
	unsigned char mac[20];
	char *string_to_sign;
	int rc;

	if (!secret || !out)
		return -EINVAL;
	if (outlen < 29)
		return -ENOSPC;
	string_to_sign = sign_v1_string_to_sign(method, canonical_query);
	if (!string_to_sign)
		return -ENOMEM;
	rc = hmac_sha1_v1(secret, string_to_sign, mac);
	if (rc == 0)
		EVP_EncodeBlock((unsigned char *)out, mac, sizeof(mac));
	free(string_to_sign);
	OPENSSL_cleanse(mac, sizeof(mac));
	return rc;
}

/* A header that takes part in the V3 signature: name as given (compared case-insensitively,
 * written lower-case), value trimmed of surrounding whitespace (pointer into the caller's). */
struct v3_header {
	const char *name;
	const char *value;
	size_t value_len;
};

static bool is_signed_header(const char *name)
{
	return strcasecmp(name, "host") == 0 || strcasecmp(name, "content-type") == 0 ||
	       strncasecmp(name, "x-acs-", 6) == 0;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static struct v3_header trimmed_header(const struct sign_kv *kv)
{
	const char *v = or_empty(kv->value);
	size_t len = strlen(v);

	while (len > 0 && is_blank(*v)) {
		v++;
		len--;
	}
	while (len > 0 && is_blank(v[len - 1]))
		len--;
	return (struct v3_header){.name = kv->key, .value = v, .value_len = len};
}

/* By name, then by value: duplicate names come out adjacent with their values in order, which
 * is the "joined with ',' (sorted)" rule. */
static int compare_v3_header(const void *a, const void *b)
{
	const struct v3_header *x = a, *y = b;
	int c = strcasecmp(x->name, y->name);
	size_t common = x->value_len < y->value_len ? x->value_len : y->value_len;

	if (c)
		return c;
	c = memcmp(x->value, y->value, common);
	if (c)
		return c;
	return (x->value_len > y->value_len) - (x->value_len < y->value_len);
}

static void sb_put_lower(struct strbuf *b, const char *s)
{
	for (; *s; s++) {
		char c = (*s >= 'A' && *s <= 'Z') ? (char)(*s - 'A' + 'a') : *s;
		sb_append(b, &c, 1);
	}
}

/* Sorted signed headers as "name:v1,v2\n" lines into canon and "name;name" into names. */
static void put_v3_headers(struct v3_header *h, size_t n, struct strbuf *canon,
			   struct strbuf *names)
{
	qsort(h, n, sizeof(*h), compare_v3_header);
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;

		if (i > 0)
			sb_puts(names, ";");
		sb_put_lower(names, h[i].name);
		sb_put_lower(canon, h[i].name);
		sb_puts(canon, ":");
		sb_append(canon, h[i].value, h[i].value_len);
		for (; j < n && strcasecmp(h[j].name, h[i].name) == 0; j++) {
			sb_puts(canon, ",");
			sb_append(canon, h[j].value, h[j].value_len);
		}
		sb_puts(canon, "\n");
		i = j;
	}
}

static struct v3_header *select_v3_headers(const struct sign_v3_request *r, size_t *count)
{
	struct v3_header *h = calloc(r->n_headers ? r->n_headers : 1, sizeof(*h));
	size_t n = 0;

	if (!h)
		return NULL;
	for (size_t i = 0; i < r->n_headers; i++) {
		if (r->headers[i].key && is_signed_header(r->headers[i].key))
			h[n++] = trimmed_header(&r->headers[i]);
	}
	*count = n;
	return h;
}

char *sign_v3_canonical_request(const struct sign_v3_request *r, char **signed_headers)
{
	struct strbuf req = {0}, canon = {0}, names = {0};
	size_t n = 0;
	struct v3_header *h = select_v3_headers(r, &n);
	char *names_str;

	if (signed_headers)
		*signed_headers = NULL;
	if (!h)
		return NULL;
	put_v3_headers(h, n, &canon, &names);
	free(h);
	names_str = sb_finish(&names);

	sb_puts(&req, or_empty(r->method));
	sb_puts(&req, "\n/\n");
	sb_puts(&req, or_empty(r->canonical_query));
	sb_puts(&req, "\n");
	sb_append(&req, or_empty(canon.data), canon.len);
	req.failed |= canon.failed || !names_str;
	sb_puts(&req, "\n");
	sb_puts(&req, or_empty(names_str));
	sb_puts(&req, "\n");
	sb_puts(&req, or_empty(r->payload_hash));
	free(canon.data);

	char *result = sb_finish(&req);
	if (result && signed_headers)
		*signed_headers = names_str;
	else
		free(names_str);
	return result;
}

static int hmac_sha256_hex(const char *key, const char *data, char out[65])
{
	unsigned char mac[32];
	unsigned int maclen = 0;

	if (!HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)data, strlen(data),
		  mac, &maclen) ||
	    maclen != sizeof(mac))
		return -EIO;
	to_hex(mac, sizeof(mac), out);
	OPENSSL_cleanse(mac, sizeof(mac));
	return 0;
}

int sign_v3_authorization(const struct sign_v3_request *r, char **authorization)
{
	char *signed_headers = NULL;
	char *canonical = NULL;
	char string_to_sign[sizeof(V3_ALGORITHM "\n") + 64];
	char hashed[65], signature[65];
	struct strbuf b = {0};
	int rc = 0;

	*authorization = NULL;
	if (!r->secret || !r->access_key_id)
		return -EINVAL;
	canonical = sign_v3_canonical_request(r, &signed_headers);
	if (!canonical) {
		rc = -ENOMEM;
		goto out;
	}
	sign_sha256_hex(canonical, strlen(canonical), hashed);
	snprintf(string_to_sign, sizeof(string_to_sign), V3_ALGORITHM "\n%s", hashed);
	rc = hmac_sha256_hex(r->secret, string_to_sign, signature);
	if (rc)
		goto out;

	sb_puts(&b, V3_ALGORITHM " Credential=");
	sb_puts(&b, r->access_key_id);
	sb_puts(&b, ",SignedHeaders=");
	sb_puts(&b, signed_headers);
	sb_puts(&b, ",Signature=");
	sb_puts(&b, signature);
	*authorization = sb_finish(&b);
	if (!*authorization)
		rc = -ENOMEM;
out:
	free(canonical);
	free(signed_headers);
	return rc;
}

void sign_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	/* An empty result never matches a real digest, so a failure shows up as a refused
	 * signature instead of signing with garbage. */
	out[0] = '\0';
	if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) && mdlen == 32)
		to_hex(md, mdlen, out);
}

int sign_random_hex(char *out, size_t nbytes)
{
	unsigned char chunk[32];

	out[0] = '\0';
	while (nbytes > 0) {
		size_t n = nbytes < sizeof(chunk) ? nbytes : sizeof(chunk);

		if (RAND_bytes(chunk, (int)n) != 1)
			return -EIO;
		to_hex(chunk, n, out);
		out += 2 * n;
		nbytes -= n;
	}
	return 0;
}

void sign_iso8601(time_t t, char *out, size_t outlen)
{
	struct tm tm;

	if (outlen == 0)
		return;
	out[0] = '\0';
	if (gmtime_r(&t, &tm) && strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		out[0] = '\0';
}

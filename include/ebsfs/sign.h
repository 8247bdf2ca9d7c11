/* Request signing for Alibaba Cloud RPC APIs (docs/ebs-api.md section 6): V3 ACS3-HMAC-SHA256
 * and V1 HMAC-SHA1, with the shared percent-encoding. Pure functions, no I/O. */
#ifndef EBSFS_SIGN_H
#define EBSFS_SIGN_H

#include <stddef.h>
#include <time.h>

struct sign_kv {
	const char *key;
	const char *value;
};

/* pct() of section 6.0: unreserved bytes literal, everything else %XX upper-case.
 * Returns a malloc'd string, NULL on allocation failure. */
char *sign_pct(const char *s);

/* Sorted (byte order of raw names) "pct(k)=pct(v)&..." of params; "" for none. Malloc'd. */
char *sign_canonical_query(const struct sign_kv *params, size_t n);

/* V1: METHOD&%2F&pct(canonical_query). Malloc'd. */
char *sign_v1_string_to_sign(const char *method, const char *canonical_query);
/* V1: base64(HMAC-SHA1(secret + "&", string_to_sign)) into out (>= 29 bytes). 0 or -errno. */
int sign_v1(const char *method, const char *canonical_query, const char *secret, char *out,
	    size_t outlen);

struct sign_v3_request {
	const char *method;	     /* "POST" */
	const char *canonical_query; /* from sign_canonical_query() */
	const struct sign_kv
	    *headers; /* all headers sent; host, content-type, x-acs-* get signed */
	size_t n_headers;
	const char *payload_hash; /* lower-hex SHA-256 of the body */
	const char *access_key_id;
	const char *secret;
};

/* The canonical request and the Authorization header value (both malloc'd). */
char *sign_v3_canonical_request(const struct sign_v3_request *r, char **signed_headers);
int sign_v3_authorization(const struct sign_v3_request *r, char **authorization);

void sign_sha256_hex(const void *data, size_t len, char out[65]);
/* 2*nbytes lower-hex random characters plus NUL (nonces, ClientTokens). 0 or -EIO. */
int sign_random_hex(char *out, size_t nbytes);
/* "YYYY-MM-DDThh:mm:ssZ" (UTC) into out (>= 21 bytes). */
void sign_iso8601(time_t t, char *out, size_t outlen);

#endif

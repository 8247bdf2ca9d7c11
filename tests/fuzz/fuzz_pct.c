/* The percent-encoding every signature rests on (docs/ebs-api.md 6.0). Decoding sign_pct()'s
 * output must give the input back, the output must use only unreserved bytes and upper-case
 * %XX, and sign_canonical_query() must be the sorted pct(k)=pct(v) list of exactly the params
 * given. The input, up to its first NUL, is the string; split at '\n' into params, each split at
 * its first '=' into key and value. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ebsfs/sign.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_PARAMS 64

static int is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.' || c == '~';
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1; /* lower case is not what the spec produces */
}

/* Decodes n bytes of enc into out (room for n + 1); the decoded length, or -1 when enc is not
 * in the canonical form. Every byte that is encoded must have needed it. */
static long decode(const char *enc, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)enc[i];

		if (c == '%') {
			if (i + 2 >= n)
				return -1;
			int hi = hex_value(enc[i + 1]), lo = hex_value(enc[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			unsigned char d = (unsigned char)(hi << 4 | lo);
			if (is_unreserved(d) || d == 0)
				return -1;
			out[o++] = (char)d;
			i += 2;
		} else if (is_unreserved(c)) {
			out[o++] = (char)c;
		} else {
			return -1;
		}
	}
	out[o] = '\0';
	return (long)o;
}

static void check_pct(const char *s)
{
	char *enc = sign_pct(s);
	size_t n;

	CHECK(enc != NULL);
	n = strlen(enc);
	char *dec = malloc(n + 1);
	CHECK(dec != NULL);
	CHECK(decode(enc, n, dec) == (long)strlen(s));
	if (strcmp(dec, s) != 0)
		abort();
	free(dec);
	free(enc);
}

static int cmp_raw(const struct sign_kv *a, const struct sign_kv *b)
{
	int c = strcmp(a->key, b->key);

	return c ? c : strcmp(a->value, b->value);
}

/* Splits text (modified in place) into params. */
static size_t split_params(char *text, struct sign_kv *params)
{
	size_t n = 0;

	if (!*text)
		return 0;
	for (char *line = text; line && n < MAX_PARAMS; n++) {
		char *nl = strchr(line, '\n');
		char *eq;

		if (nl)
			*nl++ = '\0';
		eq = strchr(line, '=');
		if (eq)
			*eq++ = '\0';
		params[n].key = line;
		params[n].value = eq ? eq : "";
		line = nl;
	}
	return n;
}

static void check_canonical_query(struct sign_kv *params, size_t n)
{
	char *q = sign_canonical_query(params, n);
	bool used[MAX_PARAMS] = {0};
	struct sign_kv prev = {NULL, NULL};
	size_t count = 0;

	CHECK(q != NULL);
	if (n == 0) {
		CHECK(q[0] == '\0');
		free(q);
		return;
	}
	size_t qlen = strlen(q);
	char *buf = malloc(qlen + 1);
	CHECK(buf != NULL);
	for (const char *item = q;; count++) {
		const char *amp = strchr(item, '&');
		size_t item_len = amp ? (size_t)(amp - item) : strlen(item);
		const char *eq = memchr(item, '=', item_len);

		CHECK(eq != NULL);
		CHECK(count < n);
		long klen = decode(item, (size_t)(eq - item), buf);
		CHECK(klen >= 0);
		char *key = strdup(buf);
		long vlen = decode(eq + 1, item_len - (size_t)(eq - item) - 1, buf);
		CHECK(key != NULL && vlen >= 0);
		struct sign_kv kv = {key, buf};

		/* Sorted by raw key, then raw value. */
		if (prev.key)
			CHECK(cmp_raw(&prev, &kv) <= 0);
		/* One of the params, each used once. */
		size_t j;
		for (j = 0; j < n; j++)
			if (!used[j] && cmp_raw(&params[j], &kv) == 0)
				break;
		CHECK(j < n);
		used[j] = true;
		free((char *)prev.key);
		free((char *)prev.value);
		prev.key = key;
		prev.value = strdup(buf);
		CHECK(prev.value != NULL);
		if (!amp)
			break;
		item = amp + 1;
	}
	CHECK(count + 1 == n);
	free((char *)prev.key);
	free((char *)prev.value);
	free(buf);
	free(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sign_kv params[MAX_PARAMS];
	size_t len = strnlen((const char *)data, size);
	char *text = malloc(len + 1);

	if (!text)
		return 0;
	memcpy(text, data, len);
	text[len] = '\0';

	check_pct(text);
	char *v1 = sign_v1_string_to_sign("POST", text);
	CHECK(v1 != NULL && strncmp(v1, "POST&%2F&", 9) == 0);
	/* V1 encodes the canonical query once more: decoding the tail gives it back. */
	char *dec = malloc(strlen(v1) + 1);
	CHECK(dec != NULL);
	CHECK(decode(v1 + 9, strlen(v1 + 9), dec) >= 0);
	CHECK(strcmp(dec, text) == 0);
	free(dec);
	free(v1);

	size_t n = split_params(text, params);
	for (size_t i = 0; i < n; i++) {
		check_pct(params[i].key);
		check_pct(params[i].value);
	}
	check_canonical_query(params, n);
	free(text);
	return 0;
}

/* Signing against every vector of docs/ebs-api.md section 6, plus pct() edge cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ebsfs/sign.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define NELEM(a)     (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ------------------------------------------------------------------------------- */

static void assert_pct(const char *in, const char *want)
{
	char *got = sign_pct(in);

	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void assert_cqs(const struct sign_kv *params, size_t n, const char *want)
{
	char *got = sign_canonical_query(params, n);

	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void assert_v1_string_to_sign(const char *method, const struct sign_kv *params, size_t n,
				     const char *want)
{
	char *cqs = sign_canonical_query(params, n);
	char *got = sign_v1_string_to_sign(method, cqs);

	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
	free(cqs);
}

static void assert_v1_signature(const char *method, const struct sign_kv *params, size_t n,
				const char *secret, const char *want)
{
	char *cqs = sign_canonical_query(params, n);
	char sig[29];

	assert_non_null(cqs);
	assert_int_equal(sign_v1(method, cqs, secret, sig, sizeof(sig)), 0);
	assert_string_equal(sig, want);
	free(cqs);
}

static void assert_sha256_of(const char *text, const char *want)
{
	char hex[65];

	sign_sha256_hex(text, strlen(text), hex);
	assert_string_equal(hex, want);
}

static char *v3_canonical(const struct sign_v3_request *r, const char *want_signed_headers)
{
	char *signed_headers = NULL;
	char *canonical = sign_v3_canonical_request(r, &signed_headers);

	assert_non_null(canonical);
	assert_non_null(signed_headers);
	assert_string_equal(signed_headers, want_signed_headers);
	free(signed_headers);
	return canonical;
}

static void assert_v3_authorization(const struct sign_v3_request *r, const char *want)
{
	char *auth = NULL;

	assert_int_equal(sign_v3_authorization(r, &auth), 0);
	assert_non_null(auth);
	assert_string_equal(auth, want);
	free(auth);
}

static char *v3_query(const struct sign_kv *params, size_t n)
{
	char *cqs = sign_canonical_query(params, n);

	assert_non_null(cqs);
	return cqs;
}

/* ---- 6.0 percent-encoding ---------------------------------------------------------------- */

static void test_pct_documented_cases(void **state)
{
	(void)state;
	assert_pct("", "");
	assert_pct(" ", "%20");
	assert_pct("*", "%2A");
	assert_pct("~", "~");
	assert_pct("/", "%2F");
	assert_pct("+", "%2B");
	assert_pct("=", "%3D");
	assert_pct("&", "%26");
	assert_pct(":", "%3A");
	assert_pct(",", "%2C");
	assert_pct("!", "%21");
	assert_pct("str'str", "str%27str");
	assert_pct("str(str", "str%28str");
	assert_pct("str)str", "str%29str");
	assert_pct("str*str", "str%2Astr");
	assert_pct("\xc3\xa9", "%C3%A9");
	assert_pct("AZaz09-_.~", "AZaz09-_.~");
	assert_pct("prod test*~", "prod%20test%2A~");
	assert_pct(NULL, "");
}

static bool is_unreserved(unsigned char c)
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
	return -1; /* lower-case hex is not what the spec produces */
}

/* Decodes s strictly: literal bytes must be unreserved, escapes must be upper-case and must
 * not encode an unreserved byte. Returns the decoded length, or -1. */
static int strict_decode(const char *s, unsigned char *out)
{
	int n = 0;

	while (*s) {
		if (*s != '%') {
			if (!is_unreserved((unsigned char)*s))
				return -1;
			out[n++] = (unsigned char)*s++;
			continue;
		}
		int hi = hex_value(s[1]), lo = hi < 0 ? -1 : hex_value(s[2]);
		if (lo < 0 || is_unreserved((unsigned char)(hi * 16 + lo)))
			return -1;
		out[n++] = (unsigned char)(hi * 16 + lo);
		s += 3;
	}
	return n;
}

static void test_pct_every_byte_round_trips(void **state)
{
	unsigned char all[256], decoded[256];
	(void)state;

	for (int b = 1; b < 256; b++) {
		char one[2] = {(char)b, '\0'};
		char *enc = sign_pct(one);

		assert_non_null(enc);
		assert_int_equal(strlen(enc), is_unreserved((unsigned char)b) ? 1 : 3);
		assert_int_equal(strict_decode(enc, decoded), 1);
		assert_int_equal(decoded[0], b);
		free(enc);
		all[b - 1] = (unsigned char)b;
	}
	all[255] = '\0';
	char *enc = sign_pct((const char *)all);
	assert_non_null(enc);
	assert_int_equal(strict_decode(enc, decoded), 255);
	assert_memory_equal(decoded, all, 255);
	free(enc);
}

static void test_canonical_query_sorting_and_empty(void **state)
{
	static const struct sign_kv params[] = {
	    {"b", "2"}, {"a", ""}, {"B", "x y"}, {"a.1", "*"}, {"A", NULL}};
	(void)state;

	assert_cqs(NULL, 0, "");
	/* Byte order of raw names: upper case sorts before lower case. */
	assert_cqs(params, NELEM(params), "A=&B=x%20y&a=&a.1=%2A&b=2");
}

/* ---- 6.1.1 V1 official vectors ----------------------------------------------------------- */

static const struct sign_kv v1_a[] = {
    {"AccessKeyId", "testid"},
    {"Action", "DescribeDedicatedHosts"},
    {"Format", "JSON"},
    {"RegionId", "cn-beijing"},
    {"SignatureMethod", "HMAC-SHA1"},
    {"SignatureNonce", "edb2b34af0af9a6d14deaf7c1a5315eb"},
    {"SignatureVersion", "1.0"},
    {"Timestamp", "2023-03-13T08:34:30Z"},
    {"Version", "2014-05-26"},
};

static void test_v1_a(void **state)
{
	(void)state;
	assert_cqs(v1_a, NELEM(v1_a),
		   "AccessKeyId=testid&Action=DescribeDedicatedHosts&Format=JSON&RegionId=cn-"
		   "beijing&SignatureMethod=HMAC-SHA1&SignatureNonce="
		   "edb2b34af0af9a6d14deaf7c1a5315eb&SignatureVersion=1.0&Timestamp=2023-03-13T08%"
		   "3A34%3A30Z&Version=2014-05-26");
	assert_v1_string_to_sign(
	    "GET", v1_a, NELEM(v1_a),
	    "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeDedicatedHosts%26Format%3DJSON%"
	    "26RegionId%3Dcn-beijing%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%"
	    "3Dedb2b34af0af9a6d14deaf7c1a5315eb%26SignatureVersion%3D1.0%26Timestamp%3D2023-03-"
	    "13T08%253A34%253A30Z%26Version%3D2014-05-26");
	assert_v1_signature("GET", v1_a, NELEM(v1_a), "testsecret", "9NaGiOspFP5UPcwX8Iwt2YJXXuk=");
	assert_v1_signature("POST", v1_a, NELEM(v1_a), "testsecret",
			    "ZvQ9xGiFnquSJRvj+WE6kdSpTwU=");
}

/* Given out of order on purpose: the doc lists them so. */
static const struct sign_kv v1_b[] = {
    {"Timestamp", "2016-02-23T12:46:24Z"},
    {"Format", "XML"},
    {"AccessKeyId", "testid"},
    {"Action", "DescribeRegions"},
    {"SignatureMethod", "HMAC-SHA1"},
    {"SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"},
    {"Version", "2014-05-26"},
    {"SignatureVersion", "1.0"},
};

static void test_v1_b(void **state)
{
	(void)state;
	assert_v1_string_to_sign(
	    "GET", v1_b, NELEM(v1_b),
	    "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%"
	    "26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-"
	    "4e0ad82fd6cf%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%"
	    "26Version%3D2014-05-26");
	assert_v1_signature("GET", v1_b, NELEM(v1_b), "testsecret", "OLeaidS1JvxuMvnyHOwuJ+uX5qY=");
	assert_v1_signature("POST", v1_b, NELEM(v1_b), "testsecret",
			    "MxbnVAM4w6sft9xjVpe/GCKueuk=");
}

static void test_v1_c_sdk_empty_method(void **state)
{
	static const struct sign_kv params[] = {{"test", "ok"}};
	(void)state;

	assert_v1_string_to_sign("", params, 1, "&%2F&test%3Dok");
	assert_v1_signature("", params, 1, "accessKeySecret", "jHx/oHoHNrbVfhncHEvPdHXZwHU=");
}

/* ---- 6.1.2 ebs V1 vectors ---------------------------------------------------------------- */

static void test_v1_ebs_1(void **state)
{
	static const struct sign_kv params[] = {
	    {"AccessKeyId", "testid"},
	    {"Action", "DescribeDiskReplicaPairs"},
	    {"Format", "JSON"},
	    {"MaxResults", "10"},
	    {"PairIds", "pair-cn-abc,pair-cn-def"},
	    {"RegionId", "cn-hangzhou"},
	    {"Site", "production"},
	    {"SignatureMethod", "HMAC-SHA1"},
	    {"SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"},
	    {"SignatureVersion", "1.0"},
	    {"Timestamp", "2024-01-01T00:00:00Z"},
	    {"Version", "2021-07-30"},
	};
	(void)state;

	assert_cqs(params, NELEM(params),
		   "AccessKeyId=testid&Action=DescribeDiskReplicaPairs&Format=JSON&MaxResults=10&"
		   "PairIds=pair-cn-abc%2Cpair-cn-def&RegionId=cn-hangzhou&SignatureMethod=HMAC-"
		   "SHA1&SignatureNonce=3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf&SignatureVersion=1.0&"
		   "Site=production&Timestamp=2024-01-01T00%3A00%3A00Z&Version=2021-07-30");
	assert_v1_signature("GET", params, NELEM(params), "testsecret",
			    "bednFqVWNCGYNfXxluap2XFwWiA=");
	assert_v1_signature("POST", params, NELEM(params), "testsecret",
			    "R6hdFOjt+EspE5pkI5AwiZbaHh0=");
}

static void test_v1_ebs_2_sts_and_special_chars(void **state)
{
	static const struct sign_kv params[] = {
	    {"AccessKeyId", "STS.testid"},
	    {"Action", "DescribeDiskReplicaPairs"},
	    {"Format", "JSON"},
	    {"RegionId", "cn-hangzhou"},
	    {"SecurityToken", "tok/en+a=b"},
	    {"SignatureMethod", "HMAC-SHA1"},
	    {"SignatureNonce", "nonce-0001"},
	    {"SignatureVersion", "1.0"},
	    {"Tag.1.Key", "env"},
	    {"Tag.1.Value", "prod test*~"},
	    {"Timestamp", "2024-01-01T00:00:00Z"},
	    {"Version", "2021-07-30"},
	};
	(void)state;

	assert_cqs(params, NELEM(params),
		   "AccessKeyId=STS.testid&Action=DescribeDiskReplicaPairs&Format=JSON&RegionId=cn-"
		   "hangzhou&SecurityToken=tok%2Fen%2Ba%3Db&SignatureMethod=HMAC-SHA1&"
		   "SignatureNonce=nonce-0001&SignatureVersion=1.0&Tag.1.Key=env&Tag.1.Value=prod%"
		   "20test%2A~&Timestamp=2024-01-01T00%3A00%3A00Z&Version=2021-07-30");
	assert_v1_string_to_sign(
	    "POST", params, NELEM(params),
	    "POST&%2F&AccessKeyId%3DSTS.testid%26Action%3DDescribeDiskReplicaPairs%26Format%"
	    "3DJSON%26RegionId%3Dcn-hangzhou%26SecurityToken%3Dtok%252Fen%252Ba%253Db%"
	    "26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3Dnonce-0001%26SignatureVersion%3D1."
	    "0%26Tag.1.Key%3Denv%26Tag.1.Value%3Dprod%2520test%252A~%26Timestamp%3D2024-01-"
	    "01T00%253A00%253A00Z%26Version%3D2021-07-30");
	assert_v1_signature("POST", params, NELEM(params), "testsecret",
			    "8gz4KeDOL6ejM2KvGAa96uMZBFY=");
}

static void test_v1_rejects_short_buffer_and_missing_secret(void **state)
{
	char sig[28];
	(void)state;

	assert_int_equal(sign_v1("GET", "a=b", "s", sig, sizeof(sig)), -ENOSPC);
	assert_int_equal(sign_v1("GET", "a=b", NULL, sig, sizeof(sig)), -EINVAL);
}

/* ---- 6.2.1 V3 official vector ------------------------------------------------------------ */

static void test_v3_official(void **state)
{
	static const struct sign_kv query[] = {
	    {"ImageId", "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd"},
	    {"RegionId", "cn-shanghai"},
	};
	static const struct sign_kv headers[] = {
	    {"host", "ecs.cn-shanghai.aliyuncs.com"},
	    {"x-acs-action", "RunInstances"},
	    {"x-acs-version", "2014-05-26"},
	    {"x-acs-date", "2023-10-26T10:22:32Z"},
	    {"x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"},
	    {"x-acs-content-sha256", EMPTY_SHA256},
	    {"accept", "application/json"},
	    {"user-agent", "ebsfs"},
	};
	(void)state;
	char *cqs = v3_query(query, NELEM(query));
	struct sign_v3_request r = {.method = "POST",
				    .canonical_query = cqs,
				    .headers = headers,
				    .n_headers = NELEM(headers),
				    .payload_hash = EMPTY_SHA256,
				    .access_key_id = "YourAccessKeyId",
				    .secret = "YourAccessKeySecret"};
	char *canonical = v3_canonical(
	    &r, "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-"
		"version");

	assert_string_equal(
	    canonical,
	    "POST\n/\nImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-"
	    "shanghai\nhost:ecs.cn-shanghai.aliyuncs.com\nx-acs-action:RunInstances\nx-acs-"
	    "content-sha256:" EMPTY_SHA256 "\nx-acs-date:2023-10-26T10:22:32Z\nx-acs-signature-"
	    "nonce:3156853299f313e23d1673dc12e1703d\nx-acs-version:2014-05-26\n\nhost;x-acs-"
	    "action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version"
	    "\n" EMPTY_SHA256);
	assert_sha256_of(canonical,
			 "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259");
	assert_v3_authorization(
	    &r, "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;x-"
		"acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature="
		"06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0");
	free(canonical);
	free(cqs);
}

/* ---- 6.2.2 V3 SDK vector: empty method, empty value, duplicate header --------------------- */

static void test_v3_sdk_duplicate_header(void **state)
{
	static const struct sign_kv query[] = {{"test", "ok"}, {"empty", ""}};
	/* The "https" value first: merged values must come out sorted. */
	static const struct sign_kv headers[] = {{"x-acs-TEST", "https"}, {"x-acs-test", "http"}};
	(void)state;
	char *cqs = v3_query(query, NELEM(query));
	struct sign_v3_request r = {
	    .method = "",
	    .canonical_query = cqs,
	    .headers = headers,
	    .n_headers = NELEM(headers),
	    .payload_hash = "55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23",
	    .access_key_id = "acesskey",
	    .secret = "secret"};
	char *canonical = v3_canonical(&r, "x-acs-test");

	assert_string_equal(cqs, "empty=&test=ok");
	assert_string_equal(canonical,
			    "\n/\nempty=&test=ok\nx-acs-test:http,https\n\nx-acs-test\n55e"
			    "12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a2"
			    "3");
	/* Derived with Python hashlib from the documented canonical request. */
	assert_sha256_of(canonical,
			 "de5b11a1e2e756c1d859871395fe0b6d47f2564e88a5477eb586c03c6fc105ff");
	assert_v3_authorization(&r,
				"ACS3-HMAC-SHA256 Credential=acesskey,SignedHeaders=x-acs-test,"
				"Signature=4ab59fffe3c5738ff8a2729f90cc04fe18b02a4b15b2102cbaf92f"
				"9ff3df2ea3");
	free(canonical);
	free(cqs);
}

/* ---- 6.2.3 ebs V3 vectors ---------------------------------------------------------------- */

#define EBS_V3_COMMON_HEADERS                                                                      \
	{"x-acs-version", "2021-07-30"}, {"x-acs-date", "2024-01-01T00:00:00Z"},                   \
	{                                                                                          \
		"x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"                        \
	}

static void test_v3_ebs_c_reprotect(void **state)
{
	static const struct sign_kv query[] = {
	    {"RegionId", "cn-shanghai"},
	    {"ReplicaPairId", "pair-cn-dsa1234"},
	    {"ReverseReplicate", "true"},
	    {"ClientToken", "123e4567-e89b-12d3-a456-426655440000"},
	};
	static const struct sign_kv headers[] = {
	    {"host", "ebs.cn-shanghai.aliyuncs.com"},
	    {"x-acs-action", "ReprotectDiskReplicaPair"},
	    EBS_V3_COMMON_HEADERS,
	    {"x-acs-content-sha256", EMPTY_SHA256},
	};
	(void)state;
	char *cqs = v3_query(query, NELEM(query));
	struct sign_v3_request r = {.method = "POST",
				    .canonical_query = cqs,
				    .headers = headers,
				    .n_headers = NELEM(headers),
				    .payload_hash = EMPTY_SHA256,
				    .access_key_id = "YourAccessKeyId",
				    .secret = "YourAccessKeySecret"};
	char *canonical = v3_canonical(
	    &r, "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-"
		"version");

	assert_string_equal(cqs, "ClientToken=123e4567-e89b-12d3-a456-426655440000&RegionId=cn-"
				 "shanghai&ReplicaPairId=pair-cn-dsa1234&ReverseReplicate=true");
	assert_sha256_of(canonical,
			 "176a06f40adb8ef516429bc177b07ef0802bfa62d0488c344b73c408b2c6949e");
	assert_v3_authorization(
	    &r, "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;x-"
		"acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature="
		"a4c018bc6113f15cbf92cfd1e8c8cc863a5cbff02843b289ed022b29a7c8fa13");
	free(canonical);
	free(cqs);
}

static void test_v3_ebs_d_sts(void **state)
{
	static const struct sign_kv query[] = {{"MaxResults", "10"}, {"RegionId", "cn-hangzhou"}};
	static const struct sign_kv headers[] = {
	    {"host", "ebs.cn-hangzhou.aliyuncs.com"},
	    {"x-acs-action", "DescribeDiskReplicaPairs"},
	    EBS_V3_COMMON_HEADERS,
	    {"x-acs-content-sha256", EMPTY_SHA256},
	    {"x-acs-accesskey-id", "STS.YourAccessKeyId"},
	    {"x-acs-security-token", "YourSecurityToken"},
	};
	(void)state;
	char *cqs = v3_query(query, NELEM(query));
	struct sign_v3_request r = {.method = "POST",
				    .canonical_query = cqs,
				    .headers = headers,
				    .n_headers = NELEM(headers),
				    .payload_hash = EMPTY_SHA256,
				    .access_key_id = "STS.YourAccessKeyId",
				    .secret = "YourAccessKeySecret"};
	char *canonical = v3_canonical(&r, "host;x-acs-accesskey-id;x-acs-action;x-acs-content-"
					   "sha256;x-acs-date;x-acs-security-token;x-acs-signature-"
					   "nonce;x-acs-version");

	assert_sha256_of(canonical,
			 "00137ff229989e00b4e96ea2e1df069c93a7a6dd194d4b3f115711fcfe6f22fa");
	assert_v3_authorization(
	    &r, "ACS3-HMAC-SHA256 Credential=STS.YourAccessKeyId,SignedHeaders=host;x-acs-"
		"accesskey-id;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-security-token;"
		"x-acs-signature-nonce;x-acs-version,Signature="
		"6e9370e682e883c2a7c3e4c7f5215b821794cfa9b8b846d4e2246188f93f8ca4");
	free(canonical);
	free(cqs);
}

static void test_v3_ebs_e_form_body(void **state)
{
	static const char body[] = "PairIds=pair-cn-abc%2Cpair-cn-def&RegionId=cn-hangzhou";
	char payload_hash[65];
	(void)state;

	sign_sha256_hex(body, strlen(body), payload_hash);
	assert_string_equal(payload_hash,
			    "ee05fe49fefa531aae7826038476d79f71f8726d4acf8997f6497b9293979f52");
	const struct sign_kv headers[] = {
	    {"host", "ebs.cn-hangzhou.aliyuncs.com"},
	    {"x-acs-action", "DescribeDiskReplicaPairs"},
	    EBS_V3_COMMON_HEADERS,
	    {"x-acs-content-sha256", payload_hash},
	    {"content-type", "application/x-www-form-urlencoded"},
	};
	char *cqs = v3_query(NULL, 0);
	struct sign_v3_request r = {.method = "POST",
				    .canonical_query = cqs,
				    .headers = headers,
				    .n_headers = NELEM(headers),
				    .payload_hash = payload_hash,
				    .access_key_id = "YourAccessKeyId",
				    .secret = "YourAccessKeySecret"};
	char *canonical = v3_canonical(&r, "content-type;host;x-acs-action;x-acs-content-sha256;x-"
					   "acs-date;x-acs-signature-nonce;x-acs-version");

	assert_non_null(strstr(canonical, "POST\n/\n\ncontent-type:"));
	assert_sha256_of(canonical,
			 "18d5c9a0b782bf03d0afebd522afb0ef7888a4d8f4115bfc19ec374dfc52ac30");
	char *auth = NULL;
	assert_int_equal(sign_v3_authorization(&r, &auth), 0);
	assert_non_null(strstr(
	    auth, ",Signature=73db4320a88aa2e80e8716226fb699e3d2bd420030043c2aedcf2be55554b678"));
	free(auth);
	free(canonical);
	free(cqs);
}

/* ---- V3 header canonicalisation ---------------------------------------------------------- */

static void test_v3_headers_lowercased_trimmed_filtered(void **state)
{
	static const struct sign_kv headers[] = {
	    {"X-Acs-Date", "  2024-01-01T00:00:00Z\t"},
	    {"Host", "h:8080"},
	    {"Content-Type", " text/plain "},
	    {"Accept", "application/json"},
	    {"Authorization", "ignored"},
	    {"x-other", "ignored"},
	};
	struct sign_v3_request r = {.method = "GET",
				    .canonical_query = "a=b",
				    .headers = headers,
				    .n_headers = NELEM(headers),
				    .payload_hash = EMPTY_SHA256,
				    .access_key_id = "id",
				    .secret = "s"};
	(void)state;
	char *canonical = v3_canonical(&r, "content-type;host;x-acs-date");

	assert_string_equal(canonical, "GET\n/\na=b\ncontent-type:text/plain\nhost:h:8080\nx-acs-"
				       "date:2024-01-01T00:00:00Z\n\ncontent-type;host;x-acs-"
				       "date\n" EMPTY_SHA256);
	free(canonical);
}

static void test_v3_authorization_needs_credentials(void **state)
{
	struct sign_v3_request r = {.method = "POST", .canonical_query = ""};
	char *auth = (char *)"untouched";
	(void)state;

	assert_int_equal(sign_v3_authorization(&r, &auth), -EINVAL);
	assert_null(auth);
}

/* ---- helpers: digest, random, time ------------------------------------------------------- */

static void test_sha256_hex(void **state)
{
	(void)state;
	assert_sha256_of("", EMPTY_SHA256);
	assert_sha256_of("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_random_hex(void **state)
{
	char a[33], b[33], none[1] = {'x'};
	(void)state;

	assert_int_equal(sign_random_hex(a, 16), 0);
	assert_int_equal(sign_random_hex(b, 16), 0);
	assert_int_equal(strlen(a), 32);
	assert_int_equal(strspn(a, "0123456789abcdef"), 32);
	assert_string_not_equal(a, b);
	assert_int_equal(sign_random_hex(none, 0), 0);
	assert_string_equal(none, "");

	char big[2 * 100 + 1];
	assert_int_equal(sign_random_hex(big, 100), 0);
	assert_int_equal(strlen(big), 200);
	assert_int_equal(strspn(big, "0123456789abcdef"), 200);
}

static void test_iso8601(void **state)
{
	char out[21], small[20];
	(void)state;

	sign_iso8601(0, out, sizeof(out));
	assert_string_equal(out, "1970-01-01T00:00:00Z");
	sign_iso8601(1700000000, out, sizeof(out));
	assert_string_equal(out, "2023-11-14T22:13:20Z");
	sign_iso8601(1700000000, small, sizeof(small));
	assert_string_equal(small, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pct_documented_cases),
	    cmocka_unit_test(test_pct_every_byte_round_trips),
	    cmocka_unit_test(test_canonical_query_sorting_and_empty),
	    cmocka_unit_test(test_v1_a),
	    cmocka_unit_test(test_v1_b),
	    cmocka_unit_test(test_v1_c_sdk_empty_method),
	    cmocka_unit_test(test_v1_ebs_1),
	    cmocka_unit_test(test_v1_ebs_2_sts_and_special_chars),
	    cmocka_unit_test(test_v1_rejects_short_buffer_and_missing_secret),
	    cmocka_unit_test(test_v3_official),
	    cmocka_unit_test(test_v3_sdk_duplicate_header),
	    cmocka_unit_test(test_v3_ebs_c_reprotect),
	    cmocka_unit_test(test_v3_ebs_d_sts),
	    cmocka_unit_test(test_v3_ebs_e_form_body),
	    cmocka_unit_test(test_v3_headers_lowercased_trimmed_filtered),
	    cmocka_unit_test(test_v3_authorization_needs_credentials),
	    cmocka_unit_test(test_sha256_hex),
	    cmocka_unit_test(test_random_hex),
	    cmocka_unit_test(test_iso8601),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

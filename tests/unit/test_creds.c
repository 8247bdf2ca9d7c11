/* The credential parsers and the file/environment part of the chain. The metadata service
 * (network) is exercised by the integration suite against the emulator. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ebsfs/creds.h"
#include "ebsfs/log.h"

#define SECRET "S3cr3tV4lu3xyz"

static const char *const chain_env[] = {
    "ALIBABA_CLOUD_ACCESS_KEY_ID",	   "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "ALIBABA_CLOUD_SECURITY_TOKEN",	   "ALIBABA_CLOUD_CONFIG_FILE",
    "ALIBABA_CLOUD_CREDENTIALS_FILE",	   "ALIBABA_CLOUD_PROFILE",
    "ALIBABA_CLOUD_CLI_PROFILE_DISABLED",  "ALIBABA_CLOUD_ECS_METADATA",
    "ALIBABA_CLOUD_ECS_METADATA_DISABLED", "ALIBABA_CLOUD_IMDSV1_DISABLED",
    "ALIBABA_CLOUD_IMDS_ENDPOINT",
};

static char tmp_root[] = "/tmp/ebsfs-test-creds-XXXXXX";
static char home[4200];

/* ---- parser helpers ------------------------------------------------------------------------ */

struct parsed {
	int rc;
	struct creds c;
	char *role;
	char err[256];
};

static void parsed_free(struct parsed *p)
{
	creds_clear(&p->c);
	free(p->role);
	p->role = NULL;
}

static struct parsed parse_ini(const char *text, const char *profile)
{
	struct parsed p = {0};

	p.rc = creds_parse_ini(text, profile, &p.c, &p.role, p.err, sizeof(p.err));
	return p;
}

static struct parsed parse_cli(const char *json, const char *profile)
{
	struct parsed p = {0};

	p.rc = creds_parse_cli_config(json, profile, &p.c, &p.role, p.err, sizeof(p.err));
	return p;
}

static struct parsed parse_imds(const char *json)
{
	struct parsed p = {0};

	p.rc = creds_parse_imds(json, &p.c, p.err, sizeof(p.err));
	return p;
}

static void assert_static(const struct parsed *p, const char *id, const char *secret,
			  const char *token)
{
	assert_int_equal(p->rc, 0);
	assert_null(p->role);
	assert_string_equal(p->c.access_key_id, id);
	assert_string_equal(p->c.access_key_secret, secret);
	if (token)
		assert_string_equal(p->c.security_token, token);
	else
		assert_null(p->c.security_token);
	assert_int_equal(p->c.expiration, 0);
}

static void assert_role(const struct parsed *p, const char *role)
{
	assert_int_equal(p->rc, 0);
	assert_non_null(p->role);
	assert_string_equal(p->role, role);
	assert_null(p->c.access_key_id);
	assert_null(p->c.access_key_secret);
}

/* A failure leaves nothing behind and explains itself without quoting a secret. */
static void assert_fails(const struct parsed *p, int rc, const char *reason_part)
{
	assert_int_equal(p->rc, rc);
	assert_null(p->c.access_key_id);
	assert_null(p->c.access_key_secret);
	assert_null(p->c.security_token);
	assert_null(p->role);
	assert_non_null(strstr(p->err, reason_part));
	assert_null(strstr(p->err, SECRET));
}

/* ---- INI ----------------------------------------------------------------------------------- */

static const char ini_text[] =
    "; the example of the SDK README, with comments and odd spacing\r\n"
    "# another comment style\n"
    "\n"
    "[default]\n"
    "type = access_key\n"
    "access_key_id = foo\n"
    "access_key_secret = " SECRET "\n"
    "\n"
    "   [ ecs ]   \n"
    "\ttype=ecs_ram_role\n"
    "role_name = EcsRamRoleTest        ; optional, auto-discovered if absent\n"
    "\n"
    "[ecs-auto]\n"
    "type = ecs_ram_role\n"
    "[quoted]\n"
    "type = \"access_key\"\n"
    "access_key_id = 'q id'\n"
    "access_key_secret = ab#cd;ef   # comment after whitespace\n"
    "[ram]\n"
    "type = ram_role_arn\n"
    "access_key_id = foo\n"
    "access_key_secret = " SECRET "\n"
    "role_arn = acs:ram::123456789012:role/demo\n"
    "role_session_name = session_name\n"
    "[oidc]\n"
    "type = oidc_role_arn\n"
    "[untyped]\n"
    "access_key_id = foo\n"
    "[empty-secret]\n"
    "type = access_key\n"
    "access_key_id = foo\n"
    "access_key_secret =\n"
    "[later]\n"
    "type = access_key\n"
    "access_key_id = first\n"
    "access_key_secret = " SECRET "\n"
    "access_key_id = second\n";

static void test_ini_access_key(void **state)
{
	(void)state;
	struct parsed p = parse_ini(ini_text, "default");
	assert_static(&p, "foo", SECRET, NULL);
	parsed_free(&p);

	p = parse_ini(ini_text, NULL);
	assert_static(&p, "foo", SECRET, NULL);
	parsed_free(&p);

	p = parse_ini(ini_text, "later"); /* the last occurrence of a key wins */
	assert_static(&p, "second", SECRET, NULL);
	parsed_free(&p);
}

static void test_ini_comments_quotes_whitespace(void **state)
{
	(void)state;
	struct parsed p = parse_ini(ini_text, "quoted");
	/* ';' and '#' glued to a value are data, after whitespace they start a comment. */
	assert_static(&p, "q id", "ab#cd;ef", NULL);
	parsed_free(&p);

	p = parse_ini("[default]\r\ntype = access_key\r\naccess_key_id = id\r\n"
		      "access_key_secret = " SECRET "\r\n",
		      NULL);
	assert_static(&p, "id", SECRET, NULL);
	parsed_free(&p);
}

static void test_ini_ecs_ram_role(void **state)
{
	(void)state;
	struct parsed p = parse_ini(ini_text, "ecs");
	assert_role(&p, "EcsRamRoleTest");
	parsed_free(&p);

	p = parse_ini(ini_text, "ecs-auto");
	assert_role(&p, "");
	parsed_free(&p);
}

static void test_ini_rejections(void **state)
{
	(void)state;
	struct parsed p = parse_ini(ini_text, "missing");
	assert_fails(&p, -ENOENT, "missing");

	p = parse_ini(ini_text, "ram");
	assert_fails(&p, -EINVAL, "ram_role_arn");
	p = parse_ini(ini_text, "oidc");
	assert_fails(&p, -EINVAL, "oidc_role_arn");
	p = parse_ini(ini_text, "untyped");
	assert_fails(&p, -EINVAL, "no type");
	p = parse_ini(ini_text, "empty-secret");
	assert_fails(&p, -EINVAL, "access_key_secret");
	p = parse_ini("[default]\ntype = access_key\naccess_key_id = id\n", NULL);
	assert_fails(&p, -EINVAL, "access_key_secret");
	p = parse_ini("", "default");
	assert_fails(&p, -ENOENT, "default");
}

static void test_ini_malformed(void **state)
{
	(void)state;
	struct parsed p = parse_ini("[default\ntype = access_key\n", NULL);
	assert_fails(&p, -EINVAL, "line 1");

	p = parse_ini("[default]\ntype = access_key\n" SECRET "\n", NULL);
	assert_fails(&p, -EINVAL, "line 3");
}

/* ---- aliyun CLI config.json ---------------------------------------------------------------- */

static const char cli_json[] =
    "{\"current\": \"ak\", \"meta_path\": \"\", \"profiles\": ["
    "{\"name\": \"ak\", \"mode\": \"AK\", \"access_key_id\": \"id1\","
    " \"access_key_secret\": \"" SECRET "\", \"region_id\": \"cn-shanghai\"},"
    "{\"name\": \"sts\", \"mode\": \"StsToken\", \"access_key_id\": \"STS.id2\","
    " \"access_key_secret\": \"" SECRET "\", \"sts_token\": \"tok\"},"
    "{\"name\": \"role\", \"mode\": \"EcsRamRole\", \"ram_role_name\": \"EcsRamRoleTest\"},"
    "{\"name\": \"role-auto\", \"mode\": \"EcsRamRole\"},"
    "{\"name\": \"arn\", \"mode\": \"RamRoleArn\", \"access_key_id\": \"id\","
    " \"access_key_secret\": \"" SECRET "\", \"ram_role_arn\": \"acs:ram::1:role/x\"},"
    "{\"name\": \"oidc\", \"mode\": \"OIDC\"},"
    "{\"name\": \"chain\", \"mode\": \"ChainableRamRoleArn\"},"
    "{\"name\": \"uri\", \"mode\": \"CredentialsURI\"},"
    "{\"name\": \"ext\", \"mode\": \"External\"},"
    "{\"name\": \"sso\", \"mode\": \"CloudSSO\"},"
    "{\"name\": \"nomode\", \"access_key_id\": \"id\", \"access_key_secret\": \"" SECRET "\"},"
    "{\"name\": \"ak-empty\", \"mode\": \"AK\", \"access_key_id\": \"id\","
    " \"access_key_secret\": \"\"},"
    "{\"name\": \"ak-number\", \"mode\": \"AK\", \"access_key_id\": 42,"
    " \"access_key_secret\": \"" SECRET "\"},"
    "{\"name\": \"sts-notoken\", \"mode\": \"StsToken\", \"access_key_id\": \"id\","
    " \"access_key_secret\": \"" SECRET "\"}"
    "]}";

static void test_cli_modes(void **state)
{
	(void)state;
	struct parsed p = parse_cli(cli_json, NULL); /* the file's current profile */
	assert_static(&p, "id1", SECRET, NULL);
	parsed_free(&p);

	p = parse_cli(cli_json, "sts");
	assert_static(&p, "STS.id2", SECRET, "tok");
	parsed_free(&p);

	p = parse_cli(cli_json, "role");
	assert_role(&p, "EcsRamRoleTest");
	parsed_free(&p);

	p = parse_cli(cli_json, "role-auto");
	assert_role(&p, "");
	parsed_free(&p);
}

static void test_cli_unsupported_modes(void **state)
{
	static const char *const modes[][2] = {
	    {"arn", "RamRoleArn"},     {"oidc", "OIDC"},    {"chain", "ChainableRamRoleArn"},
	    {"uri", "CredentialsURI"}, {"ext", "External"}, {"sso", "CloudSSO"},
	};
	(void)state;

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		struct parsed p = parse_cli(cli_json, modes[i][0]);
		assert_fails(&p, -EINVAL, modes[i][1]);
		assert_non_null(strstr(p.err, "AK, StsToken or EcsRamRole"));
	}
}

static void test_cli_rejections(void **state)
{
	(void)state;
	struct parsed p = parse_cli(cli_json, "missing");
	assert_fails(&p, -ENOENT, "missing");
	p = parse_cli(cli_json, "nomode");
	assert_fails(&p, -EINVAL, "no mode");
	p = parse_cli(cli_json, "ak-empty");
	assert_fails(&p, -EINVAL, "access_key_secret");
	p = parse_cli(cli_json, "ak-number");
	assert_fails(&p, -EINVAL, "access_key_id");
	p = parse_cli(cli_json, "sts-notoken");
	assert_fails(&p, -EINVAL, "sts_token");
	/* Without "current" the CLI's own default applies. */
	p = parse_cli("{\"profiles\": []}", NULL);
	assert_fails(&p, -ENOENT, "'default'");
	p = parse_cli("{\"current\": \"x\"}", NULL);
	assert_fails(&p, -ENOENT, "'x'");
}

static void test_cli_malformed_json_does_not_quote_input(void **state)
{
	(void)state;
	struct parsed p = parse_cli("{\"profiles\": [{\"access_key_secret\": " SECRET "}]}", NULL);
	assert_fails(&p, -EINVAL, "malformed JSON at line 1");

	p = parse_cli("", NULL);
	assert_fails(&p, -EINVAL, "malformed JSON");
	p = parse_cli("[1, 2]", NULL);
	assert_fails(&p, -EINVAL, "not a JSON object");
}

/* ---- metadata service document --------------------------------------------------------------- */

#define IMDS_DOC(code, fields)                                                                     \
	"{" fields "\"Expiration\": \"2024-01-01T06:00:00Z\","                                     \
	"\"LastUpdated\": \"2024-01-01T00:00:00Z\", \"Code\": \"" code "\"}"
#define IMDS_KEYS                                                                                  \
	"\"AccessKeyId\": \"STS.xxx\", \"AccessKeySecret\": \"" SECRET "\","                       \
	"\"SecurityToken\": \"tok\","

static void test_imds_success(void **state)
{
	(void)state;
	struct parsed p = parse_imds(IMDS_DOC("Success", IMDS_KEYS));

	assert_int_equal(p.rc, 0);
	assert_string_equal(p.c.access_key_id, "STS.xxx");
	assert_string_equal(p.c.access_key_secret, SECRET);
	assert_string_equal(p.c.security_token, "tok");
	assert_int_equal(p.c.expiration, 1704088800); /* 2024-01-01T06:00:00Z */
	parsed_free(&p);
}

static void test_imds_rejections(void **state)
{
	(void)state;
	struct parsed p = parse_imds(IMDS_DOC("Failed", IMDS_KEYS));
	assert_fails(&p, -EINVAL, "Code Failed");
	p = parse_imds("{\"AccessKeyId\": \"a\", \"AccessKeySecret\": \"" SECRET "\"}");
	assert_fails(&p, -EINVAL, "Code (none)");
	p = parse_imds(IMDS_DOC("Success", "\"AccessKeyId\": \"a\", \"SecurityToken\": \"t\","));
	assert_fails(&p, -EINVAL, "AccessKeySecret");
	p = parse_imds(
	    IMDS_DOC("Success", "\"AccessKeySecret\": \"" SECRET "\", \"SecurityToken\": \"t\","));
	assert_fails(&p, -EINVAL, "AccessKeyId");
	p = parse_imds(
	    IMDS_DOC("Success", "\"AccessKeyId\": \"a\", \"AccessKeySecret\": \"" SECRET "\","));
	assert_fails(&p, -EINVAL, "SecurityToken");
	p = parse_imds(IMDS_DOC("Success", "\"AccessKeyId\": \"\", \"AccessKeySecret\": \"" SECRET
					   "\", \"SecurityToken\": \"t\","));
	assert_fails(&p, -EINVAL, "AccessKeyId");
	p = parse_imds("{" IMDS_KEYS "\"Code\": \"Success\"}");
	assert_fails(&p, -EINVAL, "Expiration");
	p = parse_imds("{" IMDS_KEYS
		       "\"Expiration\": \"2024-01-01 06:00\", \"Code\": \"Success\"}");
	assert_fails(&p, -EINVAL, "Expiration");
	p = parse_imds("{" IMDS_KEYS " oops");
	assert_fails(&p, -EINVAL, "not a JSON object");
	p = parse_imds("\"Success\"");
	assert_fails(&p, -EINVAL, "not a JSON object");
}

static void test_creds_clear(void **state)
{
	struct creds c = {0};
	(void)state;

	creds_clear(&c); /* an empty set is fine */
	c.access_key_id = strdup("id");
	c.access_key_secret = strdup(SECRET);
	c.security_token = strdup("tok");
	c.expiration = 42;
	creds_clear(&c);
	assert_null(c.access_key_id);
	assert_null(c.access_key_secret);
	assert_null(c.security_token);
	assert_int_equal(c.expiration, 0);
	creds_clear(&c); /* and clearing twice */
}

/* ---- the chain, from the environment and files ------------------------------------------- */

static int reset_environment(void **state)
{
	static int n;
	(void)state;

	for (size_t i = 0; i < sizeof(chain_env) / sizeof(chain_env[0]); i++)
		unsetenv(chain_env[i]);
	/* A fresh, empty home per test, so the user's own files are never read. */
	snprintf(home, sizeof(home), "%s/home%d", tmp_root, ++n);
	assert_int_equal(mkdir(home, 0700), 0);
	setenv("HOME", home, 1);
	return 0;
}

static char *write_file(const char *relative, const char *content, mode_t mode)
{
	char *path = NULL;
	char *slash;

	assert_true(asprintf(&path, "%s/%s", home, relative) > 0);
	slash = strrchr(path, '/');
	*slash = '\0';
	mkdir(path, 0700);
	*slash = '/';
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

static void put_file(const char *relative, const char *content, mode_t mode)
{
	free(write_file(relative, content, mode));
}

struct opened {
	int rc;
	struct creds_chain *chain;
	char err[512];
	char *log; /* what was written to stderr meanwhile */
};

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 65536);

	assert_non_null(f);
	assert_non_null(buf);
	size_t n = fread(buf, 1, 65535, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static struct opened open_chain(const char *profile)
{
	struct creds_options opts = {.profile = profile};
	struct opened o = {0};
	char log_path[4300];
	int saved = dup(STDERR_FILENO);

	snprintf(log_path, sizeof(log_path), "%s/stderr.log", home);
	int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0 && saved >= 0);
	dup2(fd, STDERR_FILENO);
	close(fd);
	o.rc = creds_chain_open(&opts, &o.chain, o.err, sizeof(o.err));
	dup2(saved, STDERR_FILENO);
	close(saved);
	o.log = read_all(log_path);
	assert_null(strstr(o.err, SECRET));
	assert_null(strstr(o.log, SECRET));
	return o;
}

static void opened_free(struct opened *o)
{
	creds_chain_close(o->chain);
	free(o->log);
}

static void assert_chain_gives(struct opened *o, const char *source, const char *id,
			       const char *token)
{
	struct creds c;

	assert_int_equal(o->rc, 0);
	assert_non_null(o->chain);
	assert_string_equal(creds_source(o->chain), source);
	assert_int_equal(creds_get(o->chain, &c), 0);
	assert_string_equal(c.access_key_id, id);
	assert_string_equal(c.access_key_secret, SECRET);
	if (token)
		assert_string_equal(c.security_token, token);
	else
		assert_null(c.security_token);
	creds_clear(&c);
	/* Static credentials have nothing to refresh: invalidating changes nothing. */
	creds_invalidate(o->chain);
	assert_int_equal(creds_get(o->chain, &c), 0);
	assert_string_equal(c.access_key_id, id);
	creds_clear(&c);
	opened_free(o);
}

static void assert_chain_fails(struct opened *o, int rc, const char *reason_part)
{
	assert_int_equal(o->rc, rc);
	assert_null(o->chain);
	assert_non_null(strstr(o->err, reason_part));
	opened_free(o);
}

static void test_chain_environment(void **state)
{
	(void)state;
	setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "envid", 1);
	setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", SECRET, 1);
	put_file(".aliyun/config.json", cli_json, 0600); /* the environment comes first */
	struct opened o = open_chain(NULL);
	assert_chain_gives(&o, "environment", "envid", NULL);

	setenv("ALIBABA_CLOUD_SECURITY_TOKEN", "envtok", 1);
	o = open_chain(NULL);
	assert_chain_gives(&o, "environment", "envid", "envtok");
}

static void test_chain_half_environment_is_skipped(void **state)
{
	(void)state;
	setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "envid", 1);
	setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "", 1);
	struct opened o = open_chain(NULL);
	assert_non_null(strstr(o.log, "only one of ALIBABA_CLOUD_ACCESS_KEY_ID"));
	assert_chain_fails(&o, -ENOENT, "no credentials found");
}

static void test_chain_cli_config(void **state)
{
	(void)state;
	put_file(".aliyun/config.json", cli_json, 0600);
	struct opened o = open_chain(NULL);
	assert_string_equal(o.log, ""); /* private file: no warning */
	assert_chain_gives(&o, "cli-config:ak", "id1", NULL);

	setenv("ALIBABA_CLOUD_PROFILE", "sts", 1);
	o = open_chain(NULL);
	assert_chain_gives(&o, "cli-config:sts", "STS.id2", "tok");

	o = open_chain("ak"); /* the option beats the environment */
	assert_chain_gives(&o, "cli-config:ak", "id1", NULL);
}

static void test_chain_cli_config_override_path(void **state)
{
	(void)state;
	char *path = write_file("elsewhere.json", cli_json, 0600);
	setenv("ALIBABA_CLOUD_CONFIG_FILE", path, 1);
	struct opened o = open_chain(NULL);
	assert_chain_gives(&o, "cli-config:ak", "id1", NULL);

	setenv("ALIBABA_CLOUD_CONFIG_FILE", "/nonexistent/config.json", 1);
	o = open_chain(NULL);
	assert_chain_fails(&o, -ENOENT,
			   "/nonexistent/config.json named by ALIBABA_CLOUD_CONFIG_FILE");
	free(path);
}

static void test_chain_cli_config_unsupported_mode_stops(void **state)
{
	(void)state;
	char *path = write_file(".aliyun/config.json", cli_json, 0600);
	put_file(".alibabacloud/credentials", ini_text, 0600);
	struct opened o = open_chain("arn");
	assert_chain_fails(&o, -EINVAL, "RamRoleArn");
	assert_non_null(strstr(o.err, path));
	free(path);
}

static void test_chain_credentials_file(void **state)
{
	(void)state;
	put_file(".alibabacloud/credentials", ini_text, 0600);
	struct opened o = open_chain(NULL);
	assert_chain_gives(&o, "credentials-file:default", "foo", NULL);

	/* A profile the CLI config lacks is looked up in the credentials file. */
	put_file(".aliyun/config.json", cli_json, 0600);
	o = open_chain("later");
	assert_chain_gives(&o, "credentials-file:later", "second", NULL);

	setenv("ALIBABA_CLOUD_CLI_PROFILE_DISABLED", "true", 1);
	o = open_chain(NULL);
	assert_chain_gives(&o, "credentials-file:default", "foo", NULL);
}

static void test_chain_credentials_file_override_path(void **state)
{
	(void)state;
	char *path = write_file("creds.ini", ini_text, 0600);
	setenv("ALIBABA_CLOUD_CREDENTIALS_FILE", path, 1);
	setenv("ALIBABA_CLOUD_PROFILE", "quoted", 1);
	struct opened o = open_chain(NULL);
	assert_int_equal(o.rc, 0);
	assert_string_equal(creds_source(o.chain), "credentials-file:quoted");
	opened_free(&o);
	free(path);
}

static void test_chain_missing_profile(void **state)
{
	(void)state;
	put_file(".aliyun/config.json", cli_json, 0600);
	put_file(".alibabacloud/credentials", ini_text, 0600);
	struct opened o = open_chain("nowhere");
	assert_chain_fails(&o, -ENOENT, "profile 'nowhere'");

	o = open_chain("empty-secret"); /* found, but broken: an error, not a skip */
	assert_chain_fails(&o, -EINVAL, "access_key_secret");
}

static void test_chain_nothing_configured(void **state)
{
	(void)state;
	struct opened o = open_chain(NULL);
	assert_chain_fails(&o, -ENOENT, "ALIBABA_CLOUD_ACCESS_KEY_ID");
}

static void assert_role_source(struct opened *o, const char *source)
{
	assert_int_equal(o->rc, 0);
	assert_string_equal(creds_source(o->chain), source);
	opened_free(o);
}

static void test_chain_ram_role_sources(void **state)
{
	(void)state;
	put_file(".aliyun/config.json", cli_json, 0600);
	struct opened o = open_chain("role");
	assert_role_source(&o, "ecs-ram-role:EcsRamRoleTest");
	o = open_chain("role-auto");
	assert_role_source(&o, "ecs-ram-role:(auto)");

	setenv("ALIBABA_CLOUD_ECS_METADATA", "FromEnv", 1);
	o = open_chain("role-auto"); /* a profile without a role name takes the environment's */
	assert_role_source(&o, "ecs-ram-role:FromEnv");
	setenv("ALIBABA_CLOUD_CLI_PROFILE_DISABLED", "true", 1);
	o = open_chain(NULL); /* the last step of the chain */
	assert_role_source(&o, "ecs-ram-role:FromEnv");

	setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true", 1);
	o = open_chain(NULL);
	assert_chain_fails(&o, -ENOENT, "no credentials found");
	unsetenv("ALIBABA_CLOUD_CLI_PROFILE_DISABLED");
	o = open_chain("role");
	assert_chain_fails(&o, -EINVAL, "ALIBABA_CLOUD_ECS_METADATA_DISABLED=true");
}

static void test_chain_warns_about_exposed_file(void **state)
{
	(void)state;
	char *path = write_file(".alibabacloud/credentials", ini_text, 0644);
	struct opened o = open_chain(NULL);
	char expected[4400];

	snprintf(expected, sizeof(expected),
		 ": warning: %s is readable by group or others (mode 0644)", path);
	assert_non_null(strstr(o.log, expected));
	/* The stderr line format: "2026-11-23T12:00:00Z ebsfs[pid]: warning: ..." */
	char prefix[64];
	snprintf(prefix, sizeof(prefix), "Z ebsfs[%ld]: warning: ", (long)getpid());
	assert_non_null(strstr(o.log, prefix));
	assert_int_equal(strspn(o.log, "0123456789-T:"), 19);
	assert_int_equal(o.log[strlen(o.log) - 1], '\n');
	assert_chain_gives(&o, "credentials-file:default", "foo", NULL);
	free(path);

	path = write_file(".aliyun/config.json", cli_json, 0640);
	o = open_chain(NULL);
	assert_non_null(strstr(o.log, "(mode 0640)"));
	opened_free(&o);
	free(path);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int make_tmp_root(void **state)
{
	(void)state;
	return mkdtemp(tmp_root) ? 0 : -1;
}

static int remove_tmp_root(void **state)
{
	(void)state;
	return nftw(tmp_root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#define chain_test(f) cmocka_unit_test_setup(f, reset_environment)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ini_access_key),
	    cmocka_unit_test(test_ini_comments_quotes_whitespace),
	    cmocka_unit_test(test_ini_ecs_ram_role),
	    cmocka_unit_test(test_ini_rejections),
	    cmocka_unit_test(test_ini_malformed),
	    cmocka_unit_test(test_cli_modes),
	    cmocka_unit_test(test_cli_unsupported_modes),
	    cmocka_unit_test(test_cli_rejections),
	    cmocka_unit_test(test_cli_malformed_json_does_not_quote_input),
	    cmocka_unit_test(test_imds_success),
	    cmocka_unit_test(test_imds_rejections),
	    cmocka_unit_test(test_creds_clear),
	    chain_test(test_chain_environment),
	    chain_test(test_chain_half_environment_is_skipped),
	    chain_test(test_chain_cli_config),
	    chain_test(test_chain_cli_config_override_path),
	    chain_test(test_chain_cli_config_unsupported_mode_stops),
	    chain_test(test_chain_credentials_file),
	    chain_test(test_chain_credentials_file_override_path),
	    chain_test(test_chain_missing_profile),
	    chain_test(test_chain_nothing_configured),
	    chain_test(test_chain_ram_role_sources),
	    chain_test(test_chain_warns_about_exposed_file),
	};

	log_init(true, 0);
	return cmocka_run_group_tests(tests, make_tmp_root, remove_tmp_root);
}

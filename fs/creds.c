/* Alibaba Cloud's default credential chain (docs/ebs-api.md section 7). The first source that
 * has credentials wins and stays for the life of the mount. Every buffer that held a secret is
 * wiped before it is freed; messages name files, profiles and modes, never values. */
#include "ebsfs/creds.h"

#include "ebsfs/http.h"
#include "ebsfs/log.h"
#include "ebsfs/sign.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

/* Refresh a session this long before it expires, as the official SDKs do. */
#define REFRESH_MARGIN_S 180
/* After a failed refresh, while the cached session is still valid, wait this long before asking
 * the metadata service again so that every API call does not queue behind its timeouts. */
#define REFRESH_RETRY_S	  10
#define IMDS_DEFAULT_BASE "http://100.100.100.200"
#define IMDS_TIMEOUT_MS	  2000
#define IMDS_ROLES_PATH	  "/latest/meta-data/ram/security-credentials/"
/* Credential files are a few hundred bytes; a huge one is a mistake, not something to load. */
#define CONFIG_FILE_MAX (1024 * 1024)
#define REASON_MAX	256

struct creds_chain {
	pthread_mutex_t lock;
	char *source;	      /* what creds_source() reports */
	struct creds current; /* static credentials, or the cached session */
	char *role_name;      /* NULL: static credentials; "": discover the role at each refresh */
	char *imds_base;
	bool invalidated;
	time_t retry_after;
	bool renewing; /* a background renewal of a still valid session is running */
	bool renewer_started;
	pthread_t renewer;
};

/* ---- Small helpers --------------------------------------------------------------------------- */

__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t errlen, int rc,
						      const char *fmt, ...)
{
	va_list ap;

	if (err && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

__attribute__((format(printf, 1, 2))) static char *str_printf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

static bool is_empty(const char *s)
{
	return !s || !*s;
}

static bool env_is_true(const char *name)
{
	const char *v = getenv(name);

	return v && strcasecmp(v, "true") == 0;
}

static const char *env_nonempty(const char *name)
{
	const char *v = getenv(name);

	return is_empty(v) ? NULL : v;
}

static void wipe_free_n(char *s, size_t len)
{
	if (s) {
		OPENSSL_cleanse(s, len);
		free(s);
	}
}

static void wipe_free(char *s)
{
	if (s)
		wipe_free_n(s, strlen(s));
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static char *trim(char *s)
{
	size_t len;

	while (is_space(*s))
		s++;
	len = strlen(s);
	while (len > 0 && is_space(s[len - 1]))
		s[--len] = '\0';
	return s;
}

static void trim_in_place(char *s)
{
	char *t = trim(s);

	memmove(s, t, strlen(t) + 1);
}

void creds_clear(struct creds *c)
{
	wipe_free(c->access_key_id);
	wipe_free(c->access_key_secret);
	wipe_free(c->security_token);
	c->access_key_id = NULL;
	c->access_key_secret = NULL;
	c->security_token = NULL;
	c->expiration = 0;
}

static int creds_fill(struct creds *out, const char *id, const char *secret, const char *token,
		      time_t expiration)
{
	out->access_key_id = strdup(id);
	out->access_key_secret = strdup(secret);
	out->security_token = token ? strdup(token) : NULL;
	out->expiration = expiration;
	if (!out->access_key_id || !out->access_key_secret || (token && !out->security_token)) {
		creds_clear(out);
		return -ENOMEM;
	}
	return 0;
}

static int set_role_name(char **role_name, const char *configured)
{
	*role_name = strdup(configured ? configured : "");
	return *role_name ? 0 : -ENOMEM;
}

/* ---- ~/.alibabacloud/credentials (INI) ------------------------------------------------------- */

struct ini_profile {
	bool found;
	const char *type;
	const char *access_key_id;
	const char *access_key_secret;
	const char *role_name;
};

/* ';' and '#' start a comment at the beginning of a line or after whitespace (the file
 * format's own example has "role_name = X   ; optional"); glued to a value they are data. */
static void strip_comment(char *line)
{
	for (char *p = line; *p; p++) {
		if ((*p == ';' || *p == '#') && (p == line || is_space(p[-1]))) {
			*p = '\0';
			return;
		}
	}
}

static char *unquote(char *v)
{
	size_t len = strlen(v);

	if (len >= 2 && (v[0] == '"' || v[0] == '\'') && v[len - 1] == v[0]) {
		v[len - 1] = '\0';
		return v + 1;
	}
	return v;
}

static void ini_set_field(struct ini_profile *p, const char *key, const char *value)
{
	if (strcmp(key, "type") == 0)
		p->type = value;
	else if (strcmp(key, "access_key_id") == 0)
		p->access_key_id = value;
	else if (strcmp(key, "access_key_secret") == 0)
		p->access_key_secret = value;
	else if (strcmp(key, "role_name") == 0)
		p->role_name = value;
}

/* One line of the file; fields of the wanted section point into line. */
static int ini_take_line(char *line, int lineno, const char *profile, bool *in_profile,
			 struct ini_profile *p, char *err, size_t errlen)
{
	char *sep;

	strip_comment(line);
	line = trim(line);
	if (*line == '\0')
		return 0;
	if (*line == '[') {
		sep = strchr(line, ']');
		if (!sep)
			return fail(err, errlen, -EINVAL, "line %d: unclosed section header",
				    lineno);
		*sep = '\0';
		*in_profile = strcmp(trim(line + 1), profile) == 0;
		p->found |= *in_profile;
		return 0;
	}
	sep = strchr(line, '=');
	if (!sep)
		return fail(err, errlen, -EINVAL, "line %d: expected 'key = value'", lineno);
	*sep = '\0';
	if (*in_profile)
		ini_set_field(p, trim(line), unquote(trim(sep + 1)));
	return 0;
}

static int ini_profile_to_creds(const struct ini_profile *p, const char *profile, struct creds *out,
				char **role_name, char *err, size_t errlen)
{
	if (!p->found)
		return fail(err, errlen, -ENOENT, "no profile [%s]", profile);
	if (is_empty(p->type))
		return fail(err, errlen, -EINVAL, "profile [%s] has no type", profile);
	if (strcmp(p->type, "access_key") == 0) {
		if (is_empty(p->access_key_id) || is_empty(p->access_key_secret))
			return fail(err, errlen, -EINVAL,
				    "profile [%s] (type access_key) needs access_key_id and "
				    "access_key_secret",
				    profile);
		return creds_fill(out, p->access_key_id, p->access_key_secret, NULL, 0);
	}
	if (strcmp(p->type, "ecs_ram_role") == 0)
		return set_role_name(role_name, p->role_name);
	return fail(err, errlen, -EINVAL,
		    "profile [%s] has type '%.40s', which ebsfs does not support (use access_key "
		    "or ecs_ram_role)",
		    profile, p->type);
}

int creds_parse_ini(const char *text, const char *profile, struct creds *out, char **role_name,
		    char *err, size_t errlen)
{
	struct ini_profile p = {0};
	bool in_profile = false;
	size_t len = strlen(text);
	char *copy = malloc(len + 1);
	char *line, *next;
	int lineno = 0, rc = 0;

	memset(out, 0, sizeof(*out));
	*role_name = NULL;
	if (!copy)
		return -ENOMEM;
	memcpy(copy, text, len + 1);
	if (is_empty(profile))
		profile = "default";
	for (line = copy; line && rc == 0; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		rc = ini_take_line(line, ++lineno, profile, &in_profile, &p, err, errlen);
	}
	if (rc == 0)
		rc = ini_profile_to_creds(&p, profile, out, role_name, err, errlen);
	wipe_free_n(copy, len);
	return rc;
}

/* ---- ~/.aliyun/config.json (aliyun CLI) ------------------------------------------------------ */

static const char *json_field(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static const json_t *find_cli_profile(const json_t *root, const char *name)
{
	const json_t *profiles = json_object_get(root, "profiles");
	const json_t *p;
	size_t i;

	json_array_foreach(profiles, i, p)
	{
		const char *n = json_field(p, "name");
		if (n && strcmp(n, name) == 0)
			return p;
	}
	return NULL;
}

static int cli_profile_to_creds(const json_t *p, const char *profile, struct creds *out,
				char **role_name, char *err, size_t errlen)
{
	const char *mode = json_field(p, "mode");
	const char *id = json_field(p, "access_key_id");
	const char *secret = json_field(p, "access_key_secret");
	const char *token = json_field(p, "sts_token");

	if (is_empty(mode))
		return fail(err, errlen, -EINVAL, "profile '%s' has no mode (run aliyun configure)",
			    profile);
	if (strcmp(mode, "AK") == 0) {
		if (is_empty(id) || is_empty(secret))
			return fail(err, errlen, -EINVAL,
				    "profile '%s' (mode AK) needs access_key_id and "
				    "access_key_secret",
				    profile);
		return creds_fill(out, id, secret, NULL, 0);
	}
	if (strcmp(mode, "StsToken") == 0) {
		if (is_empty(id) || is_empty(secret) || is_empty(token))
			return fail(err, errlen, -EINVAL,
				    "profile '%s' (mode StsToken) needs access_key_id, "
				    "access_key_secret and sts_token",
				    profile);
		return creds_fill(out, id, secret, token, 0);
	}
	if (strcmp(mode, "EcsRamRole") == 0)
		return set_role_name(role_name, json_field(p, "ram_role_name"));
	return fail(err, errlen, -EINVAL,
		    "profile '%s' uses mode %.40s, which ebsfs does not support (use AK, StsToken "
		    "or EcsRamRole)",
		    profile, mode);
}

/* creds_parse_cli_config(), also telling which profile it used (the file's "current" when none
 * was asked for). */
static int parse_cli_config(const char *json, const char *profile, struct creds *out,
			    char **role_name, char **profile_used, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root;
	const json_t *p;
	int rc;

	memset(out, 0, sizeof(*out));
	*role_name = NULL;
	/* Jansson's error text quotes the input near the fault, which may be a secret: only the
	 * position is reported. */
	root = json_loads(json, 0, &jerr);
	if (!root)
		return fail(err, errlen, -EINVAL, "malformed JSON at line %d, column %d", jerr.line,
			    jerr.column);
	if (!json_is_object(root)) {
		rc = fail(err, errlen, -EINVAL, "not a JSON object");
		goto out;
	}
	if (is_empty(profile))
		profile = json_field(root, "current");
	if (is_empty(profile))
		profile = "default";
	p = find_cli_profile(root, profile);
	if (!p) {
		rc = fail(err, errlen, -ENOENT, "no profile '%s'", profile);
		goto out;
	}
	rc = cli_profile_to_creds(p, profile, out, role_name, err, errlen);
	if (rc == 0 && profile_used) {
		*profile_used = strdup(profile);
		if (!*profile_used)
			rc = -ENOMEM;
	}
out:
	if (rc) {
		creds_clear(out);
		free(*role_name);
		*role_name = NULL;
	}
	json_decref(root);
	return rc;
}

int creds_parse_cli_config(const char *json, const char *profile, struct creds *out,
			   char **role_name, char *err, size_t errlen)
{
	return parse_cli_config(json, profile, out, role_name, NULL, err, errlen);
}

/* ---- Metadata service document --------------------------------------------------------------- */

static int parse_utc(const char *s, time_t *out)
{
	struct tm tm = {0};
	const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm) : NULL;

	if (!end || *end)
		return -EINVAL;
	*out = timegm(&tm);
	return 0;
}

int creds_parse_imds(const char *json, struct creds *out, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root = json_loads(json, 0, &jerr);
	const char *code, *id, *secret, *token, *missing;
	time_t expiration = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(root)) {
		rc = fail(err, errlen, -EINVAL, "metadata credentials are not a JSON object");
		goto out;
	}
	code = json_field(root, "Code");
	if (!code || strcmp(code, "Success") != 0) {
		rc = fail(err, errlen, -EINVAL, "metadata service answered Code %.64s",
			  code ? code : "(none)");
		goto out;
	}
	id = json_field(root, "AccessKeyId");
	secret = json_field(root, "AccessKeySecret");
	token = json_field(root, "SecurityToken");
	missing = is_empty(id)	     ? "AccessKeyId"
		  : is_empty(secret) ? "AccessKeySecret"
		  : is_empty(token)  ? "SecurityToken"
				     : NULL;
	if (missing) {
		rc = fail(err, errlen, -EINVAL, "metadata credentials lack %s", missing);
		goto out;
	}
	if (parse_utc(json_field(root, "Expiration"), &expiration) < 0) {
		rc = fail(err, errlen, -EINVAL, "metadata credentials lack a valid Expiration");
		goto out;
	}
	rc = creds_fill(out, id, secret, token, expiration);
out:
	json_decref(root);
	return rc;
}

/* ---- ECS instance metadata (IMDS) ------------------------------------------------------------ */

static void http_buf_wipe(struct http_buf *b)
{
	if (b->data)
		OPENSSL_cleanse(b->data, b->len);
	http_buf_free(b);
}

/* GET or PUT base + path; the body of a 200 answer (malloc'd) in *body_out. */
static int imds_request(const char *method, const char *base, const char *path, const char *header,
			char **body_out, char *reason, size_t len)
{
	const char *headers[] = {header, NULL};
	struct http_buf body = {0};
	char *url = str_printf("%s%s", base, path);
	char ebuf[64];
	long status = 0;
	int rc;

	*body_out = NULL;
	if (!url)
		return -ENOMEM;
	rc = http_fetch(method, url, headers, IMDS_TIMEOUT_MS, &status, &body);
	if (rc < 0)
		rc = fail(reason, len, rc, "%s %s: %s", method, url,
			  log_strerror(-rc, ebuf, sizeof(ebuf)));
	else if (status != 200)
		rc = fail(reason, len, -EIO, "%s %s: HTTP %ld", method, url, status);
	else {
		*body_out = body.data;
		body.data = NULL;
	}
	http_buf_wipe(&body);
	free(url);
	return rc;
}

/* IMDSv2 session token; NULL in *token when falling back to IMDSv1 is allowed. */
static int imds_token(const char *base, char **token, char *reason, size_t len)
{
	int rc = imds_request("PUT", base, "/latest/api/token",
			      "X-aliyun-ecs-metadata-token-ttl-seconds: 21600", token, reason, len);

	if (rc == 0) {
		trim_in_place(*token);
		if (**token)
			return 0;
	}
	wipe_free(*token);
	*token = NULL;
	if (env_is_true("ALIBABA_CLOUD_IMDSV1_DISABLED")) {
		char cause[REASON_MAX];

		snprintf(cause, sizeof(cause), "%s", rc ? reason : "empty answer");
		return fail(reason, len, rc ? rc : -EIO,
			    "no IMDSv2 token (%s) and ALIBABA_CLOUD_IMDSV1_DISABLED=true", cause);
	}
	log_debug("credentials: no IMDSv2 token, falling back to IMDSv1");
	return 0;
}

static int imds_get(const char *base, const char *path, const char *token, char **body,
		    char *reason, size_t len)
{
	char *header = token ? str_printf("X-aliyun-ecs-metadata-token: %s", token) : NULL;
	int rc;

	if (token && !header)
		return -ENOMEM;
	rc = imds_request("GET", base, path, header, body, reason, len);
	wipe_free(header);
	return rc;
}

static int imds_discover_role(const char *base, const char *token, char **role, char *reason,
			      size_t len)
{
	char *body = NULL;
	int rc = imds_get(base, IMDS_ROLES_PATH, token, &body, reason, len);

	*role = NULL;
	if (rc)
		return rc;
	trim_in_place(body);
	/* One role per instance; the list is newline separated. */
	body[strcspn(body, "\r\n")] = '\0';
	if (!*body) {
		free(body);
		return fail(reason, len, -EIO, "no RAM role is attached to this instance");
	}
	*role = body;
	return 0;
}

static int imds_role_credentials(const char *base, const char *token, const char *role,
				 struct creds *out, char *reason, size_t len)
{
	char *role_pct = sign_pct(role);
	char *path = role_pct ? str_printf("%s%s", IMDS_ROLES_PATH, role_pct) : NULL;
	char *doc = NULL;
	int rc = -ENOMEM;

	if (path)
		rc = imds_get(base, path, token, &doc, reason, len);
	if (rc == 0 && creds_parse_imds(doc, out, reason, len) < 0)
		rc = -EIO;
	wipe_free(doc);
	free(path);
	free(role_pct);
	return rc;
}

static int imds_fetch(const char *base, const char *configured_role, struct creds *out,
		      char *reason, size_t len)
{
	char *token = NULL, *role = NULL;
	int rc = imds_token(base, &token, reason, len);

	if (rc)
		goto out;
	if (configured_role[0])
		role = strdup(configured_role);
	else
		rc = imds_discover_role(base, token, &role, reason, len);
	if (rc == 0 && !role)
		rc = -ENOMEM;
	if (rc == 0)
		rc = imds_role_credentials(base, token, role, out, reason, len);
out:
	wipe_free(token);
	free(role);
	return rc;
}

/* ---- Configuration files --------------------------------------------------------------------- */

static char *home_path(const char *relative)
{
	const char *home = getenv("HOME");
	struct passwd pw, *found = NULL;
	char buf[4096];

	if (is_empty(home) && getpwuid_r(getuid(), &pw, buf, sizeof(buf), &found) == 0 && found)
		home = pw.pw_dir;
	return is_empty(home) ? NULL : str_printf("%s/%s", home, relative);
}

static void warn_if_exposed(const char *path, mode_t mode)
{
	if (mode & (S_IRGRP | S_IROTH))
		log_warn("%s is readable by group or others (mode %04o) and holds secrets; "
			 "chmod 600 it",
			 path, (unsigned)(mode & 07777));
}

static int read_fully(int fd, char *buf, size_t want, size_t *got)
{
	*got = 0;
	while (*got < want) {
		ssize_t n = read(fd, buf + *got, want - *got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		*got += (size_t)n;
	}
	return 0;
}

static int read_config_file(const char *path, char **text, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf = NULL;
	int rc = 0;

	*text = NULL;
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > CONFIG_FILE_MAX) {
		rc = S_ISREG(st.st_mode) ? -EFBIG : -EINVAL;
		goto out;
	}
	warn_if_exposed(path, st.st_mode);
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	rc = read_fully(fd, buf, (size_t)st.st_size, len);
	if (rc) {
		wipe_free_n(buf, (size_t)st.st_size);
		goto out;
	}
	buf[*len] = '\0';
	*text = buf;
out:
	close(fd);
	return rc;
}

/* The file named by env_name, else ~/home_relative. A missing default file just means the
 * source is not configured (*text stays NULL); a missing file the user named is an error. */
static int load_source_file(const char *env_name, const char *home_relative, char **path,
			    char **text, size_t *len, char *err, size_t errlen)
{
	const char *named = env_nonempty(env_name);
	char ebuf[64];
	int rc;

	*text = NULL;
	*path = named ? strdup(named) : home_path(home_relative);
	if (!*path)
		return named ? -ENOMEM : 0;
	rc = read_config_file(*path, text, len);
	if (rc == -ENOENT && !named)
		return 0;
	if (rc)
		return fail(err, errlen, rc, "cannot read %s%s%s: %s", *path,
			    named ? " named by " : "", named ? env_name : "",
			    log_strerror(-rc, ebuf, sizeof(ebuf)));
	return 0;
}

/* ---- The chain ------------------------------------------------------------------------------- */

static const char *requested_profile(const struct creds_options *opts)
{
	if (opts && !is_empty(opts->profile))
		return opts->profile;
	return env_nonempty("ALIBABA_CLOUD_PROFILE");
}

/* The chain's credentials are in c->current; profile is NULL for the environment. */
static int set_static_source(struct creds_chain *c, const char *kind, const char *profile)
{
	c->source = profile ? str_printf("%s:%s", kind, profile) : strdup(kind);
	return c->source ? 0 : -ENOMEM;
}

/* Takes role ("" to discover it); the session is fetched on the first creds_get(). */
static int set_role_source(struct creds_chain *c, char *role)
{
	c->role_name = role;
	c->source = str_printf("ecs-ram-role:%s", role[0] ? role : "(auto)");
	return c->source ? 0 : -ENOMEM;
}

/* A profile that asks for the instance's RAM role, with the role it names (or ""). */
static int use_role_profile(struct creds_chain *c, const char *path, const char *profile,
			    char *role, char *err, size_t errlen)
{
	const char *env_role = env_nonempty("ALIBABA_CLOUD_ECS_METADATA");

	if (env_is_true("ALIBABA_CLOUD_ECS_METADATA_DISABLED")) {
		free(role);
		return fail(err, errlen, -EINVAL,
			    "profile '%s' in %s asks for an ECS RAM role, but "
			    "ALIBABA_CLOUD_ECS_METADATA_DISABLED=true",
			    profile, path);
	}
	if (!role[0] && env_role) {
		free(role);
		role = strdup(env_role);
		if (!role)
			return -ENOMEM;
	}
	return set_role_source(c, role);
}

static int use_profile(struct creds_chain *c, const char *kind, const char *path,
		       const char *profile, char *role, char *err, size_t errlen)
{
	if (role)
		return use_role_profile(c, path, profile, role, err, errlen);
	return set_static_source(c, kind, profile);
}

static int from_environment(struct creds_chain *c)
{
	const char *id = env_nonempty("ALIBABA_CLOUD_ACCESS_KEY_ID");
	const char *secret = env_nonempty("ALIBABA_CLOUD_ACCESS_KEY_SECRET");
	int rc;

	if (!id && !secret)
		return 0;
	if (!id || !secret) {
		log_warn("credentials: only one of ALIBABA_CLOUD_ACCESS_KEY_ID and "
			 "ALIBABA_CLOUD_ACCESS_KEY_SECRET is set; ignoring the environment");
		return 0;
	}
	rc = creds_fill(&c->current, id, secret, env_nonempty("ALIBABA_CLOUD_SECURITY_TOKEN"), 0);
	return rc ? rc : set_static_source(c, "environment", NULL);
}

static int from_cli_config(const struct creds_options *opts, struct creds_chain *c, char *err,
			   size_t errlen)
{
	char *path = NULL, *text = NULL, *role = NULL, *profile = NULL;
	char reason[REASON_MAX];
	size_t len = 0;
	int rc;

	if (env_is_true("ALIBABA_CLOUD_CLI_PROFILE_DISABLED"))
		return 0;
	rc = load_source_file("ALIBABA_CLOUD_CONFIG_FILE", ".aliyun/config.json", &path, &text,
			      &len, err, errlen);
	if (rc || !text)
		goto out;
	rc = parse_cli_config(text, requested_profile(opts), &c->current, &role, &profile, reason,
			      sizeof(reason));
	if (rc == -ENOENT) {
		log_debug("credentials: %s: %s", path, reason);
		rc = 0;
	} else if (rc) {
		fail(err, errlen, rc, "%s: %s", path, reason);
	} else {
		rc = use_profile(c, "cli-config", path, profile, role, err, errlen);
		role = NULL;
	}
out:
	wipe_free_n(text, len);
	free(path);
	free(role);
	free(profile);
	return rc;
}

static int from_credentials_file(const struct creds_options *opts, struct creds_chain *c, char *err,
				 size_t errlen)
{
	const char *profile = requested_profile(opts);
	char *path = NULL, *text = NULL, *role = NULL;
	char reason[REASON_MAX];
	size_t len = 0;
	int rc;

	rc = load_source_file("ALIBABA_CLOUD_CREDENTIALS_FILE", ".alibabacloud/credentials", &path,
			      &text, &len, err, errlen);
	if (rc || !text)
		goto out;
	if (!profile)
		profile = "default";
	rc = creds_parse_ini(text, profile, &c->current, &role, reason, sizeof(reason));
	if (rc == -ENOENT) {
		log_debug("credentials: %s: %s", path, reason);
		rc = 0;
	} else if (rc) {
		fail(err, errlen, rc, "%s: %s", path, reason);
	} else {
		rc = use_profile(c, "credentials-file", path, profile, role, err, errlen);
		role = NULL;
	}
out:
	wipe_free_n(text, len);
	free(path);
	free(role);
	return rc;
}

/* Conservative, as the SDK README describes it: the metadata service is asked only when a role
 * is named, so a machine outside ECS never waits on 100.100.100.200. */
static int from_ecs_metadata_env(struct creds_chain *c)
{
	const char *role = env_nonempty("ALIBABA_CLOUD_ECS_METADATA");
	char *copy;

	if (!role || env_is_true("ALIBABA_CLOUD_ECS_METADATA_DISABLED"))
		return 0;
	copy = strdup(role);
	return copy ? set_role_source(c, copy) : -ENOMEM;
}

static int no_source(const struct creds_options *opts, char *err, size_t errlen)
{
	const char *profile = requested_profile(opts);

	if (profile)
		return fail(err, errlen, -ENOENT,
			    "no credentials: profile '%s' is in neither the aliyun CLI config nor "
			    "the credentials file, and the environment has no access key",
			    profile);
	return fail(err, errlen, -ENOENT,
		    "no credentials found: set ALIBABA_CLOUD_ACCESS_KEY_ID and "
		    "ALIBABA_CLOUD_ACCESS_KEY_SECRET, configure a profile in ~/.aliyun/config.json "
		    "or ~/.alibabacloud/credentials, or name an ECS RAM role in "
		    "ALIBABA_CLOUD_ECS_METADATA");
}

static int find_source(const struct creds_options *opts, struct creds_chain *c, char *err,
		       size_t errlen)
{
	int rc = from_environment(c);

	if (rc == 0 && !c->source)
		rc = from_cli_config(opts, c, err, errlen);
	if (rc == 0 && !c->source)
		rc = from_credentials_file(opts, c, err, errlen);
	if (rc == 0 && !c->source)
		rc = from_ecs_metadata_env(c);
	if (rc == 0 && !c->source)
		rc = no_source(opts, err, errlen);
	return rc;
}

static char *imds_base_url(const struct creds_options *opts)
{
	const char *base = opts && !is_empty(opts->imds_base_url)
			       ? opts->imds_base_url
			       : env_nonempty("ALIBABA_CLOUD_IMDS_ENDPOINT");
	size_t len;

	if (!base)
		base = IMDS_DEFAULT_BASE;
	len = strlen(base);
	while (len > 0 && base[len - 1] == '/')
		len--;
	/* The SDKs take a bare host here. */
	return str_printf("%s%.*s", strstr(base, "://") ? "" : "http://", (int)len, base);
}

int creds_chain_open(const struct creds_options *opts, struct creds_chain **out, char *err,
		     size_t errlen)
{
	struct creds_chain *c = calloc(1, sizeof(*c));
	char ebuf[64];
	int rc;

	*out = NULL;
	if (err && errlen > 0)
		err[0] = '\0';
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	rc = find_source(opts, c, err, errlen);
	if (rc == 0 && c->role_name) {
		c->imds_base = imds_base_url(opts);
		if (!c->imds_base)
			rc = -ENOMEM;
	}
	if (rc) {
		if (err && errlen > 0 && !err[0])
			fail(err, errlen, rc, "%s", log_strerror(-rc, ebuf, sizeof(ebuf)));
		creds_chain_close(c);
		return rc;
	}
	*out = c;
	return 0;
}

void creds_chain_close(struct creds_chain *chain)
{
	if (!chain)
		return;
	if (chain->renewer_started)
		pthread_join(chain->renewer, NULL);
	creds_clear(&chain->current);
	free(chain->source);
	free(chain->role_name);
	free(chain->imds_base);
	pthread_mutex_destroy(&chain->lock);
	free(chain);
}

static bool session_usable(const struct creds_chain *c, time_t now)
{
	return c->current.access_key_id && c->current.expiration > now;
}

static bool session_due(const struct creds_chain *c, time_t now)
{
	if (!session_usable(c, now))
		return true;
	if (now < c->retry_after)
		return false;
	return c->invalidated || c->current.expiration - now <= REFRESH_MARGIN_S;
}

/* Called with the lock held, so concurrent callers wait for one refresh instead of each asking
 * the metadata service. */
static int refresh_session(struct creds_chain *c)
{
	struct creds fresh = {0};
	char reason[REASON_MAX] = "";
	time_t now = time(NULL);
	int rc;

	if (!session_due(c, now))
		return 0;
	rc = imds_fetch(c->imds_base, c->role_name, &fresh, reason, sizeof(reason));
	if (rc == 0) {
		creds_clear(&c->current);
		c->current = fresh;
		c->invalidated = false;
		c->retry_after = 0;
		log_debug("credentials: ECS RAM role session refreshed, valid for %lld s",
			  (long long)(fresh.expiration - now));
		return 0;
	}
	if (session_usable(c, now)) {
		log_warn("credentials: refreshing the ECS RAM role session failed (%s); using the "
			 "current one until it expires",
			 reason);
		c->retry_after = now + REFRESH_RETRY_S;
		return 0;
	}
	log_error("credentials: no ECS RAM role session: %s", reason);
	return rc;
}

/* Renews a session that is due but still valid, off the API call's path: a slow metadata
 * service must not cost a call whose credentials are good for minutes yet. */
static void *renew_main(void *arg)
{
	struct creds_chain *c = arg;
	struct creds fresh = {0};
	char reason[REASON_MAX] = "";
	int rc = imds_fetch(c->imds_base, c->role_name, &fresh, reason, sizeof(reason));

	pthread_mutex_lock(&c->lock);
	if (rc == 0) {
		creds_clear(&c->current);
		c->current = fresh;
		c->retry_after = 0;
		log_debug("credentials: ECS RAM role session renewed in the background");
	} else {
		log_warn("credentials: refreshing the ECS RAM role session failed (%s); using the "
			 "current one until it expires",
			 reason);
		c->retry_after = time(NULL) + REFRESH_RETRY_S;
	}
	c->renewing = false;
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* With the lock held. */
static void start_renewal(struct creds_chain *c)
{
	if (c->renewer_started)
		pthread_join(c->renewer, NULL); /* it has set renewing = false: it is ending */
	c->renewer_started = pthread_create(&c->renewer, NULL, renew_main, c) == 0;
	c->renewing = c->renewer_started;
}

int creds_get(struct creds_chain *chain, struct creds *out)
{
	time_t now = time(NULL);
	int rc = 0;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&chain->lock);
	if (chain->role_name && session_usable(chain, now) && !chain->invalidated) {
		if (!chain->renewing && session_due(chain, now))
			start_renewal(chain);
	} else if (chain->role_name) {
		rc = refresh_session(chain);
	}
	if (rc == 0)
		rc = creds_fill(out, chain->current.access_key_id, chain->current.access_key_secret,
				chain->current.security_token, chain->current.expiration);
	pthread_mutex_unlock(&chain->lock);
	return rc;
}

void creds_invalidate(struct creds_chain *chain)
{
	pthread_mutex_lock(&chain->lock);
	chain->invalidated = true;
	chain->retry_after = 0;
	pthread_mutex_unlock(&chain->lock);
}

const char *creds_source(const struct creds_chain *chain)
{
	return chain->source;
}

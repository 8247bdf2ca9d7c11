/* Alibaba Cloud's default credential chain (docs/ebs-api.md section 7): environment, aliyun CLI
 * config, credentials INI file, ECS RAM role (IMDSv2). Secrets are wiped when freed and never
 * logged. */
#ifndef EBSFS_CREDS_H
#define EBSFS_CREDS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* One usable set of credentials: a copy owned by the caller, released with creds_clear(). */
struct creds {
	char *access_key_id;
	char *access_key_secret;
	char *security_token; /* NULL unless STS */
	time_t expiration;    /* 0: does not expire */
};

struct creds_options {
	const char *profile; /* NULL: ALIBABA_CLOUD_PROFILE, then the file's default */
	const char
	    *imds_base_url; /* NULL: ALIBABA_CLOUD_IMDS_ENDPOINT, then http://100.100.100.200 */
};

struct creds_chain;

/* Finds the first source of the chain that has credentials (reads files and the environment,
 * may ask the metadata service). 0, or -errno with a reason (no secret in it) in err. */
int creds_chain_open(const struct creds_options *opts, struct creds_chain **out, char *err,
		     size_t errlen);
void creds_chain_close(struct creds_chain *chain);

/* Copies the current credentials, refreshing session credentials first when 180 s or less
 * remain. Thread-safe. 0 or -errno. */
int creds_get(struct creds_chain *chain, struct creds *out);
/* The API said the session token expired: refresh on the next creds_get(). */
void creds_invalidate(struct creds_chain *chain);
/* "environment", "cli-config:<profile>", "credentials-file:<profile>", "ecs-ram-role:<role>". */
const char *creds_source(const struct creds_chain *chain);

/* Wipes and frees the strings of c (not c itself). */
void creds_clear(struct creds *c);

/* Parsers, exposed for unit tests and fuzzing. They fill out (secrets included) or return
 * -ENOENT (no such profile), -EINVAL (malformed or unsupported mode, reason in err). For role
 * based profiles they set *role_name (malloc'd, may be "" for auto-discovery) and leave out empty.
 */
int creds_parse_ini(const char *text, const char *profile, struct creds *out, char **role_name,
		    char *err, size_t errlen);
int creds_parse_cli_config(const char *json, const char *profile, struct creds *out,
			   char **role_name, char *err, size_t errlen);
/* The metadata service's credential document. */
int creds_parse_imds(const char *json, struct creds *out, char *err, size_t errlen);

#endif

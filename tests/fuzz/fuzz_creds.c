/* The three credential parsers over hostile files and metadata answers. The first byte picks
 * the parser (INI credentials file, aliyun CLI config.json, IMDS document); the rest, up to the
 * first NUL, is the text. The profile name is fixed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ebsfs/creds.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PROFILE "default"

static void check_err(const char *err, size_t len)
{
	CHECK(strnlen(err, len) < len);
}

/* A success either yields usable keys or a role name, never both, never neither. */
static void check_outcome(int rc, const struct creds *c, const char *role)
{
	if (rc != 0) {
		CHECK(c->access_key_id == NULL && c->access_key_secret == NULL);
		CHECK(c->security_token == NULL);
		CHECK(role == NULL);
		return;
	}
	if (role) {
		CHECK(c->access_key_id == NULL && c->access_key_secret == NULL);
	} else {
		CHECK(c->access_key_id && c->access_key_id[0]);
		CHECK(c->access_key_secret && c->access_key_secret[0]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct creds c;
	char *role = NULL;
	char err[256];
	char *text;
	int rc;

	if (size < 1)
		return 0;
	/* Exactly the string's bytes plus its terminator, for ASan. */
	size_t len = strnlen((const char *)data + 1, size - 1);
	text = malloc(len + 1);
	if (!text)
		return 0;
	memcpy(text, data + 1, len);
	text[len] = '\0';
	err[0] = '\0';

	switch (data[0] % 3) {
	case 0:
		rc = creds_parse_ini(text, PROFILE, &c, &role, err, sizeof(err));
		check_outcome(rc, &c, role);
		break;
	case 1:
		rc = creds_parse_cli_config(text, PROFILE, &c, &role, err, sizeof(err));
		check_outcome(rc, &c, role);
		break;
	default:
		rc = creds_parse_imds(text, &c, err, sizeof(err));
		check_outcome(rc, &c, NULL);
		if (rc == 0)
			CHECK(c.security_token && c.security_token[0]);
		break;
	}
	CHECK(rc == 0 || rc < 0);
	check_err(err, sizeof(err));
	creds_clear(&c);
	free(role);
	free(text);
	return 0;
}

/* The EBS API (product ebs, version 2021-07-30): describes and the four pair actions, signed,
 * retried and rate limited. JSON is parsed here; callers get plain structs. */
#ifndef EBSFS_EBS_H
#define EBSFS_EBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct creds_chain;

/* String fields of a ReplicaPair record (docs/ebs-api.md 2.2.1). A missing key or null is "". */
enum ebs_str {
	EBS_ID,			 /* ReplicaPairId */
	EBS_NAME,		 /* PairName */
	EBS_DESCRIPTION,	 /* Description */
	EBS_STATUS,		 /* Status */
	EBS_STATUS_MESSAGE,	 /* StatusMessage */
	EBS_SOURCE_DISK_ID,	 /* SourceDiskId */
	EBS_SOURCE_REGION,	 /* SourceRegion */
	EBS_SOURCE_ZONE_ID,	 /* SourceZoneId */
	EBS_DESTINATION_DISK_ID, /* DestinationDiskId */
	EBS_DESTINATION_REGION,	 /* DestinationRegion */
	EBS_DESTINATION_ZONE_ID, /* DestinationZoneId */
	EBS_PRIMARY_REGION,	 /* PrimaryRegion */
	EBS_PRIMARY_ZONE,	 /* PrimaryZone */
	EBS_STANDBY_REGION,	 /* StandbyRegion */
	EBS_STANDBY_ZONE,	 /* StandbyZone */
	EBS_CHARGE_TYPE,	 /* ChargeType */
	EBS_REPLICA_GROUP_ID,	 /* ReplicaGroupId */
	EBS_REPLICA_GROUP_NAME,	 /* ReplicaGroupName */
	EBS_SITE,		 /* Site */
	EBS_RESOURCE_GROUP_ID,	 /* ResourceGroupId */
	EBS_STR_COUNT
};

/* Integer fields. Timestamps are normalised to Unix seconds (milliseconds detected by
 * magnitude). */
enum ebs_num {
	EBS_RPO,		/* RPO, seconds */
	EBS_BANDWIDTH,		/* Bandwidth, Kbps */
	EBS_LAST_RECOVER_POINT, /* LastRecoverPoint */
	EBS_EXPIRED_TIME,	/* ExpiredTime */
	EBS_CREATE_TIME,	/* CreateTime */
	EBS_NUM_COUNT
};

/* One record. Strings live in one allocation owned by the record; free with ebs_pair_free(). */
struct ebs_pair {
	const char *str[EBS_STR_COUNT];
	int64_t num[EBS_NUM_COUNT];
	uint32_t num_present; /* bit i set: num[i] was a number in the answer */
	int enable_rtc;	      /* 1, 0, or -1 when absent */
	const char *tags;     /* "key=value\n" lines sorted by key, "" when none */
	const char *json;     /* the record as the API returned it, compact, no newline */
	char *arena;	      /* owns every string above */
};

void ebs_pair_free(struct ebs_pair *p);

struct ebs_pair_list {
	struct ebs_pair **items;
	size_t n;
	size_t cap;
};

void ebs_pair_list_free(struct ebs_pair_list *l); /* frees the items and resets the list */

/* What the API (or the transport) said when a call failed. */
struct ebs_error {
	long http_status; /* 0 when no HTTP answer */
	char code[96]; /* API Code, or "Transport.Timeout", "Transport.Failed", "MalformedResponse"
			*/
	char message[256];
	char request_id[80];
};

enum ebs_signature { EBS_SIG_V3, EBS_SIG_V1 };

struct ebs_config {
	const char *endpoint; /* template, "{region}" substituted; NULL: default */
	int timeout_ms;	      /* one call's limit, retries included */
	int retries;	      /* attempts for retryable failures */
	double max_rps;	      /* all calls of this client together */
	enum ebs_signature signature;
	const char *ca_file;	   /* extra CA bundle, NULL: system store */
	struct creds_chain *creds; /* borrowed */
};

struct ebs_client;

/* No network I/O here. 0 or -errno (bad endpoint: -EINVAL, reason in err). */
int ebs_client_new(const struct ebs_config *cfg, struct ebs_client **out, char *err, size_t errlen);
void ebs_client_free(struct ebs_client *c);

/* Every function below is thread-safe; each returns 0 or -errno (the errno of DESIGN.md's
 * table, see ebs_error_errno) with *err filled. */

/* DescribeRegions ResourceType=ear: region ids, sorted. Free with ebs_strv_free(). */
int ebs_describe_regions(struct ebs_client *c, char ***regions, size_t *n, struct ebs_error *err);
void ebs_strv_free(char **v, size_t n);

/* DescribeDiskReplicaPairs for one region and one site view ("production" or "backup"), every
 * page with MaxResults=500; pair_ids (comma list) NULL for all. Appends to out. */
int ebs_describe_pairs(struct ebs_client *c, const char *region, const char *site,
		       const char *pair_ids, struct ebs_pair_list *out, struct ebs_error *err);

/* DescribeDiskReplicaPairProgress. *recover_point is 0 when absent. */
int ebs_describe_progress(struct ebs_client *c, const char *region, const char *pair_id,
			  int *percent, int64_t *recover_point, struct ebs_error *err);

enum ebs_action { EBS_REPROTECT, EBS_FAILOVER, EBS_START, EBS_STOP, EBS_ACTION_COUNT };

const char *ebs_action_name(enum ebs_action a); /* "ReprotectDiskReplicaPair", ... */

/* One action, sent to region (the caller picks the region the API requires). client_token is
 * kept across every retry. request_id receives the RequestId on success. */
int ebs_act(struct ebs_client *c, enum ebs_action a, const char *region, const char *pair_id,
	    const char *client_token, char *request_id, size_t request_id_len,
	    struct ebs_error *err);

/* DESIGN.md section 1's table: EBUSY, EACCES, ENOENT, EAGAIN, ETIMEDOUT, EIO, EINVAL. */
int ebs_error_errno(const struct ebs_error *err);

/* Parsers, exposed for unit tests and fuzzing. */
int ebs_parse_pairs_page(const char *body, size_t len, struct ebs_pair_list *out, char **next_token,
			 struct ebs_error *err);
int ebs_parse_error(const char *body, size_t len, long http_status, struct ebs_error *err);

#endif

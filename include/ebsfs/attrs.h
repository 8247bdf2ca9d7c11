/* The table of state files of a pair directory: name -> how it is rendered from a record. */
#ifndef EBSFS_ATTRS_H
#define EBSFS_ATTRS_H

#include <stddef.h>

#include "ebsfs/ebs.h"

enum attr_kind { ATTR_STR, ATTR_NUM, ATTR_TIME, ATTR_BOOL, ATTR_TAGS, ATTR_JSON, ATTR_PROGRESS };

struct attr_def {
	const char *name;
	enum attr_kind kind;
	int field; /* enum ebs_str or enum ebs_num, by kind */
};

extern const struct attr_def attr_table[];
extern const size_t attr_count;

/* Index in attr_table, or -1. */
int attr_find(const char *name);

/* Renders a's value of p ("value\n"; tags: sorted lines) into buf. Returns the full length,
 * which may exceed len (then buf holds a truncated copy). Never called for ATTR_PROGRESS. */
size_t attr_render(const struct attr_def *a, const struct ebs_pair *p, char *buf, size_t len);

/* "42\n" for the progress file. */
size_t attr_render_progress(int percent, char *buf, size_t len);

/* ISO 8601 UTC of t, or "" for 0. */
void attr_format_time(long long t, char *buf, size_t len);

#endif

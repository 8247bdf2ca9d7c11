#include "ebsfs/tree.h"

#include <string.h>

#include "ebsfs/attrs.h"
#include "ebsfs/ebs.h"

/* Layout of the 64-bit inode space:
 *   1              root
 *   2              .ebsfs
 *   3 .. 15        .ebsfs/<meta file>
 *   16 + r         region directory r (r < TREE_MAX_REGIONS)
 *   1<<32 | slot<<6 | f
 *                  pair slot's directory (f = 0), state file f (1 .. attr_count) or
 *                  control file (attr_count + 1 + action). */
#define META_DIR_INO   2
#define META_FILE_BASE 3
#define REGION_BASE    16
#define PAIR_BASE      (1ull << 32)
#define FILE_BITS      6

const char *const tree_meta_names[META_COUNT] = {"stats", "refresh", "version"};

uint64_t tree_ino(const struct node *n)
{
	switch (n->kind) {
	case NODE_ROOT:
		return TREE_ROOT_INO;
	case NODE_META_DIR:
		return META_DIR_INO;
	case NODE_META_FILE:
		return META_FILE_BASE + n->index;
	case NODE_REGION:
		return REGION_BASE + n->index;
	case NODE_PAIR_DIR:
		return PAIR_BASE | (uint64_t)n->index << FILE_BITS;
	case NODE_STATE:
		return PAIR_BASE | (uint64_t)n->index << FILE_BITS | (n->file + 1);
	case NODE_CONTROL:
		return PAIR_BASE | (uint64_t)n->index << FILE_BITS | (attr_count + 1 + n->file);
	case NODE_NONE:
		break;
	}
	return 0;
}

bool tree_node(uint64_t ino, struct node *out)
{
	memset(out, 0, sizeof(*out));
	if (ino == TREE_ROOT_INO) {
		out->kind = NODE_ROOT;
	} else if (ino == META_DIR_INO) {
		out->kind = NODE_META_DIR;
	} else if (ino >= META_FILE_BASE && ino < META_FILE_BASE + META_COUNT) {
		out->kind = NODE_META_FILE;
		out->index = (uint32_t)(ino - META_FILE_BASE);
	} else if (ino >= REGION_BASE && ino < REGION_BASE + TREE_MAX_REGIONS) {
		out->kind = NODE_REGION;
		out->index = (uint32_t)(ino - REGION_BASE);
	} else if (ino >= PAIR_BASE) {
		uint64_t rest = ino - PAIR_BASE;
		uint64_t slot = rest >> FILE_BITS;
		uint32_t f = (uint32_t)(rest & ((1u << FILE_BITS) - 1));

		if (slot >= TREE_MAX_SLOTS)
			return false;
		out->index = (uint32_t)slot;
		if (f == 0) {
			out->kind = NODE_PAIR_DIR;
		} else if (f <= attr_count) {
			out->kind = NODE_STATE;
			out->file = f - 1;
		} else if (f < attr_count + 1 + EBS_ACTION_COUNT) {
			out->kind = NODE_CONTROL;
			out->file = (uint32_t)(f - attr_count - 1);
		} else {
			return false;
		}
	} else {
		return false;
	}
	return true;
}

int tree_meta_find(const char *name)
{
	for (int i = 0; i < META_COUNT; i++)
		if (strcmp(tree_meta_names[i], name) == 0)
			return i;
	return -1;
}

bool tree_region_name_valid(const char *name)
{
	size_t n = strlen(name);

	/* Every region id has a '-' (cn-shanghai, us-east-1): a bare word is a mistyped option. */
	if (n < 2 || n > 63 || name[0] < 'a' || name[0] > 'z' || name[n - 1] == '-' ||
	    !strchr(name, '-'))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return false;
	}
	return true;
}

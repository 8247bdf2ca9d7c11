/* The namespace: inode numbers <-> nodes. Inode numbers are derived, never stored: a pair keeps
 * its slot for the life of the mount, so `find -inum` and the kernel's caches stay coherent. */
#ifndef EBSFS_TREE_H
#define EBSFS_TREE_H

#include <stdbool.h>
#include <stdint.h>

enum node_kind {
	NODE_NONE,
	NODE_ROOT,
	NODE_META_DIR,	/* .ebsfs */
	NODE_META_FILE, /* .ebsfs/<file> */
	NODE_REGION,
	NODE_PAIR_DIR,
	NODE_STATE,   /* a state file of a pair */
	NODE_CONTROL, /* a control file of a pair */
};

enum meta_file { META_STATS, META_REFRESH, META_VERSION, META_COUNT };

struct node {
	enum node_kind kind;
	uint32_t index; /* region index, meta file, or pair slot */
	uint32_t file;	/* state: attr index; control: action */
};

#define TREE_ROOT_INO	 1
#define TREE_MAX_REGIONS 1024
#define TREE_MAX_SLOTS	 (1u << 24)

uint64_t tree_ino(const struct node *n);
/* false for a number this scheme never hands out. */
bool tree_node(uint64_t ino, struct node *out);

extern const char *const tree_meta_names[META_COUNT];
/* The meta file called name, or -1. */
int tree_meta_find(const char *name);
/* Valid region id: lower-case letters, digits and '-' (at least one), starting with a letter,
 * 2..63 chars. */
bool tree_region_name_valid(const char *name);

#endif

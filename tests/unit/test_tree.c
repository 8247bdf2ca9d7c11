/* The inode scheme: every node kind maps to a number and back, the edge slots and files work,
 * numbers the scheme never hands out are refused, and region names are validated. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "ebsfs/attrs.h"
#include "ebsfs/ebs.h"
#include "ebsfs/tree.h"

static void assert_round_trip(enum node_kind kind, uint32_t index, uint32_t file)
{
	struct node n = {.kind = kind, .index = index, .file = file}, back;
	uint64_t ino = tree_ino(&n);

	assert_true(ino != 0);
	assert_true(tree_node(ino, &back));
	assert_int_equal(back.kind, kind);
	assert_int_equal(back.index, index);
	assert_int_equal(back.file, file);
	assert_int_equal(tree_ino(&back), ino);
}

static void root_and_meta_round_trip(void **state)
{
	struct node n = {.kind = NODE_ROOT}, back;
	(void)state;

	assert_int_equal(tree_ino(&n), TREE_ROOT_INO);
	assert_true(tree_node(TREE_ROOT_INO, &back));
	assert_int_equal(back.kind, NODE_ROOT);
	assert_round_trip(NODE_ROOT, 0, 0);
	assert_round_trip(NODE_META_DIR, 0, 0);
	for (uint32_t m = 0; m < META_COUNT; m++)
		assert_round_trip(NODE_META_FILE, m, 0);
}

static void regions_round_trip(void **state)
{
	(void)state;
	for (uint32_t r = 0; r < TREE_MAX_REGIONS; r++)
		assert_round_trip(NODE_REGION, r, 0);
}

static void pair_nodes_round_trip_at_edge_slots(void **state)
{
	static const uint32_t slots[] = {0,
					 1,
					 2,
					 63,
					 64,
					 65,
					 4095,
					 65535,
					 65536,
					 1u << 20,
					 TREE_MAX_SLOTS - 2,
					 TREE_MAX_SLOTS - 1};
	(void)state;

	for (size_t i = 0; i < sizeof(slots) / sizeof(slots[0]); i++) {
		assert_round_trip(NODE_PAIR_DIR, slots[i], 0);
		for (uint32_t f = 0; f < attr_count; f++)
			assert_round_trip(NODE_STATE, slots[i], f);
		for (uint32_t a = 0; a < EBS_ACTION_COUNT; a++)
			assert_round_trip(NODE_CONTROL, slots[i], a);
	}
}

static void every_inode_is_distinct(void **state)
{
	/* Every node of two neighbouring slots, the meta files and a few regions. */
	uint64_t seen[256];
	size_t n = 0;
	(void)state;

	for (uint32_t s = 7; s <= 8; s++) {
		struct node d = {.kind = NODE_PAIR_DIR, .index = s};
		seen[n++] = tree_ino(&d);
		for (uint32_t f = 0; f < attr_count; f++) {
			struct node st = {.kind = NODE_STATE, .index = s, .file = f};
			seen[n++] = tree_ino(&st);
		}
		for (uint32_t a = 0; a < EBS_ACTION_COUNT; a++) {
			struct node c = {.kind = NODE_CONTROL, .index = s, .file = a};
			seen[n++] = tree_ino(&c);
		}
	}
	for (uint32_t m = 0; m < META_COUNT; m++) {
		struct node mf = {.kind = NODE_META_FILE, .index = m};
		seen[n++] = tree_ino(&mf);
	}
	for (uint32_t r = 0; r < 4; r++) {
		struct node rg = {.kind = NODE_REGION, .index = r};
		seen[n++] = tree_ino(&rg);
	}
	seen[n++] = TREE_ROOT_INO;
	struct node md = {.kind = NODE_META_DIR};
	seen[n++] = tree_ino(&md);
	assert_true(n < sizeof(seen) / sizeof(seen[0]));

	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			assert_true(seen[i] != seen[j]);
	/* A pair's files fit in its block: one slot never spills into the next. */
	assert_true(attr_count + 1 + EBS_ACTION_COUNT <= 64);
}

static void invalid_inodes_are_refused(void **state)
{
	struct node pair_dir = {.kind = NODE_PAIR_DIR, .index = 0};
	uint64_t base = tree_ino(&pair_dir);
	struct node region_first = {.kind = NODE_REGION, .index = 0};
	uint64_t region0 = tree_ino(&region_first);
	struct node last_meta = {.kind = NODE_META_FILE, .index = META_COUNT - 1};
	uint64_t after_meta = tree_ino(&last_meta) + 1;
	struct node out;
	const uint64_t bad[] = {
	    0,
	    /* between the meta files and the first region */
	    after_meta,
	    region0 - 1,
	    /* past the last region, below the pair space */
	    region0 + TREE_MAX_REGIONS,
	    region0 + TREE_MAX_REGIONS + 1,
	    base - 1,
	    (uint64_t)UINT32_MAX,
	    /* file numbers past the control files */
	    base + attr_count + 1 + EBS_ACTION_COUNT,
	    base + 63,
	    base + ((uint64_t)5 << 6) + 63,
	    /* slots the scheme never hands out */
	    base + ((uint64_t)TREE_MAX_SLOTS << 6),
	    base + ((uint64_t)TREE_MAX_SLOTS << 6) + 1,
	    UINT64_MAX,
	    UINT64_MAX - 1,
	    (uint64_t)1 << 63,
	};
	(void)state;

	assert_true(region0 > after_meta);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (tree_node(bad[i], &out))
			fail_msg("inode %llu accepted as kind %d", (unsigned long long)bad[i],
				 (int)out.kind);
	}
	/* tree_ino of a kind that names nothing is 0, which is refused. */
	struct node none = {.kind = NODE_NONE};
	assert_int_equal(tree_ino(&none), 0);
}

static void every_accepted_inode_round_trips(void **state)
{
	struct node n;
	(void)state;

	/* The whole low range and the first pair blocks. */
	for (uint64_t ino = 0; ino < 16 + TREE_MAX_REGIONS + 64; ino++)
		if (tree_node(ino, &n))
			assert_int_equal(tree_ino(&n), ino);
	for (uint64_t ino = (1ull << 32) - 4; ino < (1ull << 32) + 4 * 64; ino++)
		if (tree_node(ino, &n))
			assert_int_equal(tree_ino(&n), ino);
}

static void meta_names(void **state)
{
	(void)state;
	assert_int_equal(tree_meta_find("stats"), META_STATS);
	assert_int_equal(tree_meta_find("refresh"), META_REFRESH);
	assert_int_equal(tree_meta_find("version"), META_VERSION);
	for (int i = 0; i < META_COUNT; i++)
		assert_int_equal(tree_meta_find(tree_meta_names[i]), i);
	assert_int_equal(tree_meta_find(""), -1);
	assert_int_equal(tree_meta_find("Stats"), -1);
	assert_int_equal(tree_meta_find("stats\n"), -1);
	assert_int_equal(tree_meta_find(".ebsfs"), -1);
}

static void region_names(void **state)
{
	static const struct {
		const char *name;
		bool valid;
	} cases[] = {
	    {"cn-shanghai", true},
	    {"cn-hangzhou-finance", true},
	    {"ap-southeast-1", true},
	    {"us-west-1", true},
	    {"eu-central-1", true},
	    {"cn-beijing", true},
	    {"a-b", true},
	    {"a1-2", true},
	    {"x12345678901234567890123456789012345678901234567890123456789-ab", true}, /* 63 */
	    {"ab", false}, /* no '-': a mistyped option, not a region */
	    {"nosuchoption", false},
	    {"", false},
	    {"a", false},
	    {"x12345678901234567890123456789012345678901234567890123456789-abc", false}, /* 64 */
	    {"Cn-shanghai", false},
	    {"cn-Shanghai", false},
	    {"1cn-shanghai", false},
	    {"-cn-shanghai", false},
	    {"cn-shanghai-", false},
	    {"cn_shanghai", false},
	    {"cn.shanghai", false},
	    {"cn shanghai", false},
	    {"cn-shanghai\n", false},
	    {"cn/shanghai", false},
	    {"..", false},
	    {".ebsfs", false},
	    {"cn-\xc3\xa9", false},
	    {"cn-shanghai,cn-beijing", false},
	    {"cn-shanghai:cn-beijing", false},
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (tree_region_name_valid(cases[i].name) != cases[i].valid)
			fail_msg("'%s': expected %s", cases[i].name,
				 cases[i].valid ? "valid" : "invalid");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(root_and_meta_round_trip),
	    cmocka_unit_test(regions_round_trip),
	    cmocka_unit_test(pair_nodes_round_trip_at_edge_slots),
	    cmocka_unit_test(every_inode_is_distinct),
	    cmocka_unit_test(invalid_inodes_are_refused),
	    cmocka_unit_test(every_accepted_inode_round_trips),
	    cmocka_unit_test(meta_names),
	    cmocka_unit_test(region_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* readloop: the cost of reading a small file the way a script does, open/read-to-EOF/close,
 * N times in a row, for each of several paths, alternating them round after round so that
 * the noise of a shared machine falls on all of them alike.
 *
 *     readloop [-n ITERATIONS] [-t MS] [-r ROUNDS] [-w WARMUP] PATH...
 *
 * -n is the iterations of a round; with -t, each path gets as many as fill about MS
 * milliseconds (measured after the warm-up), at most -n, so that a slow path cannot make the
 * run unbounded.
 *
 * Output, one "key value..." line each (bench.py parses them):
 *     bytes  <index> <bytes read per iteration>
 *     iterations <index> <iterations per round>
 *     round  <round> <index> <ns per iteration>
 *     median <index> <median ns per iteration over the rounds>
 * Exit 0, or 1 with a message on stderr when a path cannot be read. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_PATHS  8
#define MAX_ROUNDS 101

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* One open/read-until-EOF/close. Bytes read, or -1. */
static long read_once(const char *path)
{
	char buf[65536];
	long total = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		total += n;
	if (n < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	close(fd);
	return total;
}

/* ns per iteration of n iterations, or a negative value on error. */
static double timed_loop(const char *path, long n, long expect)
{
	double t0 = now_ns();

	for (long i = 0; i < n; i++) {
		long got = read_once(path);
		if (got != expect) {
			if (got < 0)
				perror(path);
			else
				fprintf(stderr, "readloop: %s: read %ld bytes, expected %ld\n",
					path, got, expect);
			return -1;
		}
	}
	return (now_ns() - t0) / (double)n;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static long parse_count(const char *s, long lo, long hi, const char *what)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "readloop: %s must be %ld..%ld\n", what, lo, hi);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	long iterations = 100000, rounds = 5, warmup = 1000, target_ms = 0;
	long bytes[MAX_PATHS], iters[MAX_PATHS];
	double results[MAX_PATHS][MAX_ROUNDS];
	int opt, n_paths;

	while ((opt = getopt(argc, argv, "n:r:t:w:")) != -1) {
		switch (opt) {
		case 'n':
			iterations = parse_count(optarg, 1, 100000000, "-n");
			break;
		case 't':
			target_ms = parse_count(optarg, 1, 600000, "-t");
			break;
		case 'r':
			rounds = parse_count(optarg, 1, MAX_ROUNDS, "-r");
			break;
		case 'w':
			warmup = parse_count(optarg, 0, 100000000, "-w");
			break;
		default:
			fprintf(stderr,
				"usage: readloop [-n N] [-t MS] [-r ROUNDS] [-w WARMUP] PATH...\n");
			return 2;
		}
	}
	n_paths = argc - optind;
	if (n_paths < 1 || n_paths > MAX_PATHS) {
		fprintf(stderr, "readloop: 1..%d paths\n", MAX_PATHS);
		return 2;
	}
	for (int p = 0; p < n_paths; p++) {
		const char *path = argv[optind + p];
		bytes[p] = read_once(path);
		if (bytes[p] < 0) {
			perror(path);
			return 1;
		}
		printf("bytes %d %ld\n", p, bytes[p]);
		iters[p] = iterations;
		if (warmup > 0) {
			double ns = timed_loop(path, warmup, bytes[p]);
			if (ns < 0)
				return 1;
			if (target_ms > 0) {
				double n = (double)target_ms * 1e6 / ns;
				iters[p] = n < 100		    ? 100
					   : n > (double)iterations ? iterations
								    : (long)n;
			}
		}
		printf("iterations %d %ld\n", p, iters[p]);
	}
	for (long r = 0; r < rounds; r++) {
		for (int p = 0; p < n_paths; p++) {
			/* Alternate the order too, so neither path always runs first. */
			int q = (r % 2) ? n_paths - 1 - p : p;
			double ns = timed_loop(argv[optind + q], iters[q], bytes[q]);
			if (ns < 0)
				return 1;
			results[q][r] = ns;
			printf("round %ld %d %.1f\n", r, q, ns);
			fflush(stdout);
		}
	}
	for (int p = 0; p < n_paths; p++) {
		qsort(results[p], (size_t)rounds, sizeof(double), cmp_double);
		double median = rounds % 2
				    ? results[p][rounds / 2]
				    : (results[p][rounds / 2 - 1] + results[p][rounds / 2]) / 2;
		printf("median %d %.1f\n", p, median);
	}
	return 0;
}

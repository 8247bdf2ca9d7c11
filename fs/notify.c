#include "ebsfs/notify.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ebsfs/log.h"

enum job_kind { JOB_INODE, JOB_ENTRY, JOB_POLL };

struct job {
	enum job_kind kind;
	uint64_t ino; /* the inode, or the parent of an entry */
	char *name;   /* JOB_ENTRY */
	struct fuse_pollhandle *ph;
};

/* A file someone poll()s. Few of these exist; they live until unmount. */
struct watch {
	struct watch *next;
	uint64_t ino;
	bool changed;
	struct fuse_pollhandle *ph;
};

struct notifier {
	struct fuse_session *se;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stopping;
	struct job *jobs;
	size_t n_jobs, cap_jobs;
	uint64_t queued; /* jobs ever queued, and ever run: sync waits for the second */
	uint64_t done;
	struct watch *watches;
};

static int push_locked(struct notifier *n, const struct job *j)
{
	if (n->n_jobs == n->cap_jobs) {
		size_t cap = n->cap_jobs ? n->cap_jobs * 2 : 256;
		struct job *jobs = realloc(n->jobs, cap * sizeof(*jobs));
		if (!jobs)
			return -ENOMEM;
		n->jobs = jobs;
		n->cap_jobs = cap;
	}
	n->jobs[n->n_jobs++] = *j;
	n->queued++;
	pthread_cond_broadcast(&n->cond);
	return 0;
}

static void drop_job(struct job *j)
{
	free(j->name);
	if (j->ph)
		fuse_pollhandle_destroy(j->ph);
}

static void run_job(struct notifier *n, struct job *j)
{
	int rc = 0;

	switch (j->kind) {
	case JOB_INODE:
		rc = fuse_lowlevel_notify_inval_inode(n->se, j->ino, 0, 0);
		break;
	case JOB_ENTRY:
		rc = fuse_lowlevel_notify_inval_entry(n->se, j->ino, j->name, strlen(j->name));
		break;
	case JOB_POLL:
		rc = fuse_lowlevel_notify_poll(j->ph);
		break;
	}
	/* ENOENT: the kernel holds no such inode or name, which is the common case. */
	if (rc < 0 && rc != -ENOENT && rc != -ENOTCONN)
		log_debug("notify: kind %d ino %llu: error %d", (int)j->kind,
			  (unsigned long long)j->ino, rc);
	drop_job(j);
}

static void *notifier_main(void *arg)
{
	struct notifier *n = arg;

	pthread_mutex_lock(&n->lock);
	while (!n->stopping) {
		if (n->n_jobs == 0) {
			pthread_cond_wait(&n->cond, &n->lock);
			continue;
		}
		/* Take the whole queue so producers never wait on the kernel. */
		struct job *batch = n->jobs;
		size_t count = n->n_jobs;
		n->jobs = NULL;
		n->n_jobs = 0;
		n->cap_jobs = 0;
		pthread_mutex_unlock(&n->lock);
		for (size_t i = 0; i < count; i++)
			run_job(n, &batch[i]);
		free(batch);
		pthread_mutex_lock(&n->lock);
		n->done += count;
		pthread_cond_broadcast(&n->cond);
	}
	pthread_mutex_unlock(&n->lock);
	return NULL;
}

int notifier_start(struct fuse_session *se, struct notifier **out)
{
	struct notifier *n = calloc(1, sizeof(*n));

	if (!n)
		return -ENOMEM;
	n->se = se;
	pthread_mutex_init(&n->lock, NULL);
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&n->cond, &attr);
	pthread_condattr_destroy(&attr);
	if (pthread_create(&n->thread, NULL, notifier_main, n) != 0) {
		pthread_mutex_destroy(&n->lock);
		pthread_cond_destroy(&n->cond);
		free(n);
		return -EAGAIN;
	}
	*out = n;
	return 0;
}

void notifier_stop(struct notifier *n)
{
	if (!n)
		return;
	pthread_mutex_lock(&n->lock);
	n->stopping = true;
	pthread_cond_signal(&n->cond);
	pthread_mutex_unlock(&n->lock);
	pthread_join(n->thread, NULL);
	for (size_t i = 0; i < n->n_jobs; i++)
		drop_job(&n->jobs[i]);
	free(n->jobs);
	while (n->watches) {
		struct watch *w = n->watches;
		n->watches = w->next;
		if (w->ph)
			fuse_pollhandle_destroy(w->ph);
		free(w);
	}
	pthread_mutex_destroy(&n->lock);
	pthread_cond_destroy(&n->cond);
	free(n);
}

static struct watch *watch_find(struct notifier *n, uint64_t ino)
{
	for (struct watch *w = n->watches; w; w = w->next)
		if (w->ino == ino)
			return w;
	return NULL;
}

void notifier_inval_inode(struct notifier *n, uint64_t ino)
{
	struct job j = {.kind = JOB_INODE, .ino = ino};

	if (!n)
		return;
	pthread_mutex_lock(&n->lock);
	if (push_locked(n, &j) < 0)
		log_error("notify: out of memory, inode %llu not invalidated",
			  (unsigned long long)ino);
	pthread_mutex_unlock(&n->lock);
}

void notifier_changed(struct notifier *n, uint64_t ino)
{
	if (!n)
		return;
	pthread_mutex_lock(&n->lock);
	struct watch *w = watch_find(n, ino);
	if (w) {
		w->changed = true;
		if (w->ph) {
			struct job p = {.kind = JOB_POLL, .ino = ino, .ph = w->ph};
			if (push_locked(n, &p) == 0)
				w->ph = NULL;
		}
	}
	pthread_mutex_unlock(&n->lock);
}

bool notifier_watching(struct notifier *n)
{
	bool any = false;

	if (!n)
		return false;
	pthread_mutex_lock(&n->lock);
	for (struct watch *w = n->watches; w && !any; w = w->next)
		any = w->ph != NULL;
	pthread_mutex_unlock(&n->lock);
	return any;
}

void notifier_sync(struct notifier *n, int timeout_ms)
{
	struct timespec deadline;

	if (!n)
		return;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&n->lock);
	uint64_t target = n->queued;
	while (n->done < target && !n->stopping)
		if (pthread_cond_timedwait(&n->cond, &n->lock, &deadline) == ETIMEDOUT) {
			log_warn("notify: the kernel took over %d ms to take invalidations",
				 timeout_ms);
			break;
		}
	pthread_mutex_unlock(&n->lock);
}

void notifier_inval_entry(struct notifier *n, uint64_t parent, const char *name)
{
	struct job j = {.kind = JOB_ENTRY, .ino = parent};

	if (!n)
		return;
	j.name = strdup(name);
	if (!j.name)
		return;
	pthread_mutex_lock(&n->lock);
	if (push_locked(n, &j) < 0)
		free(j.name);
	pthread_mutex_unlock(&n->lock);
}

unsigned notifier_poll(struct notifier *n, uint64_t ino, struct fuse_pollhandle *ph)
{
	unsigned revents = 0;

	if (!n) {
		if (ph)
			fuse_pollhandle_destroy(ph);
		return 0;
	}
	pthread_mutex_lock(&n->lock);
	struct watch *w = watch_find(n, ino);
	if (!w && (w = calloc(1, sizeof(*w)))) {
		w->ino = ino;
		w->next = n->watches;
		n->watches = w;
	}
	if (w) {
		if (ph) {
			if (w->ph)
				fuse_pollhandle_destroy(w->ph);
			w->ph = ph;
			ph = NULL;
		}
		if (w->changed)
			revents = POLLPRI | POLLERR;
	}
	pthread_mutex_unlock(&n->lock);
	if (ph)
		fuse_pollhandle_destroy(ph);
	return revents;
}

void notifier_read(struct notifier *n, uint64_t ino)
{
	if (!n)
		return;
	pthread_mutex_lock(&n->lock);
	struct watch *w = watch_find(n, ino);
	if (w)
		w->changed = false;
	pthread_mutex_unlock(&n->lock);
}

/* Kernel notifications (invalidations, poll wake-ups) sent from one thread of their own: never
 * from a request handler, never under a lock a handler may take (libfuse's documented
 * deadlock). Also keeps the poll(2) state of the files being watched. */
#ifndef EBSFS_NOTIFY_H
#define EBSFS_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

struct fuse_session;
struct fuse_pollhandle;
struct notifier;

int notifier_start(struct fuse_session *se, struct notifier **out);
void notifier_stop(struct notifier *n);

/* Queue work; never block on the kernel. Safe with NULL n (before init). */
void notifier_inval_inode(struct notifier *n, uint64_t ino);
void notifier_inval_entry(struct notifier *n, uint64_t parent, const char *name);

/* ino's value changed: wake its poll(2) waiters (after any invalidation queued before). */
void notifier_changed(struct notifier *n, uint64_t ino);
/* Whether anyone waits in poll(2) right now. */
bool notifier_watching(struct notifier *n);
/* Returns once everything queued so far reached the kernel, or after timeout_ms. Never call it
 * from a request whose own pages an invalidation could wait on. */
void notifier_sync(struct notifier *n, int timeout_ms);

/* A POLL request for ino: remembers ph (owned from here on) and returns POLLPRI|POLLERR when
 * the value changed since it was last read, 0 otherwise. */
unsigned notifier_poll(struct notifier *n, uint64_t ino, struct fuse_pollhandle *ph);
/* ino was read from offset 0: its change has been seen. */
void notifier_read(struct notifier *n, uint64_t ino);

#endif

/* Logging and the audit trail: syslog when daemonized, stderr in the foreground. */
#ifndef EBSFS_LOG_H
#define EBSFS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

/* verbosity 0 logs LOG_INFO and above; 1 (-d) adds LOG_DEBUG, which traces every API call. */
void log_init(bool to_stderr, int verbosity);
bool log_debug_enabled(void);

void log_msg(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Thread-safe strerror: writes into buf and returns buf. */
const char *log_strerror(int err, char *buf, size_t len);

#define log_error(...)	log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)	log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)	log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_debug_enabled())                                                           \
			log_msg(LOG_DEBUG, __VA_ARGS__);                                           \
	} while (0)

#endif

/* Logging: syslog when daemonized, one timestamped line per message on stderr in the
 * foreground. */
#include "ebsfs/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Long enough for any audit line; longer messages are cut rather than split, so that a line
 * is never interleaved with another thread's. */
#define LOG_LINE_MAX 4096

static atomic_bool use_stderr = true;
static atomic_int debug_level;

static void open_syslog(void)
{
	openlog("ebsfs", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_init(bool to_stderr, int verbosity)
{
	atomic_store(&debug_level, verbosity);
	if (!to_stderr)
		open_syslog();
	atomic_store(&use_stderr, to_stderr);
}

bool log_debug_enabled(void)
{
	return atomic_load_explicit(&debug_level, memory_order_relaxed) >= 1;
}

static const char *level_name(int priority)
{
	switch (LOG_PRI(priority)) {
	case LOG_EMERG:
	case LOG_ALERT:
	case LOG_CRIT:
	case LOG_ERR:
		return "error";
	case LOG_WARNING:
		return "warning";
	case LOG_NOTICE:
		return "notice";
	case LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

/* Messages quote text from the network (API error messages); a control character there must
 * not forge a second log line or drive the terminal. */
static void neutralise_control_chars(char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
	}
}

static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

static void write_stderr_line(int priority, const char *msg)
{
	char line[LOG_LINE_MAX + 128];
	char stamp[32] = "";
	struct tm tm;
	time_t now = time(NULL);

	if (gmtime_r(&now, &tm))
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	int n = snprintf(line, sizeof(line), "%s ebsfs[%ld]: %s: %s\n", stamp, (long)getpid(),
			 level_name(priority), msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = (int)sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	write_all(STDERR_FILENO, line, (size_t)n);
}

void log_msg(int priority, const char *fmt, ...)
{
	char msg[LOG_LINE_MAX];
	va_list ap;
	/* Callers log on error paths and may look at errno afterwards. */
	int saved_errno = errno;

	if (LOG_PRI(priority) == LOG_DEBUG && !log_debug_enabled())
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	neutralise_control_chars(msg);

	if (atomic_load(&use_stderr))
		write_stderr_line(priority, msg);
	else
		syslog(priority, "%s", msg);
	errno = saved_errno;
}

const char *log_strerror(int err, char *buf, size_t len)
{
	if (len == 0)
		return "";
	/* GNU strerror_r may return a static string instead of filling buf. */
	const char *text = strerror_r(err, buf, len);
	if (text != buf)
		snprintf(buf, len, "%s", text);
	return buf;
}

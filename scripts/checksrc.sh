#!/bin/sh
# Source checks for every C file under fs/ include/ tests/ bench/:
#   1. none of the banned functions (thread-unsafe or unbounded) is called:
#      sprintf vsprintf strcpy strcat strtok gmtime localtime strerror gets asctime ctime rand
#      (snprintf, vsnprintf, strtok_r, gmtime_r, localtime_r, strerror_r are the replacements);
#      comments and string literals are ignored;
#   2. the file is formatted per .clang-format (clang-format --dry-run -Werror).
# Prints file:line for every finding and exits 1 if there is any; 77 (meson's "skipped") when
# the banned-function check passed but clang-format is not installed.
#
#   scripts/checksrc.sh [FILE...]      (default: every *.c and *.h of the directories above)
#
# Environment: CLANG_FORMAT (default: clang-format).
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2

if [ $# -gt 0 ]; then
	files=$*
else
	files=$(find fs include tests bench -type f \( -name '*.c' -o -name '*.h' \) \
		2>/dev/null | LC_ALL=C sort)
fi
[ -n "$files" ] || exit 0

status=0

# 1. Banned functions. awk blanks out comments, string and character literals (keeping the
# line structure), then looks for a call of a banned name that is not part of a longer
# identifier (so snprintf, strtok_r, fgets, srand, my_rand( ... do not match).
# shellcheck disable=SC2086 # file names are ours, without blanks
banned=$(awk '
BEGIN {
	instead["sprintf"] = "snprintf()"; instead["vsprintf"] = "vsnprintf()"
	instead["strcpy"] = "snprintf() or memcpy() with a length"
	instead["strcat"] = "snprintf() or memcpy() with a length"
	instead["strtok"] = "strtok_r()"; instead["gmtime"] = "gmtime_r()"
	instead["localtime"] = "localtime_r()"; instead["strerror"] = "strerror_r()"
	instead["gets"] = "fgets()"; instead["asctime"] = "strftime()"
	instead["ctime"] = "strftime() with localtime_r()"
	instead["rand"] = "sign_random_hex() or RAND_bytes()"
}
FNR == 1 { state = 0 }  # 0 code, 1 block comment, 2 string, 3 char literal
{
	line = $0; out = ""; n = length(line); i = 1
	while (i <= n) {
		c = substr(line, i, 1); d = substr(line, i, 2)
		if (state == 1) {
			if (d == "*/") { state = 0; out = out "  "; i += 2; continue }
			out = out " "; i++; continue
		}
		if (state == 2 || state == 3) {
			if (c == "\\") { out = out "  "; i += 2; continue }
			if ((state == 2 && c == "\"") || (state == 3 && c == "\047")) state = 0
			out = out " "; i++; continue
		}
		if (d == "//") break
		if (d == "/*") { state = 1; out = out "  "; i += 2; continue }
		if (c == "\"") { state = 2; out = out " "; i++; continue }
		if (c == "\047") { state = 3; out = out " "; i++; continue }
		out = out c; i++
	}
	# A string or character literal never spans lines (a trailing backslash aside).
	if (state >= 2 && substr(line, n, 1) != "\\") state = 0
	s = out
	while (match(s, /(^|[^A-Za-z0-9_.>])(v?sprintf|strcpy|strcat|strtok|gmtime|localtime|strerror|gets|asctime|ctime|rand)[ \t]*\(/)) {
		m = substr(s, RSTART, RLENGTH)
		sub(/^[^A-Za-z]/, "", m)
		sub(/[ \t]*\($/, "", m)
		printf "%s:%d: banned function %s(), use %s\n", FILENAME, FNR, m, instead[m]
		s = substr(s, RSTART + RLENGTH)
	}
}' $files)
if [ -n "$banned" ]; then
	echo "$banned"
	status=1
fi

# 2. Formatting.
cf=${CLANG_FORMAT:-clang-format}
if ! command -v "$cf" >/dev/null 2>&1; then
	echo "checksrc: $cf not found, formatting not checked" >&2
	[ $status -eq 0 ] && exit 77
	exit $status
fi
unformatted=""
for f in $files; do
	out=$("$cf" --dry-run -Werror "$f" 2>&1) && continue
	echo "$out" | sed -n 's/^\([^:]*:[0-9][0-9]*\):[0-9]*: error: .*/\1: not formatted per .clang-format/p' |
		awk '!seen[$0]++'
	unformatted="$unformatted $f"
	status=1
done
if [ -n "$unformatted" ]; then
	echo "checksrc: to fix the formatting: $cf -i$unformatted"
fi
exit $status

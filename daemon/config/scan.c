/*
 * The pre-scan: what libconfig 1.5 gets wrong, found with its own lexical
 * rules (three comment styles, strings with escapes, names, numbers) before
 * it parses:
 *  - an integer literal that does not fit its type is silently wrapped
 *    ("port = 4294975488" reads as 8192);
 *  - @include makes the parser open other files;
 *  - a string where the grammar has no room for one ("name "x";",
 *    "{ "x" }") is a syntax error at which the parser leaks the string.
 *    Strings are only ever values: after = or :, after [ or (, after a
 *    comma inside [ ] or ( ), or after another string (concatenation).
 *    Anything else is a syntax error libconfig would report at that very
 *    token, so we report it instead and never hand libconfig the text.
 */
#include "internal.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* Bracket nesting tracked for the string rule; deeper is given the benefit. */
#define CFG_SCAN_DEPTH 256

/* prev: the previous token, '=' for = or :, 's' string, 'n' name or number. */
static int cfg_string_ok(char prev, char ctx)
{
	return prev == '=' || prev == '[' || prev == '(' || prev == 's' ||
	       (prev == ',' && (ctx == '[' || ctx == '(' || ctx == '?'));
}

static int cfg_isdigit(char ch)
{
	return ch >= '0' && ch <= '9';
}

static int cfg_isalpha(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static int cfg_hexval(char ch)
{
	if (cfg_isdigit(ch))
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static const char *cfg_scan_number(const char *p, unsigned line, struct cfg_scan *sc)
{
	const char *start = p;
	unsigned long long v = 0, limit;
	int neg = 0, big = 0, d;

	if (*p == '-' || *p == '+')
		neg = *p++ == '-';
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		/* Hex is a bit pattern: 0xFFFFFFFF is -1, more does not fit. */
		for (p += 2; (d = cfg_hexval(*p)) >= 0; p++) {
			big |= v > (ULLONG_MAX >> 4);
			v = (v << 4) | (unsigned)d;
		}
		limit = *p == 'L' ? ULLONG_MAX : 0xffffffffULL;
	} else {
		for (; cfg_isdigit(*p); p++) {
			big |= v > (ULLONG_MAX - 9) / 10;
			v = v * 10 + (unsigned)(*p - '0');
		}
		if (*p == '.' || *p == 'e' || *p == 'E') {
			/* A float: libconfig reads it with strtod, nothing wraps. */
			while (cfg_isdigit(*p) || *p == '.' || *p == 'e' || *p == 'E' ||
			       ((*p == '+' || *p == '-') && (p[-1] == 'e' || p[-1] == 'E')))
				p++;
			return p;
		}
		if (*p == 'L')
			limit = neg ? (unsigned long long)LLONG_MAX + 1 : LLONG_MAX;
		else
			limit = neg ? (unsigned long long)INT_MAX + 1 : INT_MAX;
	}
	if ((big || v > limit) && !sc->overflow_line) {
		sc->overflow_line = line;
		snprintf(sc->overflow, sizeof(sc->overflow), "%.*s",
			 (int)(p - start < 32 ? p - start : 32), start);
	}
	return p;
}

void cfg_prescan(const char *p, struct cfg_scan *sc)
{
	char stack[CFG_SCAN_DEPTH], prev = 0, ctx;
	size_t depth = 0;
	unsigned line = 1;

	while (*p && !sc->include_line && !sc->string_line) {
		ctx = depth == 0 ? 0 : depth > CFG_SCAN_DEPTH ? '?' : stack[depth - 1];
		if (*p == '\n' || *p == ' ' || *p == '\t' || *p == '\r' || *p == '\f') {
			line += *p == '\n';
			p++;
		} else if (*p == '#' || (p[0] == '/' && p[1] == '/')) {
			while (*p && *p != '\n')
				p++;
		} else if (p[0] == '/' && p[1] == '*') {
			for (p += 2; *p && !(p[0] == '*' && p[1] == '/'); p++)
				line += *p == '\n';
			p += *p ? 2 : 0;
		} else if (*p == '"') {
			if (!cfg_string_ok(prev, ctx))
				sc->string_line = line;
			for (p++; *p && *p != '"'; p++) {
				if (*p == '\\' && p[1])
					p++;
				line += *p == '\n';
			}
			p += *p ? 1 : 0;
			prev = 's';
		} else if (*p == '@') {
			if (strncmp(p, "@include", 8) == 0)
				sc->include_line = line;
			p++;
			prev = '?';
		} else if (cfg_isalpha(*p) || *p == '*') {
			/* A name or true/false: its digits are not numbers. */
			for (p++; cfg_isalpha(*p) || cfg_isdigit(*p) || *p == '-' || *p == '_' ||
				  *p == '*';
			     p++)
				;
			prev = 'n';
		} else if (cfg_isdigit(*p) || ((*p == '-' || *p == '+' || *p == '.') &&
					       (cfg_isdigit(p[1]) || p[1] == '.'))) {
			p = cfg_scan_number(p, line, sc);
			prev = 'n';
		} else if (*p == '[' || *p == '(' || *p == '{') {
			if (depth < CFG_SCAN_DEPTH)
				stack[depth] = *p;
			depth++;
			prev = *p++;
		} else if (*p == ']' || *p == ')' || *p == '}') {
			depth -= depth > 0;
			prev = *p++;
		} else {
			prev = *p == ':' ? '=' : *p;
			p++;
		}
	}
}

/* mt_glob: see mt_glob.h.  Part of the shim: no allocation, no libc calls. */
#include "mt_glob.h"

/* Matches one bracket class at *pp against c; advances *pp past it.
 * Returns 1 on a match, 0 on none, -1 when the class is not closed (then the
 * '[' is an ordinary character, as in fnmatch). */
static int match_class(const char **pp, char c)
{
    const char *p = *pp + 1; /* after '[' */
    int negate = 0, matched = 0;
    if (*p == '!' || *p == '^')
        negate = 1, p++;
    const char *first = p;
    while (*p && (*p != ']' || p == first)) {
        char lo = *p, hi;
        if (lo == '\\' && p[1])
            lo = *++p;
        if (p[1] == '-' && p[2] && p[2] != ']') {
            hi = p[2];
            if (hi == '\\' && p[3])
                hi = p[3], p++;
            p += 3;
        } else {
            hi = lo;
            p++;
        }
        if ((unsigned char)c >= (unsigned char)lo && (unsigned char)c <= (unsigned char)hi)
            matched = 1;
    }
    if (*p != ']')
        return -1;
    *pp = p + 1;
    return c != '/' && matched != negate;
}

int mt_glob_match(const char *g, const char *s)
{
    /* Iterative, with one backtracking point for the last '*' (enough, since
     * '*' never crosses '/': classic wildcard matching). */
    const char *star_g = NULL, *star_s = NULL;
    while (*s) {
        const char *next = g;
        int ok = 0;
        if (*g == '*') {
            while (*g == '*')
                g++;
            star_g = g;
            star_s = s;
            continue;
        }
        if (*g == '?') {
            ok = *s != '/';
            next = g + 1;
        } else if (*g == '[') {
            int m = match_class(&next, *s);
            if (m < 0) {
                ok = *s == '[';
                next = g + 1;
            } else {
                ok = m;
            }
        } else if (*g == '\\' && g[1]) {
            ok = g[1] == *s;
            next = g + 2;
        } else if (*g) {
            ok = *g == *s;
            next = g + 1;
        }
        if (ok) {
            g = next;
            s++;
            continue;
        }
        /* Backtrack: let the last '*' eat one more character, not a '/'. */
        if (!star_g || *star_s == '/')
            return 0;
        star_s++;
        s = star_s;
        g = star_g;
    }
    while (*g == '*')
        g++;
    return *g == '\0';
}

int mt_glob_absolute(const char *base, const char *path, char *out, size_t size)
{
    size_t n = 0;
    if (size < 2)
        return -1;
    out[n++] = '/';
    for (int part = 0; part < 2; part++) {
        const char *p = part == 0 ? base : path;
        if (part == 0 && path[0] == '/')
            continue;           /* an absolute path ignores the base */
        if (part == 0 && (!base || base[0] != '/'))
            return -1;
        while (*p) {
            while (*p == '/')
                p++;
            const char *seg = p;
            while (*p && *p != '/')
                p++;
            size_t len = (size_t)(p - seg);
            if (len == 0 || (len == 1 && seg[0] == '.'))
                continue;
            if (len == 2 && seg[0] == '.' && seg[1] == '.') {
                if (n > 1) {    /* drop the last component */
                    n--;
                    while (n > 1 && out[n - 1] != '/')
                        n--;
                    if (n > 1)
                        n--;    /* and its '/' */
                }
                continue;
            }
            if (n + (n > 1) + len + 1 > size)
                return -1;
            if (n > 1)
                out[n++] = '/';
            for (size_t i = 0; i < len; i++)
                out[n++] = seg[i];
        }
    }
    out[n] = '\0';
    return (int)n;
}

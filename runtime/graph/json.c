/* json.c: see json.h. Strict RFC 8259 for the parts it reads: no comments,
 * no trailing commas, no leading zeros, strings of valid UTF-8 without raw
 * control characters. Files are untrusted, so every read is bounded by the
 * text's length and every number is overflow-checked. */
#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void json_init(json_cursor *c, const char *text, size_t len) {
    *c = (json_cursor){.text = text, .len = len};
}

bool json_fail(json_cursor *c, const char *fmt, ...) {
    if (c->failed)
        return false;
    c->failed = true;
    c->error_pos = c->pos;
    va_list args;
    va_start(args, fmt);
    vsnprintf(c->error, sizeof c->error, fmt, args);
    va_end(args);
    return false;
}

bool json_skip_ws(json_cursor *c) {
    while (c->pos < c->len) {
        char ch = c->text[c->pos];
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r')
            return true;
        c->pos++;
    }
    return false;
}

/* A printable description of the byte at the cursor for error messages. */
static const char *describe(const json_cursor *c, char *buf, size_t size) {
    if (c->pos >= c->len)
        return "the end of the header";
    unsigned char ch = (unsigned char)c->text[c->pos];
    if (ch >= 0x20 && ch < 0x7f)
        snprintf(buf, size, "'%c'", ch);
    else
        snprintf(buf, size, "byte 0x%02x", ch);
    return buf;
}

bool json_expect(json_cursor *c, char ch, const char *what) {
    if (c->failed)
        return false;
    if (json_skip_ws(c) && c->text[c->pos] == ch) {
        c->pos++;
        return true;
    }
    char buf[16];
    return json_fail(c, "expected %s, found %s", what, describe(c, buf, sizeof buf));
}

bool json_next(json_cursor *c, char close, bool *first) {
    if (c->failed)
        return false;
    char buf[16];
    if (!json_skip_ws(c))
        return json_fail(c, "expected '%c' before the end of the header", close);
    char ch = c->text[c->pos];
    if (ch == close) {
        c->pos++;
        return false;
    }
    if (*first) {
        *first = false;
        return true;
    }
    if (ch == ',') {
        c->pos++;
        return true;
    }
    return json_fail(c, "expected ',' or '%c', found %s", close, describe(c, buf, sizeof buf));
}

static int hex_digit(char ch) {
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* The 4 hex digits after "\u" at c->pos. */
static bool read_hex4(json_cursor *c, uint32_t *out) {
    if (c->len - c->pos < 4)
        return json_fail(c, "truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(c->text[c->pos]);
        if (d < 0)
            return json_fail(c, "a \\u escape needs 4 hex digits");
        v = v << 4 | (uint32_t)d;
        c->pos++;
    }
    *out = v;
    return true;
}

static size_t put_utf8(char *out, uint32_t cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* A \u escape (the backslash and 'u' already consumed), joining a UTF-16
 * surrogate pair into one code point. */
static bool read_unicode_escape(json_cursor *c, uint32_t *out) {
    size_t start = c->pos - 2;
    uint32_t cp;
    if (!read_hex4(c, &cp))
        return false;
    if (cp >= 0xdc00 && cp <= 0xdfff) {
        c->pos = start;
        return json_fail(c, "a \\u escape holds a lone low surrogate");
    }
    if (cp >= 0xd800 && cp <= 0xdbff) {
        uint32_t low;
        if (c->len - c->pos < 2 || c->text[c->pos] != '\\' || c->text[c->pos + 1] != 'u') {
            c->pos = start;
            return json_fail(c, "a \\u escape holds a high surrogate without its low half");
        }
        c->pos += 2;
        if (!read_hex4(c, &low))
            return false;
        if (low < 0xdc00 || low > 0xdfff) {
            c->pos = start;
            return json_fail(c, "a \\u escape holds a high surrogate without its low half");
        }
        cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
    }
    if (cp == 0) {
        c->pos = start;
        return json_fail(c, "\\u0000 in a string (names and values must be C strings)");
    }
    *out = cp;
    return true;
}

/* Length of the valid UTF-8 sequence starting at s (at most n bytes), 0 if
 * invalid: no overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_sequence(const unsigned char *s, size_t n) {
    unsigned char b = s[0];
    if (b < 0x80)
        return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf)
        len = 2;
    else if (b >= 0xe0 && b <= 0xef) {
        len = 3;
        if (b == 0xe0)
            lo = 0xa0;
        if (b == 0xed)
            hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
        len = 4;
        if (b == 0xf0)
            lo = 0x90;
        if (b == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

bool json_utf8_valid(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    while (n) {
        size_t k = utf8_sequence(p, n);
        if (!k)
            return false;
        p += k;
        n -= k;
    }
    return true;
}

static bool read_escape(json_cursor *c, char *out, size_t *used) {
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    if (c->pos >= c->len)
        return json_fail(c, "truncated escape in a string");
    char e = c->text[c->pos++];
    const char *hit = e ? strchr(from, e) : NULL;
    if (hit) {
        out[(*used)++] = to[hit - from];
        return true;
    }
    if (e != 'u') {
        c->pos -= 2;
        return json_fail(c, "invalid escape in a string");
    }
    uint32_t cp = 0;
    if (!read_unicode_escape(c, &cp))
        return false;
    *used += put_utf8(out + *used, cp);
    return true;
}

bool json_string(json_cursor *c, char *out, size_t *out_len) {
    if (!json_expect(c, '"', "a string"))
        return false;
    size_t start = c->pos - 1, used = 0;
    for (;;) {
        if (c->pos >= c->len) {
            c->pos = start;
            return json_fail(c, "a string is not closed before the end of the header");
        }
        unsigned char ch = (unsigned char)c->text[c->pos];
        if (ch == '"') {
            c->pos++;
            break;
        }
        if (ch < 0x20)
            return json_fail(c, "control character 0x%02x inside a string", ch);
        if (ch == '\\') {
            c->pos++;
            if (!read_escape(c, out, &used))
                return false;
            continue;
        }
        size_t k = utf8_sequence((const unsigned char *)c->text + c->pos, c->len - c->pos);
        if (!k)
            return json_fail(c, "invalid UTF-8 inside a string");
        memcpy(out + used, c->text + c->pos, k);
        used += k;
        c->pos += k;
    }
    out[used] = '\0';
    *out_len = used;
    return true;
}

bool json_u64(json_cursor *c, uint64_t *out) {
    if (c->failed)
        return false;
    char buf[16];
    if (!json_skip_ws(c) || c->text[c->pos] < '0' || c->text[c->pos] > '9') {
        if (c->pos < c->len && c->text[c->pos] == '-')
            return json_fail(c, "expected a non-negative integer, found a negative number");
        return json_fail(c, "expected a non-negative integer, found %s",
                         describe(c, buf, sizeof buf));
    }
    size_t start = c->pos;
    uint64_t v = 0;
    while (c->pos < c->len && c->text[c->pos] >= '0' && c->text[c->pos] <= '9') {
        unsigned d = (unsigned)(c->text[c->pos] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            c->pos = start;
            return json_fail(c, "integer too large (2^64 or more)");
        }
        v = v * 10 + d;
        c->pos++;
    }
    if (c->text[start] == '0' && c->pos - start > 1) {
        c->pos = start;
        return json_fail(c, "a number with a leading zero");
    }
    if (c->pos < c->len &&
        (c->text[c->pos] == '.' || c->text[c->pos] == 'e' || c->text[c->pos] == 'E')) {
        c->pos = start;
        return json_fail(c, "expected an integer without fraction or exponent");
    }
    *out = v;
    return true;
}

/* ---- Writer ---- */

void json_append(json_buffer *b, const char *bytes, size_t n) {
    if (b->failed)
        return;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 256;
        while (n > cap - b->len) {
            if (cap > SIZE_MAX / 2) {
                b->failed = true;
                return;
            }
            cap *= 2;
        }
        char *p = realloc(b->data, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, bytes, n);
    b->len += n;
}

void json_append_char(json_buffer *b, char ch) { json_append(b, &ch, 1); }

void json_append_u64(json_buffer *b, uint64_t value) {
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%llu", (unsigned long long)value);
    json_append(b, buf, (size_t)n);
}

void json_append_string(json_buffer *b, const char *s) {
    json_append_char(b, '"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        char esc[8];
        switch (ch) {
        case '"': json_append(b, "\\\"", 2); break;
        case '\\': json_append(b, "\\\\", 2); break;
        case '\n': json_append(b, "\\n", 2); break;
        case '\r': json_append(b, "\\r", 2); break;
        case '\t': json_append(b, "\\t", 2); break;
        default:
            if (ch < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", ch);
                json_append(b, esc, 6);
            } else {
                json_append_char(b, (char)ch);
            }
        }
    }
    json_append_char(b, '"');
}

void json_buffer_free(json_buffer *b) {
    free(b->data);
    *b = (json_buffer){0};
}

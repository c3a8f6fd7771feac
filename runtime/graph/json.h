/* json.h: the small amount of JSON that file headers need (safetensors):
 * a strict cursor-based reader that decodes one token at a time and
 * remembers where it failed, and a writer into a growing buffer. No document
 * tree is built: the caller walks the text in the shape it expects, so every
 * error can name the byte where the text stopped making sense. */
#ifndef VKT_JSON_H
#define VKT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct json_cursor {
    const char *text;
    size_t len;
    size_t pos;
    bool failed;
    size_t error_pos; /* where the first error was met */
    char error[160];  /* what it was */
} json_cursor;

void json_init(json_cursor *c, const char *text, size_t len);
/* Records the first error at c->pos (later ones are dropped); returns false
 * so readers can `return json_fail(...)`. */
bool json_fail(json_cursor *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Skips JSON whitespace; true if a byte follows. */
bool json_skip_ws(json_cursor *c);
/* Consumes `ch` after whitespace, or fails naming `what` was expected. */
bool json_expect(json_cursor *c, char ch, const char *what);
/* Walks the members of an object or the elements of an array:
 *     bool first = true;
 *     while (json_next(c, '}', &first)) { ...read one member... }
 *     if (c->failed) ...
 * after the opener has been consumed with json_expect. Consumes the comma
 * between items and the closer at the end; false at the end or on error. */
bool json_next(json_cursor *c, char close, bool *first);
/* Decodes a string (escapes, surrogate pairs, UTF-8 checked) into out,
 * NUL-terminated; out must hold at least the bytes left in the text plus
 * one (a decoded string is never longer than its encoding). *out_len gets
 * the decoded length. \u0000 is refused: names and values are C strings. */
bool json_string(json_cursor *c, char *out, size_t *out_len);
/* Reads a number that must be a non-negative integer written without
 * fraction or exponent, below 2^64. */
bool json_u64(json_cursor *c, uint64_t *out);

/* True if s is valid UTF-8 (what json_string accepts back). */
bool json_utf8_valid(const char *s);

/* ---- Writer ---- */

typedef struct json_buffer {
    char *data;
    size_t len, cap;
    bool failed; /* an allocation failed; everything after is dropped */
} json_buffer;

void json_append(json_buffer *b, const char *bytes, size_t n);
void json_append_char(json_buffer *b, char ch);
void json_append_u64(json_buffer *b, uint64_t value);
/* Appends s as a quoted JSON string with the escapes JSON requires. */
void json_append_string(json_buffer *b, const char *s);
void json_buffer_free(json_buffer *b);

#endif

/* plot_internal.h: the bitmap font shared by src/plot/plot.c and font.c.
 *
 * Glyphs are 5 columns by 9 rows: rows 0-6 hold capitals and digits (row 6
 * is the baseline row), rows 7-8 hold descenders.  A glyph advances 6
 * columns; text is drawn at an integer scale (each font pixel becomes a
 * scale x scale block).
 */
#ifndef CRATE_PLOT_INTERNAL_H
#define CRATE_PLOT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#define CRATE__FONT_W 5
#define CRATE__FONT_H 9
#define CRATE__FONT_ASCENT 7
#define CRATE__FONT_ADVANCE 6

/* Decodes the next character of a UTF-8 string and advances *s past it.
 * Malformed bytes decode as '?' one byte at a time.  @return the code point
 * (0 at the end of the string, which is not advanced past). */
uint32_t crate__font_next(const char **s);

/* Fills rows[0..9) with the glyph of code point cp: bit 4 is the leftmost
 * column.  Printable ASCII, U+03C3 (sigma) and U+00B2 (superscript two) have
 * glyphs; anything else gets '?'. */
void crate__font_glyph(uint32_t cp, uint8_t rows[CRATE__FONT_H]);

/* Width in pixels of s at the given scale (no trailing gap); 0 for "". */
size_t crate__font_width(const char *s, size_t scale);

#endif

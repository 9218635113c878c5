/* test_safetensors.c: the safetensors reader and writer (MODEL.md §11.1,
 * STYLE.md §7 layer 1): round trip, byte-identical rewrite, every header
 * rule of the reference reader provoked one by one (truncation, hole,
 * overlap, size mismatch, duplicate key, bad dtype, oversize header, header
 * past the end, trailing bytes, non-string metadata), F16/BF16 known
 * answers, edge cases (rank 0, zero size, unaligned data, free header
 * order), I/O statuses, and random corruptions that must never crash. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crate/safetensors.h"
#include "internal.h"
#include "test_util.h"

/* ---- helpers --------------------------------------------------------------- */

static char g_dir[64];

static int setup_dir(void **state) {
  (void)state;
  snprintf(g_dir, sizeof g_dir, "/tmp/crate_st_XXXXXX");
  return mkdtemp(g_dir) ? 0 : -1;
}

static int remove_dir(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  return system(cmd) == 0 ? 0 : -1;
}

static void tmp_path(char *buf, size_t n, const char *name) {
  snprintf(buf, n, "%s/%s", g_dir, name);
}

/* Bytes of a file: [u64 len(json)][json][data]. */
static unsigned char *craft(const char *json, const void *data, size_t dlen, size_t *len) {
  size_t n = strlen(json);
  *len = 8 + n + dlen;
  unsigned char *b = malloc(*len);
  assert_non_null(b);
  for (int i = 0; i < 8; i++)
    b[i] = (unsigned char)((uint64_t)n >> (8 * i));
  memcpy(b + 8, json, n);
  if (dlen)
    memcpy(b + 8 + n, data, dlen);
  return b;
}

static void write_bytes(const char *path, const void *b, size_t n) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(b, 1, n, f), n);
  assert_int_equal(fclose(f), 0);
}

static unsigned char *read_bytes(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long sz = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)sz + 1);
  assert_non_null(b);
  assert_int_equal(fread(b, 1, (size_t)sz, f), (size_t)sz);
  fclose(f);
  *n = (size_t)sz;
  return b;
}

/* Expects `bytes` to be rejected with EFORMAT and a message containing
 * `needle`; prints the message. */
static void expect_format_error(const char *id, const unsigned char *bytes, size_t len,
                                const char *needle) {
  crate_st *st = NULL;
  int rc = crate_st_open_memory(bytes, len, "crafted.safetensors", &st);
  const char *msg = crate_error_message();
  crate_report(id, "status %d, message: %s", rc, msg);
  crate_check(rc == CRATE_STATUS_EFORMAT, "want EFORMAT, got %d", rc);
  assert_null(st);
  crate_check(strstr(msg, needle) != NULL, "message lacks '%s'", needle);
  crate_check(strncmp(msg, "safetensors: crafted.safetensors: ", 34) == 0,
              "message does not name the domain and file");
}

/* A writer holding a mix of tensors (data owned by the caller). */
typedef struct sample {
  float a[2 * 3 * 4];
  float b[5];
  float scalar;
  double f64[3 * 2];
} sample;

static void fill_sample(sample *s) {
  crate_rng r;
  crate_rng_init(&r, 11, CRATE_RNG_NOISE);
  for (size_t i = 0; i < 24; i++)
    s->a[i] = (float)crate_rng_normal(&r);
  for (size_t i = 0; i < 5; i++)
    s->b[i] = (float)crate_rng_normal(&r) * 1e-30f; /* tiny values, some subnormal-ish */
  s->b[4] = -0.0f;
  s->scalar = 3.25f;
  for (size_t i = 0; i < 6; i++)
    s->f64[i] = crate_rng_normal(&r) * 1e100;
}

static crate_st_writer *make_writer(const sample *s) {
  crate_st_writer *w = NULL;
  assert_int_equal(crate_st_writer_create(&w), CRATE_STATUS_OK);
  const size_t sa[3] = {2, 3, 4}, sb[1] = {5}, sf[2] = {3, 2}, sz[2] = {0, 7};
  /* added in a scrambled order: the file order must not depend on it */
  assert_int_equal(crate_st_writer_add_f32(w, "zeta.b", 1, sb, s->b), CRATE_STATUS_OK);
  assert_int_equal(crate_st_writer_add_f32(w, "alpha.a", 3, sa, s->a), CRATE_STATUS_OK);
  assert_int_equal(crate_st_writer_add_f64(w, "fixture.f64", 2, sf, s->f64), CRATE_STATUS_OK);
  assert_int_equal(crate_st_writer_add_f32(w, "scalar", 0, NULL, &s->scalar), CRATE_STATUS_OK);
  assert_int_equal(crate_st_writer_add_f32(w, "empty", 2, sz, NULL), CRATE_STATUS_OK);
  assert_int_equal(crate_st_writer_set_metadata(w, "crate.format_version", "1"), CRATE_STATUS_OK);
  assert_int_equal(crate_st_writer_set_metadata(w, "b.key", "old"), CRATE_STATUS_OK);
  assert_int_equal(crate_st_writer_set_metadata(w, "a.key", "x\"y\\z \xc3\xa9"), CRATE_STATUS_OK);
  assert_int_equal(crate_st_writer_set_metadata(w, "b.key", "value"), CRATE_STATUS_OK);
  return w;
}

/* ---- round trip and determinism ------------------------------------------------ */

static void test_st_roundtrip(void **state) {
  (void)state;
  sample s;
  fill_sample(&s);
  crate_st_writer *w = make_writer(&s);
  char path[128];
  tmp_path(path, sizeof path, "rt.safetensors");
  assert_int_equal(crate_st_writer_write(w, path), CRATE_STATUS_OK);
  crate_st_writer_destroy(w);

  crate_st *st = NULL;
  assert_int_equal(crate_st_open(path, &st), CRATE_STATUS_OK);
  assert_int_equal(crate_st_count(st), 5);
  crate_check(crate_st_header_size(st) % 8 == 0, "header size %zu not padded",
              crate_st_header_size(st));
  /* File (data) order: F64 first (alignment 8), then F32 by name; the empty
   * tensor sits at the same offset as its successor and sorts first. */
  const char *order[5] = {"fixture.f64", "alpha.a", "empty", "scalar", "zeta.b"};
  for (size_t i = 0; i < 5; i++) {
    crate_st_tensor t;
    assert_int_equal(crate_st_tensor_at(st, i, &t), CRATE_STATUS_OK);
    crate_check(strcmp(t.name, order[i]) == 0, "tensor %zu is '%s', want '%s'", i, t.name,
                order[i]);
  }
  crate_st_tensor t;
  size_t mismatched = 0;
  assert_int_equal(crate_st_find(st, "alpha.a", &t), CRATE_STATUS_OK);
  assert_int_equal(t.dtype, CRATE_ST_F32);
  assert_int_equal(t.ndim, 3);
  assert_true(t.shape[0] == 2 && t.shape[1] == 3 && t.shape[2] == 4 && t.count == 24);
  assert_null(t.data64);
  mismatched += memcmp(t.data, s.a, sizeof s.a) != 0;
  assert_int_equal(crate_st_find(st, "zeta.b", &t), CRATE_STATUS_OK);
  mismatched += memcmp(t.data, s.b, sizeof s.b) != 0;
  assert_int_equal(crate_st_find(st, "scalar", &t), CRATE_STATUS_OK);
  assert_int_equal(t.ndim, 0);
  assert_int_equal(t.count, 1);
  mismatched += memcmp(t.data, &s.scalar, sizeof s.scalar) != 0;
  assert_int_equal(crate_st_find(st, "empty", &t), CRATE_STATUS_OK);
  assert_true(t.ndim == 2 && t.shape[0] == 0 && t.shape[1] == 7 && t.count == 0);
  assert_non_null(t.data);
  assert_int_equal(crate_st_find(st, "fixture.f64", &t), CRATE_STATUS_OK);
  assert_int_equal(t.dtype, CRATE_ST_F64);
  assert_non_null(t.data64);
  mismatched += memcmp(t.data64, s.f64, sizeof s.f64) != 0;
  size_t rounded_bad = 0;
  for (size_t i = 0; i < 6; i++)
    rounded_bad += t.data[i] != (float)s.f64[i];
  /* Metadata: values intact, keys sorted in the header. */
  assert_int_equal(crate_st_metadata_count(st), 3);
  const char *k0, *v0;
  assert_int_equal(crate_st_metadata_at(st, 0, &k0, &v0), CRATE_STATUS_OK);
  assert_string_equal(k0, "a.key");
  assert_string_equal(v0, "x\"y\\z \xc3\xa9");
  assert_string_equal(crate_st_metadata(st, "b.key"), "value");
  assert_string_equal(crate_st_metadata(st, "crate.format_version"), "1");
  assert_null(crate_st_metadata(st, "nope"));
  assert_false(crate_st_has(st, "nope"));
  assert_int_equal(crate_st_find(st, "nope", &t), CRATE_STATUS_EFORMAT);
  assert_non_null(strstr(crate_error_message(), "no tensor 'nope'"));
  assert_int_equal(crate_st_tensor_at(st, 5, &t), CRATE_STATUS_EINVAL);
  crate_report("ST1",
               "5 tensors (F32 ranks 0-3, zero-size, F64): %zu value mismatches, %zu F64 "
               "float views not round-to-nearest, header %zu bytes (multiple of 8)",
               mismatched, rounded_bad, crate_st_header_size(st));
  assert_int_equal(mismatched, 0);
  assert_int_equal(rounded_bad, 0);
  crate_st_close(st);
}

static void test_st_rewrite_identical(void **state) {
  (void)state;
  sample s;
  fill_sample(&s);
  crate_st_writer *w = make_writer(&s);
  char p1[128], p2[128];
  tmp_path(p1, sizeof p1, "first.safetensors");
  tmp_path(p2, sizeof p2, "second.safetensors");
  assert_int_equal(crate_st_writer_write(w, p1), CRATE_STATUS_OK);
  void *mem;
  size_t mlen;
  assert_int_equal(crate_st_writer_to_memory(w, &mem, &mlen), CRATE_STATUS_OK);
  crate_st_writer_destroy(w);

  /* Read it back and write everything again from the reader's views, adding
   * tensors in reverse file order. */
  crate_st *st = NULL;
  assert_int_equal(crate_st_open(p1, &st), CRATE_STATUS_OK);
  assert_int_equal(crate_st_writer_create(&w), CRATE_STATUS_OK);
  for (size_t i = crate_st_count(st); i-- > 0;) {
    crate_st_tensor t;
    assert_int_equal(crate_st_tensor_at(st, i, &t), CRATE_STATUS_OK);
    if (t.dtype == CRATE_ST_F64)
      assert_int_equal(crate_st_writer_add_f64(w, t.name, t.ndim, t.shape, t.data64), 0);
    else
      assert_int_equal(crate_st_writer_add_f32(w, t.name, t.ndim, t.shape, t.data), 0);
  }
  for (size_t i = crate_st_metadata_count(st); i-- > 0;) {
    const char *k, *v;
    assert_int_equal(crate_st_metadata_at(st, i, &k, &v), CRATE_STATUS_OK);
    assert_int_equal(crate_st_writer_set_metadata(w, k, v), CRATE_STATUS_OK);
  }
  assert_int_equal(crate_st_writer_write(w, p2), CRATE_STATUS_OK);
  crate_st_writer_destroy(w);
  crate_st_close(st);

  size_t n1, n2;
  unsigned char *b1 = read_bytes(p1, &n1), *b2 = read_bytes(p2, &n2);
  size_t diff = n1 == n2 ? 0 : 1;
  for (size_t i = 0; i < n1 && i < n2; i++)
    diff += b1[i] != b2[i];
  size_t memdiff = mlen == n1 ? (size_t)(memcmp(mem, b1, n1) != 0) : 1;
  /* The JSON is compact, metadata first, and padded with spaces. */
  uint64_t N = 0;
  for (int i = 7; i >= 0; i--)
    N = N << 8 | b1[i];
  crate_check(b1[8] == '{' && memcmp(b1 + 9, "\"__metadata__\":{\"a.key\"", 23) == 0,
              "header does not start with the sorted metadata: %.40s", (const char *)b1 + 8);
  size_t pad = 0;
  while (pad < N && b1[8 + N - 1 - pad] == ' ')
    pad++;
  crate_report("ST2",
               "rewrite: %zu vs %zu bytes, %zu differing bytes; to_memory differs: %zu; "
               "header N = %llu with %zu space(s) of padding",
               n1, n2, diff, memdiff, (unsigned long long)N, pad);
  assert_int_equal(diff, 0);
  assert_int_equal(memdiff, 0);
  assert_true(N % 8 == 0 && pad < 8 && b1[8 + N - 1 - pad] == '}');
  /* No temporary files are left next to the targets. */
  char cmd[160];
  snprintf(cmd, sizeof cmd, "ls '%s' | grep -q '\\.tmp\\.'", g_dir);
  assert_int_not_equal(system(cmd), 0);
  free(b1);
  free(b2);
  free(mem);
}

/* ---- the reference reader's rules ----------------------------------------------- */

static void test_st_truncated(void **state) {
  (void)state;
  sample s;
  fill_sample(&s);
  crate_st_writer *w = make_writer(&s);
  void *mem;
  size_t len;
  assert_int_equal(crate_st_writer_to_memory(w, &mem, &len), CRATE_STATUS_OK);
  crate_st_writer_destroy(w);
  /* Every proper prefix must be rejected with EFORMAT. */
  size_t rejected = 0, other = 0;
  for (size_t cut = 0; cut < len; cut++) {
    crate_st *st = NULL;
    int rc = crate_st_open_memory(mem, cut, NULL, &st);
    rejected += rc == CRATE_STATUS_EFORMAT;
    other += rc != CRATE_STATUS_EFORMAT;
    crate_st_close(st);
  }
  /* And one truncated file on disk, cut inside the data buffer. */
  char path[128];
  tmp_path(path, sizeof path, "trunc.safetensors");
  write_bytes(path, mem, len - 3);
  crate_st *st = NULL;
  int rc = crate_st_open(path, &st);
  crate_report("ST3",
               "%zu of %zu proper prefixes rejected with EFORMAT (%zu other statuses); "
               "file cut by 3 bytes: %s",
               rejected, len, other, crate_error_message());
  assert_int_equal(rejected, len);
  assert_int_equal(rc, CRATE_STATUS_EFORMAT);
  assert_non_null(strstr(crate_error_message(), "truncated"));
  assert_non_null(strstr(crate_error_message(), path));
  free(mem);
}

static void test_st_hole(void **state) {
  (void)state;
  const float v[3] = {1, 2, 3};
  size_t len;
  unsigned char *b = craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                           "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                           v, sizeof v, &len);
  expect_format_error("ST4", b, len, "4-byte hole");
  free(b);
  /* A buffer that does not start at 0 is a hole too. */
  b = craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", v, sizeof v, &len);
  expect_format_error("ST4", b, len, "hole");
  free(b);
}

static void test_st_overlap(void **state) {
  (void)state;
  const float v[3] = {1, 2, 3};
  size_t len;
  unsigned char *b = craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                           "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                           v, 8, &len);
  expect_format_error("ST5", b, len, "overlap");
  free(b);
}

static void test_st_size_mismatch(void **state) {
  (void)state;
  const float v[4] = {1, 2, 3, 4};
  size_t len;
  /* shape says 3 floats (12 bytes) but the offsets span 16 */
  unsigned char *b =
      craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", v, 16, &len);
  expect_format_error("ST6", b, len, "needs 12 bytes but its data_offsets [0, 16] span 16");
  free(b);
  /* trailing bytes after the last tensor */
  b = craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}", v, 16, &len);
  expect_format_error("ST6", b, len, "4 bytes follow the last tensor");
  free(b);
  /* an element count that overflows 64 bits */
  b = craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
            "\"data_offsets\":[0,0]}}",
            v, 0, &len);
  expect_format_error("ST6", b, len, "overflows");
  free(b);
  /* END before BEGIN, negative and non-integer entries, missing fields */
  b = craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", v, 4, &len);
  expect_format_error("ST6", b, len, "end before they begin");
  free(b);
  b = craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", v, 4, &len);
  expect_format_error("ST6", b, len, "shape entry 0");
  free(b);
  b = craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", v, 4, &len);
  expect_format_error("ST6", b, len, "shape entry 0");
  free(b);
  b = craft("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", v, 4, &len);
  expect_format_error("ST6", b, len, "lacks \"shape\"");
  free(b);
  b = craft("{\"a\":[1,2]}", v, 0, &len);
  expect_format_error("ST6", b, len, "not an object");
  free(b);
  b = craft("[1,2]", v, 0, &len);
  expect_format_error("ST6", b, len, "not an object");
  free(b);
}

static void test_st_duplicate_key(void **state) {
  (void)state;
  const float v[2] = {1, 2};
  size_t len;
  unsigned char *b = craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                           "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                           v, sizeof v, &len);
  expect_format_error("ST7", b, len, "duplicate object key");
  free(b);
  /* malformed JSON in general */
  b = craft("{\"a\":{\"dtype\":\"F32\",", v, 0, &len);
  expect_format_error("ST7", b, len, "not valid JSON");
  free(b);
  /* invalid UTF-8 in a name */
  b = craft("{\"\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", v, 4, &len);
  expect_format_error("ST7", b, len, "not valid JSON");
  free(b);
}

static void test_st_bad_dtype(void **state) {
  (void)state;
  const int64_t v[2] = {1, 2};
  size_t len;
  unsigned char *b =
      craft("{\"ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", v, 16, &len);
  expect_format_error("ST8", b, len, "tensor 'ids' has dtype I64");
  free(b);
  b = craft("{\"q\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}", v, 2, &len);
  expect_format_error("ST8", b, len, "elements of F4 do not fill whole bytes");
  free(b);
  b = craft("{\"q\":{\"dtype\":\"F4\",\"shape\":[4],\"data_offsets\":[0,2]}}", v, 2, &len);
  expect_format_error("ST8", b, len, "has dtype F4");
  free(b);
  b = craft("{\"w\":{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,16]}}", v, 16, &len);
  expect_format_error("ST8", b, len, "unknown dtype 'F128'");
  free(b);
}

static void test_st_oversize_header(void **state) {
  (void)state;
  unsigned char b[64];
  memset(b, ' ', sizeof b);
  const uint64_t N = 100000001u;
  for (int i = 0; i < 8; i++)
    b[i] = (unsigned char)(N >> (8 * i));
  expect_format_error("ST9", b, sizeof b, "exceeds the limit of 100000000 bytes");
  const uint64_t huge = UINT64_MAX;
  for (int i = 0; i < 8; i++)
    b[i] = (unsigned char)(huge >> (8 * i));
  expect_format_error("ST9", b, sizeof b, "exceeds the limit");
}

static void test_st_header_past_end(void **state) {
  (void)state;
  unsigned char b[40];
  memset(b, ' ', sizeof b);
  const uint64_t N = 33; /* one byte more than follows */
  for (int i = 0; i < 8; i++)
    b[i] = (unsigned char)(N >> (8 * i));
  b[8] = '{';
  b[39] = '}';
  expect_format_error("ST10", b, sizeof b, "runs past the end of the file (40 bytes)");
  expect_format_error("ST10", b, 5, "shorter than the 8-byte header length");
}

static void test_st_metadata_nonstring(void **state) {
  (void)state;
  size_t len;
  unsigned char *b = craft("{\"__metadata__\":{\"crate.embed_dim\":128}}", NULL, 0, &len);
  expect_format_error("ST11", b, len, "key 'crate.embed_dim' has a non-string value");
  free(b);
  b = craft("{\"__metadata__\":[\"a\"]}", NULL, 0, &len);
  expect_format_error("ST11", b, len, "__metadata__ is not an object");
  free(b);
  /* null metadata and an empty header are legal */
  crate_st *st = NULL;
  b = craft("{\"__metadata__\":null}", NULL, 0, &len);
  assert_int_equal(crate_st_open_memory(b, len, NULL, &st), CRATE_STATUS_OK);
  assert_int_equal(crate_st_metadata_count(st), 0);
  crate_st_close(st);
  free(b);
  b = craft("{}", NULL, 0, &len);
  assert_int_equal(crate_st_open_memory(b, len, NULL, &st), CRATE_STATUS_OK);
  assert_int_equal(crate_st_count(st), 0);
  crate_st_close(st);
  free(b);
}

/* ---- conversions and edge cases ------------------------------------------------ */

static void test_st_f16_bf16(void **state) {
  (void)state;
  /* IEEE binary16 bit patterns and their exact values (IEEE 754-2008). */
  const uint16_t h[] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x0400,
                        0x3555, 0x8000, 0x7c00, 0xfc00, 0x7e00};
  const float hv[] = {1.0f,        -2.0f, 65504.0f, 0x1p-24f,  0x1.ff8p-15f, 0x1p-14f,
                      0x1.554p-2f, -0.0f, INFINITY, -INFINITY, NAN};
  /* bfloat16 bit patterns: the top 16 bits of a binary32. */
  const uint16_t bf[] = {0x3f80, 0x4049, 0xc2f7, 0x0001, 0x7f7f, 0xff80, 0x8000};
  const float bv[] = {1.0f, 3.140625f, -123.5f, 0x1p-133f, 0x1.fep127f, -INFINITY, -0.0f};
  const size_t nh = sizeof h / sizeof h[0], nb = sizeof bf / sizeof bf[0];
  unsigned char data[64];
  for (size_t i = 0; i < nh; i++) {
    data[2 * i] = (unsigned char)(h[i] & 0xff);
    data[2 * i + 1] = (unsigned char)(h[i] >> 8);
  }
  for (size_t i = 0; i < nb; i++) {
    data[2 * nh + 2 * i] = (unsigned char)(bf[i] & 0xff);
    data[2 * nh + 2 * i + 1] = (unsigned char)(bf[i] >> 8);
  }
  char json[256];
  snprintf(json, sizeof json,
           "{\"h\":{\"dtype\":\"F16\",\"shape\":[%zu],\"data_offsets\":[0,%zu]},"
           "\"b\":{\"dtype\":\"BF16\",\"shape\":[%zu],\"data_offsets\":[%zu,%zu]}}",
           nh, 2 * nh, nb, 2 * nh, 2 * nh + 2 * nb);
  size_t len;
  unsigned char *file = craft(json, data, 2 * (nh + nb), &len);
  crate_st *st = NULL;
  assert_int_equal(crate_st_open_memory(file, len, NULL, &st), CRATE_STATUS_OK);
  crate_st_tensor th, tb;
  assert_int_equal(crate_st_find(st, "h", &th), CRATE_STATUS_OK);
  assert_int_equal(crate_st_find(st, "b", &tb), CRATE_STATUS_OK);
  assert_int_equal(th.dtype, CRATE_ST_F16);
  assert_int_equal(tb.dtype, CRATE_ST_BF16);
  size_t bad = 0;
  for (size_t i = 0; i < nh; i++) {
    bool ok = isnan(hv[i]) ? isnan(th.data[i]) : memcmp(&th.data[i], &hv[i], sizeof(float)) == 0;
    if (!ok)
      printf("# F16 0x%04x -> %a, want %a\n", h[i], (double)th.data[i], (double)hv[i]);
    bad += !ok;
  }
  for (size_t i = 0; i < nb; i++) {
    bool ok = memcmp(&tb.data[i], &bv[i], sizeof(float)) == 0;
    if (!ok)
      printf("# BF16 0x%04x -> %a, want %a\n", bf[i], (double)tb.data[i], (double)bv[i]);
    bad += !ok;
  }
  crate_report("ST12",
               "%zu F16 (normal, subnormal, max, +-0, +-Inf, NaN) and %zu BF16 known "
               "answers: %zu bit mismatches",
               nh, nb, bad);
  assert_int_equal(bad, 0);
  crate_st_close(st);
  free(file);
}

static void test_st_edge_cases(void **state) {
  (void)state;
  /* Header order is free, the JSON is not padded (data at an odd offset, so
   * the F32 values are not 4-aligned in the buffer), rank-0 and zero-size
   * tensors, and an F64 tensor at an unaligned position. */
  unsigned char data[4 + 8 + 4];
  const float f = -1.5f, g = 6.0e-39f; /* g is subnormal */
  const double d = 0.1;
  memcpy(data, &f, 4);
  memcpy(data + 4, &d, 8);
  memcpy(data + 12, &g, 4);
  char json[512];
  snprintf(json, sizeof json, "%s",
           "{\"z\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]},"
           "\"e\":{\"dtype\":\"F32\",\"shape\":[3,0],\"data_offsets\":[4,4]},"
           "\"d\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[4,12]},"
           "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
           "\"__metadata__\":{\"k\":\"v\"},\"x\":{\"dtype\":\"F32\",\"shape\":[0],"
           "\"data_offsets\":[16,16]}}");
  if (strlen(json) % 4 == 0) /* make 8 + N odd-aligned: trailing whitespace is legal JSON */
    strcat(json, " ");
  size_t len;
  unsigned char *b = craft(json, data, sizeof data, &len);
  crate_check((len - sizeof data) % 4 != 0, "the crafted data should be unaligned");
  crate_st *st = NULL;
  assert_int_equal(crate_st_open_memory(b, len, NULL, &st), CRATE_STATUS_OK);
  const char *order[5] = {"s", "e", "d", "z", "x"}; /* by (BEGIN, END) */
  crate_st_tensor t;
  size_t bad = 0;
  for (size_t i = 0; i < 5; i++) {
    assert_int_equal(crate_st_tensor_at(st, i, &t), CRATE_STATUS_OK);
    bad += strcmp(t.name, order[i]) != 0;
  }
  assert_int_equal(crate_st_find(st, "s", &t), 0);
  bad += t.ndim != 0 || t.count != 1 || t.data[0] != f;
  assert_int_equal(crate_st_find(st, "d", &t), 0);
  bad += t.data64 == NULL || t.data64[0] != d || t.data[0] != (float)d;
  assert_int_equal(crate_st_find(st, "z", &t), 0);
  bad += memcmp(&t.data[0], &g, 4) != 0;
  assert_int_equal(crate_st_find(st, "e", &t), 0);
  bad += t.count != 0 || t.ndim != 2 || t.shape[0] != 3 || t.shape[1] != 0;
  assert_string_equal(crate_st_metadata(st, "k"), "v");
  crate_report("ST13",
               "unpadded header (unaligned data), free header order, rank-0, zero-size: "
               "%zu problems",
               bad);
  assert_int_equal(bad, 0);
  crate_st_close(st);
  free(b);
}

static void test_st_io_errors(void **state) {
  (void)state;
  char path[128];
  tmp_path(path, sizeof path, "does-not-exist.safetensors");
  crate_st *st = NULL;
  int rc = crate_st_open(path, &st);
  crate_report("ST14", "missing file: status %d (%s)", rc, crate_error_message());
  assert_int_equal(rc, CRATE_STATUS_ENOENT);
  assert_null(st);
  assert_non_null(strstr(crate_error_message(), "does-not-exist.safetensors"));
  rc = crate_st_open(g_dir, &st);
  crate_report("ST14", "directory: status %d (%s)", rc, crate_error_message());
  assert_int_equal(rc, CRATE_STATUS_EIO);
  /* Writing into a missing directory fails with EIO and leaves nothing. */
  crate_st_writer *w = NULL;
  assert_int_equal(crate_st_writer_create(&w), CRATE_STATUS_OK);
  const float x = 1;
  assert_int_equal(crate_st_writer_add_f32(w, "x", 0, NULL, &x), CRATE_STATUS_OK);
  tmp_path(path, sizeof path, "no/such/dir/out.safetensors");
  rc = crate_st_writer_write(w, path);
  crate_report("ST14", "write into a missing directory: status %d (%s)", rc, crate_error_message());
  assert_int_equal(rc, CRATE_STATUS_EIO);
  /* Writer argument errors. */
  const size_t sh[1] = {1};
  assert_int_equal(crate_st_writer_add_f32(w, "x", 1, sh, &x), CRATE_STATUS_EINVAL);
  assert_non_null(strstr(crate_error_message(), "added twice"));
  assert_int_equal(crate_st_writer_add_f32(w, "__metadata__", 1, sh, &x), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_st_writer_add_f32(w, "", 1, sh, &x), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_st_writer_add_f32(w, "bad\xff", 1, sh, &x), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_st_writer_add_f32(w, "y", 1, sh, NULL), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_st_writer_add_f32(w, "y", 9, sh, &x), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_st_writer_set_metadata(w, "k", NULL), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_st_writer_set_metadata(w, "k", "\xc3"), CRATE_STATUS_EINVAL);
  /* Overwriting an existing file replaces it. */
  tmp_path(path, sizeof path, "over.safetensors");
  write_bytes(path, "junk", 4);
  assert_int_equal(crate_st_writer_write(w, path), CRATE_STATUS_OK);
  assert_int_equal(crate_st_open(path, &st), CRATE_STATUS_OK);
  assert_int_equal(crate_st_count(st), 1);
  crate_st_close(st);
  crate_st_writer_destroy(w);
  crate_st_close(NULL);
  crate_st_writer_destroy(NULL);
}

/* Random corruptions of a valid file: every result is OK or EFORMAT, never a
 * crash (run under ASan/UBSan in CI), and an OK file still has sane views. */
static void test_st_random_corruption(void **state) {
  (void)state;
  sample s;
  fill_sample(&s);
  crate_st_writer *w = make_writer(&s);
  void *mem;
  size_t len;
  assert_int_equal(crate_st_writer_to_memory(w, &mem, &len), CRATE_STATUS_OK);
  crate_st_writer_destroy(w);
  unsigned char *buf = malloc(len);
  assert_non_null(buf);
  crate_rng r;
  crate_rng_init(&r, 2024, CRATE_RNG_NOISE);
  const size_t trials = 3000;
  size_t ok = 0, fmt = 0, other = 0;
  for (size_t t = 0; t < trials; t++) {
    memcpy(buf, mem, len);
    size_t flips = 1 + crate_rng_u32(&r) % 3;
    for (size_t k = 0; k < flips; k++) {
      /* mostly inside the 8-byte length and the JSON header */
      size_t hdr_end = len - (sizeof s.a + sizeof s.b + sizeof s.scalar + sizeof s.f64);
      size_t pos = crate_rng_u32(&r) % (k == 0 ? hdr_end : len);
      buf[pos] = (unsigned char)crate_rng_u32(&r);
    }
    crate_st *st = NULL;
    int rc = crate_st_open_memory(buf, len, NULL, &st);
    if (rc == CRATE_STATUS_OK) {
      ok++;
      for (size_t i = 0; i < crate_st_count(st); i++) {
        crate_st_tensor tv;
        assert_int_equal(crate_st_tensor_at(st, i, &tv), CRATE_STATUS_OK);
        volatile float sink = 0;
        for (size_t j = 0; j < tv.count; j++)
          sink += tv.data[j];
        (void)sink;
      }
      crate_st_close(st);
    } else if (rc == CRATE_STATUS_EFORMAT) {
      fmt++;
    } else {
      other++;
    }
  }
  crate_report("ST15", "%zu random corruptions: %zu still valid, %zu EFORMAT, %zu other", trials,
               ok, fmt, other);
  assert_int_equal(other, 0);
  assert_true(fmt > trials / 2);
  free(buf);
  free(mem);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_st_roundtrip),
      cmocka_unit_test(test_st_rewrite_identical),
      cmocka_unit_test(test_st_truncated),
      cmocka_unit_test(test_st_hole),
      cmocka_unit_test(test_st_overlap),
      cmocka_unit_test(test_st_size_mismatch),
      cmocka_unit_test(test_st_duplicate_key),
      cmocka_unit_test(test_st_bad_dtype),
      cmocka_unit_test(test_st_oversize_header),
      cmocka_unit_test(test_st_header_past_end),
      cmocka_unit_test(test_st_metadata_nonstring),
      cmocka_unit_test(test_st_f16_bf16),
      cmocka_unit_test(test_st_edge_cases),
      cmocka_unit_test(test_st_io_errors),
      cmocka_unit_test(test_st_random_corruption),
  };
  if (setup_dir(NULL) != 0) {
    fprintf(stderr, "test_safetensors: cannot create a temporary directory: %s\n", strerror(errno));
    return 1;
  }
  int rc = CRATE_RUN("safetensors", tests, argc, argv);
  remove_dir(NULL);
  return rc;
}

/* threads.c: the thread counts, the BLAS kernel family and the machine's
 * SGEMM rate (include/crate/threads.h; STYLE.md §6 "Threads", §9.2; issue 6).
 *
 * OpenBLAS exports openblas_set_num_threads(); other BLAS builds (the
 * reference BLAS behind the generic 'blas' dependency) have no such call.
 * The symbol is declared weak, so the library links either way and the call
 * is skipped when the symbol is absent.  OpenBLAS splits a GEMM over threads
 * by output blocks, so for a fixed thread count results are bit-identical
 * run to run.  In an OpenMP build (CRATE_HAVE_OPENMP) crate_set_threads also
 * sets the OpenMP team size used by libcrate's parallel loops.
 *
 * crate_blas_core() reports the kernel family OpenBLAS chose at load time.
 * Debian's DYNAMIC_ARCH OpenBLAS 0.3.21 does not know recent Xeons (e.g.
 * cpuid family 6 model 207) and falls back to its SSE3 "Prescott" kernels,
 * about 2.5x slower than "SkylakeX" on the same machine; the environment
 * variable OPENBLAS_CORETYPE=SkylakeX (or Haswell on AVX2-only machines),
 * read when the library loads, fixes that.  The crate program sets it and
 * re-executes itself (tools/cli.c); crate_blas_core_is_generic tells it when.
 *
 * crate_blas_sgemm_rate times the BLAS itself: the ceiling `crate bench`
 * divides the achieved training rate by.
 *
 * Non-goals: FFTW threads, CPU affinity.
 */
#include <string.h>
#include <time.h>

#include "crate/rng.h"
#include "crate/threads.h"
#include "internal.h"

#if defined(CRATE_HAVE_OPENMP)
#include <omp.h>
#endif

#if defined(__GNUC__)
extern void openblas_set_num_threads(int num_threads) __attribute__((weak));
extern char *openblas_get_corename(void) __attribute__((weak));
extern int openblas_get_num_threads(void) __attribute__((weak));
#endif

static int g_threads = 1;
static bool g_threads_set = false;
static crate_thread_owner owner_now(void);

int crate_set_threads(int n) {
  if (n < 1)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "threads: need at least 1 thread, got %d", n);
#if defined(__GNUC__)
  if (openblas_set_num_threads)
    openblas_set_num_threads(n);
#endif
#if defined(CRATE_HAVE_OPENMP)
  omp_set_num_threads(owner_now() == CRATE_THREADS_OPENMP ? n : 1);
#endif
  g_threads = n;
  g_threads_set = true;
  return CRATE_STATUS_OK;
}

int crate_get_threads(void) {
  return g_threads;
}

int crate__blas_serial_begin(bool parallel_region) {
#if defined(CRATE_HAVE_OPENMP) && defined(__GNUC__)
  if (parallel_region && openblas_set_num_threads && openblas_get_num_threads &&
      omp_get_max_threads() > 1) {
    const int n = openblas_get_num_threads();
    if (n > 1) {
      openblas_set_num_threads(1);
      return n;
    }
  }
#else
  (void)parallel_region;
#endif
  return 0;
}

void crate__blas_serial_end(int saved) {
#if defined(__GNUC__)
  if (saved > 0 && openblas_set_num_threads)
    openblas_set_num_threads(saved);
#else
  (void)saved;
#endif
}

/* ---- the owner of the model path's threads ------------------------------------ */

static int g_owner = -1; /* crate_thread_owner, -1 = not decided yet */

static crate_thread_owner owner_now(void) {
#if defined(CRATE_HAVE_OPENMP)
  if (g_owner < 0) {
    const char *e = getenv("CRATE_THREAD_OWNER");
    g_owner = (e && strcmp(e, "blas") == 0) ? CRATE_THREADS_BLAS : CRATE_THREADS_OPENMP;
  }
  return (crate_thread_owner)g_owner;
#else
  return CRATE_THREADS_BLAS;
#endif
}

int crate_set_thread_owner(crate_thread_owner owner) {
  if (owner != CRATE_THREADS_BLAS && owner != CRATE_THREADS_OPENMP)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "threads: unknown thread owner %d", (int)owner);
  g_owner = (int)owner;
  if (g_threads_set)
    return crate_set_threads(g_threads);
  return CRATE_STATUS_OK;
}

crate_thread_owner crate_get_thread_owner(void) {
  return owner_now();
}

int crate__model_region_begin(void) {
  return crate__blas_serial_begin(owner_now() == CRATE_THREADS_OPENMP);
}

#if defined(CRATE_HAVE_OPENMP)
/* Tile boundary i of n over a length L: multiples of 16 except the last. */
static size_t tile_bound(size_t L, size_t n, size_t i) {
  return i >= n ? L : L * i / n / 16 * 16;
}
#endif

void crate__sgemm_par(bool ta, bool tb, size_t M, size_t N, size_t K, float alpha, const float *A,
                      size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc) {
  /* C (M, N) = alpha op(A) op(B) + beta C, row-major (see crate_sgemm) */
#if defined(CRATE_HAVE_OPENMP)
  const int T = omp_get_max_threads();
  const double work = 2.0 * (double)M * (double)N * (double)K;
  if (owner_now() == CRATE_THREADS_OPENMP && T > 1 && !omp_in_parallel() && work >= 4e6) {
    /* A grid of mt x nt output tiles, at least 16 rows / columns each,
     * rows first: mt nt >= T where the sizes allow. */
    const size_t maxm = (M + 15) / 16, maxn = (N + 15) / 16;
    const size_t mt = (size_t)T < maxm ? (size_t)T : maxm;
    size_t nt = ((size_t)T + mt - 1) / mt;
    nt = nt < maxn ? nt : maxn;
    const size_t tiles = mt * nt;
    const int saved = crate__blas_serial_begin(true);
#pragma omp parallel for schedule(static)
    for (size_t t = 0; t < tiles; t++) {
      const size_t i = t / nt, j = t % nt;
      const size_t r0 = tile_bound(M, mt, i), r1 = tile_bound(M, mt, i + 1);
      const size_t c0 = tile_bound(N, nt, j), c1 = tile_bound(N, nt, j + 1);
      if (r1 > r0 && c1 > c0)
        crate_sgemm(ta, tb, r1 - r0, c1 - c0, K, alpha, ta ? A + r0 : A + r0 * lda, lda,
                    tb ? B + c0 * ldb : B + c0, ldb, beta, C + r0 * ldc + c0, ldc);
    }
    crate__blas_serial_end(saved);
    return;
  }
#endif
  crate_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

bool crate_have_openmp(void) {
#if defined(CRATE_HAVE_OPENMP)
  return true;
#else
  return false;
#endif
}

const char *crate_blas_core(void) {
#if defined(__GNUC__)
  if (openblas_get_corename) {
    const char *name = openblas_get_corename();
    return name ? name : "unknown";
  }
#endif
  return "unknown";
}

bool crate_blas_core_is_generic(const char *core) {
  static const char *const generic[] = {"Prescott",  "Core2",      "Penryn",    "Dunnington",
                                        "Nehalem",   "Atom",       "Katmai",    "Coppermine",
                                        "Northwood", "Banias",     "Opteron",   "Barcelona",
                                        "Nano",      "Opteron_SSE3"};
  if (!core)
    return false;
  for (size_t i = 0; i < sizeof generic / sizeof generic[0]; i++)
    if (strcmp(core, generic[i]) == 0)
      return true;
  return false;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int crate_blas_sgemm_rate(size_t M, size_t N, size_t K, double min_seconds, double *gflops) {
  /* A: (M, K), B: (K, N), C: (M, N), row-major */
  CRATE_ASSERT(gflops);
  const size_t lim = (size_t)1 << 20;
  if (M == 0 || N == 0 || K == 0 || M > lim || N > lim || K > lim)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "threads: sgemm size %zu x %zu x %zu outside [1, 2^20]",
                       M, N, K);
  if (!isfinite(min_seconds) || min_seconds < 0.0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "threads: min_seconds must be finite and >= 0, got %g",
                       min_seconds);
  float *A = malloc(M * K * sizeof *A), *Bm = malloc(K * N * sizeof *Bm);
  float *C = malloc(M * N * sizeof *C);
  if (!A || !Bm || !C) {
    free(A);
    free(Bm);
    free(C);
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "threads: out of memory for a %zu x %zu x %zu sgemm",
                       M, N, K);
  }
  crate_rng r;
  crate_rng_init(&r, 6, CRATE_RNG_NOISE);
  for (size_t i = 0; i < M * K; i++)
    A[i] = 2.0f * crate_rng_uniformf(&r) - 1.0f;
  for (size_t i = 0; i < K * N; i++)
    Bm[i] = 2.0f * crate_rng_uniformf(&r) - 1.0f;
  crate_sgemm(false, false, M, N, K, 1.0f, A, K, Bm, N, 0.0f, C, N); /* warm-up */
  double best = 0.0, t_total = 0.0;
  for (int rep = 0; rep < 3 || t_total < min_seconds; rep++) {
    const double t0 = now_s();
    crate_sgemm(false, false, M, N, K, 1.0f, A, K, Bm, N, 0.0f, C, N);
    const double dt = now_s() - t0;
    t_total += dt;
    if (dt > 0.0 && 1.0 / dt > best)
      best = 1.0 / dt;
  }
  free(A);
  free(Bm);
  free(C);
  *gflops = 2.0 * (double)M * (double)N * (double)K * best * 1e-9;
  return CRATE_STATUS_OK;
}

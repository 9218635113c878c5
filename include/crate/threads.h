/* threads.h: who owns the threads, which BLAS kernels run, and how fast the
 * machine's SGEMM is (STYLE.md §6 "Threads", §9.2; issue 6).
 *
 * One owner of threads per code path (STYLE.md §6).  In an OpenMP build the
 * model path (forward, backward, inference) belongs to OpenMP by default:
 * the large token GEMMs ((B N) x d x d: qkv, out-projection, ISTA, the
 * decoder dictionary, their backward) are split into output tiles, the
 * per-image x per-head attention products and the row-wise loops (softmax,
 * LayerNorm, element-wise passes) are OpenMP loops, and every BLAS call
 * inside runs single-threaded.  Other code paths (LAPACK in the math
 * modules) keep OpenBLAS's threads.  crate_set_thread_owner(BLAS) gives the
 * model path to OpenBLAS instead (threaded BLAS calls, serial loops).
 * For a fixed thread count, owner and BLAS core every result is
 * bit-identical run to run: each OpenMP work item writes its own outputs,
 * and every reduction keeps a fixed order.
 */
#ifndef CRATE_THREADS_H
#define CRATE_THREADS_H

#include "crate/defs.h"

/** Sets the number of worker threads: OpenBLAS threads (a no-op with a BLAS
 *  that has no such control) and, in an OpenMP build, the OpenMP team size
 *  of libcrate's parallel loops (1 when the owner is CRATE_THREADS_BLAS).
 *  @return OK or EINVAL (n < 1). */
CRATE_API int crate_set_threads(int n);

/** @return the thread count last set by crate_set_threads (1 before any
 *  call). */
CRATE_API int crate_get_threads(void);

/** Who owns the threads of the model code path (crate_model_forward,
 *  _backward, _infer, hence training and evaluation).  STYLE.md §6: one
 *  owner per code path; two pools that both spin for work on the same cores
 *  (OpenMP's team and OpenBLAS's) measured up to 10x slower at 16 threads
 *  (benchmarks/README.md). */
typedef enum crate_thread_owner {
  /* OpenMP: the large token GEMMs split into output tiles, the per-image x
   * per-head attention and the row-wise loops on OpenMP threads; every BLAS
   * call of the model path single-threaded (the default in an OpenMP build) */
  CRATE_THREADS_OPENMP = 0,
  /* OpenBLAS: threaded BLAS calls, every libcrate loop serial (the only mode
   * of a build without OpenMP) */
  CRATE_THREADS_BLAS = 1,
} crate_thread_owner;

/** Chooses the owner (before crate_set_threads, or it re-applies the last
 *  thread count).  Before any call, the environment variable
 *  CRATE_THREAD_OWNER ("openmp" or "blas") decides, else CRATE_THREADS_OPENMP.
 *  Results may differ by float rounding between owners and thread counts,
 *  never between runs.  @return OK or EINVAL (not an owner). */
CRATE_API int crate_set_thread_owner(crate_thread_owner owner);
/** @return the owner in effect (always CRATE_THREADS_BLAS without OpenMP). */
CRATE_API crate_thread_owner crate_get_thread_owner(void);

/** @return true when libcrate was built with OpenMP (meson option
 *  'openmp'). */
CRATE_API bool crate_have_openmp(void);

/** @return the BLAS kernel family in use, e.g. OpenBLAS's "SkylakeX",
 *  "Haswell" or "Prescott" (static storage), or "unknown" for a BLAS that
 *  cannot say.  OpenBLAS picks it when it loads; OPENBLAS_CORETYPE overrides
 *  it (results are bit-identical only for the same core and thread count). */
CRATE_API const char *crate_blas_core(void);

/** True for the OpenBLAS kernel families that use no AVX (its fallbacks for
 *  CPUs it does not recognise: "Prescott", "Core2", "Penryn", "Dunnington",
 *  "Nehalem", "Atom", "Katmai", "Coppermine", "Northwood", "Banias",
 *  "Opteron", "Barcelona", "Nano").  @param core a name from crate_blas_core. */
CRATE_API bool crate_blas_core_is_generic(const char *core);

/** Measures the SGEMM rate of the BLAS in use with the current thread
 *  count: C (M, N) = A (M, K) B (K, N), row-major, operands drawn uniform in
 *  [-1, 1) with a fixed seed, one untimed warm-up call, then calls repeated
 *  until min_seconds have passed (at least 3).  Allocates 4 (MK + KN + MN)
 *  bytes and frees them before returning.
 *  @param gflops receives the best single-call rate, 2 M N K / t / 1e9
 *  @return OK, EINVAL (a size 0 or above 2^20, min_seconds not finite or
 *          negative) or ENOMEM. */
CRATE_API int crate_blas_sgemm_rate(size_t M, size_t N, size_t K, double min_seconds,
                                    double *gflops);

#endif

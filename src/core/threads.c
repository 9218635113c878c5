/* threads.c: the BLAS thread count (STYLE.md §6 "Threads", §9.2).
 *
 * OpenBLAS exports openblas_set_num_threads(); other BLAS builds (the
 * reference BLAS behind the generic 'blas' dependency) have no such call.
 * The symbol is declared weak, so the library links either way and the call
 * is skipped when the symbol is absent.  OpenBLAS splits a GEMM over threads
 * by output blocks, so for a fixed thread count results are bit-identical
 * run to run.
 *
 * crate_blas_core() reports the kernel family OpenBLAS chose at load time.
 * Debian's DYNAMIC_ARCH OpenBLAS 0.3.21 does not know recent Xeons (e.g.
 * cpuid family 6 model 207) and falls back to its SSE3 "Prescott" kernels,
 * about 2.5x slower than "SkylakeX" on the same machine; the environment
 * variable OPENBLAS_CORETYPE=SkylakeX (or Haswell on AVX2-only machines),
 * read when the library loads, fixes that.  Tools print the core name.
 *
 * Non-goals: OpenMP control (the library has no OpenMP regions yet), FFTW
 * threads.
 */
#include "crate/train.h"
#include "internal.h"

#if defined(__GNUC__)
extern void openblas_set_num_threads(int num_threads) __attribute__((weak));
extern char *openblas_get_corename(void) __attribute__((weak));
#endif

int crate_set_threads(int n) {
  if (n < 1)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "threads: need at least 1 thread, got %d", n);
#if defined(__GNUC__)
  if (openblas_set_num_threads)
    openblas_set_num_threads(n);
#endif
  return CRATE_STATUS_OK;
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

// posenc internals: OpenMP parallel regions that may stay serial.
#pragma once

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "config.hpp"

POSENC_NAMESPACE_BEGIN
namespace detail {

/// Runs body() in an OpenMP parallel region of `threads` threads (0: the default count) when
/// `parallel` is true, otherwise directly on the calling thread. The body may use orphaned
/// worksharing (`omp for`, `omp single`) and omp_get_thread_num / omp_get_num_threads.
///
/// Not `#pragma omp parallel if (parallel)`: a region whose if-clause is false still runs its
/// body as a team of one, in which Eigen (it parallelises a large product unless
/// omp_get_num_threads() > 1) opens a nested region per product, whose threads libgomp creates
/// and joins every time. In a training step of many small products that made 2 threads 20 x
/// slower than 1 (bench_training, D = 64, N = 128).
template <class F>
void parallel_region(bool parallel, int threads, F&& body) {
#if defined(_OPENMP)
  if (parallel) {
    if (threads > 0) {
#pragma omp parallel num_threads(threads)
      body();
    } else {
#pragma omp parallel
      body();
    }
    return;
  }
#else
  (void)parallel;
  (void)threads;
#endif
  body();
}

}  // namespace detail
POSENC_NAMESPACE_END

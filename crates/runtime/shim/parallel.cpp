// How many threads the shims' `at::parallel_for` loops really run on. `at::parallel_for` is
// a header template: compiled without `-fopenmp` it runs the whole range on the calling
// thread, whatever `at::set_num_threads` says (the decode gemv and the fused cross-entropy
// did so, unnoticed, until 2026-11-29). build.rs compiles the shims with `-fopenmp` against
// libtorch's own OpenMP runtime; this probe lets a test hold that in place.
#include <ATen/Parallel.h>
#include <atomic>
#include <cstdint>

// The number of distinct threads that ran a part of a 64-task `at::parallel_for`, or -1 if
// libtorch threw.
extern "C" int ladder_parallel_threads() noexcept {
  try {
    std::atomic<uint64_t> seen{0};
    at::parallel_for(0, 64, 1, [&](int64_t, int64_t) {
      const int id = at::get_thread_num();
      seen.fetch_or(uint64_t(1) << (id & 63), std::memory_order_relaxed);
    });
    return __builtin_popcountll(seen.load());
  } catch (...) {
    return -1;
  }
}

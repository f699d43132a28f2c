// Tensors backed by transparent huge pages (2 MiB) for memory that is read in full on every
// step, such as decode's weights. With 4 KiB pages, a sweep over a 150 MB weight touches
// 37,000 pages and the hardware prefetcher stops at every page boundary; with 2 MiB pages
// it streams. libtorch can do this for every allocation (THP_MEM_ALLOC_ENABLE=1, read once
// per process), but only from the environment before its first allocation; this shim does
// it for the tensors asked for, whatever the process. On kernels where THP is off
// (`/sys/kernel/mm/transparent_hugepage/enabled` = never) madvise fails and the memory is
// plain 4 KiB pages: still correct.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <cstdlib>
#include <sys/mman.h>

namespace {
constexpr size_t kHuge = size_t(2) << 20;
}

// A new contiguous tensor with `src`'s sizes, dtype and values in 2 MiB-aligned memory
// advised for huge pages (freed with the tensor; plain pages where the kernel declines the
// advice), as a new at::Tensor* for tch; or null when `src` is not a CPU tensor or on any
// failure.
extern "C" void *ladder_huge_copy(void *src) noexcept {
  void *p = nullptr;
  bool owned = false; // once the tensor holds `p`, its deleter frees it
  try {
    const at::Tensor &s = *static_cast<at::Tensor *>(src);
    if (!s.device().is_cpu()) return nullptr;
    const size_t bytes = size_t(s.numel()) * s.element_size();
    const size_t len = (bytes + kHuge - 1) / kHuge * kHuge;
    if (len == 0 || posix_memalign(&p, kHuge, len) != 0) return nullptr;
#if defined(MADV_HUGEPAGE)
    madvise(p, len, MADV_HUGEPAGE); // before the first touch; ignored where THP is off
#endif
    at::Tensor t = at::from_blob(
        p, s.sizes(), [](void *q) { std::free(q); }, s.options());
    owned = true;
    t.copy_(s);
    return new at::Tensor(std::move(t));
  } catch (...) {
    if (!owned) std::free(p);
    return nullptr;
  }
}

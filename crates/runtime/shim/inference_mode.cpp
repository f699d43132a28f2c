// c10::InferenceMode for Rust (tch binds no_grad but not inference mode): inside it,
// libtorch skips the autograd and ADInplaceOrView dispatch keys, version counters and
// view metadata, which is most of a small op's cost. The guard is thread-local RAII, so
// Rust holds a heap-allocated one and deletes it on the same thread (runtime::InferenceMode).
#include <c10/core/InferenceMode.h>

extern "C" void *ladder_inference_mode_enter() noexcept {
  try {
    return new c10::InferenceMode(true);
  } catch (...) {
    return nullptr;
  }
}

extern "C" void ladder_inference_mode_exit(void *guard) noexcept {
  delete static_cast<c10::InferenceMode *>(guard);
}

extern "C" int ladder_inference_mode_is_enabled() noexcept {
  return c10::InferenceMode::is_enabled() ? 1 : 0;
}

// Declaration stub (see README.md): only what ProcessGroupGloo.hpp names.
#pragma once
#include <chrono>

namespace gloo {
class Context {
 public:
  void setTimeout(std::chrono::milliseconds timeout);
};
} // namespace gloo

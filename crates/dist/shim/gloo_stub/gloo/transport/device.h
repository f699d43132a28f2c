// Declaration stub (see README.md): only what ProcessGroupGloo.hpp names.
#pragma once

namespace gloo {
namespace transport {
class Device;
class UnboundBuffer;
} // namespace transport
} // namespace gloo

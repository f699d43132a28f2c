// A C API over libtorch's c10d (TCPStore rendezvous + ProcessGroupGloo), for the Rust
// crate `dist`. Every entry point catches every C++ exception and returns it as a
// malloc'd error string (free with ladder_dist_free_str): nothing throws into Rust.
// Tensors cross as `at::Tensor*`, the pointer tch/torch-sys use for `C_tensor`.
//
// Reference: PyTorch `torch.distributed.init_process_group` (env:// rendezvous, Gloo
// backend, and "cpu:gloo,cuda:nccl": one group whose collectives go to Gloo for CPU
// tensors and to NCCL for CUDA ones) and torch/csrc/distributed/c10d/
// {TCPStore,ProcessGroupGloo,ProcessGroupNCCL}.hpp. NCCL is compiled in only where the
// build found libtorch_cuda and the CUDA and NCCL headers (LADDER_NCCL; see build.rs).
#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef LADDER_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend; // Gloo: CPU tensors, and the barrier
  int rank;
  int world;
  c10::intrusive_ptr<c10d::Backend> nccl; // CUDA tensors; null unless added
};

char* dup(const std::string& s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  if (out != nullptr) {
    std::memcpy(out, s.c_str(), s.size() + 1);
  }
  return out;
}

// First line of a c10 error: the rest is a C++ backtrace a user does not need.
std::string first_line(const char* what) {
  std::string s(what == nullptr ? "" : what);
  auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

template <typename F>
int guarded(char** err, F&& f) {
  try {
    f();
    return 0;
  } catch (const c10::Error& e) {
    *err = dup(first_line(e.what_without_backtrace()));
  } catch (const std::exception& e) {
    *err = dup(first_line(e.what()));
  } catch (...) {
    *err = dup("unknown C++ exception");
  }
  return 1;
}

std::string rank_key(int r) {
  return "ladder/rank/" + std::to_string(r);
}

std::string as_string(const std::vector<uint8_t>& v) {
  return std::string(v.begin(), v.end());
}

// Every rank publishes its WORLD_SIZE and checks it against rank 0's, then waits until all
// ranks have arrived: a mismatch or a missing rank becomes a clear error instead of a hang.
void rendezvous(c10d::Store& store, int rank, int world, std::chrono::milliseconds timeout) {
  const std::string mine = std::to_string(world);
  if (store.add("ladder/claims/" + std::to_string(rank), 1) > 1) {
    throw std::runtime_error(
        "another process already joined as RANK=" + std::to_string(rank) +
        ": every process needs a distinct RANK in 0..WORLD_SIZE-1");
  }
  store.set(rank_key(rank), std::vector<uint8_t>(mine.begin(), mine.end()));
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<int> missing;
  for (;;) {
    missing.clear();
    for (int r = 0; r < world; ++r) {
      if (!store.check({rank_key(r)})) {
        missing.push_back(r);
      }
    }
    if (store.check({rank_key(0)})) {
      std::string theirs = as_string(store.get(rank_key(0)));
      if (theirs != mine) {
        throw std::runtime_error(
            "WORLD_SIZE mismatch: rank 0 says " + theirs + ", rank " +
            std::to_string(rank) + " says " + mine);
      }
    }
    if (missing.empty()) {
      return;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      std::ostringstream msg;
      msg << "rank(s)";
      for (int r : missing) {
        msg << " " << r;
      }
      msg << " of WORLD_SIZE=" << world << " did not join within " << timeout.count()
          << " ms (did every process start, with the same MASTER_ADDR/MASTER_PORT?)";
      throw std::runtime_error(msg.str());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

at::Tensor& tensor_ref(void* t) {
  if (t == nullptr) {
    throw std::runtime_error("null tensor");
  }
  at::Tensor& tensor = *static_cast<at::Tensor*>(t);
  if (!tensor.defined()) {
    throw std::runtime_error("undefined tensor");
  }
  if (!tensor.is_contiguous()) {
    throw std::runtime_error("collectives need a contiguous tensor");
  }
  return tensor;
}

// The backend for `t`: NCCL for a CUDA tensor (an error when the group has none), else Gloo.
c10d::Backend& backend_for(Group* g, const at::Tensor& t) {
  if (!t.is_cuda()) {
    return *g->backend;
  }
  if (!g->nccl) {
    throw std::runtime_error(
        "a CUDA tensor, but this group has no NCCL backend (built without NCCL, or no GPU "
        "was visible when the group was made)");
  }
  return *g->nccl;
}

void wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
  if (!work->wait()) {
    throw std::runtime_error(std::string(what) + " did not complete");
  }
}

} // namespace

extern "C" {

typedef struct Group ladder_dist_group;

// device_kind: 0 = createDeviceForHostname(device_arg), 1 = createDeviceForInterface(device_arg),
// 2 = createDefaultDevice(). is_server: whether this process hosts the TCPStore (rank 0,
// unless torchrun's agent already hosts it). Every key goes under `prefix`.
ladder_dist_group* ladder_dist_new_gloo(
    const char* master_addr,
    int master_port,
    int is_server,
    const char* prefix,
    int rank,
    int world,
    int64_t timeout_ms,
    int device_kind,
    const char* device_arg,
    int gloo_threads,
    char** err) {
  Group* out = nullptr;
  guarded(err, [&] {
    std::chrono::milliseconds timeout(timeout_ms);
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(master_port);
    so.isServer = is_server != 0;
    so.numWorkers = world;
    so.waitWorkers = false;
    so.timeout = timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(std::string(master_addr), so);
    auto store = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), tcp);
    rendezvous(*store, rank, world, timeout);

    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    switch (device_kind) {
      case 0:
        opts->devices.push_back(
            c10d::ProcessGroupGloo::createDeviceForHostname(device_arg));
        break;
      case 1:
        opts->devices.push_back(
            c10d::ProcessGroupGloo::createDeviceForInterface(device_arg));
        break;
      default:
        opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    opts->threads = gloo_threads > 0 ? gloo_threads : 1;
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>("gloo", store);
    auto backend = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, rank, world, opts);
    out = new Group{store, backend, rank, world, {}};
  });
  return out;
}

// op: 0 = sum, 1 = average (sum, then divide by the world size: Gloo has no AVG).
int ladder_dist_all_reduce(ladder_dist_group* g, void* tensor, int op, char** err) {
  return guarded(err, [&] {
    at::Tensor& t = tensor_ref(tensor);
    std::vector<at::Tensor> ts{t};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    wait(backend_for(g, t).allreduce(ts, o), "all-reduce");
    if (op == 1) {
      t.div_(g->world);
    }
  });
}

int ladder_dist_broadcast(ladder_dist_group* g, void* tensor, int root, char** err) {
  return guarded(err, [&] {
    at::Tensor& t = tensor_ref(tensor);
    std::vector<at::Tensor> ts{t};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    o.rootTensor = 0;
    wait(backend_for(g, t).broadcast(ts, o), "broadcast");
  });
}

// Whether this build has NCCL (1) or Gloo only (0).
int ladder_dist_has_nccl() {
#ifdef LADDER_NCCL
  return 1;
#else
  return 0;
#endif
}

// Adds an NCCL backend to `g` for its CUDA tensors, its keys under "nccl" in the group's
// store; the communicator itself is made by the first collective, on the device of its
// tensor (one GPU per rank: cuda:LOCAL_RANK). `timeout_ms` bounds every NCCL collective.
int ladder_dist_add_nccl(ladder_dist_group* g, int64_t timeout_ms, char** err) {
  return guarded(err, [&] {
#ifdef LADDER_NCCL
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = std::chrono::milliseconds(timeout_ms);
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>("nccl", g->store);
    g->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, g->rank, g->world, opts);
#else
    (void)g;
    (void)timeout_ms;
    throw std::runtime_error("this build has no NCCL (Gloo only)");
#endif
  });
}

int ladder_dist_barrier(ladder_dist_group* g, char** err) {
  return guarded(err, [&] { wait(g->backend->barrier(), "barrier"); });
}

// Hosts a TCPStore on `port` for `seconds` (what torchrun's agent does for its workers).
int ladder_dist_serve_store(int port, int world, int64_t seconds, char** err) {
  return guarded(err, [&] {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(port);
    so.isServer = true;
    so.numWorkers = world;
    so.waitWorkers = false;
    auto store = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", so);
    std::this_thread::sleep_for(std::chrono::seconds(seconds));
  });
}

void ladder_dist_free(ladder_dist_group* g) {
  try {
    if (g != nullptr && g->nccl) {
      g->nccl->shutdown(); // as destroy_process_group() does: no "unclean" warning
    }
    delete g;
  } catch (...) {
  }
}

void ladder_dist_free_str(char* s) {
  std::free(s);
}

} // extern "C"

//! Data-parallel collectives on libtorch's own c10d: a `TCPStore` rendezvous and
//! `ProcessGroupGloo`, reached through a small C++ shim (`shim/c10d_shim.cpp`) that turns
//! every C++ exception into an error string. The environment contract is torchrun's
//! (PyTorch `torch.distributed.init_process_group(init_method="env://")`).
//!
//! Gloo runs on CPU tensors. NCCL (`ProcessGroupNCCL`) runs on CUDA tensors where the build
//! found it (`crates/dist/build.rs`; [`nccl_built`]) and a GPU is visible: the group then has
//! both, and each collective goes to the one for its tensor's device (PyTorch's
//! "cpu:gloo,cuda:nccl"). Elsewhere CUDA tensors are refused with an error saying why.
mod env;

pub use env::{timeout_from_env, DistEnv, TIMEOUT_VAR, VARS};

use anyhow::{bail, Result};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::time::Duration;
use tch::{Device, Tensor};

#[repr(C)]
struct RawGroup {
    _private: [u8; 0],
}

extern "C" {
    #[allow(clippy::too_many_arguments)]
    fn ladder_dist_new_gloo(
        master_addr: *const c_char,
        master_port: c_int,
        is_server: c_int,
        prefix: *const c_char,
        rank: c_int,
        world: c_int,
        timeout_ms: i64,
        device_kind: c_int,
        device_arg: *const c_char,
        gloo_threads: c_int,
        err: *mut *mut c_char,
    ) -> *mut RawGroup;
    fn ladder_dist_all_reduce(
        g: *mut RawGroup,
        t: *mut c_void,
        op: c_int,
        err: *mut *mut c_char,
    ) -> c_int;
    fn ladder_dist_broadcast(
        g: *mut RawGroup,
        t: *mut c_void,
        root: c_int,
        err: *mut *mut c_char,
    ) -> c_int;
    fn ladder_dist_barrier(g: *mut RawGroup, err: *mut *mut c_char) -> c_int;
    fn ladder_dist_has_nccl() -> c_int;
    fn ladder_dist_add_nccl(g: *mut RawGroup, timeout_ms: i64, err: *mut *mut c_char) -> c_int;
    fn ladder_dist_serve_store(
        port: c_int,
        world: c_int,
        seconds: i64,
        err: *mut *mut c_char,
    ) -> c_int;
    fn ladder_dist_free(g: *mut RawGroup);
    fn ladder_dist_free_str(s: *mut c_char);
}

/// Takes ownership of a shim error string.
fn take_err(err: *mut c_char) -> String {
    if err.is_null() {
        return "unknown error (the shim returned no message)".into();
    }
    // SAFETY: the shim returns a NUL-terminated malloc'd string, freed once here.
    let s = unsafe { CStr::from_ptr(err) }
        .to_string_lossy()
        .into_owned();
    unsafe { ladder_dist_free_str(err) };
    s
}

/// Whether this build has the NCCL backend (CUDA tensors); Gloo (CPU tensors) is always
/// there.
pub fn nccl_built() -> bool {
    // SAFETY: returns a constant.
    unsafe { ladder_dist_has_nccl() == 1 }
}

/// The device of the rank with `local_rank` when the config says `given` (resolved to
/// `device`): see [`ProcessGroup::device_for`].
pub fn rank_device(device: Device, given: &str, local_rank: usize) -> Device {
    match device {
        Device::Cuda(_) if matches!(given.trim(), "cuda" | "auto") => Device::Cuda(local_rank),
        d => d,
    }
}

/// Hosts a TCPStore on 127.0.0.1:`port` for `seconds`, as torchrun's agent does for its
/// workers (`TORCHELASTIC_USE_AGENT_STORE=True`); for tests of that launch path.
pub fn serve_store(port: u16, world_size: usize, seconds: u64) -> Result<()> {
    let mut err = std::ptr::null_mut();
    // SAFETY: plain values; the shim never throws.
    let rc = unsafe {
        ladder_dist_serve_store(port as c_int, world_size as c_int, seconds as i64, &mut err)
    };
    if rc != 0 {
        bail!(
            "could not host a TCPStore on port {port}: {}",
            take_err(err)
        );
    }
    Ok(())
}

/// A process group over Gloo, and NCCL for CUDA tensors where built and a GPU is visible.
/// Dropping it destroys the group (shuts NCCL down, joins Gloo's threads and closes the
/// store connection).
pub struct ProcessGroup {
    raw: *mut RawGroup,
    env: DistEnv,
    timeout: Duration,
    nccl: bool,
}

impl ProcessGroup {
    /// Joins the group torchrun's environment describes (see [`DistEnv`]); errors when the
    /// variables are missing or invalid, or when the peers do not all arrive within `timeout`.
    pub fn from_env(timeout: Duration) -> Result<Self> {
        match DistEnv::from_env()? {
            Some(env) => Self::new(env, timeout),
            None => bail!(
                "not a distributed run: RANK and WORLD_SIZE are not set (launch with torchrun or `just train-ddp`)"
            ),
        }
    }

    /// Joins the group `env` describes. Rank 0 hosts the TCPStore at MASTER_ADDR:MASTER_PORT.
    /// `timeout` bounds the rendezvous and every later collective.
    pub fn new(env: DistEnv, timeout: Duration) -> Result<Self> {
        let to_c = |what: &str, s: &str| {
            CString::new(s).map_err(|_| anyhow::anyhow!("{what} contains a NUL byte: {s:?}"))
        };
        let addr = to_c("MASTER_ADDR", &env.master_addr)?;
        // Which network device Gloo binds: GLOO_SOCKET_IFNAME (as in PyTorch), loopback
        // when rank 0 is local, else the address this host's name resolves to.
        let (kind, arg) = match std::env::var("GLOO_SOCKET_IFNAME") {
            Ok(ifname) if !ifname.is_empty() => (1, ifname),
            _ if env.is_loopback() => (0, "127.0.0.1".to_string()),
            _ => (2, String::new()),
        };
        let arg = to_c("GLOO_SOCKET_IFNAME", &arg)?;
        // Under torchrun the agent already hosts the store on MASTER_PORT; a restart gets
        // fresh keys.
        let is_server = env.rank == 0 && !env.agent_store;
        let prefix = to_c("prefix", &format!("ladder/{}", env.restart))?;
        let ms = timeout.as_millis().clamp(1, i64::MAX as u128) as i64;
        let mut err = std::ptr::null_mut();
        tracing::debug!(
            "joining rank {}/{} at {}:{}",
            env.rank,
            env.world_size,
            env.master_addr,
            env.master_port
        );
        // SAFETY: every pointer is valid for the call; the shim never throws.
        let raw = unsafe {
            ladder_dist_new_gloo(
                addr.as_ptr(),
                env.master_port as c_int,
                c_int::from(is_server),
                prefix.as_ptr(),
                env.rank as c_int,
                env.world_size as c_int,
                ms,
                kind,
                arg.as_ptr(),
                1,
                &mut err,
            )
        };
        if raw.is_null() {
            bail!(
                "rank {} of {} could not join the process group at {}:{}: {}",
                env.rank,
                env.world_size,
                env.master_addr,
                env.master_port,
                take_err(err)
            );
        }
        let mut group = Self {
            raw,
            env,
            timeout,
            nccl: false,
        };
        if nccl_built() && tch::Cuda::is_available() {
            let mut err = std::ptr::null_mut();
            // SAFETY: the group is live; the shim never throws.
            if unsafe { ladder_dist_add_nccl(raw, ms, &mut err) } != 0 {
                bail!(
                    "rank {}: could not add the NCCL backend: {}",
                    group.env.rank,
                    take_err(err)
                );
            }
            group.nccl = true;
        }
        Ok(group)
    }

    /// Whether CUDA tensors can be reduced (the group has an NCCL backend).
    pub fn has_nccl(&self) -> bool {
        self.nccl
    }

    /// The device a rank trains on when the config says `given` (resolved to `device`):
    /// under this group a bare `cuda`, or `auto` that chose a GPU, means one GPU per process,
    /// `cuda:LOCAL_RANK` (as with torchrun); an explicit `cuda:N` or the CPU stays as given.
    pub fn device_for(&self, device: Device, given: &str) -> Device {
        rank_device(device, given, self.env.local_rank)
    }

    pub fn rank(&self) -> usize {
        self.env.rank
    }

    pub fn world_size(&self) -> usize {
        self.env.world_size
    }

    pub fn local_rank(&self) -> usize {
        self.env.local_rank
    }

    pub fn env(&self) -> &DistEnv {
        &self.env
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn check(&self, what: &str, t: &Tensor) -> Result<()> {
        match t.device() {
            Device::Cpu => {}
            Device::Cuda(_) if self.nccl => {}
            Device::Cuda(_) if nccl_built() => bail!(
                "{what}: the tensor is on {:?}, but no GPU was visible when this rank joined the group, so it has no NCCL backend",
                t.device()
            ),
            d => bail!(
                "{what}: the tensor is on {d:?}; this build has only the Gloo (CPU) backend: NCCL is compiled in when `scripts/setup-libtorch.sh full` has installed the CUDA libraries and headers (then rebuild; see docs/distributed.md)"
            ),
        }
        if !t.is_contiguous() {
            bail!("{what}: the tensor is not contiguous (collectives work on one flat buffer)");
        }
        Ok(())
    }

    fn call(
        &self,
        what: &str,
        f: impl FnOnce(*mut RawGroup, *mut *mut c_char) -> c_int,
    ) -> Result<()> {
        let mut err = std::ptr::null_mut();
        if f(self.raw, &mut err) != 0 {
            bail!(
                "rank {}: {what} failed (a peer died, or it did not answer within {:.1} s): {}",
                self.env.rank,
                self.timeout.as_secs_f64(),
                take_err(err)
            );
        }
        Ok(())
    }

    fn all_reduce(&self, t: &mut Tensor, op: c_int, what: &str) -> Result<()> {
        self.check(what, t)?;
        let p = t.as_mut_ptr() as *mut c_void;
        // SAFETY: `p` is a live at::Tensor* (torch-sys's C_tensor) owned by `t`.
        self.call(what, |g, e| unsafe { ladder_dist_all_reduce(g, p, op, e) })
    }

    /// In place: every rank ends with the elementwise sum over ranks.
    pub fn all_reduce_sum(&self, t: &mut Tensor) -> Result<()> {
        self.all_reduce(t, 0, "all-reduce (sum)")
    }

    /// In place: every rank ends with the elementwise mean over ranks.
    pub fn all_reduce_avg(&self, t: &mut Tensor) -> Result<()> {
        self.all_reduce(t, 1, "all-reduce (average)")
    }

    /// In place: every rank ends with `root`'s values.
    pub fn broadcast(&self, t: &mut Tensor, root: usize) -> Result<()> {
        if root >= self.env.world_size {
            bail!(
                "broadcast root {root} is out of range for WORLD_SIZE={}",
                self.env.world_size
            );
        }
        self.check("broadcast", t)?;
        let p = t.as_mut_ptr() as *mut c_void;
        // SAFETY: as in all_reduce.
        self.call("broadcast", |g, e| unsafe {
            ladder_dist_broadcast(g, p, root as c_int, e)
        })
    }

    /// Returns once every rank has reached it.
    pub fn barrier(&self) -> Result<()> {
        // SAFETY: the group is live.
        self.call("barrier", |g, e| unsafe { ladder_dist_barrier(g, e) })
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: `raw` came from ladder_dist_new_gloo and is freed once.
        unsafe { ladder_dist_free(self.raw) };
    }
}

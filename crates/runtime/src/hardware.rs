//! Hardware facts, measured: what decides which kernels libtorch runs here (the CPU's
//! vector/matrix flags, the GPU's compute capability) and how fast they run (matmul peak
//! per dtype, memory bandwidth). Every sentence Ladder writes about "this machine" comes
//! from a [`MachineRecord`]; MFU (Chowdhery et al. 2022, PaLM appendix B) divides by its
//! peaks and the decode roofline (Williams, Waterman & Patterson 2009) by its bandwidth.
//!
//! The same machine *kind* can bring a different CPU every day (AMX one day, AVX2-only the
//! next, where bf16 matmuls are emulated and run 60× slower), so a record is keyed by every
//! fact: a different model name, flag, core or thread count, device or GPU forces a
//! re-measure. Measuring is bounded (a few seconds even where bf16 is emulated).
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tch::{Device, Kind, Tensor};

/// The CPU flags that decide which matmul kernels run (x86 and ARM names, as Linux shows them).
pub const KERNEL_FLAGS: &[&str] = &[
    "avx2",
    "fma",
    "avx512f",
    "avx512_bf16",
    "avx512_fp16",
    "avx512_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "asimd",
    "bf16",
    "i8mm",
    "sve",
    "sve2",
];

/// A CUDA device as the driver describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuFacts {
    pub name: String,
    pub memory_bytes: u64,
    /// "major.minor", e.g. "9.0" (Hopper); empty when the driver could not be asked.
    pub compute_capability: String,
}

impl GpuFacts {
    /// bf16 tensor cores: compute capability 8.0 (Ampere) and later.
    pub fn native_bf16(&self) -> bool {
        let major = self.compute_capability.split('.').next().unwrap_or("");
        major.parse::<u32>().is_ok_and(|m| m >= 8)
    }
}

/// What the machine *is*: the key of a measurement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    pub cpu_model: String,
    pub arch: String,
    pub logical_cores: usize,
    /// The [`KERNEL_FLAGS`] this CPU reports, in that order.
    pub cpu_flags: Vec<String>,
    /// "cpu" or "cuda:N".
    pub device: String,
    pub gpu: Option<GpuFacts>,
    /// libtorch intra-op threads in use.
    pub threads: usize,
}

/// What the machine *does*: rates measured with libtorch's own kernels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    pub fp32_flops: f64,
    pub fp32_matmul_n: i64,
    pub bf16_flops: f64,
    pub bf16_matmul_n: i64,
    /// Read bandwidth: a reduction over a buffer much larger than the caches.
    pub bandwidth_bytes_per_s: f64,
    pub bandwidth_buffer_bytes: u64,
    pub measure_s: f64,
    pub measured_at: String,
}

/// `machine.json`: the facts and what was measured on them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineRecord {
    pub facts: Facts,
    pub measured: Measured,
}

impl MachineRecord {
    /// Peak matmul FLOP/s for a compute kind.
    pub fn flops(&self, kind: Kind) -> f64 {
        if kind == Kind::BFloat16 {
            self.measured.bf16_flops
        } else {
            self.measured.fp32_flops
        }
    }

    /// Does bf16 run natively here? On CUDA: compute capability ≥ 8.0. On a CPU: the
    /// measured bf16 matmul peak is at least the fp32 one (AMX/AVX512-BF16 kernels run,
    /// not an emulation through fp32).
    pub fn native_bf16(&self) -> bool {
        match &self.facts.gpu {
            Some(g) if self.facts.device.starts_with("cuda") => g.native_bf16(),
            _ => self.measured.bf16_flops >= self.measured.fp32_flops,
        }
    }

    /// The first bf16 instruction-set flag this CPU reports (`amx_bf16`, `avx512_bf16`, ARM's
    /// `bf16`), if any.
    pub fn bf16_flag(&self) -> Option<&str> {
        let has = |f: &str| self.facts.cpu_flags.iter().any(|x| x == f);
        ["amx_bf16", "avx512_bf16", "bf16"]
            .into_iter()
            .find(|f| has(f))
    }

    /// How many times slower bf16 matmuls are than fp32 ones here (< 1 means faster).
    pub fn bf16_slowdown(&self) -> f64 {
        self.measured.fp32_flops / self.measured.bf16_flops.max(1.0)
    }

    /// One line for reports: model, cores, the kernel flags, device and threads.
    pub fn describe(&self) -> String {
        let f = &self.facts;
        let flags = if f.cpu_flags.is_empty() {
            "none of the listed kernel flags".to_string()
        } else {
            f.cpu_flags.join(", ")
        };
        let mut s = format!(
            "{} ({} logical cores; CPU flags: {flags}), device `{}`, {} threads",
            f.cpu_model, f.logical_cores, f.device, f.threads
        );
        if let Some(g) = &f.gpu {
            s.push_str(&format!(
                "; GPU {} ({:.0} GiB, compute capability {})",
                g.name,
                g.memory_bytes as f64 / (1u64 << 30) as f64,
                g.compute_capability
            ));
        }
        s
    }

    /// The measured rates in one line.
    pub fn describe_rates(&self) -> String {
        let m = &self.measured;
        format!(
            "measured matmul peak fp32 {:.0} GFLOP/s (n = {}), bf16 {:.1} GFLOP/s (n = {}) — bf16 {}; read bandwidth {:.1} GB/s",
            m.fp32_flops / 1e9,
            m.fp32_matmul_n,
            m.bf16_flops / 1e9,
            m.bf16_matmul_n,
            if self.native_bf16() {
                format!("native, {:.2}× fp32", 1.0 / self.bf16_slowdown())
            } else if let Some(flag) = self.bf16_flag() {
                // The CPU has bf16 instructions, yet libtorch's bf16 matmul is the slower one
                // (a Xeon reporting avx512_bf16 without AMX: results/speed/peers.md of 2026-12-07).
                format!(
                    "not native here: {:.1}× slower than fp32, though the CPU reports {flag}",
                    self.bf16_slowdown()
                )
            } else {
                format!("emulated, {:.0}× slower than fp32", self.bf16_slowdown())
            },
            m.bandwidth_bytes_per_s / 1e9
        )
    }
}

/// The model name and kernel flags from `/proc/cpuinfo` text (x86 `model name`/`flags`,
/// ARM `Features`).
pub fn parse_cpuinfo(text: &str) -> (Option<String>, Vec<String>) {
    let value = |key: &str| {
        text.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let model = value("model name").or_else(|| value("Hardware"));
    let have: Vec<String> = value("flags")
        .or_else(|| value("Features"))
        .map(|v| v.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let flags = KERNEL_FLAGS
        .iter()
        .filter(|f| have.iter().any(|h| h == *f))
        .map(|f| f.to_string())
        .collect();
    (model, flags)
}

/// Ask the driver about CUDA device `i` (`nvidia-smi`); `None` when it cannot answer.
fn gpu_facts(i: usize) -> Option<GpuFacts> {
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,memory.total,compute_cap",
            "--format=csv,noheader,nounits",
            "-i",
            &i.to_string(),
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let parts: Vec<&str> = line.split(',').map(str::trim).collect();
    let [name, mem, cc] = parts.as_slice() else {
        return None;
    };
    Some(GpuFacts {
        name: name.to_string(),
        memory_bytes: mem.parse::<u64>().unwrap_or(0) << 20,
        compute_capability: cc.to_string(),
    })
}

/// The facts of this machine for `device` at the current libtorch thread count.
pub fn detect(device: Device) -> Facts {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let (model, cpu_flags) = parse_cpuinfo(&cpuinfo);
    let gpu = match device {
        Device::Cuda(i) => Some(gpu_facts(i).unwrap_or(GpuFacts {
            name: format!("cuda:{i}"),
            memory_bytes: 0,
            compute_capability: String::new(),
        })),
        _ => None,
    };
    Facts {
        cpu_model: model.unwrap_or_else(|| std::env::consts::ARCH.to_string()),
        arch: std::env::consts::ARCH.to_string(),
        logical_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_flags,
        device: match device {
            Device::Cuda(i) => format!("cuda:{i}"),
            _ => "cpu".into(),
        },
        gpu,
        threads: tch::get_num_threads().max(1) as usize,
    }
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Best FLOP/s of an n×n×n matmul in `kind`: n doubles from 256 until one product takes
/// 50 ms (or `max_n`), then the best of up to 5 within `budget`. Returns (FLOP/s, n).
pub fn measure_matmul(kind: Kind, device: Device, max_n: i64, budget: Duration) -> (f64, i64) {
    let start = Instant::now();
    let mut n = 256;
    let (a, b) = loop {
        let a = Tensor::randn([n, n], (Kind::Float, device)).to_kind(kind);
        let b = Tensor::randn([n, n], (Kind::Float, device)).to_kind(kind);
        let _ = a.matmul(&b); // warm-up (kernel selection, JIT)
        sync(device);
        let t = Instant::now();
        let _ = a.matmul(&b);
        sync(device);
        if n >= max_n || t.elapsed() > Duration::from_millis(50) {
            break (a, b);
        }
        n *= 2;
    };
    let flops = 2.0 * (n * n * n) as f64;
    let mut best = 0f64;
    for i in 0..5 {
        if i > 0 && start.elapsed() > budget {
            break;
        }
        let t = Instant::now();
        let c = a.matmul(&b);
        sync(device);
        let _ = c.numel();
        best = best.max(flops / t.elapsed().as_secs_f64());
    }
    (best, n)
}

/// Read bandwidth: the median of up to 5 sums over a `bytes`-sized fp32 buffer (in
/// transparent huge pages on a CPU that allows them) within `budget`. The median, not the
/// best: on a shared VM one sum in five can run at twice the rate of the others, and the
/// bandwidth sets every decode roofline.
pub fn measure_bandwidth(device: Device, bytes: u64, budget: Duration) -> f64 {
    let start = Instant::now();
    let probe = BandwidthProbe::new(device, bytes);
    let mut rates = Vec::with_capacity(5);
    for i in 0..5 {
        if i > 0 && start.elapsed() > budget {
            break;
        }
        rates.push(probe.sum_rate());
    }
    median(rates)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A buffer for measuring read bandwidth again and again, e.g. right before each timed
/// repeat of a decode benchmark: the bandwidth of a shared VM drifts (1.7× between the
/// variants of one `just speed-overhead` run on the 2-core EPYC, which records it per
/// variant), so a roofline measured minutes apart from the run it judges can be off by as
/// much.
pub struct BandwidthProbe {
    buf: Tensor,
}

impl BandwidthProbe {
    /// `bytes` of fp32 ones, in huge pages where the CPU allows (as decode's weights are,
    /// `model::gemv`), touched once.
    pub fn new(device: Device, bytes: u64) -> Self {
        let x = Tensor::ones([(bytes / 4) as i64], (Kind::Float, device));
        let buf = crate::pages::huge_copy(&x).unwrap_or(x);
        let _ = buf.sum(Kind::Float).double_value(&[]); // warm-up
        Self { buf }
    }

    /// Bytes per second of one sum over the buffer.
    pub fn sum_rate(&self) -> f64 {
        let t = Instant::now();
        let _ = self.buf.sum(Kind::Float).double_value(&[]);
        (self.buf.numel() * 4) as f64 / t.elapsed().as_secs_f64()
    }

    /// The median of `n` sums' rates (bytes per second).
    pub fn median_rate(&self, n: usize) -> f64 {
        median((0..n.max(1)).map(|_| self.sum_rate()).collect())
    }
}

/// Measure this machine (a few seconds; bounded where bf16 is emulated).
pub fn measure(device: Device) -> Measured {
    let t = Instant::now();
    let gpu = matches!(device, Device::Cuda(_));
    let (max_n, buffer) = if gpu {
        (8192, 1u64 << 30)
    } else {
        (2048, 256u64 << 20)
    };
    let budget = Duration::from_millis(1500);
    let (fp32_flops, fp32_matmul_n) = measure_matmul(Kind::Float, device, max_n, budget);
    let (bf16_flops, bf16_matmul_n) = measure_matmul(Kind::BFloat16, device, max_n, budget);
    let bandwidth_bytes_per_s = measure_bandwidth(device, buffer, budget);
    Measured {
        fp32_flops,
        fp32_matmul_n,
        bf16_flops,
        bf16_matmul_n,
        bandwidth_bytes_per_s,
        bandwidth_buffer_bytes: buffer,
        measure_s: t.elapsed().as_secs_f64(),
        measured_at: crate::facts::timestamp_utc(),
    }
}

/// Where measurements are cached: `$LADDER_MACHINE_FILE`, else
/// `$XDG_CACHE_HOME/ladder/machine.json`, else `~/.cache/ladder/machine.json`.
pub fn cache_path() -> PathBuf {
    if let Some(p) = std::env::var_os("LADDER_MACHINE_FILE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("ladder").join("machine.json")
}

/// Records read from a cache file: one record (a results folder's `machine.json`) or a
/// list (the cache, one record per set of facts).
fn read_records(path: &Path) -> Vec<MachineRecord> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    serde_json::from_str::<Vec<MachineRecord>>(&text)
        .or_else(|_| serde_json::from_str::<MachineRecord>(&text).map(|r| vec![r]))
        .unwrap_or_else(|_| {
            tracing::info!("{}: not a machine record; measuring again", path.display());
            Vec::new()
        })
}

/// The most records a cache file keeps (the newest ones).
const MAX_RECORDS: usize = 16;

/// The record in the cache at `path` measured on exactly `facts`; otherwise `measure` runs
/// and its record joins the cache (replacing any other for the same facts).
pub fn load_or_measure_with(
    path: &Path,
    facts: &Facts,
    measure: impl FnOnce() -> Measured,
) -> Result<MachineRecord> {
    let mut records = read_records(path);
    if let Some(r) = records.iter().find(|r| &r.facts == facts) {
        return Ok(r.clone());
    }
    tracing::info!(
        "measuring matmul peaks and memory bandwidth of this machine ({} threads; cached in {}) ...",
        facts.threads,
        path.display()
    );
    let record = MachineRecord {
        facts: facts.clone(),
        measured: measure(),
    };
    records.push(record.clone());
    let skip = records.len().saturating_sub(MAX_RECORDS);
    write_json(path, &records[skip..])?;
    tracing::info!("{}: {}", record.describe(), record.describe_rates());
    Ok(record)
}

/// Write one record (a results folder's `machine.json`).
pub fn write_record(path: &Path, record: &MachineRecord) -> Result<()> {
    write_json(path, record)
}

/// Write JSON through a temp file and a rename; the folder is created.
fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_string_pretty(value)? + "\n")
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// This machine's record for `device` at the current thread count, from the cache when the
/// facts match, else measured.
pub fn machine(device: Device) -> Result<MachineRecord> {
    load_or_measure_with(&cache_path(), &detect(device), || measure(device))
}

//! Precision chosen per machine. `auto` (the default everywhere) is bf16 where the hardware
//! runs it natively — CUDA compute capability ≥ 8.0, or a CPU whose *measured* bf16 matmul
//! peak is at least its fp32 one (AMX, AVX512-BF16) — and fp32 otherwise: on an AVX2-only
//! CPU libtorch emulates bf16 matmuls through fp32 and they run 60–400× slower. An explicit
//! `bf16` still runs there, with a warning that says how much slower (measured).
use crate::dtype::DType;
use crate::hardware::MachineRecord;
use serde::{Deserialize, Serialize};

/// What a config or flag asks for: a dtype, or `auto` to let the machine decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Auto,
    Fp32,
    Bf16,
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Precision::Auto),
            "fp32" | "f32" | "float32" => Ok(Precision::Fp32),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            _ => Err(format!("unknown dtype '{s}' (expected auto, fp32 or bf16)")),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::Auto => "auto",
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        })
    }
}

impl From<DType> for Precision {
    fn from(d: DType) -> Self {
        match d {
            DType::Fp32 => Precision::Fp32,
            DType::Bf16 => Precision::Bf16,
        }
    }
}

/// The dtype a [`Precision`] resolved to on one machine, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub dtype: DType,
    /// One sentence: which dtype and the fact that decided it.
    pub reason: String,
    /// Set when bf16 was asked for explicitly on a machine that emulates it.
    pub warning: Option<String>,
}

fn bf16_evidence(m: &MachineRecord) -> String {
    match &m.facts.gpu {
        Some(g) if m.facts.device.starts_with("cuda") => format!(
            "{} has compute capability {}",
            g.name,
            if g.compute_capability.is_empty() {
                "unknown"
            } else {
                &g.compute_capability
            }
        ),
        _ => format!(
            "measured bf16 matmul {:.1} GFLOP/s vs fp32 {:.1} GFLOP/s on this CPU (flags: {})",
            m.measured.bf16_flops / 1e9,
            m.measured.fp32_flops / 1e9,
            if m.facts.cpu_flags.is_empty() {
                "none listed".to_string()
            } else {
                m.facts.cpu_flags.join(", ")
            }
        ),
    }
}

impl Precision {
    /// Resolve against a machine's record.
    pub fn resolve(self, m: &MachineRecord) -> Resolved {
        let native = m.native_bf16();
        let evidence = bf16_evidence(m);
        match self {
            Precision::Auto if native => Resolved {
                dtype: DType::Bf16,
                reason: format!("dtype auto → bf16: native bf16 here ({evidence})"),
                warning: None,
            },
            Precision::Auto => Resolved {
                dtype: DType::Fp32,
                reason: format!("dtype auto → fp32: no native bf16 here ({evidence})"),
                warning: None,
            },
            Precision::Fp32 => Resolved {
                dtype: DType::Fp32,
                reason: "dtype fp32 (as configured)".into(),
                warning: None,
            },
            Precision::Bf16 => Resolved {
                dtype: DType::Bf16,
                reason: "dtype bf16 (as configured)".into(),
                warning: (!native).then(|| {
                    format!(
                        "dtype bf16 was asked for, but this machine has no native bf16 ({evidence}): expect bf16 matmuls to run about {:.0}× slower than fp32; use dtype auto or fp32",
                        m.bf16_slowdown()
                    )
                }),
            },
        }
    }

    /// Resolve and log: the reason at info level, any warning at warn level.
    pub fn resolve_logged(self, m: &MachineRecord) -> DType {
        let r = self.resolve(m);
        tracing::info!("{}", r.reason);
        if let Some(w) = &r.warning {
            tracing::warn!("{w}");
        }
        r.dtype
    }
}

//! The compute dtype (placeholder until the structure branch lands its own `dtype`).
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    Fp32,
    Bf16,
}

impl DType {
    pub fn kind(self) -> tch::Kind {
        match self {
            DType::Fp32 => tch::Kind::Float,
            DType::Bf16 => tch::Kind::BFloat16,
        }
    }
}

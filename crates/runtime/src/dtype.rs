//! The concrete compute precision of a run. Weights stay fp32 ("master weights") during
//! training; with `Bf16` matmuls and attention run in bf16 while norms, softmax (naive
//! path) and the loss stay f32. Parsing (`FromStr`) and serde (lowercase) live here only.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    Fp32,
    Bf16,
}

impl DType {
    /// The libtorch kind of this precision.
    pub fn kind(self) -> tch::Kind {
        match self {
            DType::Fp32 => tch::Kind::Float,
            DType::Bf16 => tch::Kind::BFloat16,
        }
    }

    /// Bytes per element.
    pub fn bytes(self) -> usize {
        match self {
            DType::Fp32 => 4,
            DType::Bf16 => 2,
        }
    }

    /// "fp32" or "bf16": the serde and report spelling.
    pub fn name(self) -> &'static str {
        match self {
            DType::Fp32 => "fp32",
            DType::Bf16 => "bf16",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fp32" | "f32" | "float32" => Ok(DType::Fp32),
            "bf16" | "bfloat16" => Ok(DType::Bf16),
            _ => Err(format!("unknown dtype '{s}' (expected fp32 or bf16)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DType;

    #[test]
    fn names_parse_and_serialise_alike() {
        for d in [DType::Fp32, DType::Bf16] {
            assert_eq!(d.to_string().parse::<DType>().unwrap(), d);
            assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{d}\""));
        }
        assert!("fp16"
            .parse::<DType>()
            .unwrap_err()
            .contains("fp32 or bf16"));
        assert_eq!(DType::Bf16.bytes(), 2);
    }
}

//! The header of a safetensors file, read and checked on its own before any tensor is
//! created (format: <https://github.com/huggingface/safetensors#format>: an 8-byte
//! little-endian length, a JSON table of `{dtype, shape, data_offsets}`, then the bytes).
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// The largest header we read (the format's own reference limit is 100 MB).
const MAX_HEADER: u64 = 100_000_000;

/// One tensor as the header describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub dtype: String,
    pub shape: Vec<i64>,
    pub bytes: u64,
}

/// Bytes per element of a safetensors dtype; `None` for one we do not know.
fn dtype_size(dtype: &str) -> Option<u64> {
    match dtype {
        "BOOL" | "U8" | "I8" | "F8_E4M3" | "F8_E5M2" => Some(1),
        "F16" | "BF16" | "I16" | "U16" => Some(2),
        "F32" | "I32" | "U32" => Some(4),
        "F64" | "I64" | "U64" => Some(8),
        _ => None,
    }
}

/// The dtypes weights may have.
pub const FLOAT_DTYPES: &[&str] = &["F16", "BF16", "F32", "F64"];

/// Read and check the header of a safetensors file: the length prefix, the JSON, every
/// dtype (a known one), shape and byte range (inside the file, sized to match).
pub fn read_header(path: &Path) -> Result<BTreeMap<String, TensorInfo>> {
    let file = path.display();
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {file}"))?;
    let len = f
        .metadata()
        .with_context(|| format!("reading {file}"))?
        .len();
    let mut n = [0u8; 8];
    if len < 8 || f.read_exact(&mut n).is_err() {
        bail!("{file}: {len} bytes, too short for a safetensors header (truncated or corrupt?)");
    }
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER || n > len - 8 {
        bail!("{file}: the header claims {n} bytes but the file has {len} (truncated or corrupt?)");
    }
    let mut buf = vec![0u8; n as usize];
    f.read_exact(&mut buf)
        .with_context(|| format!("{file}: reading the header (truncated or corrupt?)"))?;
    let v: serde_json::Value = serde_json::from_slice(&buf)
        .with_context(|| format!("{file}: the header is not valid JSON (truncated or corrupt?)"))?;
    let table = v
        .as_object()
        .with_context(|| format!("{file}: the header is not a JSON object (corrupt?)"))?;
    let data_len = len - 8 - n;
    let mut out = BTreeMap::new();
    let mut ranges = Vec::new();
    for (name, t) in table.iter().filter(|(k, _)| *k != "__metadata__") {
        let bad = |what: &str| anyhow::anyhow!("{file}: tensor '{name}': {what} (corrupt header?)");
        let dtype = t["dtype"].as_str().ok_or_else(|| bad("no dtype"))?;
        let size = dtype_size(dtype).ok_or_else(|| {
            anyhow::anyhow!("{file}: tensor '{name}' has unknown dtype '{dtype}' (corrupt header?)")
        })?;
        let shape: Vec<i64> = t["shape"]
            .as_array()
            .ok_or_else(|| bad("no shape"))?
            .iter()
            .map(|d| {
                d.as_u64()
                    .filter(|&d| d <= i64::MAX as u64)
                    .map(|d| d as i64)
            })
            .collect::<Option<_>>()
            .ok_or_else(|| bad("a dimension is not a non-negative integer"))?;
        let offs = t["data_offsets"]
            .as_array()
            .filter(|a| a.len() == 2)
            .and_then(|a| Some((a[0].as_u64()?, a[1].as_u64()?)))
            .ok_or_else(|| bad("data_offsets is not [begin, end]"))?;
        let elems = shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
        let bytes = elems
            .and_then(|e| e.checked_mul(size))
            .ok_or_else(|| bad("the shape overflows"))?;
        if offs.0 > offs.1 || offs.1 > data_len || offs.1 - offs.0 != bytes {
            bail!(
                "{file}: tensor '{name}' ({dtype} {shape:?}, {bytes} bytes) has data_offsets [{}, {}] but the data section is {data_len} bytes (truncated or corrupt?)",
                offs.0, offs.1
            );
        }
        ranges.push((offs.0, offs.1, name.clone()));
        out.insert(
            name.clone(),
            TensorInfo {
                dtype: dtype.into(),
                shape,
                bytes,
            },
        );
    }
    ranges.sort();
    for w in ranges.windows(2) {
        if w[0].1 > w[1].0 {
            bail!(
                "{file}: tensors '{}' and '{}' overlap in the data section (corrupt header?)",
                w[0].2,
                w[1].2
            );
        }
    }
    Ok(out)
}

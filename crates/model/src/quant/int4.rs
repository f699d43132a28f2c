//! Weight-only 4-bit, asymmetric with a scale and a zero per group of `G` input columns
//! (llama.cpp's Q4_1 semantics; gpt-fast's `WeightOnlyInt4QuantHandler` layout).
//!
//! For each group `g` of a row: `s = (max - min) / 15`, `z = min + 8·s` (the value that
//! code 8 decodes to), `q = round((w - (z - 8·s)) / s)` clamped to [0, 15], and
//! `ŵ = (q - 8)·s + z`, so `|w - ŵ| ≤ s / 2` up to the rounding of `s` and `z` to their
//! storage dtype. Scales and zeros are stored as libtorch's kernels want them:
//! `scales_and_zeros` (K/G, N, 2), `[..., 0]` the scale and `[..., 1]` the zero.
//!
//! Three layouts of the codes:
//! - `Nibbles`: (N, K/2) uint8, two codes per byte, even column in the high nibble — the
//!   device-independent form saved to disk and the input of the CUDA packer;
//! - `CpuTiled`: `_convert_weight_to_int4pack_for_cpu` of the (N, K) int32 codes, for
//!   `_weight_int4pack_mm_for_cpu`;
//! - `CudaTiled`: `_convert_weight_to_int4pack` of the nibbles, for `_weight_int4pack_mm`
//!   (tinygemm; bf16 activations only).
use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

/// Group sizes libtorch's int4 kernels accept.
pub const GROUP_SIZES: [i64; 4] = [32, 64, 128, 256];

/// Output rows are padded to a multiple of this (the CPU packer's requirement).
pub const N_ALIGN: i64 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Nibbles,
    CpuTiled,
    CudaTiled,
}

/// Codes (N, K) int32 in [0, 15] and `scales_and_zeros` (K/G, N, 2) in `scale_kind`.
pub fn quantize(w: &Tensor, group: i64, scale_kind: Kind) -> Result<(Tensor, Tensor)> {
    super::check_weight(w)?;
    check_group(group)?;
    let (n, k) = w.size2()?;
    if k % group != 0 {
        bail!("int4: group size {group} does not divide the input width {k} of a ({n}, {k}) weight (pad the width to a multiple of {group}, or pick a group size that divides it)");
    }
    let g = w.to_kind(Kind::Float).reshape([n * (k / group), group]); // (N·K/G, G)
    let mx = g.amax([1], true);
    let mn = g.amin([1], true);
    // Scale and zero are rounded to their storage dtype first and the codes computed from
    // the rounded values, so the kernel decodes exactly what was meant.
    let s = ((&mx - &mn).clamp_min(1e-6) / 15.0)
        .to_kind(scale_kind)
        .to_kind(Kind::Float); // (N·K/G, 1)
    let z = (&mn + &s * 8.0).to_kind(scale_kind).to_kind(Kind::Float);
    let lo = &z - &s * 8.0;
    let q = ((&g - lo) / &s)
        .round()
        .clamp(0.0, 15.0)
        .to_kind(Kind::Int)
        .reshape([n, k]); // (N, K)
    let sz = Tensor::cat(&[s, z], 1) // (N·K/G, 2)
        .reshape([n, k / group, 2])
        .transpose(0, 1)
        .contiguous()
        .to_kind(scale_kind); // (K/G, N, 2)
    Ok((q, sz))
}

pub fn check_group(group: i64) -> Result<()> {
    if !GROUP_SIZES.contains(&group) {
        bail!("int4: group size {group} is not supported (expected one of 32, 64, 128, 256: the sizes libtorch's int4 kernels accept)");
    }
    Ok(())
}

/// `ŵ` (N, K) in f32 from codes (N, K) and `scales_and_zeros` (K/G, N, 2).
pub fn dequantize(q: &Tensor, sz: &Tensor, group: i64) -> Tensor {
    let sz = sz.to_kind(Kind::Float).transpose(0, 1); // (N, K/G, 2)
    let s = sz
        .select(2, 0)
        .repeat_interleave_self_int(group, Some(1), None); // (N, K)
    let z = sz
        .select(2, 1)
        .repeat_interleave_self_int(group, Some(1), None); // (N, K)
    (q.to_kind(Kind::Float) - 8.0) * s + z
}

/// Codes (N, K) int32 -> (N, K/2) uint8, even column in the high nibble.
pub fn to_nibbles(q: &Tensor) -> Tensor {
    let k = q.size()[1];
    let hi = q.slice(1, 0, k, 2);
    let lo = q.slice(1, 1, k, 2);
    (hi * 16 + lo).to_kind(Kind::Uint8)
}

/// (N, K/2) uint8 -> codes (N, K) int32.
pub fn from_nibbles(p: &Tensor) -> Tensor {
    let (n, half) = p.size2().unwrap();
    let p = p.to_kind(Kind::Int);
    let hi = p.floor_divide_scalar(16);
    let lo = p.remainder(16);
    Tensor::stack(&[hi, lo], 2).reshape([n, 2 * half]) // (N, K/2, 2) -> (N, K)
}

/// The kernel layout for `device` from nibbles, or `Nibbles` (dequantize-then-matmul)
/// when libtorch has no int4 kernel for it; the error says why.
pub fn pack_for(nibbles: &Tensor, device: Device) -> (Layout, Tensor, Option<String>) {
    let k = nibbles.size()[1] * 2;
    match device {
        Device::Cpu => {
            match from_nibbles(nibbles)
                .f_internal_convert_weight_to_int4pack_for_cpu(inner_k_tiles(k))
            {
                Ok(t) => (Layout::CpuTiled, t, None),
                Err(e) => (
                    Layout::Nibbles,
                    nibbles.shallow_clone(),
                    Some(e.to_string()),
                ),
            }
        }
        Device::Cuda(_) => match nibbles.f_internal_convert_weight_to_int4pack(inner_k_tiles(k)) {
            Ok(t) => (Layout::CudaTiled, t, None),
            Err(e) => (
                Layout::Nibbles,
                nibbles.shallow_clone(),
                Some(e.to_string()),
            ),
        },
        d => (
            Layout::Nibbles,
            nibbles.shallow_clone(),
            Some(format!("no int4 kernel for {d:?}")),
        ),
    }
}

/// tinygemm's K tiling: the largest of 8, 4, 2 with K a multiple of 16·tiles.
fn inner_k_tiles(k: i64) -> i64 {
    [8, 4, 2]
        .into_iter()
        .find(|t| k % (16 * t) == 0)
        .unwrap_or(2)
}

/// `x (M, K) @ Ŵᵀ` with the kernel of `layout` (not `Nibbles`).
pub fn kernel_mm(
    x: &Tensor,
    packed: &Tensor,
    layout: Layout,
    group: i64,
    sz: &Tensor,
) -> Result<Tensor> {
    let r = match layout {
        Layout::CpuTiled => {
            let sz = cast(sz, x.kind());
            x.f_internal_weight_int4pack_mm_for_cpu(packed, group, &sz)
        }
        Layout::CudaTiled => {
            // tinygemm takes bf16 activations and scales only.
            let xb = cast(x, Kind::BFloat16);
            let sz = cast(sz, Kind::BFloat16);
            xb.f_internal_weight_int4pack_mm(packed, group, &sz)
                .map(|y| cast(&y, x.kind()))
        }
        Layout::Nibbles => bail!("internal: no int4 kernel for the nibble layout"),
    };
    r.map_err(|e| anyhow::anyhow!("int4 kernel ({layout:?}) failed: {e}"))
}

/// Codes (N, K) int32 from any layout. Tiled layouts are read back through the kernel itself:
/// `I_K @ Ŵᵀ` with unit scales and zero 8 decodes every code exactly (0..15 in any float).
pub fn codes(packed: &Tensor, layout: Layout, group: i64, n: i64, k: i64) -> Result<Tensor> {
    if layout == Layout::Nibbles {
        return Ok(from_nibbles(packed));
    }
    let kind = if layout == Layout::CudaTiled {
        Kind::BFloat16
    } else {
        Kind::Float
    };
    let dev = packed.device();
    let unit = Tensor::stack(
        &[
            Tensor::ones([k / group, n], (kind, dev)),
            Tensor::full([k / group, n], 8.0, (kind, dev)),
        ],
        2,
    ); // (K/G, N, 2)
    let eye = Tensor::eye(k, (kind, dev));
    let t = kernel_mm(&eye, packed, layout, group, &unit)?; // (K, N) = Qᵀ
    Ok(t.tr().round().to_kind(Kind::Int).contiguous())
}

fn cast(t: &Tensor, kind: Kind) -> Tensor {
    if t.kind() == kind {
        t.shallow_clone()
    } else {
        t.to_kind(kind)
    }
}

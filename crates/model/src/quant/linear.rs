//! `QLinear`: a quantized `y = x Ŵᵀ` (bias stays with the owning `Linear`), computed by
//! libtorch's weight-only kernels, or by dequantize-then-matmul where the device has none.
use super::{int4, int8, Scheme};
use anyhow::{bail, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use tch::{nn, Device, Kind, Tensor};

/// The stored weight of a quantized linear.
#[derive(Debug)]
pub enum QWeight {
    /// `q` (N, K) int8, `scales` (N,).
    Int8 { q: Tensor, scales: Tensor },
    /// Packed codes in `layout`, `scales_and_zeros` (K/G, N, 2).
    Int4 {
        packed: Tensor,
        layout: int4::Layout,
        group: i64,
        scales_and_zeros: Tensor,
    },
}

#[derive(Debug)]
pub struct QLinear {
    pub weight: QWeight,
    /// K of the original weight; the stored width is `padded_in` (≥ K, zero columns).
    pub in_features: i64,
    pub padded_in: i64,
    pub out_features: i64,
    /// Stored rows (≥ N, zero rows; int4 pads N to a multiple of 16 for the CPU packer).
    pub padded_out: i64,
    /// Set once the kernel has failed on this device: dequantize-then-matmul from then on.
    fallback: AtomicBool,
}

impl QLinear {
    /// Quantize `w` (N, K). With `pad`, int4 widths that the group size does not divide are
    /// zero-padded (the input is padded likewise at run time); without it they are an error.
    pub fn quantize(w: &Tensor, scheme: Scheme, scale_kind: Kind, pad: bool) -> Result<Self> {
        super::check_weight(w)?;
        let (n, k) = w.size2()?;
        match scheme {
            Scheme::Int8 => {
                // The CPU kernel reads K in steps of 16 in bf16 (garbage or a crash otherwise):
                // zero columns change no scale and no product.
                let kp = (k + int8::K_ALIGN - 1) / int8::K_ALIGN * int8::K_ALIGN;
                let (q, scales) = int8::quantize(&w.constant_pad_nd([0, kp - k]), scale_kind)?;
                Ok(Self::new(QWeight::Int8 { q, scales }, k, kp, n))
            }
            Scheme::Int4 { group_size: g } => {
                int4::check_group(g)?;
                let kp = if pad { (k + g - 1) / g * g } else { k };
                // `_convert_weight_to_int4pack_for_cpu` wants N divisible by 16: zero rows,
                // whose outputs are dropped.
                let np = (n + int4::N_ALIGN - 1) / int4::N_ALIGN * int4::N_ALIGN;
                let wp = w.constant_pad_nd([0, kp - k, 0, np - n]); // (Np, Kp)
                let (q, sz) = int4::quantize(&wp, g, scale_kind)?;
                Self::from_int4_nibbles(&int4::to_nibbles(&q), sz, g, k, n)
            }
        }
    }

    fn new(weight: QWeight, in_features: i64, padded_in: i64, out_features: i64) -> Self {
        let padded_out = match &weight {
            QWeight::Int8 { q, .. } => q.size()[0],
            QWeight::Int4 {
                scales_and_zeros, ..
            } => scales_and_zeros.size()[1],
        };
        Self {
            weight,
            in_features,
            padded_in,
            out_features,
            padded_out,
            fallback: AtomicBool::new(false),
        }
    }

    /// From the saved int4 form: nibbles (N, Kp/2) and `scales_and_zeros` (Kp/G, N, 2),
    /// repacked for the nibbles' device.
    pub fn from_int4_nibbles(
        nibbles: &Tensor,
        scales_and_zeros: Tensor,
        group: i64,
        in_features: i64,
        out_features: i64,
    ) -> Result<Self> {
        let (n, half) = nibbles.size2()?;
        let kp = 2 * half;
        let rows_ok = n >= out_features && n - out_features < int4::N_ALIGN;
        if !rows_ok || kp % group != 0 || scales_and_zeros.size() != [kp / group, n, 2] {
            bail!("int4: codes {:?} and scales_and_zeros {:?} do not fit a ({out_features}, {in_features}) weight with group size {group}", nibbles.size(), scales_and_zeros.size());
        }
        let (layout, packed, why) = int4::pack_for(nibbles, nibbles.device());
        if let Some(why) = why {
            let why = why.lines().next().unwrap_or_default();
            tracing::warn!("int4: no kernel ({why}); this layer dequantizes then multiplies");
        }
        let w = QWeight::Int4 {
            packed,
            layout,
            group,
            scales_and_zeros,
        };
        Ok(Self::new(w, in_features, kp, out_features))
    }

    /// From the saved int8 form: `q` (N, Kp) int8 and `scales` (N,).
    pub fn from_int8(q: Tensor, scales: Tensor, in_features: i64) -> Result<Self> {
        let (n, kp) = q.size2()?;
        if q.kind() != Kind::Int8 || scales.size() != [n] || kp < in_features {
            bail!(
                "int8: expected q int8 (N, ≥{in_features}) and scales (N,), got {:?} {:?} and {:?}",
                q.kind(),
                q.size(),
                scales.size()
            );
        }
        Ok(Self::new(QWeight::Int8 { q, scales }, in_features, kp, n))
    }

    pub fn scheme(&self) -> Scheme {
        match &self.weight {
            QWeight::Int8 { .. } => Scheme::Int8,
            QWeight::Int4 { group, .. } => Scheme::Int4 { group_size: *group },
        }
    }

    pub fn device(&self) -> Device {
        self.tensors()[0].device()
    }

    fn tensors(&self) -> [&Tensor; 2] {
        match &self.weight {
            QWeight::Int8 { q, scales } => [q, scales],
            QWeight::Int4 {
                packed,
                scales_and_zeros,
                ..
            } => [packed, scales_and_zeros],
        }
    }

    /// Bytes held: packed codes plus scales (and zeros).
    pub fn bytes(&self) -> i64 {
        self.tensors()
            .iter()
            .map(|t| t.numel() as i64 * t.kind().elt_size_in_bytes() as i64)
            .sum()
    }

    /// Whether a libtorch kernel computes the matmul (false: dequantize-then-matmul).
    pub fn uses_kernel(&self) -> bool {
        let packed = !matches!(
            &self.weight,
            QWeight::Int4 {
                layout: int4::Layout::Nibbles,
                ..
            }
        );
        packed && !self.fallback.load(Ordering::Relaxed)
    }

    /// Codes in the saved form: int8 `q` (N, K), or int4 nibbles (N, Kp/2).
    pub fn saved_codes(&self) -> Result<Tensor> {
        match &self.weight {
            QWeight::Int8 { q, .. } => Ok(q.shallow_clone()),
            QWeight::Int4 {
                packed,
                layout,
                group,
                ..
            } => {
                let q = int4::codes(packed, *layout, *group, self.padded_out, self.padded_in)?;
                Ok(int4::to_nibbles(&q.to_device(Device::Cpu)))
            }
        }
    }

    /// `Ŵ` (N, K) in f32, padding dropped.
    pub fn dequantize(&self) -> Result<Tensor> {
        let w = match &self.weight {
            QWeight::Int8 { q, scales } => int8::dequantize(q, scales),
            QWeight::Int4 {
                packed,
                layout,
                group,
                scales_and_zeros,
            } => {
                let q = int4::codes(packed, *layout, *group, self.padded_out, self.padded_in)?;
                int4::dequantize(&q, scales_and_zeros, *group)
            }
        };
        Ok(w.narrow(0, 0, self.out_features)
            .narrow(1, 0, self.in_features))
    }

    fn kernel(&self, x2: &Tensor) -> Result<Tensor> {
        match &self.weight {
            QWeight::Int8 { q, scales } => int8::kernel_mm(x2, q, scales),
            QWeight::Int4 {
                packed,
                layout,
                group,
                scales_and_zeros,
            } => int4::kernel_mm(x2, packed, *layout, *group, scales_and_zeros),
        }
    }
}

impl nn::Module for QLinear {
    /// (…, K) -> (…, N) in the input's dtype.
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut shape = x.size();
        let k = *shape.last().expect("QLinear input has no dimensions");
        assert_eq!(
            k, self.in_features,
            "QLinear: input width {k}, expected {}",
            self.in_features
        );
        let x2 = x.reshape([-1, k]); // (M, K)
        let x2 = if self.padded_in > k {
            x2.constant_pad_nd([0, self.padded_in - k]) // (M, Kp)
        } else {
            x2.contiguous()
        };
        *shape.last_mut().unwrap() = self.out_features;
        if self.uses_kernel() {
            match self.kernel(&x2) {
                Ok(y) => {
                    // (M, Np) -> (…, N)
                    return y.narrow(1, 0, self.out_features).reshape(shape.as_slice());
                }
                Err(e) => {
                    let e = e.to_string();
                    let e = e.lines().next().unwrap_or_default();
                    tracing::warn!("{e}; falling back to dequantize-then-matmul");
                    self.fallback.store(true, Ordering::Relaxed);
                }
            }
        }
        let w = self
            .dequantize()
            .expect("dequantize a quantized weight")
            .to_kind(x.kind());
        let w = if self.padded_in > k {
            w.constant_pad_nd([0, self.padded_in - k])
        } else {
            w
        };
        x2.linear::<Tensor>(&w, None).reshape(shape.as_slice())
    }
}

//! Flat buckets: consecutive tensors of one dtype packed into one contiguous buffer, so a
//! collective moves them in one call (PyTorch DDP's gradient buckets, Li et al. 2020).
use anyhow::Result;
use tch::{Kind, Tensor};

/// One flat all-reduce carries at most this many bytes (PyTorch DDP's default bucket_cap_mb).
pub const BUCKET_BYTES: usize = 25 << 20;

/// Calls `f` on consecutive runs of `ts` of one dtype and at most [`BUCKET_BYTES`].
pub(super) fn for_buckets(ts: &[Tensor], mut f: impl FnMut(&[Tensor]) -> Result<()>) -> Result<()> {
    let mut start = 0;
    while start < ts.len() {
        let kind: Kind = ts[start].kind();
        let mut end = start;
        let mut bytes = 0;
        while end < ts.len() && ts[end].kind() == kind {
            let b = ts[end].numel() * ts[end].kind().elt_size_in_bytes();
            if end > start && bytes + b > BUCKET_BYTES {
                break;
            }
            bytes += b;
            end += 1;
        }
        f(&ts[start..end])?;
        start = end;
    }
    Ok(())
}

/// One contiguous buffer holding every tensor of `bucket`, flattened: (Σ numel,).
pub(super) fn flatten(bucket: &[Tensor]) -> Tensor {
    let flat: Vec<Tensor> = bucket.iter().map(|t| t.reshape([-1])).collect();
    Tensor::cat(&flat, 0)
}

/// Copies the slices of `flat` back into the tensors of `bucket`, in place.
pub(super) fn unflatten(flat: &Tensor, bucket: &[Tensor]) {
    let mut off = 0;
    for t in bucket {
        let n = t.numel() as i64;
        let mut dst = t.shallow_clone();
        dst.copy_(&flat.narrow(0, off, n).view_as(t));
        off += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_split_by_size_and_dtype_and_round_trip() {
        let big = (BUCKET_BYTES / 4) as i64; // one full bucket of f32
        let ts = [
            Tensor::ones([2, 3], (Kind::Float, tch::Device::Cpu)),
            Tensor::ones([big], (Kind::Float, tch::Device::Cpu)),
            Tensor::ones([4], (Kind::Double, tch::Device::Cpu)),
        ];
        let mut sizes = Vec::new();
        for_buckets(&ts, |b| {
            sizes.push(b.len());
            let flat = flatten(b) * 2.0;
            unflatten(&flat, b);
            Ok(())
        })
        .unwrap();
        assert_eq!(sizes, [1, 1, 1]);
        for t in &ts {
            assert_eq!(
                t.sum(Kind::Double).double_value(&[]),
                2.0 * t.numel() as f64
            );
        }
    }
}

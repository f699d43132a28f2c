//! Memory-mapped token files and random (x, y) windows, as nanoGPT's `get_batch`:
//! B starts uniform in [0, len − T), x = tokens[s .. s+T], y = tokens[s+1 .. s+T+1].
use crate::error::DataError;
use crate::prepare::Meta;
use anyhow::{bail, Context, Result};
use memmap2::Mmap;
use runtime::Rng;
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

/// A `train.bin` / `val.bin` of raw little-endian u16 or u32 ids, memory-mapped.
pub struct TokenFile {
    path: PathBuf,
    map: Mmap,
    width: usize,
}

impl TokenFile {
    /// Map `path`, whose token width comes from the dataset's `meta`.
    pub fn open(path: &Path, meta: &Meta) -> Result<Self> {
        meta.validate()
            .with_context(|| format!("the meta for {}", path.display()))?;
        let f = std::fs::File::open(path).with_context(|| {
            format!(
                "opening token file {} (run `prepare` first)",
                path.display()
            )
        })?;
        // SAFETY: the map is only read, and `prepare` replaces token files by rename, never
        // in place, so the mapped inode does not change under us.
        let map =
            unsafe { Mmap::map(&f) }.with_context(|| format!("mapping {}", path.display()))?;
        let width = meta.bytes_per_token();
        if map.len() % width != 0 {
            bail!(
                "{}: {} bytes is not a whole number of {}-byte tokens",
                path.display(),
                map.len(),
                width
            );
        }
        Ok(Self {
            path: path.into(),
            map,
            width,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// "train" / "val" (the file stem), for messages.
    pub fn split(&self) -> String {
        self.path
            .file_stem()
            .map_or_else(|| "token".into(), |s| s.to_string_lossy().into_owned())
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.map.len() / self.width
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Token `i` (panics when `i >= len()`, as slice indexing does).
    pub fn get(&self, i: usize) -> u32 {
        let b = &self.map[i * self.width..(i + 1) * self.width];
        if self.width == 2 {
            u16::from_le_bytes([b[0], b[1]]) as u32
        } else {
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        }
    }

    /// Tokens `start .. start + n` as i64 (panics past the end).
    fn window(&self, start: usize, n: usize, out: &mut Vec<i64>) {
        let bytes = &self.map[start * self.width..(start + n) * self.width];
        if self.width == 2 {
            out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]) as i64),
            );
        } else {
            out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64),
            );
        }
    }

    /// A batch of `batch` random windows of `block` tokens: (x, y), each (B, T) int64 on
    /// `device`, y = x shifted left by one. Draws exactly `batch` values from `rng`, so a
    /// run restored from [`Rng::state`] continues the same stream. Errors when this split
    /// has fewer than `block + 1` tokens.
    pub fn get_batch(
        &self,
        rng: &mut Rng,
        batch: usize,
        block: usize,
        device: Device,
    ) -> Result<(Tensor, Tensor)> {
        if batch == 0 || block == 0 {
            bail!("batch size ({batch}) and block size ({block}) must both be at least 1");
        }
        let n = self.len();
        if n <= block {
            return Err(DataError::ShortSplit {
                split: self.split(),
                path: self.path.clone(),
                tokens: n,
                block,
            }
            .into());
        }
        let (mut x, mut y) = (
            Vec::with_capacity(batch * block),
            Vec::with_capacity(batch * block),
        );
        for _ in 0..batch {
            let s = rng.below((n - block) as u64) as usize;
            self.window(s, block, &mut x);
            self.window(s + 1, block, &mut y);
        }
        let shape = [batch as i64, block as i64]; // (B, T)
        Ok((
            Tensor::from_slice(&x).view(shape).to(device),
            Tensor::from_slice(&y).view(shape).to(device),
        ))
    }
}

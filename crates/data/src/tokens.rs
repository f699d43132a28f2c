//! Memory-mapped token files and random (x, y) windows, as nanoGPT's `get_batch`:
//! B starts uniform in [0, len − T), x = tokens[s .. s+T], y = tokens[s+1 .. s+T+1].
use crate::prepare::Meta;
use crate::rng::Rng;
use anyhow::{bail, Context, Result};
use memmap2::Mmap;
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

pub struct TokenFile {
    path: PathBuf,
    map: Mmap,
    width: usize,
}

impl TokenFile {
    pub fn open(path: &Path, meta: &Meta) -> Result<Self> {
        let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: the file is only read; `prepare` replaces token files by rename, never in place.
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

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.map.len() / self.width
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, i: usize) -> u32 {
        let b = &self.map[i * self.width..(i + 1) * self.width];
        if self.width == 2 {
            u16::from_le_bytes([b[0], b[1]]) as u32
        } else {
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        }
    }

    /// A batch of `batch` random windows of `block` tokens: (x, y), each (B, T) int64.
    pub fn get_batch(
        &self,
        rng: &mut Rng,
        batch: usize,
        block: usize,
        device: Device,
    ) -> Result<(Tensor, Tensor)> {
        let n = self.len();
        if n <= block {
            bail!(
                "{}: {n} tokens, shorter than one block of {block} + 1 (use a longer corpus or a smaller block_size)",
                self.path.display()
            );
        }
        let (mut x, mut y) = (
            Vec::with_capacity(batch * block),
            Vec::with_capacity(batch * block),
        );
        for _ in 0..batch {
            let s = rng.below((n - block) as u64) as usize;
            x.extend((s..s + block).map(|i| self.get(i) as i64));
            y.extend((s + 1..s + block + 1).map(|i| self.get(i) as i64));
        }
        let shape = [batch as i64, block as i64];
        Ok((
            Tensor::from_slice(&x).view(shape).to(device),
            Tensor::from_slice(&y).view(shape).to(device),
        ))
    }
}

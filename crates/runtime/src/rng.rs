//! A tiny deterministic RNG (SplitMix64, Steele, Lea & Flood 2014, "Fast splittable
//! pseudorandom number generators") whose whole state is one u64, so the batch sampler can
//! be checkpointed and resumed bit-identically (`state()` / `from_state`, or serde).
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A stream seeded with `seed` (the reference SplitMix64 seeding: state = seed).
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// Resume from a [`Rng::state`] taken earlier.
    pub fn from_state(state: u64) -> Self {
        Self { state }
    }

    /// The whole state: save it to resume the stream exactly.
    pub fn state(&self) -> u64 {
        self.state
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, n) by Lemire's multiply-shift (one draw; the bias, at most n / 2⁶⁴,
    /// is far below anything measurable for token counts). `below(0)` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

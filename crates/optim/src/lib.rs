//! Optimisation for the Ladder training loop.
//!
//! - [`AdamW`]: Adam with decoupled weight decay (Loshchilov & Hutter, "Decoupled Weight
//!   Decay Regularization", ICLR 2019), following PyTorch's `torch.optim.AdamW`
//!   (single-tensor path) op for op, with parameter groups, per-parameter step counts and
//!   bit-exact checkpointing ([`AdamW::state_tensors`], [`AdamW::load_state_tensors`]).
//!   tch has no `_foreach` ops nor the fused AdamW kernel; instead the parameters,
//!   gradients and moments live in flat buffers (parameters and gradients are views into
//!   them) and the update runs over large blocks (`flat.rs`).
//! - [`CosineSchedule`]: linear warmup then cosine decay to `min_lr`, exactly nanoGPT's
//!   `get_lr` (Karpathy, `train.py`).
//! - [`clip_grad_norm`]: global L2 gradient-norm clipping, PyTorch's
//!   `torch.nn.utils.clip_grad_norm_` semantics.
//!
//! # Gradient accumulation
//!
//! Nothing here knows about micro-batches: the training loop runs `accum` forward/backward
//! passes on `loss / accum` (gradients add up in `.grad`), then calls, once per optimiser
//! step, [`clip_grad_norm`], [`AdamW::step`] with the schedule's learning rate, and
//! [`AdamW::zero_grad`]:
//!
//! ```ignore
//! for it in 0..max_iters {
//!     for _ in 0..accum {
//!         let loss = model.loss(&batch.next()?) / accum as f64;
//!         loss.backward();
//!     }
//!     let norm = clip_grad_norm(&params, 1.0);
//!     opt.step(schedule.lr(it));
//!     opt.zero_grad();
//! }
//! ```

mod adamw;
mod clip;
mod flat;
mod groups;
mod schedule;
mod state;

pub use adamw::{groups_by_dim, AdamW, AdamWConfig, Layout, ParamGroup};
pub use clip::clip_grad_norm;
pub use flat::BLOCK as FLAT_BLOCK;
pub use schedule::CosineSchedule;

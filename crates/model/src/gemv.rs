//! Batch-1 decode matmuls chosen by measurement. A decode step reads every weight once
//! for one row of activations, so it is bound by memory bandwidth, and how close a kernel
//! gets to it depends on the CPU and the weight's layout: on an AMX Xeon `mv` (gemv) read
//! bf16 weights faster than `x · Wᵀ` through `mm`; on a Zen 4 EPYC `mv` was the slower one
//! in bf16, and in fp32 the weight stored column-major (`Wᵀ` contiguous) streamed faster
//! (`just speed-overhead` records the per-shape timings). Neither reached the machine's
//! read bandwidth there, so a fifth way is our own streaming gemv (`runtime::gemv`). So
//! before decoding, [`tune_for_decode`] times the five ways — `mv` or `mm` on row- or
//! column-major storage, or the streaming gemv on row-major storage — on
//! one weight of each shape and dtype (interleaved, best of three, caches flushed before
//! each, as a decode step finds them), then applies the fastest to every weight of that
//! shape: the layout once (`set_data` to the same values, transposed in memory, and in
//! transparent huge pages from 2 MiB up; a tied head's embedding follows), the kernel
//! through the layer's `WeightT`. Values are
//! unchanged; only which kernel reads them. Weights under [`TUNE_MIN_BYTES`] keep `mv` on
//! row-major storage (tiny models are bound by per-op overhead, where `mv` is the cheapest
//! call).
use crate::Gpt;
use std::sync::Mutex;
use std::time::Instant;
use tch::{Kind, Tensor};

/// Smallest weight (bytes) worth timing: 1 MiB.
pub const TUNE_MIN_BYTES: i64 = 1 << 20;

/// How a single row multiplies a weight `W` (out, in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum RowKernel {
    /// `mv(W, x)` on row-major `W` (the default).
    MvRowMajor,
    /// `x · Wᵀ` through `mm` on row-major `W`.
    MmRowMajor,
    /// `mv(W, x)` with `W` stored column-major.
    MvColMajor,
    /// `x · Wᵀ` through `mm` with `W` stored column-major (`Wᵀ` contiguous).
    MmColMajor,
    /// Our own streaming gemv on row-major `W` (`runtime::gemv`: AVX-512 / AVX512-BF16 /
    /// AVX2 loops, one sequential stream per row), with the bias added in the same pass.
    /// Timed only on CPUs with AVX2+FMA and f32 or bf16 weights.
    Stream,
}

impl RowKernel {
    pub const ALL: [RowKernel; 5] = [
        RowKernel::MvRowMajor,
        RowKernel::MmRowMajor,
        RowKernel::MvColMajor,
        RowKernel::MmColMajor,
        RowKernel::Stream,
    ];

    /// Names for tables, in the order of [`RowKernel::ALL`].
    pub const NAMES: [&'static str; 5] = [
        "mv row-major",
        "mm row-major",
        "mv col-major",
        "mm col-major",
        "stream (ours)",
    ];

    fn col_major(self) -> bool {
        matches!(self, RowKernel::MvColMajor | RowKernel::MmColMajor)
    }

    fn row_path(self) -> crate::layers::RowPath {
        use crate::layers::RowPath;
        match self {
            RowKernel::MvRowMajor | RowKernel::MvColMajor => RowPath::Mv,
            RowKernel::MmRowMajor | RowKernel::MmColMajor => RowPath::Mm,
            RowKernel::Stream => RowPath::Stream,
        }
    }

    /// Whether this kernel can run on `w` here (the streaming gemv needs AVX2+FMA and a
    /// CPU f32 or bf16 weight).
    pub fn available_for(self, w: &Tensor) -> bool {
        self != RowKernel::Stream
            || (runtime::gemv::level().is_some()
                && w.device() == tch::Device::Cpu
                && matches!(w.kind(), Kind::Float | Kind::BFloat16))
    }
}

/// What tuning found for one shape and dtype.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Tuned {
    pub out: i64,
    pub inp: i64,
    pub kind: String,
    /// Weights of this shape in the model.
    pub count: usize,
    pub kernel: RowKernel,
    /// Best time of each of [`RowKernel::ALL`], µs (infinite where one is not available).
    pub us: [f64; 5],
}

/// Whether [`tune_for_decode`] runs (on unless a benchmark turns it off to time the default).
static TUNING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Turn [`tune_for_decode`] on or off in this process (off: it changes nothing).
pub fn set_tuning(on: bool) {
    TUNING.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether weights move into huge pages (on unless a benchmark turns it off to time 4 KiB
/// pages).
static HUGE_PAGES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Keep decode's weights in transparent huge pages (on, the default) or in libtorch's own
/// allocations (off), from the next kernel choice on ([`tune_for_decode`],
/// [`force_for_decode`]) in this process.
pub fn set_huge_pages(on: bool) {
    HUGE_PAGES.store(on, std::sync::atomic::Ordering::Relaxed);
}

fn huge_pages() -> bool {
    HUGE_PAGES.load(std::sync::atomic::Ordering::Relaxed)
}

/// A tuning's key: (out, in, dtype, threads).
type ShapeKey = (i64, i64, Kind, i32);

/// Choices made in this process.
static CHOSEN: Mutex<Vec<(ShapeKey, Tuned)>> = Mutex::new(Vec::new());

/// Bytes of a weight timed at most (a slice of its rows above this): bounds the copies a
/// large head needs while staying far above any last-level cache.
const TIME_MAX_BYTES: i64 = 128 << 20;
/// A buffer read before each timing to evict the caches: in a decode step every weight
/// comes from memory (the model is larger than the caches), so a timing on a weight still
/// in cache from the previous call would favour the wrong kernel.
const FLUSH_BYTES: i64 = 64 << 20;

/// Time the five ways for a weight shaped like `w` (out, in), interleaved, best of three,
/// each from cold caches (infinite for one not available here).
fn measure(w: &Tensor) -> [f64; 5] {
    let (out, inp) = (w.size()[0], w.size()[1]);
    let row_bytes = inp * w.kind().elt_size_in_bytes() as i64;
    let rows = out.min((TIME_MAX_BYTES / row_bytes).max(1));
    let row = stored(&w.narrow(0, 0, rows)); // row-major (w may be column-major)
    let col = stored(&row.tr()).tr(); // same values, column-major
    let x = Tensor::randn([1, inp], (Kind::Float, w.device())).to_kind(w.kind());
    let xv = x.view([inp]);
    let flush = Tensor::ones([FLUSH_BYTES / 4], (Kind::Float, w.device()));
    let run = |k: RowKernel| {
        let w = if k.col_major() { &col } else { &row };
        if !k.available_for(w) {
            return f64::INFINITY;
        }
        let _ = flush.sum(Kind::Float).double_value(&[]);
        let t = Instant::now();
        let y = match k.row_path() {
            crate::layers::RowPath::Mm => x.mm(&w.tr()),
            crate::layers::RowPath::Mv => w.mv(&xv),
            crate::layers::RowPath::Stream => {
                runtime::gemv::gemv(w, &xv, None).unwrap_or_else(|| w.mv(&xv))
            }
        };
        let _ = y.view([-1]).double_value(&[0]); // wait for the result
        t.elapsed().as_secs_f64() * 1e6
    };
    let mut best = [f64::INFINITY; 5];
    for round in 0..4 {
        for (i, &k) in RowKernel::ALL.iter().enumerate() {
            let us = run(k);
            if round > 0 {
                best[i] = best[i].min(us); // round 0 warms up
            }
        }
    }
    best
}

/// Every dense matmul weight a decode step reads, with the `WeightT` that multiplies it.
fn weights(m: &Gpt) -> Vec<(&Tensor, &crate::layers::WeightT)> {
    use crate::layers::Mlp;
    let mut out = Vec::new();
    for b in &m.h {
        let mut lins = vec![&b.attn.c_attn, &b.attn.c_proj];
        match &b.mlp {
            Mlp::Gelu(g) => lins.extend([&g.c_fc, &g.c_proj]),
            Mlp::SwiGlu(s) => lins.extend([&s.gate_proj, &s.up_proj, &s.down_proj]),
            Mlp::Moe(_) => {} // experts run through their own batched matmuls
        }
        for l in lins.into_iter().filter(|l| l.quant.is_none()) {
            out.push((&l.weight, &l.wt));
        }
    }
    if m.head_q.is_none() {
        out.push((m.lm_head.as_ref().unwrap_or(&m.wte), &m.head_t));
    }
    out
}

/// A contiguous copy of `view`, in huge pages when it fills at least one
/// (`runtime::pages`): decode reads every weight in full at each step (`just
/// speed-overhead` times the tuned kernels on 4 KiB and on huge pages).
/// With huge pages off ([`set_huge_pages`]): a fresh libtorch allocation.
fn stored(view: &Tensor) -> Tensor {
    let huge = (big(view) && huge_pages())
        .then(|| runtime::pages::huge_copy(view))
        .flatten();
    huge.unwrap_or_else(|| match view.is_contiguous() {
        true => view.copy(), // a new allocation, contiguous as the view
        false => view.contiguous(),
    })
}

/// At least one huge page.
fn big(w: &Tensor) -> bool {
    w.numel() * w.kind().elt_size_in_bytes() >= runtime::pages::HUGE_PAGE_BYTES
}

/// Whether `w` already lives where [`stored`] would put it (huge-page copies start on a
/// 2 MiB boundary; libtorch's own allocations are 64-byte aligned). A weight on a GPU is
/// always where it belongs.
fn where_stored(w: &Tensor) -> bool {
    !big(w)
        || w.device() != tch::Device::Cpu // huge pages are for host memory only
        || (w.data_ptr() as usize).is_multiple_of(runtime::pages::HUGE_PAGE_BYTES) == huge_pages()
}

/// Store `w` in `kernel`'s layout, in huge pages when large enough (when `relayout`), and
/// multiply single rows as it says.
fn apply(w: &Tensor, wt: &crate::layers::WeightT, kernel: RowKernel, relayout: bool) {
    let size = w.size();
    let is_col = w.stride() == [1, size[0]];
    if relayout && (kernel.col_major() != is_col || !where_stored(w)) {
        let new = match kernel.col_major() {
            true => stored(&w.tr()).tr(), // (out, in) values, column-major
            false => stored(w),
        };
        w.shallow_clone().set_data(&new);
    }
    wt.set_row_path(kernel.row_path());
}

/// Apply `kernel` to every dense weight of `m` in the compute dtype, whatever its size and
/// without timing (for tests and kernel comparisons); outside inference mode.
pub fn force_for_decode(m: &Gpt, kernel: RowKernel) {
    let compute = m.settings.dtype.kind();
    let _g = tch::no_grad_guard();
    for (w, wt) in weights(m) {
        if w.kind() == compute && w.dim() == 2 && kernel.available_for(w) {
            apply(w, wt, kernel, !runtime::inference::is_enabled());
        }
    }
}

/// Choose and apply the fastest single-row kernel for every weight of `m` of at least
/// [`TUNE_MIN_BYTES`] whose dtype is the compute dtype (what decode multiplies directly).
/// Shapes already tuned in this process (at the same thread count) are not timed again.
/// Call it before decoding, outside inference mode (inside it, layouts stay as they are).
pub fn tune_for_decode(m: &Gpt) -> Vec<Tuned> {
    if !TUNING.load(std::sync::atomic::Ordering::Relaxed) {
        return Vec::new();
    }
    let compute = m.settings.dtype.kind();
    let threads = tch::get_num_threads();
    let may_relayout = !runtime::inference::is_enabled();
    let ws = weights(m);
    let mut report: Vec<Tuned> = Vec::new();
    let _g = tch::no_grad_guard();
    for (w, wt) in &ws {
        let (kind, size) = (w.kind(), w.size());
        let bytes = w.numel() as i64 * kind.elt_size_in_bytes() as i64;
        if kind != compute || size.len() != 2 || bytes < TUNE_MIN_BYTES {
            continue;
        }
        let key = (size[0], size[1], kind, threads);
        let tuned = {
            let mut chosen = CHOSEN.lock().unwrap_or_else(|e| e.into_inner());
            match chosen.iter().find(|(k, _)| *k == key) {
                Some((_, t)) => t.clone(),
                None => {
                    let us = measure(w);
                    let mut order: Vec<usize> = (0..RowKernel::ALL.len()).collect();
                    if !may_relayout {
                        order.retain(|&i| !RowKernel::ALL[i].col_major());
                    }
                    let best = order.into_iter().min_by(|&a, &b| us[a].total_cmp(&us[b]));
                    let t = Tuned {
                        out: size[0],
                        inp: size[1],
                        kind: format!("{kind:?}"),
                        count: 0,
                        kernel: RowKernel::ALL[best.unwrap_or(0)],
                        us,
                    };
                    chosen.push((key, t.clone()));
                    t
                }
            }
        };
        apply(w, wt, tuned.kernel, may_relayout);
        match report
            .iter_mut()
            .find(|r| (r.out, r.inp) == (size[0], size[1]))
        {
            Some(r) => r.count += 1,
            None => report.push(Tuned { count: 1, ..tuned }),
        }
    }
    report
}

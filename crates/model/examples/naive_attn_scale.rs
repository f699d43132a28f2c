//! The naive attention's forward + backward at the speed preset's shape (batch 8, 12 heads,
//! 256 positions, head size 32, fp32), three ways, interleaved: the 1/sqrt(hs) scale on the
//! (B, nh, T, S) scores (nanoGPT's way, and ours before), on q (B, nh, T, hs) with the mask
//! filled in place, and on q with the mask filled out of place (what `model::attention`
//! does). `cargo run --release -p model --example naive_attn_scale`; a kept run is in
//! results/speed/naive_attn_scale.txt.
use std::time::Instant;
use tch::{Device, Kind, Tensor};
fn main() {
    tch::set_num_threads(2);
    let o = (Kind::Float, Device::Cpu);
    let q = Tensor::randn([8, 12, 256, 32], o).set_requires_grad(true);
    let k = Tensor::randn([8, 12, 256, 32], o).set_requires_grad(true);
    let v = Tensor::randn([8, 12, 256, 32], o).set_requires_grad(true);
    let mask = model::attention::causal_mask(256, 256, 0, None, Device::Cpu);
    let scale = 1.0 / 32f64.sqrt();
    let mut t: Vec<Vec<f64>> = vec![vec![]; 3];
    for _ in 0..15 {
        for (var, times) in t.iter_mut().enumerate() {
            let s = Instant::now();
            for _ in 0..6 {
                let att = match var {
                    0 => (q.matmul(&k.transpose(-2, -1)) * scale)
                        .masked_fill(&mask.logical_not(), f64::NEG_INFINITY),
                    1 => {
                        let mut a = (&q * scale).matmul(&k.transpose(-2, -1));
                        let _ = a.masked_fill_(&mask.logical_not(), f64::NEG_INFINITY);
                        a
                    }
                    _ => (&q * scale)
                        .matmul(&k.transpose(-2, -1))
                        .masked_fill(&mask.logical_not(), f64::NEG_INFINITY),
                };
                let y = att.softmax(-1, Kind::Float).matmul(&v);
                y.sum(Kind::Float).backward();
            }
            times.push(s.elapsed().as_secs_f64() * 1e3 / 6.0);
        }
    }
    let names = [
        "scale on the scores, mask out of place",
        "scale on q, mask in place",
        "scale on q, mask out of place (model::attention)",
    ];
    println!("one layer's naive attention, forward + backward, (8, 12, 256, 32) fp32, 2 threads, 15 interleaved rounds of 6:");
    for (name, mut x) in names.iter().zip(t) {
        x.sort_by(f64::total_cmp);
        println!(
            "{name}: median {:.2} ms (min {:.2}, max {:.2})",
            x[x.len() / 2],
            x[0],
            x[x.len() - 1]
        );
    }
}

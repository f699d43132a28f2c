//! `runtime::mem::keep_freed_memory`: after it, memory a large tensor frees stays with the
//! process (resident) for the next allocation instead of going back to the OS. Its own test
//! binary, without the test harness (`harness = false`): the setting is process-wide and
//! must come before any large allocation, on the main thread as in a binary's `main`.
use tch::{Device, Kind, Tensor};

fn main() {
    freed_memory_stays_in_the_process();
    println!("test freed_memory_stays_in_the_process ... ok");
}

fn freed_memory_stays_in_the_process() {
    if !runtime::mem::keep_freed_memory() {
        eprintln!("not glibc on Linux (or LADDER_MALLOC=system): nothing to check");
        return;
    }
    let before = runtime::mem::rss_bytes().expect("/proc/self/status");
    let big = 256i64 << 20;
    let t = Tensor::ones([big / 4], (Kind::Float, Device::Cpu)); // touched: resident
    let during = runtime::mem::rss_bytes().unwrap();
    assert!(
        during >= before + (big as u64) * 9 / 10,
        "{before} → {during}"
    );
    let t_ptr = t.data_ptr() as usize;
    drop(t);
    let after = runtime::mem::rss_bytes().unwrap();
    // With glibc's defaults the 256 MiB would be munmapped here and RSS fall back.
    assert!(
        after >= before + (big as u64) * 9 / 10,
        "freed memory went back to the OS: RSS {before} → {during} → {after}"
    );
    // ... and a later allocation that fits reuses it: no new pages. (A little less than
    // the freed block: small allocations made meanwhile may take its first bytes.)
    let t2 = Tensor::ones([big / 4 * 9 / 10], (Kind::Float, Device::Cpu));
    assert!(t2.data_ptr() as usize >= t_ptr && (t2.data_ptr() as usize) < t_ptr + (big as usize));
    let again = runtime::mem::rss_bytes().unwrap();
    assert!(again < after + (big as u64) / 10, "{after} → {again}");
    drop(t2);
}

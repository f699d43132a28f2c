//! `runtime::mem::keep_freed_memory`: after it, memory a large tensor frees stays with the
//! process (resident) for the next allocation instead of going back to the OS. Its own test
//! binary, without the test harness (`harness = false`): the setting is process-wide and
//! must come before any large allocation, on the main thread as in a binary's `main`.
use tch::{Device, Kind, Tensor};

fn main() {
    freed_memory_stays_in_the_process();
    println!("test freed_memory_stays_in_the_process ... ok");
    more_than_2_gib_freed_at_once_stays_too();
    println!("test more_than_2_gib_freed_at_once_stays_too ... ok");
}

/// The speed preset frees more than 2 GiB at the end of each backward pass. A trim threshold
/// of `INT_MAX` (2 GiB) gave such a block back to the OS at `free`, so the next step faulted
/// every page in again; -1 (never trim) keeps it. Plain malloc/free, with nothing allocated
/// in between, so the block is freed next to the top of the heap, where trimming happens.
fn more_than_2_gib_freed_at_once_stays_too() {
    if std::env::var(runtime::mem::MALLOC_VAR).is_ok() {
        return;
    }
    let bytes: usize = 9 << 28; // 2.25 GiB
    let pages = (bytes / 4096) as u64;
    // SAFETY: each block is checked for null, written within its size and freed once.
    unsafe {
        let p = libc::malloc(bytes).cast::<u8>();
        assert!(!p.is_null(), "malloc({bytes})");
        std::ptr::write_bytes(p, 1, bytes);
        // black_box: otherwise the compiler may drop the whole malloc/write/free pair.
        libc::free(std::hint::black_box(p).cast());
        let before = runtime::mem::minor_faults().expect("getrusage");
        let q = libc::malloc(bytes).cast::<u8>();
        assert!(!q.is_null(), "malloc({bytes})");
        std::ptr::write_bytes(q, 2, bytes);
        let faults = runtime::mem::minor_faults().unwrap() - before;
        libc::free(std::hint::black_box(q).cast());
        assert!(
            faults < pages / 10,
            "the freed 2.25 GiB went back to the OS: writing it again faulted {faults} of {pages} pages"
        );
    }
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

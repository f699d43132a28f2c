//! Compiles `shim/c10d_shim.cpp` against the libtorch torch-sys found (`DEP_TCH_LIBTORCH_LIB`,
//! as `build/torch_rpath.rs` does), links `libtorch_cpu` (TCPStore, ProcessGroupGloo live
//! there) and bakes the libtorch folder into the rpath of this crate's binaries and tests.
//!
//! The ABI flag follows torch-sys (`LIBTORCH_CXX11_ABI`, default 1: the pip wheels since
//! torch 2.7 use the C++11 ABI); the standard is C++20, as the wheel's `TorchConfig.cmake` says.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=shim");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let lib = PathBuf::from(
        std::env::var("DEP_TCH_LIBTORCH_LIB")
            .expect("torch-sys did not export DEP_TCH_LIBTORCH_LIB (is LIBTORCH set?)"),
    );
    let root = lib.parent().expect("libtorch lib folder has a parent");
    let include = root.join("include");
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    cc::Build::new()
        .cpp(true)
        .file("shim/c10d_shim.cpp")
        .include("shim/gloo_stub")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++20")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .define("USE_C10D_GLOO", None)
        .flag_if_supported("-Wno-unused-parameter")
        .warnings(false)
        .compile("c10d_shim");
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
}

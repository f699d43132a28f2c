//! Compiles `shim/c10d_shim.cpp` against the libtorch torch-sys found (`DEP_TCH_LIBTORCH_LIB`,
//! as `build/torch_rpath.rs` does), links `libtorch_cpu` (TCPStore, ProcessGroupGloo live
//! there) and bakes the libtorch folder into the rpath of this crate's binaries and tests.
//!
//! NCCL (`ProcessGroupNCCL`, in `libtorch_cuda`) is compiled in too when everything it needs
//! is there: `libtorch_cuda.so` beside `libtorch_cpu.so`, and the headers of the pip wheels
//! the full install brings (`scripts/setup-libtorch.sh full`): CUDA's runtime and `crt`
//! headers and CCCL's `nv/target` under `site-packages/nvidia/cu13/include`, and `nccl.h`
//! under `site-packages/nvidia/nccl/include`. `LADDER_NCCL=0|1` overrides the detection
//! (1 fails the build when something is missing). Without it the shim is Gloo only.
//!
//! The ABI flag follows torch-sys (`LIBTORCH_CXX11_ABI`, default 1: the pip wheels since
//! torch 2.7 use the C++11 ABI); the standard is C++20, as the wheel's `TorchConfig.cmake` says.
use std::path::{Path, PathBuf};

/// The include folders NCCL's headers need, or what is missing.
fn nccl_includes(lib: &Path) -> Result<Vec<PathBuf>, String> {
    if !lib.join("libtorch_cuda.so").exists() {
        return Err(format!("no libtorch_cuda.so in {}", lib.display()));
    }
    // Through the real folder: `.venv/libtorch` is a symlink to site-packages/torch.
    let lib = std::fs::canonicalize(lib).unwrap_or_else(|_| lib.to_path_buf());
    let site = lib
        .parent()
        .and_then(Path::parent)
        .ok_or("libtorch is not inside site-packages")?;
    let cuda = site.join("nvidia/cu13/include");
    let nccl = site.join("nvidia/nccl/include");
    let cccl = [cuda.join("cccl"), cuda.clone()]
        .into_iter()
        .find(|d| d.join("nv/target").exists());
    for need in [
        cuda.join("cuda_runtime_api.h"),
        cuda.join("crt/host_config.h"),
        nccl.join("nccl.h"),
    ] {
        if !need.exists() {
            return Err(format!("{} is missing", need.display()));
        }
    }
    let cccl = cccl.ok_or_else(|| format!("no nv/target under {}", cuda.display()))?;
    Ok(vec![cuda, cccl, nccl])
}

fn main() {
    println!("cargo:rerun-if-changed=shim");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    println!("cargo:rerun-if-env-changed=LADDER_NCCL");
    let lib = PathBuf::from(
        std::env::var("DEP_TCH_LIBTORCH_LIB")
            .expect("torch-sys did not export DEP_TCH_LIBTORCH_LIB (is LIBTORCH set?)"),
    );
    let root = lib.parent().expect("libtorch lib folder has a parent");
    let include = root.join("include");
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    let nccl = match (std::env::var("LADDER_NCCL").as_deref(), nccl_includes(&lib)) {
        (Ok("0"), _) => None,
        (_, Ok(dirs)) => Some(dirs),
        (Ok("1"), Err(why)) => panic!("LADDER_NCCL=1, but NCCL cannot be built: {why}"),
        (_, Err(why)) => {
            println!("cargo:warning=dist: Gloo only (no NCCL: {why}; `scripts/setup-libtorch.sh full` brings what it needs)");
            None
        }
    };
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .file("shim/c10d_shim.cpp")
        .include("shim/gloo_stub")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++20")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .define("USE_C10D_GLOO", None)
        .flag_if_supported("-Wno-unused-parameter")
        .warnings(false);
    if let Some(dirs) = &nccl {
        build
            .define("LADDER_NCCL", None)
            .define("USE_C10D_NCCL", None)
            .define("USE_CUDA", None);
        for d in dirs {
            build.include(d);
        }
    }
    build.compile("c10d_shim");
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    if nccl.is_some() {
        // ProcessGroupNCCL's symbols (the shim references them, so --as-needed keeps them).
        println!("cargo:rustc-link-lib=dylib=torch_cuda");
        println!("cargo:rustc-link-lib=dylib=c10_cuda");
    }
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
}

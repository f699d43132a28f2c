//! Shared build script for every crate that links libtorch.
//!
//! torch-sys exports the folder holding `libtorch*.so` as `DEP_TCH_LIBTORCH_LIB`
//! (its manifest has `links = "tch"`). We bake that folder into the rpath of every
//! binary, test, bench and example, so nothing has to export `LD_LIBRARY_PATH`.
//!
//! A pip-installed libtorch is a CUDA build even on a CPU-only machine: the linker's
//! `--as-needed` silently drops `libtorch_cuda.so` (nothing references it by symbol),
//! and `tch::Cuda::is_available()` then says false on a GPU machine. When the CUDA
//! libraries it needs are installed (the full wheel set), link it explicitly.
//! `LADDER_LINK_CUDA=0|1` overrides the detection.
use std::path::{Path, PathBuf};

fn cuda_runtime_present(lib: &Path) -> bool {
    if !lib.join("libtorch_cuda.so").exists() {
        return false;
    }
    // site-packages/torch/lib -> site-packages/nvidia/**/libcublas.so*, through the real
    // folder: `.venv/libtorch` is a symlink to site-packages/torch, and its parent is not
    // site-packages.
    let lib = std::fs::canonicalize(lib).unwrap_or_else(|_| lib.to_path_buf());
    let Some(site) = lib.parent().and_then(Path::parent) else {
        return false;
    };
    let nvidia = site.join("nvidia");
    let mut stack = vec![nvidia];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libcublas.so"))
            {
                return true;
            }
        }
    }
    false
}

pub fn main() {
    println!("cargo:rerun-if-env-changed=LADDER_LINK_CUDA");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    let lib = PathBuf::from(lib);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    let link_cuda = match std::env::var("LADDER_LINK_CUDA").as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        _ => cuda_runtime_present(&lib),
    };
    if link_cuda {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-L{}", lib.display());
        println!("cargo:rustc-link-arg=-ltorch_cuda");
    }
}

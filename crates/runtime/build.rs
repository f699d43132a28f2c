//! The shared libtorch rpath script, then the shims compiled against the same libtorch:
//! inference mode (`shim/inference_mode.cpp`), gradient assignment (`shim/grad.cpp`), the
//! decode matrix-vector kernel (`shim/gemv.cpp`), huge-page tensors (`shim/pages.cpp`) and
//! the fused cross-entropy of the training step (`shim/xent.cpp`), decode attention
//! (`shim/attn.cpp`), causal attention for training with its autograd function
//! (`shim/causal_attn.cpp`, `shim/causal_attn_fn.cpp`), the tanh GELU with its backward
//! (`shim/gelu.cpp`), and a probe of how many
//! threads their parallel loops use (`shim/parallel.cpp`).
#[path = "../../build/torch_rpath.rs"]
mod torch_rpath;

use std::path::PathBuf;

fn main() {
    torch_rpath::main();
    println!("cargo:rerun-if-changed=shim");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        panic!("torch-sys did not export DEP_TCH_LIBTORCH_LIB (is LIBTORCH set?)");
    };
    let lib = PathBuf::from(lib);
    let include = lib
        .parent()
        .expect("libtorch lib folder has a parent")
        .join("include");
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    let gomp = libtorch_gomp(&lib, &include);
    let mut build = cc::Build::new();
    if gomp.is_some() {
        // `at::parallel_for` is a header template: without `-fopenmp` (`_OPENMP` undefined)
        // it runs the whole range on the calling thread, so the kernels below would use one
        // core whatever `tch::set_num_threads` says.
        build.flag("-fopenmp");
    }
    build
        .cpp(true)
        .file("shim/inference_mode.cpp")
        .file("shim/grad.cpp")
        .file("shim/gemv.cpp")
        .file("shim/pages.cpp")
        .file("shim/xent.cpp")
        .file("shim/parallel.cpp")
        .file("shim/attn.cpp")
        .file("shim/causal_attn.cpp")
        .file("shim/causal_attn_fn.cpp")
        .file("shim/gelu.cpp")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .opt_level(3) // the gemv loops are hot even in debug test builds
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .warnings(false)
        .compile("ladder_inference_mode");
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    if let Some(name) = gomp {
        // The OpenMP runtime libtorch itself loads (its thread pool), not the compiler's:
        // two runtimes would mean two pools competing for the cores.
        println!("cargo:rustc-link-lib=dylib:+verbatim={name}");
    }
}

/// The GNU OpenMP runtime libtorch was built with and ships beside itself (`libgomp.so.1`
/// in a PyPI wheel), when its ATen parallel backend is OpenMP; `None` otherwise (the shims'
/// loops then run on the calling thread, with a build warning).
fn libtorch_gomp(lib: &std::path::Path, include: &std::path::Path) -> Option<String> {
    let config = std::fs::read_to_string(include.join("ATen/Config.h")).unwrap_or_default();
    let openmp = config.contains("#define AT_PARALLEL_OPENMP 1");
    let name = std::fs::read_dir(lib)
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("libgomp") && n.contains(".so"))
        .min_by_key(|n| n.len());
    match (openmp, name) {
        (true, Some(n)) => Some(n),
        _ => {
            println!(
                "cargo:warning=libtorch in {} has no OpenMP runtime beside it (or a non-OpenMP \
                 parallel backend): the decode gemv and fused cross-entropy shims run on one thread",
                lib.display()
            );
            None
        }
    }
}

//! The shared libtorch rpath script, then the shims compiled against the same libtorch:
//! inference mode (`shim/inference_mode.cpp`), gradient assignment (`shim/grad.cpp`), the
//! decode matrix-vector kernel (`shim/gemv.cpp`), huge-page tensors (`shim/pages.cpp`) and
//! the fused cross-entropy of the training step (`shim/xent.cpp`).
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
    cc::Build::new()
        .cpp(true)
        .file("shim/inference_mode.cpp")
        .file("shim/grad.cpp")
        .file("shim/gemv.cpp")
        .file("shim/pages.cpp")
        .file("shim/xent.cpp")
        .include(&include)
        .flag("-std=c++17")
        .opt_level(3) // the gemv loops are hot even in debug test builds
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .warnings(false)
        .compile("ladder_inference_mode");
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
}

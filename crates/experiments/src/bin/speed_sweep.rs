//! The speed ladder as curves (issue #12): `speed_sweep --help`, or `just speed-sweep`.
fn main() -> std::process::ExitCode {
    runtime::exit::main(experiments::speed::sweep::main)
}

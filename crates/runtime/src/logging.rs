//! `tracing` logs on stderr, filtered by `RUST_LOG`: set up once per binary.

/// Start logging on stderr: `RUST_LOG` if set, else `info`. A second call does nothing.
pub fn init() {
    init_with_default("info");
}

/// As [`init`], with `default` (e.g. "warn") when `RUST_LOG` is not set.
pub fn init_with_default(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

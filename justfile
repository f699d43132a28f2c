# Ladder: `just --list` shows every recipe. Recipes that need libtorch create the
# project-local .venv on demand (scripts/setup-libtorch.sh, idempotent).

set shell := ["bash", "-euo", "pipefail", "-c"]

# Show the recipes.
default:
    @just --list

# Create .venv with torch==2.13.0 (lean CPU install; `just setup full` for CUDA / bench/).
setup mode="auto":
    @scripts/setup-libtorch.sh {{mode}}

# Build every crate (release).
build: setup
    cargo build --release --workspace --all-targets

# The whole test suite, with the same format and lint gates as CI.
test: setup
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo test --workspace

# Format the code.
fmt:
    cargo fmt --all

# Lint (clippy with warnings as errors).
lint: setup
    cargo clippy --workspace --all-targets -- -D warnings

#!/usr/bin/env bash
# Time CI as CI runs it — `.ci/run` in a fresh clone of HEAD (so a cold build), with the
# shared resources beside it — and record the stages, the test binaries' own run time and
# the machine's CPU flags in results/ci/README.md. Takes as long as CI does.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
shared="$(realpath "${LADDER_SHARED:-$root/../shared}")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git clone -q "$root" "$work/ladder"
ln -s "$shared" "$work/shared"
rev="$(git -C "$root" rev-parse --short HEAD)"
start=$(date +%s)
(cd "$work/ladder" && env -u LIBTORCH bash .ci/run) 2>&1 | tee "$work/ci.log"
status=${PIPESTATUS[0]}
wall=$(( $(date +%s) - start ))
stage() { grep -o "ci: stage $1 took [0-9]* s" "$work/ci.log" | grep -o '[0-9]*' || echo "?"; }
# Each test binary's own time, from cargo's "test result: ... finished in Xs" lines.
tests_s=$(grep -o 'finished in [0-9.]*s' "$work/ci.log" | grep -o '[0-9.]*' | awk '{s += $1} END {printf "%.0f", s}')
passed=$(grep -o '[0-9]* passed' "$work/ci.log" | awk '{s += $1} END {print s}')
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)"
flags="$(grep -o 'avx2\|avx512f\|avx512_bf16\|amx_bf16' /proc/cpuinfo | sort -u | xargs)"
mkdir -p "$root/results/ci"
cat > "$root/results/ci/README.md.tmp" <<MD
# CI timing

Produced by \`scripts/time-ci.sh\` (git $rev, $(date -u +%Y-%m-%dT%H:%M:%SZ)): \`.ci/run\` in a fresh
clone, so the build starts cold; exit status $status.

Machine: $cpu, $(nproc) cores, CPU flags: ${flags:-none of avx2, avx512f, avx512_bf16, amx_bf16}.

| stage | seconds |
|---|---|
| install \`just\` | $(stage just) |
| \`just setup\` (venv + torch) | $(stage setup) |
| \`just test\` (fmt, clippy, build, tests) | $(stage test) |
| of which the test binaries ran | $tests_s |
| **total** | **$wall** |

$passed tests passed.
MD
mv "$root/results/ci/README.md.tmp" "$root/results/ci/README.md"
echo "wrote results/ci/README.md (CI took $wall s)"
exit "$status"

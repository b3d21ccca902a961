#!/usr/bin/env bash
# The Python package's CI stage: a virtual environment with maturin,
# pyspark, pyarrow, pandas<3, polars, mypy and pytest from PyPI (polars and
# mypy for the tests: DataFrames in, type stubs checked); the wheel built and
# installed into it; the tests (Python API and Spark job against the CLI on
# the demo) run on local[2] with the UI off. Java 17 is needed by Spark: it
# is installed from Debian when missing.
#
# The CLI the tests compare with and the wheel are built in the root's
# target directory, which they share (the engine's dependencies are
# compiled once for both, and once more only for arrow's pyarrow feature
# and PyO3). CHANGELING_PROFILE=debug (the default) builds both as
# `cargo test` does, so after `cargo test` in .ci/run only the extension
# itself is compiled; CHANGELING_PROFILE=release builds optimised ones.
#
# Environment: CHANGELING_VENV (default python/.venv) to reuse a venv.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

if ! command -v java >/dev/null 2>&1; then
  echo "installing Java 17 for Spark"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null
fi

venv="${CHANGELING_VENV:-python/.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
venv=$(cd "$venv" && pwd)   # absolute, whether given relative or not
"$venv/bin/pip" install -q --upgrade 'maturin>=1.7,<2' pyspark pyarrow 'pandas<3' polars mypy pytest
echo "venv ready: $(( $(date +%s) - start )) s"

export CARGO_TARGET_DIR="$PWD/target"
profile="${CHANGELING_PROFILE:-debug}"
case "$profile" in
  debug) release=() ;;
  release) release=(--release) ;;
  *) echo "CHANGELING_PROFILE must be debug or release, not $profile" >&2; exit 2 ;;
esac
cargo build "${release[@]}" --quiet --bin changeling
echo "CLI built ($profile): $(( $(date +%s) - start )) s"

rm -rf target/wheels
"$venv/bin/maturin" build "${release[@]}" --quiet --manifest-path python/Cargo.toml --out target/wheels
"$venv/bin/pip" install -q --force-reinstall --no-deps target/wheels/changeling-*.whl
echo "wheel built and installed: $(( $(date +%s) - start )) s"

export PYSPARK_PYTHON="$venv/bin/python"
export PYSPARK_DRIVER_PYTHON="$PYSPARK_PYTHON"
export CHANGELING_BIN="$PWD/target/$profile/changeling"
# The installed wheel is tested, not the source tree: run from the tests'
# directory so that `import changeling` finds site-packages.
(cd python/tests && "$PYSPARK_PYTHON" -m pytest -q -p no:cacheprovider .)
echo "python stage: $(( $(date +%s) - start )) s"

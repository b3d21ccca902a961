#!/usr/bin/env bash
# Sets up datasets/real/.venv from requirements.txt (first use, or when the
# requirements change) and runs the converter with the given arguments:
#
#   datasets/real/make.sh ciao --ratings ... --catalog ... --trust ... --out /work/data
#   datasets/real/make.sh movielens --dir .../ml-100k --out /work/data
#   datasets/real/make.sh test        # unit tests on made-up data (no real data needed)
#
# See datasets/README.md, "Real logs with planted episodes". Outputs must lie
# outside the repository: the source data may not be redistributed.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="$HERE/.venv"
STAMP="$VENV/.requirements"
if [ ! -x "$VENV/bin/python" ] || ! cmp -s "$HERE/requirements.txt" "$STAMP"; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
    cp "$HERE/requirements.txt" "$STAMP"
fi
if [ "${1:-}" = "test" ]; then
    shift
    cd "$HERE" && exec "$VENV/bin/python" -m unittest -v test_convert "$@"
fi
exec "$VENV/bin/python" "$HERE/convert.py" "$@"

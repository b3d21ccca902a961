#!/usr/bin/env bash
# Copies the source files the converter reads out of local clones (bare or
# not) of the two public repositories that hold them, at fixed commits, into
# DEST (outside this repository: the data may not be redistributed), and
# checks their SHA-256 against the copies the converter was written for.
#
#   datasets/real/extract.sh CIAO_EPINIONS_REPO FAIRNESS_DATA_REPO DEST
#
# CIAO_EPINIONS_REPO: vinhqdang/trust_predict_ciao_epinions (Ciao ratings with
#   day timestamps, MovieLens 100k).
# FAIRNESS_DATA_REPO: yushundong/Graph-Mining-Fairness-Data (Ciao category
#   names and the Ciao trust graph; the files were deleted from the branch
#   after the commit named here, so a clone needs its full history).
set -euo pipefail
if [ $# -ne 3 ]; then
    sed -n '2,13p' "$0"; exit 2
fi
A=$1 B=$2 DEST=$3
ROOT="$(cd "$(dirname "$0")/../.." && pwd -P)"
case "$(realpath -m "$DEST")/" in
    "$ROOT"/*) echo "refusing to write into the repository ($DEST): this data may not be redistributed" >&2; exit 1 ;;
esac
A_COMMIT=cda9a716c5478c66f9660cdb39a04a0f0b5de869
B_COMMIT=86a17feb5bcfe325c662284d7ac6450cea322755
mkdir -p "$DEST/ml-100k"
get() { # repo commit path dest sha256
    git -C "$1" show "$2:$3" > "$4"
    echo "$5  $4" | sha256sum --check --quiet || { echo "$4: unexpected content (not the copy the converter was written for)" >&2; exit 1; }
}
get "$A" $A_COMMIT code/ciao_rating_with_timestamp.mat "$DEST/ciao_rating_with_timestamp.mat" 488e9aa5f60e6a52a972795b6402f922fc0d9d273152f4d124a5c5bdefb86a71
get "$A" $A_COMMIT movielens100k/ml-100k/u.data "$DEST/ml-100k/u.data" 06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490
get "$A" $A_COMMIT movielens100k/ml-100k/u.item "$DEST/ml-100k/u.item" 553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701
get "$A" $A_COMMIT movielens100k/ml-100k/u.genre "$DEST/ml-100k/u.genre" 9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb
get "$A" $A_COMMIT movielens100k/ml-100k/README "$DEST/ml-100k/README" 4883b8cf340ed0059971b33f56ad3adc88a40792108ebca3d24aafc4c82e8b52
get "$B" $B_COMMIT ciao/catalog_ciao.txt "$DEST/catalog_ciao.txt" fc29d8cdbbb210ac5ce789537dc83481e694b5eb9f2c3a69c4948a182dd03783
get "$B" $B_COMMIT ciao/ciao.zip "$DEST/ciao.zip" dee78c18b4a0843791e82b522f632a1166296e6048537b13b18c281a12e8f741
echo "sources in $DEST"

#!/usr/bin/env bash
# Downloads CIFAR-10 (binary version) into DEST/cifar-10-batches-bin. With the default DEST,
# ./data, the apps find it when run from the same working directory (they search
# ./data/cifar-10-batches-bin); elsewhere, pass --data DIR or set CIFAR10_DIR.
#
# Usage: scripts/download-cifar10.sh [DEST]        (DEST defaults to ./data)
#
# Steps: nothing to do when DEST/cifar-10-batches-bin already holds every file; otherwise fetch
# the official archive with curl or wget, check its published MD5 before unpacking anything (a
# mismatch deletes the download and fails), unpack it into a scratch folder and move the finished
# folder into place, so an interrupted run never leaves a half-filled data folder behind.
#
# Environment:
#   CIFAR10_ARCHIVE=PATH  use this copy of cifar-10-binary.tar.gz instead of downloading (offline
#                         machines); it is checked against the MD5 too, and never deleted.
#   CIFAR10_URL=URL       download from this mirror instead of the official address.
set -euo pipefail

readonly official_url="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
readonly expected_md5="c32a1d4ab5d03f1284b67883e8d87530"
readonly folder="cifar-10-batches-bin"
readonly files=(data_batch_1.bin data_batch_2.bin data_batch_3.bin data_batch_4.bin data_batch_5.bin
                test_batch.bin batches.meta.txt)

die() {
    echo "download-cifar10: $*" >&2
    exit 1
}

case "${1:-}" in
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
        exit 0
        ;;
esac
[[ $# -le 1 ]] || die "expected at most one argument (DEST), got $#; see --help"

dest=${1:-./data}
target="$dest/$folder"

complete() {
    local f
    for f in "${files[@]}"; do
        [[ -s "$1/$f" ]] || return 1
    done
}

if complete "$target"; then
    echo "CIFAR-10 is already in $target; nothing to do."
    exit 0
fi
if [[ -e "$target" ]]; then
    die "$target exists but lacks some of: ${files[*]}. Remove it (rm -r '$target') and run again."
fi

# Checked before downloading 163 MB that could not be verified.
if command -v md5sum >/dev/null 2>&1; then
    md5_of() { md5sum "$1" | cut -d' ' -f1; }
elif command -v md5 >/dev/null 2>&1; then  # macOS
    md5_of() { md5 -q "$1"; }
else
    die "neither md5sum nor md5 is installed, so the archive cannot be checked; install coreutils"
fi

mkdir -p "$dest"
url=${CIFAR10_URL:-$official_url}
partial=""
scratch=""
cleanup() {
    if [[ -n "$partial" ]]; then rm -f "$partial"; fi
    if [[ -n "$scratch" ]]; then rm -rf "$scratch"; fi
}
trap cleanup EXIT

if [[ -n "${CIFAR10_ARCHIVE:-}" ]]; then
    archive=$CIFAR10_ARCHIVE
    [[ -f "$archive" ]] || die "CIFAR10_ARCHIVE='$archive' is not a file"
    echo "Using the archive $archive (CIFAR10_ARCHIVE)."
    downloaded=0
elif [[ -f "$dest/cifar-10-binary.tar.gz" && "$(md5_of "$dest/cifar-10-binary.tar.gz")" == "$expected_md5" ]]; then
    archive="$dest/cifar-10-binary.tar.gz"  # verified, left by an earlier run whose extraction failed
    echo "Using the archive $archive downloaded earlier."
    downloaded=1
else
    if ! command -v curl >/dev/null 2>&1 && ! command -v wget >/dev/null 2>&1; then
        die "neither curl nor wget is installed; install one (e.g. apt-get install curl), or download $official_url yourself and run again with CIFAR10_ARCHIVE=PATH."
    fi
    archive="$dest/cifar-10-binary.tar.gz"
    partial="$archive.part"
    echo "Downloading $url (about 163 MB) to $archive ..."
    if command -v curl >/dev/null 2>&1; then
        curl --fail --location --retry 3 --output "$partial" "$url" ||
            die "curl could not download $url (no internet access? a proxy?). On an offline machine, copy the archive over and run again with CIFAR10_ARCHIVE=PATH."
    else
        wget --tries=3 --output-document="$partial" "$url" ||
            die "wget could not download $url (no internet access? a proxy?). On an offline machine, copy the archive over and run again with CIFAR10_ARCHIVE=PATH."
    fi
    downloaded=1
fi

actual_md5=$(md5_of "${partial:-$archive}")
if [[ "$actual_md5" != "$expected_md5" ]]; then
    if [[ -n "$partial" ]]; then
        rm -f "$partial"
        die "the download is corrupt or truncated: MD5 $actual_md5, expected $expected_md5. It has been deleted; run the script again."
    fi
    die "$archive is corrupt, truncated or not the official cifar-10-binary.tar.gz: MD5 $actual_md5, expected $expected_md5. Nothing was extracted."
fi
echo "MD5 $actual_md5 is the published one."
if [[ -n "$partial" ]]; then
    mv "$partial" "$archive"
    partial=""
fi

scratch=$(mktemp -d "$dest/.cifar10-extract.XXXXXX")
echo "Extracting into $target ..."
tar -xzf "$archive" -C "$scratch" || die "could not extract $archive"
complete "$scratch/$folder" || die "$archive does not hold $folder/ with ${files[*]}"
mv "$scratch/$folder" "$target"
if [[ $downloaded == 1 ]]; then rm -f "$archive"; fi

absolute=$(cd "$target" && pwd)
echo "CIFAR-10 is ready in $absolute."
if [[ "$dest" == "./data" || "$dest" == "data" ]]; then
    echo "The apps find it when run from this folder; from elsewhere, pass --data $absolute or set CIFAR10_DIR=$absolute."
else
    echo "Pass --data $absolute to the apps, or set CIFAR10_DIR=$absolute."
fi

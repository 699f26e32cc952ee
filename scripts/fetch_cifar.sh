#!/usr/bin/env bash
# Downloads the official CIFAR-10 (or CIFAR-100) binary archive from the
# authors' site, checks its checksum, and unpacks only the expected files.
#   scripts/fetch_cifar.sh [cifar10|cifar100] [DEST_DIR]
# Then: build/bin/vit train --dataset cifar10 --data DEST_DIR/cifar-10-batches-bin
# (This machine cannot reach the site; the script is for machines that can.)
set -euo pipefail
which=${1:-cifar10}
dest=${2:-data}
case $which in
  cifar10)
    url=https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz
    md5=c32a1d4ab5d03f1284b67883e8d87530
    dir=cifar-10-batches-bin
    files=(data_batch_1.bin data_batch_2.bin data_batch_3.bin data_batch_4.bin data_batch_5.bin
           test_batch.bin batches.meta.txt) ;;
  cifar100)
    url=https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz
    md5=03b5dce01913d631647c71ecec9e9cb8
    dir=cifar-100-binary
    files=(train.bin test.bin fine_label_names.txt coarse_label_names.txt) ;;
  *) echo "fetch_cifar: unknown data set '$which' (cifar10 or cifar100)" >&2; exit 1 ;;
esac
mkdir -p "$dest"
archive="$dest/$(basename "$url")"
if [[ ! -f $archive ]] || ! echo "$md5  $archive" | md5sum --status -c -; then
  echo "fetch_cifar: downloading $url" >&2
  if command -v curl >/dev/null; then curl -fL --retry 3 -o "$archive.part" "$url"
  else wget -O "$archive.part" "$url"; fi
  mv "$archive.part" "$archive"
fi
echo "$md5  $archive" | md5sum --status -c - || {
  echo "fetch_cifar: $archive: MD5 mismatch (expected $md5); delete it and retry" >&2; exit 1; }
members=()
for f in "${files[@]}"; do members+=("$dir/$f"); done
tar -xzf "$archive" -C "$dest" --no-same-owner "${members[@]}"
echo "fetch_cifar: $dest/$dir ready (MD5 $md5 verified)"

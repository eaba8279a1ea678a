#!/bin/sh
# demo.sh: the main job on the shipped TinyStories sample (make demo).
# Learns a 4096-token BPE tokenizer on the sample's train split, encodes train and val into
# token shards, and shows a story round trip. Outputs go to runs/demo/.
set -eu
cd "$(dirname "$0")/.."
out=runs/demo
mkdir -p "$out"
./train tokenizer --data configs/data/sample.json --vocab 4096 --out "$out/tokenizer.bpe"
./train prepare --data configs/data/sample.json --tokenizer "$out/tokenizer.bpe" --out "$out/data"
ids=$(./train encode --tokenizer "$out/tokenizer.bpe" --text "Once upon a time, there was a little dog named Spot.")
echo "ids:     $ids"
printf 'decoded: '
./train decode --tokenizer "$out/tokenizer.bpe" $ids

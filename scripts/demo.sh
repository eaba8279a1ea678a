#!/bin/sh
# demo.sh: the main job (make demo): trains configs/demo.json on the shipped TinyStories sample.
# Learns a 4096-token BPE tokenizer on the train split, encodes train and val into token shards,
# trains a small transformer with RoPE, evaluates on the 198 validation stories, and ends with a
# story. Everything goes to runs/demo/ (log.csv, config.json, checkpoint.bin, tokenizer, shards).
# Extra arguments go to ./train run, e.g. --set model.posenc.kind=xpos.
set -eu
cd "$(dirname "$0")/.."
exec ./train run configs/demo.json "$@"

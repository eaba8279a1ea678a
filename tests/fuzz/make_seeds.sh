#!/bin/sh
# make_seeds.sh TRAIN_BIN OUT_DIR: writes the generated seed corpora of the fuzz targets into
# OUT_DIR/<target>/: files the program writes itself (a tokenizer, a dataset's meta.json and
# shards, a checkpoint) made from a few KB of the shipped sample, and truncated copies of the
# sample's text files. The small hand-made seeds live in tests/fuzz/seeds/ instead.
set -eu
train=$1
out=$2
work="$out/.work"
rm -rf "$out"
mkdir -p "$work"
for t in tok_file gpt2_encoder gpt2_vocab text_auto text_hf_txt text_lines text_csv data_spec \
         loader_shard shard_round_trip checkpoint checkpoint_round_trip config; do
    mkdir -p "$out/$t"
done
sep='
#----
'

# Text: whole stories from the start of each sample file, about 3 KB each.
head -c 3000 data/sample/tinystories_10k.txt > "$work/stories.txt"
printf '<|endoftext|>\n' >> "$work/stories.txt"
head -n 12 data/sample/tiny_stories.txt > "$work/rows.txt"
head -c 3000 data/sample/validation.csv > "$work/stories.csv"
cp "$work/stories.txt" "$out/text_hf_txt/sample.txt"
cp "$work/rows.txt" "$out/text_lines/sample.txt"
cp "$work/stories.csv" "$out/text_csv/sample.csv"
{ printf 0; cat "$work/stories.txt"; } > "$out/text_auto/hf.txt"
{ printf 0; cat "$work/rows.txt"; } > "$out/text_auto/rows.txt"
{ printf 2; cat "$work/stories.csv"; } > "$out/text_auto/sample.csv"
{ printf '\000\020\004'; cat "$work/stories.txt"; } > "$out/shard_round_trip/hf.bin"
{ printf '\001\003\001'; cat "$work/rows.txt"; } > "$out/shard_round_trip/rows.bin"

# Data specs and configs as shipped; configs with their base file and an override.
cp configs/data/*.json "$out/data_spec/"
for f in configs/*.json configs/small/*.json configs/author/*.json; do
    name=$(echo "$f" | tr / _)
    base=$(sed -n 's/.*"base": *"\([^"]*\)".*/\1/p' "$f")
    { cat "$f"; if [ -n "$base" ]; then printf '%s' "$sep"; cat "$(dirname "$f")/$base"; fi
      printf '%strain.max_steps=7%smodel.posenc.kind=rope' "$sep" "$sep"; } > "$out/config/$name"
done
cp tests/fixtures/gpt2_tiny/encoder.json "$out/gpt2_encoder/"
cp tests/fixtures/gpt2_tiny/vocab.bpe "$out/gpt2_vocab/"

# A tokenizer, a dataset and a checkpoint, written by the program.
cat > "$work/spec.json" <<SPEC
{"train": [{"path": "$work/stories.txt", "format": "hf-txt"}, {"path": "$work/rows.txt", "format": "lines"}],
 "val": [{"path": "$work/stories.csv", "format": "csv"}]}
SPEC
export OMP_NUM_THREADS=1
quiet() { "$@" > "$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }; }
quiet "$train" tokenizer --data "$work/spec.json" --vocab 300 --out "$work/tok.bpe"
cp "$work/tok.bpe" "$out/tok_file/small.bpe"
quiet "$train" prepare --data "$work/spec.json" --tokenizer "$work/tok.bpe" --out "$work/shards" \
    --shard-tokens 1024
cp "$work/shards/train_000.bin" "$out/loader_shard/train_000.bin"
cp "$work/shards/val_000.bin" "$out/loader_shard/val_000.bin"
quiet "$train" run configs/demo.json --set data="$work/spec.json" --set out_dir="$work/run" \
    --set tokenizer.file="$work/tok.bpe" --set tokenizer.vocab_size=300 --set model.n_layer=1 \
    --set model.n_embd=8 --set model.n_head=2 --set model.block_size=32 --set train.batch_size=2 \
    --set train.max_steps=2 --set train.eval_every=2 --set train.eval_max_tokens=64 \
    --set train.sample_tokens=4 --set train.checkpoint_every=2
cp "$work/run/checkpoint.bin" "$out/checkpoint/run.bin"
head -c 300 "$work/run/checkpoint.bin" > "$out/checkpoint_round_trip/head.bin"
rm -rf "$work"

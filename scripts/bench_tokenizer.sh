#!/bin/sh
# bench_tokenizer.sh: tokenizer speed on the shipped sample (make bench-tokenizer).
# Training time for vocab 4096 on one thread, then encode MB/s on 1 and 2 threads with our
# tokenizer and, when $TINYROPE_GPT2 names a folder with OpenAI's GPT-2 files (encoder.json,
# vocab.bpe), with GPT-2's.
set -eu
cd "$(dirname "$0")/.."
out=build/bench
mkdir -p "$out"
echo "== train vocab 4096 on the sample's train split, 1 thread"
OMP_NUM_THREADS=1 ./train tokenizer --data configs/data/sample.json --vocab 4096 --out "$out/tok4096.bpe"
files="data/sample/tinystories_10k.txt data/sample/tiny_stories.txt"
for threads in 1 2; do
    echo "== encode the train split with tok4096, $threads thread(s)"
    OMP_NUM_THREADS=$threads ./train encode --tokenizer "$out/tok4096.bpe" $files
done
gpt2=${TINYROPE_GPT2:-}
if [ -n "$gpt2" ] && [ -f "$gpt2/encoder.json" ]; then
    for threads in 1 2; do
        echo "== encode the train split with GPT-2's tokenizer, $threads thread(s)"
        OMP_NUM_THREADS=$threads ./train encode --gpt2 "$gpt2/encoder.json" "$gpt2/vocab.bpe" $files
    done
else
    echo "(skipping GPT-2: set TINYROPE_GPT2 to a folder with encoder.json and vocab.bpe)"
fi

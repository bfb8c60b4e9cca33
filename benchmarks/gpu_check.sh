#!/bin/bash
# The GPU checks as one call of a lent GPU machine (about 4 minutes on an H200; no install:
# the machine's python3 holds torch). From the repository root: `bash benchmarks/gpu_check.sh`; results
# go to $OUT (or ./gpu-out). 1. wninit.suite.bench.gpu: WRN-40-10 WN vs BN steps/s (fp32/bf16, NCHW/channels_last),
# the MLPs, FLOP/s, init. 2. the same WRN-40-10 comparison under torch.compile. 3. a sweep of 4 small
# WRN-16-2 runs packed 2 per GPU. 4. `wninit train --compile` in bf16 + channels_last, which must not recompile.
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
nvidia-smi -L
timeout 300 python3 -m wninit.suite.bench.gpu --out "$OUT" 2>&1 | tee "$OUT/bench_gpu.log"
timeout 290 python3 -m wninit.suite.bench.gpu --compiled --out "$OUT/compiled" 2>&1 | tee "$OUT/bench_gpu_compiled.log"
echo "== sweep on cuda, 2 workers sharing the GPU"
timeout 100 python3 -m wninit sweep benchmarks/gpu_check.toml --profile quick --store /tmp/gpu_check.db \
    --device cuda --workers 2 --no-progress 2>&1 | tail -3 | tee "$OUT/sweep.log"
echo "== train WRN-16-2 on cuda, bf16 + channels_last + compile (recompile warnings counted)"
timeout 110 python3 -m wninit train --out /tmp/gpu_check_run --dataset synthetic --arch wrn --depth 16 --k 2 \
    --epochs 2 --momentum 0.9 --lr 0.05 --device cuda --precision bf16 --channels-last --compile --no-progress \
    > "$OUT/train.log" 2>&1
echo "recompile warnings: $(grep -c recompile "$OUT/train.log")"; tail -2 "$OUT/train.log"

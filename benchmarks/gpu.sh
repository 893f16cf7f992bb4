#!/usr/bin/env bash
# The GPU figures of the README in one run (about 8 minutes on one H100/H200), for a session lent
# a GPU: first a check of the image stages' GPU path against the CPU (GPU JPEG decoding, bf16),
# then training triplets/s at the published batch and a large one, image throughput (ResNet-101
# bf16, JPEG decoding on the GPU against decoding in worker processes), ranking at scale.
#   bash benchmarks/gpu.sh [OUT_DIR]         # results: OUT_DIR/*.txt and *.json (default outputs/gpu)
# It needs torch, torchvision, lightning, timm, safetensors, pandas and pillow, not hydra, gensim, wandb
# or faiss (checked by running it on a CPU with those imports blocked), and runs from the checkout
# without installing it: the lent machines' stock python3 has all it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-outputs/gpu}}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
export WANDB_MODE=disabled PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python() { "${PYTHON:-python3}" "$@"; }
python benchmarks/gpu_check.py --device cuda --json "$out/gpu_check.json" 2>&1 | tee "$out/gpu_check.txt" \
    || echo "gpu_check FAILED: the GPU path differs from the CPU (see gpu_check.txt); measuring anyway"
python benchmarks/train_speed.py --device cuda --threads 8 --batch-sizes 32,4096 --steps 200 --repeats 3 \
    2>&1 | tee "$out/train_speed.txt"
for decode in device worker; do
    python benchmarks/image_throughput.py --model resnet101 --image-size 224 --source-size 320 --images 8192 \
        --batch-size 256 --workers 15 --device cuda --decode "$decode" --model-batches 20 \
        --json "$out/image_throughput.json" 2>&1 | tee -a "$out/image_throughput.txt"
done
python benchmarks/rank_scale.py --devices cuda --methods torch --brands 1 100 1000 \
    --candidates 100000 1000000 --repeats 3 --out "$out/rank_scale.json" 2>&1 | tee "$out/rank_scale.txt"

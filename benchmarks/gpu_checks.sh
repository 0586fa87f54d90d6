#!/usr/bin/env bash
# The GPU checks of issues #2, #6 and #10 as one prepared script, for a session lent a GPU.
#
# A session has ~15 min of device time in all (machine start included) and 10 min per command,
# so the stages are separate and ordered by what matters most; run them as:
#   1. run(command="bash benchmarks/gpu_checks.sh speed ped2_train", carry=[".whl", ".devdata"], timeout_s=590)
#   2. run(command="bash benchmarks/gpu_checks.sh ped2_frozen vs_pytorch lowering", carry=[...], timeout_s=...)
# Before the first call, here (CPU machine, repo root):
#   bash benchmarks/gpu_checks.sh prepare      # fetches .whl/ and copies ped2_dev into .devdata/
# Each stage writes its JSON/logs under $OUT/gpu_checks/ and the whole folder is re-packed into
# $OUT/gpu_checks.tar.gz after every stage, so a command killed at its limit still returns what
# finished (the device tool returns at most 8 files). A stage that fails does not stop the next.
#
# GPU_CHECKS_SMOKE=1 shrinks every stage (latent 16, 32x32, 1 epoch) to test the script on a CPU.
set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT_DIR="${OUT:-/tmp/gpu_checks_out}"
RESULTS="$OUT_DIR/gpu_checks"
CACHE="${GPU_CHECKS_CACHE:-/tmp/maskedskip_jax_xla_cache}"
PED2="${GPU_CHECKS_PED2:-$ROOT/.devdata/ped2_dev}"
PYTHON="${PYTHON:-python3}"
WHEELS=(grain==0.2.18 array_record==0.8.6 portpicker==1.6.0 ml_collections==1.1.0 tensorboardX==2.6.5)

if [[ "${GPU_CHECKS_SMOKE:-0}" == 1 ]]; then
  SIZE=32; LATENT=16; BATCH=4; INFER_BATCH=8; STEPS=3; DTYPE=float32
  PED2_ARGS=(--config.data.image_size="(32,32)" --config.model.latent_dim=16 --config.train.epochs=1
             --config.train.batch_size=4 --config.data.channels=1)
else
  SIZE=256; LATENT=512; BATCH=16; INFER_BATCH=64; STEPS=20; DTYPE=bfloat16
  PED2_ARGS=()
fi

say() { echo "[gpu_checks $(date -u +%H:%M:%S)] $*" | tee -a "$RESULTS/log.txt"; }

pack() {
  tar -C "$OUT_DIR" -czf "$OUT_DIR/gpu_checks.tar.gz.tmp" gpu_checks && mv "$OUT_DIR/gpu_checks.tar.gz.tmp" \
    "$OUT_DIR/gpu_checks.tar.gz"
}

# stage NAME SECONDS CMD...: runs CMD under a time limit, stdout to NAME.json, stderr to NAME.err.
stage() {
  local name="$1" limit="$2"; shift 2
  say "stage $name (limit ${limit}s): $*"
  local begin=$SECONDS
  timeout --signal=TERM --kill-after=15 "$limit" "$@" >"$RESULTS/$name.json" 2>"$RESULTS/$name.err"
  local rc=$?
  say "stage $name: exit $rc after $((SECONDS - begin)) s"
  tail -n 3 "$RESULTS/$name.err" | sed 's/^/    /' | tee -a "$RESULTS/log.txt" >/dev/null
  pack
}

prepare() {
  mkdir -p .whl .devdata
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d .whl "${WHEELS[@]}"
  rm -rf .devdata/ped2_dev && cp -r "$ROOT/../shared/data/ped2_dev" .devdata/ped2_dev
  grep -qx "/.devdata/" .git/info/exclude 2>/dev/null || echo "/.devdata/" >>.git/info/exclude
  du -sh .whl .devdata
}

setup_device() {
  # The GPU image has jax/flax/optax/orbax but not Grain, ml_collections or tensorboardX (nor TensorFlow).
  if [[ -d .whl ]] && ! "$PYTHON" -c "import grain, ml_collections" 2>/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      .whl/*.whl && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
  fi
  export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
  mkdir -p "$RESULTS" "$CACHE"
  {
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
    "$PYTHON" -c "import sys, jax, flax, optax, orbax.checkpoint as o; print(sys.version.split()[0], 'jax', \
jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, 'orbax', o.__version__, jax.devices())"
  } >>"$RESULTS/versions.txt" 2>&1
}

speed() {
  local common=(--batch "$BATCH" --image-size "$SIZE" --latent-dim "$LATENT" --channels 3 --temporal 3
                --dtype "$DTYPE" --steps "$STEPS")
  # Cold: an empty persistent cache, so compile_s is what a user's first run pays.
  rm -rf "$CACHE" && mkdir -p "$CACHE"
  stage model_speed_cold 300 "$PYTHON" benchmarks/model_speed.py "${common[@]}" --infer-batch "$INFER_BATCH" \
    --streaming --compilation-cache "$CACHE"
  # The warm run also traces 3 train steps: the profile that says why, if a target is missed. It travels in
  # its own archive, so an outsized trace cannot cost the results (the tool returns files up to 16 MiB).
  stage model_speed_warm 150 "$PYTHON" benchmarks/model_speed.py "${common[@]}" --infer-batch "$INFER_BATCH" \
    --compilation-cache "$CACHE" --profile-dir "$OUT_DIR/profile"
  [[ -d "$OUT_DIR/profile" ]] && tar -C "$OUT_DIR" -czf "$OUT_DIR/profile.tar.gz" profile && rm -rf "$OUT_DIR/profile"
}

autotune() {
  # If the cold compile misses 30 s, is it cuDNN/GEMM autotuning? Cold again with autotuning off:
  # compile time against step time.
  rm -rf "$CACHE.noautotune"
  stage model_speed_cold_autotune0 240 env XLA_FLAGS="--xla_gpu_autotune_level=0 ${XLA_FLAGS:-}" \
    "$PYTHON" benchmarks/model_speed.py --batch "$BATCH" --image-size "$SIZE" --latent-dim "$LATENT" --channels 3 \
    --temporal 3 --dtype "$DTYPE" --steps "$STEPS" --skip-inference --compilation-cache "$CACHE.noautotune"
}

lowering() {
  # conv_lowering=auto keeps XLA's convs on GPU; this A/B says whether the CPU paths pay there too.
  stage conv_lowering_ab 240 "$PYTHON" benchmarks/cpu_ab.py --candidates base,cpu_convs --batch "$BATCH" \
    --image-size "$SIZE" --latent-dim "$LATENT" --dtype "$DTYPE" --rounds 10
}

vs_pytorch() {
  if [[ "${GPU_CHECKS_SMOKE:-0}" == 1 ]]; then
    stage vs_pytorch 300 "$PYTHON" benchmarks/vs_pytorch.py --latent-dim "$LATENT" --image-size "$SIZE" \
      --batch "$BATCH" --steps "$STEPS"
  else
    stage vs_pytorch 420 "$PYTHON" benchmarks/vs_pytorch.py
  fi
}

ped2() {
  local mode="$1" workdir="/tmp/gpu_checks_runs/ped2_dev_$1"
  rm -rf "$workdir"
  stage "ped2_$mode" 420 "$PYTHON" -m maskedskip_jax.main --config=configs/ped2_dev.py --workdir="$workdir" \
    --config.data.root="$PED2" --config.model.masked_kernels="$mode" \
    --config.train.compilation_cache_dir="$CACHE" --config.data.cache_dir=/tmp/gpu_checks_frames "${PED2_ARGS[@]}"
  mkdir -p "$RESULTS/ped2_$mode"
  # Metrics, the evaluation report and plots travel; the 1.4 GB checkpoint does not.
  [[ -d "$workdir" ]] && tar -C "$workdir" --exclude=checkpoints -cf - . | tar -C "$RESULTS/ped2_$mode" -xf -
  pack
}

if [[ $# -eq 0 ]]; then
  echo "usage: $0 prepare | {speed|ped2_train|ped2_frozen|vs_pytorch|lowering|autotune}..." >&2
  exit 2
fi
if [[ "$1" == prepare ]]; then
  prepare
  exit
fi
setup_device
for what in "$@"; do
  case "$what" in
    speed) speed ;;
    lowering) lowering ;;
    autotune) autotune ;;
    vs_pytorch) vs_pytorch ;;
    ped2_train) ped2 train ;;
    ped2_frozen) ped2 frozen ;;
    *) say "unknown stage $what (known: speed ped2_train ped2_frozen vs_pytorch lowering autotune)"; exit 2 ;;
  esac
done
say "done: $*"

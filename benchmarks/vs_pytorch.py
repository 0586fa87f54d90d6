"""JAX model vs the PyTorch twin, same device, same process, same batch/size/dtype policy; JSON out.

  python3 benchmarks/vs_pytorch.py                  # CPU: latent 64, 64x64, batch 4, float32
  python3 benchmarks/vs_pytorch.py --torch-skips centre
  python3 benchmarks/vs_pytorch.py                  # GPU: latent 512, 256x256, batch 16 / 64, bf16,
                                                    #      PyTorch torch.compile + bf16 autocast

Both sides: Adam (lr 1e-2) on the norm loss with train-mode BatchNorm, then eval-mode
inference on whole clips (one scored frame per clip). Compilation and warm-up are
reported apart from the steady state (median of --steps timed steps, synchronised).
The dtype policy is the same on both sides: float32 params, compute in --dtype
(JAX: the model's compute dtype; PyTorch: autocast), loss in float32.
"""

import argparse
import gc
import json
import os
import sys

# JAX would otherwise take 75% of GPU memory up front and starve PyTorch.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_env  # pylint: disable=g-import-not-at-top,wrong-import-position
import experimental  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top,wrong-import-position
import model_speed  # pylint: disable=g-import-not-at-top,wrong-import-position

from maskedskip_jax.nn import conv_lowering  # pylint: disable=g-import-not-at-top,wrong-import-position
from maskedskip_jax.nn import models  # pylint: disable=g-import-not-at-top,wrong-import-position

# (latent, image size, train batch, inference batch, dtype, torch.compile) per platform.
DEFAULTS = {"cpu": (64, 64, 4, 4, "float32", False), "gpu": (512, 256, 16, 64, "bfloat16", True)}


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--variant", default="maskedskip_unet", choices=models.VARIANTS)
  parser.add_argument("--latent-dim", type=int, default=None)
  parser.add_argument("--image-size", type=int, default=None)
  parser.add_argument("--batch", type=int, default=None, help="training clips per step")
  parser.add_argument("--infer-batch", type=int, default=None, help="inference clips per call")
  parser.add_argument("--channels", type=int, default=3)
  parser.add_argument("--temporal", type=int, default=None)
  parser.add_argument("--dtype", default=None, choices=tuple(model_speed.DTYPES))
  parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement (median reported)")
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument(
    "--torch-compile",
    default=None,
    action=argparse.BooleanOptionalAction,
    help="torch.compile the twin (default: on GPU only)",
  )
  parser.add_argument("--torch-compile-mode", default=None, help="e.g. max-autotune")
  parser.add_argument(
    "--torch-skips",
    default="full3d",
    choices=("full3d", "centre"),
    help="full3d: the reference's skip convs; centre: PyTorch also computes only the centre frame",
  )
  parser.add_argument(
    "--torch-mkldnn",
    default=True,
    action=argparse.BooleanOptionalAction,
    help="PyTorch's oneDNN CPU convs (its default); its backward is slow for 17x17 kernels",
  )
  parser.add_argument(
    "--omp-wait-policy",
    default="inherit",
    choices=("inherit", "PASSIVE", "ACTIVE"),
    help="OpenMP wait policy of PyTorch's CPU threads; inherit (PyTorch's default, spinning) is "
    "its best on an idle box, PASSIVE on a loaded one",
  )
  parser.add_argument(
    "--jax-patches", default="", help=f"experimental JAX changes to time: {', '.join(experimental.PATCHES)}"
  )
  parser.add_argument(
    "--conv-lowering",
    default="auto",
    choices=conv_lowering.LOWERINGS,
    help="JAX model.conv_lowering: auto = FFT weight gradients + small-map im2col on CPU only",
  )
  parser.add_argument("--threads", type=int, default=None, help="PyTorch intra-op threads (default: JAX's cores)")
  args = parser.parse_args(argv)
  platform = "gpu" if jax.default_backend() == "gpu" else "cpu"
  latent, size, batch, infer_batch, dtype, compiled = DEFAULTS[platform]
  args.latent_dim = args.latent_dim or latent
  args.image_size = args.image_size or size
  args.batch = args.batch or batch
  args.infer_batch = args.infer_batch or (infer_batch if args.batch == batch else args.batch)
  args.dtype = args.dtype or dtype
  args.torch_compile = compiled if args.torch_compile is None else args.torch_compile
  args.jax_patches = [p for p in args.jax_patches.split(",") if p]
  if any(p not in experimental.PATCHES for p in args.jax_patches):
    parser.error(f"--jax-patches: known: {', '.join(experimental.PATCHES)}; got {args.jax_patches}")
  if min(args.batch, args.infer_batch, args.steps) < 1 or args.warmup < 0:
    parser.error("--batch, --infer-batch and --steps must be positive, --warmup >= 0")
  return args


def main(argv=None) -> int:
  args = parse_args(argv)
  bench_env.configure_jax()
  if args.omp_wait_policy != "inherit":
    # Spinning OpenMP threads on a loaded box steal the cores their own team needs
    # (a 17x17 conv's backward ran 5-10x slower at load 5 on 2 cores), while on an
    # idle box spinning is ~20% faster. libgomp reads this once, when torch loads it.
    os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy
  import torch  # pylint: disable=g-import-not-at-top
  import torch_reference  # pylint: disable=g-import-not-at-top

  threads = args.threads or bench_env.cores()
  torch.set_num_threads(threads)
  torch.backends.mkldnn.enabled = args.torch_mkldnn
  device = "cuda" if jax.default_backend() == "gpu" else "cpu"
  if device == "cuda" and not torch.cuda.is_available():
    raise SystemExit("vs_pytorch: JAX runs on a GPU but this PyTorch build has no CUDA; install a CUDA torch")
  model = models.build(
    args.variant,
    latent_dim=args.latent_dim,
    channels=args.channels,
    temporal=args.temporal,
    dtype=model_speed.DTYPES[args.dtype],
    param_dtype=jnp.float32,
    conv_lowering=args.conv_lowering,
  )
  models.check_input_shape(model, model_speed.clip_shape(model, 1, args.image_size))
  report = {
    "variant": args.variant,
    "latent_dim": args.latent_dim,
    "image_size": args.image_size,
    "batch": args.batch,
    "infer_batch": args.infer_batch,
    "channels": args.channels,
    "temporal": model.temporal,
    "dtype": args.dtype,
    "param_dtype": "float32",
    "steps": args.steps,
    "jax_patches": args.jax_patches,
    "jax_conv_lowering": conv_lowering.resolve(args.conv_lowering),
    **bench_env.environment(),
    "torch_version": torch.__version__,
    "torch_device": device,
    "torch_threads": threads,
    "torch_compile": args.torch_compile,
    "torch_compile_mode": args.torch_compile_mode,
    "torch_skips": args.torch_skips,
    "torch_mkldnn": args.torch_mkldnn,
    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
    "load_average_start": bench_env.load_average(),
  }

  jax_train, variables = model_speed.bench_train(
    model, args.image_size, args.batch, args.steps, args.warmup, patch_names=args.jax_patches
  )
  jax_infer = model_speed.bench_infer(
    model, variables, args.image_size, args.infer_batch, args.steps, args.warmup, args.jax_patches
  )
  report["jax"] = {"train": jax_train, "inference": jax_infer, "params": models.count_params(variables["params"])}
  del variables
  gc.collect()

  net = torch_reference.build(args.variant, args.latent_dim, args.channels, model.temporal, args.torch_skips)
  shape = model_speed.clip_shape(model, args.batch, args.image_size)
  report["torch"] = torch_reference.bench(
    net,
    model_speed.clips(shape),
    model_speed.clips((args.infer_batch, *shape[1:]), seed=1),
    steps=args.steps,
    warmup=args.warmup,
    device=device,
    bf16=args.dtype == "bfloat16",
    compile_mode=(args.torch_compile_mode or "default") if args.torch_compile else None,
  )
  report["torch"]["params"] = sum(p.numel() for p in net.parameters())

  jt, tt = report["jax"]["train"], report["torch"]["train"]
  ji, ti = report["jax"]["inference"], report["torch"]["inference"]
  four_digits = lambda v: float(f"{v:.4g}")
  report["ratio"] = {
    "train_speedup": four_digits(jt["clips_per_s"] / tt["clips_per_s"]),  # > 1: JAX faster
    "train_time_ratio": four_digits(jt["step_ms_median"] / tt["step_ms_median"]),  # JAX / PyTorch
    "inference_speedup": four_digits(ji["frames_per_s"] / ti["frames_per_s"]),
    # The same ratios in process CPU time, which a loaded shared CPU disturbs far less.
    "train_cpu_time_ratio": four_digits(jt["step_cpu_ms_median"] / tt["step_cpu_ms_median"]),
    "inference_cpu_time_ratio": four_digits(ji["step_cpu_ms_median"] / ti["step_cpu_ms_median"]),
  }
  report["load_average_end"] = bench_env.load_average()
  print(json.dumps(report, indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())

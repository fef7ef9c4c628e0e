"""One prepared check of an accelerator machine, in about 8 minutes, written to one JSON file.

  python benchmarks/gpu_check.py --out=gpu_check.json                     # On a GPU machine.
  python benchmarks/gpu_check.py --out=gpu_check.json --lego=../shared/data/nerf_synthetic/lego
  python benchmarks/gpu_check.py --small --out=/tmp/gpu_check.json        # The same steps, small, on a CPU.

Steps, each in its own process (a failure is recorded, the others still run, and the exit code says so):
1. `devices`: the backend, the devices, their kind and memory, the versions.
2. `device_tests`: the suite's tests marked `device` (`pytest -m device`), on the real devices.
3. `training`: instant-ngp (configs/lego_ngp.py, 800x800) trained for --train_seconds on --lego where it
   exists, scored on its test split (val where it has none); otherwise the demo scene at 800x800.
4. `chair_throughput`: configs/chair.py training rays/s in float32, bfloat16 and float16 (--dtypes: a T4 has
   no bfloat16 tensor cores) (benchmarks/throughput.py), with the step's FLOPs as XLA's cost analysis counts
   them and their share of the device's peak (`PEAK_TFLOPS`; float32 against the TF32 tensor-core peak, which
   XLA's default matmul precision uses on these GPUs), and the step's peak memory.

--small runs every step with small sizes (the test suite's small MLP model trained for a few seconds on its
24-pixel scene, a shrunk chair model, one device test), so that tests/test_gpu_check.py checks the script
on the CPU.
"""

import argparse
import json
import os
import pathlib
import platform
import re
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # Run as a script from anywhere: the library's light modules are importable.

from jaxnerf import workdirs  # pylint: disable=g-import-not-at-top  (no jax: argument errors stay quick)

# Dense peak TFLOP/s per device from the vendors' data sheets: {device kind substring: {dtype: peak}}.
PEAK_TFLOPS = {
    'H100 PCIe': {'float32': 378.0, 'bfloat16': 756.0, 'float16': 756.0},
    'H100': {'float32': 494.7, 'bfloat16': 989.4, 'float16': 989.4},  # SXM.
    'H200': {'float32': 494.7, 'bfloat16': 989.4, 'float16': 989.4},
    'A100': {'float32': 156.0, 'bfloat16': 312.0, 'float16': 312.0},
    'T4': {'float32': 8.1, 'float16': 65.0},  # No TF32 or bfloat16 tensor cores.
}
DTYPES = ('float32', 'bfloat16', 'float16')


def peak_tflops(device_kind: str, dtype: str) -> Optional[float]:
  """The peak of a device kind ('NVIDIA H100 80GB HBM3') in a dtype, or None where unknown."""
  for name, peaks in PEAK_TFLOPS.items():
    if name.lower() in device_kind.lower():
      return peaks.get(dtype)
  return None


def _run(command: List[str], timeout: float, keep_tail: bool = False) -> Dict:
  """Runs `command` in the repository; returns whether it succeeded, its seconds, the last JSON line it
  printed (as 'result') and the tail of its output where it failed (or `keep_tail`)."""
  start = time.perf_counter()
  try:
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)
  except subprocess.TimeoutExpired:
    return {'ok': False, 'error': f'timed out after {timeout:.0f} s', 'command': ' '.join(command)}
  record = {'ok': done.returncode == 0, 'seconds': round(time.perf_counter() - start, 1)}
  lines = [line for line in done.stdout.splitlines() if line.startswith('{')]
  if lines:
    record['result'] = json.loads(lines[-1])
  if done.returncode != 0 or keep_tail:
    record.update(command=' '.join(command), output_tail=(done.stdout + done.stderr)[-2000:])
  return record


def devices_step(args) -> Dict:
  code = ('import json, jax, jaxlib, flax, optax; d = jax.devices(); '
          'print(json.dumps({"backend": jax.default_backend(), "count": len(d), "kinds": [x.device_kind for x in d], '
          '"memory_gib": [round((x.memory_stats() or {}).get("bytes_limit", 0) / 2**30, 1) for x in d], '
          '"jax": jax.__version__, "jaxlib": jaxlib.__version__, "flax": flax.__version__, "optax": optax.__version__}))')
  record = _run([sys.executable, '-c', code], timeout=120)
  record.setdefault('result', {})['python'] = platform.python_version()
  return record


def device_tests_step(args) -> Dict:
  command = [sys.executable, '-m', 'pytest', '-q', '-m', 'device', '-p', 'no:cacheprovider', 'tests']
  if args.small:  # One quick test of the marked ones: what is checked here is the step, not the suite.
    command += ['-k', 'positional_encoding_matches_embedder']
  record = _run(command, timeout=240, keep_tail=True)
  summary = re.findall(r'(\d+) (passed|failed|skipped|deselected|errors?)', record.get('output_tail', ''))
  record['counts'] = {kind: int(n) for n, kind in summary}
  record['ok'] = record['ok'] and record['counts'].get('passed', 0) > 0
  return record


def training_step(args) -> Dict:
  workdir = pathlib.Path(tempfile.mkdtemp(prefix='gpu_check_training_'))
  lego = pathlib.Path(args.lego) if args.lego else None
  if args.small:  # The test suite's tiny scene and small MLP model (compiled in seconds).
    config = ['--config=tests/tiny_configs.py:mlp', '--config.train.num_steps=100000']
    scene = 'procedural 24x24'
  elif lego and (lego / 'transforms_train.json').is_file():
    config = ['--config=configs/lego_ngp.py', f'--config.data_dir={lego}']
    scene = f'lego 800x800 ({lego})'
  else:
    config = ['--config=configs/demo.py', '--config.procedural.resolution=800']
    scene = 'procedural 800x800 (no lego data)'
  train = _run([sys.executable, 'train.py', *config, f'--workdir={workdir}',
                f'--config.train.max_seconds={args.train_seconds}', '--config.eval.final_num_images=0',
                '--config.eval.video_frames=0', '--config.eval.lpips=()'],
               timeout=args.train_seconds + 240)
  record = {'scene': scene, 'train': train}
  if train['ok']:
    record['render'] = _run([sys.executable, 'render.py', f'--workdir={workdir}', '--lpips=none'], timeout=240)
  record['ok'] = train['ok'] and record.get('render', {}).get('ok', False)
  return record


def chair_throughput_step(args) -> Dict:
  small = ['--config.model.mlp.depth=1', '--config.model.mlp.width=16', '--config.model.mlp.width_view=8',
           '--config.model.num_coarse_samples=4', '--config.model.num_fine_samples=4',
           '--config.train.batch_size=32', '--config.eval.chunk_size=32', '--steps=1', '--repeats=1',
           '--render_chunks=1'] if args.small else ['--steps=5', '--repeats=3']
  records = {}
  for dtype in args.dtypes.split(','):
    run = _run([sys.executable, 'benchmarks/throughput.py', '--config=configs/chair.py',
                f'--config.model.dtype={dtype}', *small], timeout=300)
    result = run.get('result', {})
    peak = peak_tflops(result.get('device_kind', ''), dtype)
    achieved = result.get('train_tflops_per_second_per_device')
    run['flop_utilisation'] = achieved / peak if peak and achieved else None
    run['peak_tflops'] = peak
    records[dtype] = run
  return {'ok': all(r['ok'] for r in records.values()), **records}


STEPS = {'devices': devices_step, 'device_tests': device_tests_step, 'training': training_step,
         'chair_throughput': chair_throughput_step}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--out', required=True, help='The JSON file of results (its folder must exist).')
  parser.add_argument('--lego', default=str(REPO.parent / 'shared' / 'data' / 'nerf_synthetic' / 'lego'),
                      help='The Blender lego scene (default: ../shared/data/nerf_synthetic/lego).')
  parser.add_argument('--train_seconds', type=float, default=None,
                      help='Training time of the training step (default: 300, or 3 with --small).')
  parser.add_argument('--dtypes', default=','.join(DTYPES),
                      help=f'Comma-separated compute dtypes of the chair_throughput step ({",".join(DTYPES)}).')
  parser.add_argument('--small', action='store_true', help='Small sizes, to check the script on a CPU.')
  parser.add_argument('--steps', default=','.join(STEPS), help=f'Comma-separated steps to run ({", ".join(STEPS)}).')
  args = parser.parse_args(argv)
  if args.train_seconds is None:
    args.train_seconds = 3.0 if args.small else 300.0
  if not args.train_seconds > 0:
    parser.error(f'--train_seconds={args.train_seconds}: expected a positive number of seconds')
  unknown = [s for s in args.steps.split(',') if s not in STEPS]
  if unknown:
    parser.error(f'--steps: unknown step {unknown[0]!r}; expected names from {",".join(STEPS)}')
  unknown = [d for d in args.dtypes.split(',') if d not in DTYPES]
  if unknown:
    parser.error(f'--dtypes: unknown dtype {unknown[0]!r}; expected names from {",".join(DTYPES)}')
  out = pathlib.Path(args.out)
  if out.is_dir():  # Refused now: the first write comes after the first step's minutes.
    parser.error(f'--out={out} is a directory; expected the path of the JSON file to write, e.g. '
                 f'{out / "gpu_check.json"}')
  if not out.parent.is_dir() or not os.access(out.parent, os.W_OK):
    parser.error(f'--out={out}: its folder {out.parent} does not exist or is not writable')
  results = {'small': args.small, 'started': time.strftime('%Y-%m-%dT%H:%M:%S%z')}
  start = time.perf_counter()
  for name in args.steps.split(','):
    print(f'gpu_check: {name} ...', file=sys.stderr, flush=True)
    results[name] = STEPS[name](args)
    results['seconds'] = round(time.perf_counter() - start, 1)
    # After each step, and whole (renamed into place): a later failure or a kill keeps what was measured.
    workdirs.write_text_atomically(out, json.dumps(results, indent=2))
  failed = [name for name in args.steps.split(',') if not results[name].get('ok')]
  print(json.dumps({'out': str(out), 'seconds': results['seconds'], 'failed': failed}))
  return 1 if failed else 0


if __name__ == '__main__':
  sys.exit(main())

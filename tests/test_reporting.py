"""Metrics records (unique per step across resumes, robust to a line cut short), the progress bar's rates
over training time alone, and the optional Weights & Biases mirror (against a stand-in wandb module)."""

import json
import sys
import types

import numpy as np
import pytest

from jaxnerf import console
from jaxnerf.errors import ConfigError
from jaxnerf.outputs import reporting


def test_writer_drops_records_past_the_resumed_step_and_lines_cut_short(tmp_path):
  writer = reporting.MetricsWriter(tmp_path, enable_tensorboard=False)
  for step in (5, 10, 15):
    writer.write_scalars(step, 'train', {'loss': step / 10})
  writer.close()
  with open(tmp_path / reporting.METRICS_FILE, 'a') as f:
    f.write('{"step": 20, "spl')  # A crash in the middle of a line.
  assert [r['step'] for r in reporting.read_metrics(tmp_path)] == [5, 10, 15]
  writer = reporting.MetricsWriter(tmp_path, start_step=10, enable_tensorboard=False)
  writer.write_scalars(15, 'train', {'loss': 0.25})
  records = reporting.read_metrics(tmp_path)
  assert [(r['step'], r['loss']) for r in records] == [(5, 0.5), (10, 1.0), (15, 0.25)]
  assert (tmp_path / reporting.METRICS_FILE).read_text().endswith('}\n')


def test_progress_rate_counts_training_time_only():
  bar = console.ProgressBar(start_step=100, num_steps=1000, rays_per_step=4096)
  bar.start(100, train_seconds=50.0)
  metrics = {'loss': 0.1, 'psnr': 20.0, 'learning_rate': 1e-3}
  # 50 steps in 10 s of training, however long the wall clock took (validation, compilation).
  assert bar.update(150, metrics, train_seconds=60.0, seconds_left=None) == pytest.approx(50 * 4096 / 10)
  assert bar.update(200, metrics, train_seconds=65.0, seconds_left=12.0) == pytest.approx(50 * 4096 / 5)
  # Rays left out of the loss (packed samples that did not fit) are not counted.
  assert bar.update(250, {**metrics, 'complete_rays': 0.25}, train_seconds=75.0,
                    seconds_left=1.0) == pytest.approx(50 * 1024 / 10)
  bar.set_total(400)  # The schedule's length, re-estimated under a time budget.
  assert bar._bar.total == 400  # pylint: disable=protected-access
  bar.close()


class FakeWandb(types.ModuleType):
  """Records what the writer asks of wandb."""

  def __init__(self):
    super().__init__('wandb')
    self.inits, self.logged, self.finished = [], [], 0
    self.util = types.SimpleNamespace(generate_id=lambda: 'run123')
    self.Image = lambda array: ('image', np.asarray(array).shape)

  def init(self, **kwargs):
    self.inits.append(kwargs)
    fake = self

    class Run:
      def log(self, data, step):
        fake.logged.append((step, data))

      def finish(self):
        fake.finished += 1

    return Run()


def test_wandb_mirrors_scalars_and_images_and_resumes_the_same_run(tmp_path, monkeypatch):
  fake = FakeWandb()
  monkeypatch.setitem(sys.modules, 'wandb', fake)
  reporting.check_wandb_available('nerf')
  writer = reporting.MetricsWriter(tmp_path, enable_tensorboard=False, wandb_project='nerf')
  writer.write_scalars(10, 'train', {'psnr': 21.5})
  writer.write_images(10, 'val', {'rgb_0': np.zeros((4, 5, 3))})
  writer.close()
  assert fake.inits[0]['project'] == 'nerf' and fake.inits[0]['id'] == 'run123'
  assert fake.inits[0]['resume'] == 'allow' and fake.inits[0]['dir'] == str(tmp_path)
  assert fake.logged == [(10, {'train/psnr': 21.5}), (10, {'val/rgb_0': ('image', (4, 5, 3))})]
  assert fake.finished == 1
  # A resumed run continues the same W&B run.
  fake.util.generate_id = lambda: 'another'
  reporting.MetricsWriter(tmp_path, start_step=10, enable_tensorboard=False, wandb_project='nerf').close()
  assert fake.inits[1]['id'] == 'run123'
  assert json.loads((tmp_path / 'metrics.jsonl').read_text().splitlines()[0])['psnr'] == 21.5


def test_wandb_missing_is_a_clear_error(monkeypatch):
  monkeypatch.setitem(sys.modules, 'wandb', None)  # `import wandb` raises ImportError.
  with pytest.raises(ConfigError, match=r"wandb_project='nerf' needs the wandb package: pip install wandb"):
    reporting.check_wandb_available('nerf')
  reporting.check_wandb_available('')  # Not asked for: fine.

"""What paces a training run (training/pacing.py, as the trainer uses it): the wall-clock limit, the time
budget that lays the learning-rate schedule over the steps it allows, and the stall watch."""

import numpy as np
import pytest

from jaxnerf.outputs import reporting
from jaxnerf.training import experiment as experiment_lib
from jaxnerf.training import pacing
from jaxnerf.training import trainer
from tests.tiny_configs import small_mlp_config
from tests.tiny_configs import tiny_config


def test_wall_clock_limit_stops_between_log_intervals(scene_cache, tmp_path):
  config = small_mlp_config(scene_cache, num_steps=100_000, log_every=100_000, checkpoint_every=100_000,
                       max_seconds=1.0)
  summary = trainer.train_and_evaluate(config, tmp_path)
  assert 0 < summary['step'] < 100_000 and summary['train_seconds'] < 30
  _, _, state = experiment_lib.restore_model(tmp_path)  # The stopping step is checkpointed.
  assert int(state.step) == summary['step']


def test_time_budget_estimates_the_schedule_length_from_the_step_time():
  now = [0.0]
  budget = pacing.TimeBudget(max_seconds=100.0, num_steps=10_000, seconds_before=20.0, start_step=50,
                              clock=lambda: now[0])
  assert budget.schedule_steps(50, current=10_000) == 10_000  # Nothing timed yet.
  budget.start()
  now[0] = 8.0
  assert budget.seconds == 28.0 and not budget.out_of_time()
  budget.pause()
  now[0] = 30.0  # Time outside the clock (evaluation) does not count.
  assert budget.seconds == 28.0
  # 40 steps in 8 s: 0.2 s a step, 72 s left, so 360 more steps.
  assert budget.schedule_steps(90, current=10_000) == 450
  assert budget.seconds_left(90, 450) == pytest.approx(72.0)
  budget.start()
  now[0] = 102.0
  assert budget.out_of_time()
  unlimited = pacing.TimeBudget(0.0, 10_000, 0.0, 0, clock=lambda: now[0])
  assert unlimited.schedule_steps(500, current=123) == 10_000 and not unlimited.out_of_time()


def test_time_limited_run_anneals_the_learning_rate_by_the_end(scene_cache, tmp_path):
  config = small_mlp_config(scene_cache, num_steps=100_000, log_every=5, checkpoint_every=100_000, max_seconds=4.0)
  summary = trainer.train_and_evaluate(config, tmp_path)
  records = [r for r in reporting.read_metrics(tmp_path) if r['split'] == 'train']
  assert records[0]['learning_rate'] == pytest.approx(config.optim.lr_init, rel=0.05)
  # Training stopped on the budget, with the rate decayed (nearly) to lr_final rather than barely started.
  assert summary['step'] < 100_000 and summary['train_seconds'] >= 4.0
  assert records[-1]['learning_rate'] < 1.5 * config.optim.lr_final, records[-1]
  assert 0.8 * summary['step'] < records[-1]['schedule_steps'] < 1.25 * summary['step'], records[-1]


def test_step_limited_run_keeps_the_schedule_over_num_steps(scene_cache, tmp_path):
  config = tiny_config(scene_cache)
  trainer.train_and_evaluate(config, tmp_path)
  records = [r for r in reporting.read_metrics(tmp_path) if r['split'] == 'train']
  assert {r['schedule_steps'] for r in records} == {20}
  # The mean rate of steps 15-19 (each step's rate is that of the state's step before the update).
  lr_init, lr_final = config.optim.lr_init, config.optim.lr_final
  expected = np.mean([lr_init * (lr_final / lr_init) ** (step / 20) for step in range(15, 20)])
  assert records[-1]['learning_rate'] == pytest.approx(expected, rel=1e-4)


def test_stall_watch_warns_once_after_patience_steps_of_zero_gradient():
  messages = []
  progress = type('Progress', (), {'write': lambda self, text: messages.append(text)})()
  watch = pacing.StallWatch(patience=10, learning_rate=10.0, progress=progress)
  assert watch.observe(0, [1.0] * 5 + [0.0] * 5) is None  # Zero since step 6: 5 steps.
  assert watch.observe(10, [0.0] * 3 + [2.0]) is None  # Recovered at step 14.
  assert watch.observe(14, [0.0] * 9) is None  # Steps 15-23: 9 steps.
  warning = watch.observe(23, [0.0])
  assert 'zero since step 15' in warning and 'config.optim.lr_init=10' in warning
  assert watch.observe(24, [0.0] * 50) is None and messages == [warning]
  assert pacing.StallWatch(0, 1.0, progress).observe(0, [0.0] * 1000) is None  # 0: never.

"""Each method's config, shrunk, trains, resumes and renders on a tiny scene: mip-NeRF 360, the proposal
sampler over hash grids, Ref-NeRF, and the capture configs (LLFF's NDC rays, transforms.json). The training
loop's own mechanics are tested in test_training.py."""

import pathlib

import numpy as np
import pytest

from jaxnerf.commands import render
from jaxnerf.datasets import transforms_json
from jaxnerf.errors import ConfigError
from jaxnerf.outputs import reporting
from jaxnerf.training import trainer
from tests.scenes import write_llff_scene
from tests.tiny_configs import tiny_capture_config
from tests.tiny_configs import tiny_method_config


def _train_resume_and_render(name: str, scene_cache, workdir):
  """configs/<name>.py (shrunk) trained 4 steps, resumed to 6, and one val view rendered: (train records,
  render summary)."""
  config = tiny_method_config(name, scene_cache, num_steps=4, checkpoint_every=2, log_every=2)
  config.eval.update(final_num_images=0)
  trainer.train_and_evaluate(config, workdir)
  config.train.num_steps = 6
  summary = trainer.train_and_evaluate(config, workdir)
  assert summary['resumed_from'] == 4 and summary['step'] == 6
  rendered = render.render_split(workdir, 'val', limit=1)
  assert rendered['num_images'] == 1 and np.isfinite(rendered['mean']['psnr'])
  return [r for r in reporting.read_metrics(workdir) if r['split'] == 'train'], rendered


def test_mipnerf360_config_trains_resumes_and_renders(scene_cache, tmp_path):
  """configs/mipnerf360.py (shrunk) trains, checkpoints, resumes where it stopped, and renders; every loss
  term is reported. (configs/demo360.py trains end to end in the next test.)"""
  records, _ = _train_resume_and_render('mipnerf360', scene_cache, tmp_path)
  assert all(np.isfinite(r['loss']) and r['loss_interlevel'] >= 0 and r['loss_distortion'] >= 0
             for r in records)


def test_proposal_sampler_with_hash_grids_learns_the_scene(scene_cache, tmp_path):
  """The fast 360 model (configs/demo360.py, shrunk) raises val PSNR well above its start."""
  config = tiny_method_config('demo360', scene_cache, num_steps=200, log_every=10, checkpoint_every=1000,
                              batch_size=256)
  config.eval.update(at_train_seconds=(0.0,), num_images=2, final_num_images=2, video_frames=0)
  summary = trainer.train_and_evaluate(config, tmp_path)
  first_val = next(r for r in reporting.read_metrics(tmp_path) if r['split'] == 'val')
  assert summary['val_psnr'] > first_val['psnr'] + 5, (first_val['psnr'], summary['val_psnr'])


def test_fern_config_trains_resumes_and_renders_a_spiral(tmp_path):
  """configs/fern.py (shrunk; NDC rays, density noise) on a small forward-facing LLFF capture: trains,
  resumes, scores the held-out images and renders LLFF's spiral."""
  scene, _ = write_llff_scene(tmp_path / 'scene')
  config = tiny_capture_config('fern', scene, num_steps=4, checkpoint_every=2, log_every=2)
  config.eval.update(final_num_images=0)
  workdir = tmp_path / 'run'
  trainer.train_and_evaluate(config, workdir)
  config.train.num_steps = 6
  assert trainer.train_and_evaluate(config, workdir)['resumed_from'] == 4
  rendered = render.render_split(workdir, 'test', limit=1)
  assert rendered['num_images'] == 1 and np.isfinite(rendered['mean']['psnr'])
  video = render.render_path_video(workdir, None, num_frames=3, fps=3, min_size=0)
  assert video['path'] == 'spiral' and video['size'] == [24, 24]
  assert sorted(pathlib.Path(f).name for f in video['files'])[0] == 'spiral.gif'


CUP = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'captures' / 'cup'


def _transforms_scene(tmp_path, source):
  """A transforms.json scene written from another capture's cameras (the cup's COLMAP model, or a small
  LLFF capture of the procedural scene), the images left where they are."""
  scene = tmp_path / 'transforms_scene'
  scene.mkdir()
  if source == 'cup':
    from jaxnerf.datasets import colmap  # pylint: disable=import-outside-toplevel
    capture = colmap.read_colmap(CUP)
  else:
    from jaxnerf.datasets import llff  # pylint: disable=import-outside-toplevel
    capture = llff.read_llff(write_llff_scene(tmp_path / 'llff', arc_deg=90.0)[0], forward_facing=False)
  transforms_json.write_transforms(capture, scene / 'transforms.json')
  return scene


def test_capture_config_trains_and_renders_a_transforms_json_scene(tmp_path):
  """configs/capture.py (shrunk; contraction, normalised world) on a transforms.json scene: trains, scores
  the held-out images and renders the ellipse around the cameras' focus. The scene is the cup's COLMAP model
  where ../shared has it, else a small LLFF capture of the procedural scene: one of them, since each scene's
  camera count makes its own training step (18-20 s of compiling, 35-50 s of the suite each), and the reader is
  the same."""
  source = 'cup' if CUP.is_dir() else 'procedural'
  config = tiny_capture_config('capture', _transforms_scene(tmp_path, source), num_steps=2, checkpoint_every=2)
  config.factor = 16 if source == 'cup' else 1  # The cup's 800x600 photos at 50x37.
  config.eval.update(final_num_images=0)
  workdir = tmp_path / 'run'
  trainer.train_and_evaluate(config, workdir)
  rendered = render.render_split(workdir, 'test', limit=1)
  assert rendered['num_images'] == 1 and np.isfinite(rendered['mean']['psnr'])
  video = render.render_path_video(workdir, None, num_frames=2, fps=2, min_size=0)
  assert video['path'] == 'ellipse'


def test_normals_are_refused_in_ndc_before_training(tmp_path):
  """(Normal maps are rendered and written in test_refnerf_config_trains_resumes_and_renders_normal_maps.)"""
  llff = tiny_capture_config('fern', write_llff_scene(tmp_path / 'llff')[0])
  llff.model.normals = 'density'
  with pytest.raises(ConfigError, match=r"config.model.normals='density': this scene's rays are in NDC"):
    trainer.train_and_evaluate(llff, tmp_path / 'run')
  assert not (tmp_path / 'run').exists()


def test_refnerf_config_trains_resumes_and_renders_normal_maps(scene_cache, tmp_path):
  """configs/refnerf.py (shrunk): Ref-NeRF's appearance over mip-NeRF trains with its normal losses,
  resumes, and renders normal maps and pictures of its parts (outputs/pictures.py)."""
  records, rendered = _train_resume_and_render('refnerf', scene_cache, tmp_path)
  assert all(np.isfinite(r['loss']) and r['loss_orientation'] >= 0 and r['loss_predicted_normals'] > 0
             for r in records)
  assert np.isfinite(rendered['mean']['depth_mae'])
  for picture in ('normals', 'normals_pred', 'diffuse', 'tint', 'specular', 'roughness'):
    assert (pathlib.Path(rendered['out_dir']) / f'r_0_{picture}.png').is_file(), picture

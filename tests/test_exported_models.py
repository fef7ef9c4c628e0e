"""Exported models: packed ternary layers render the images of the checkpoint they came from; the size
report; bad files; configs/bitnerf.py trained, resumed, exported and rendered; its mesh exported."""

import json
import pathlib
import subprocess
import sys

import chex
import jax
import numpy as np
import pytest

from configs import bitnerf
from configs import lego_ngp
from jaxnerf.commands import export
from jaxnerf.commands import render
from jaxnerf import datasets
from jaxnerf.errors import CheckpointError
from jaxnerf.errors import ConfigError
from jaxnerf.errors import WorkdirError
from jaxnerf.ops import quantization
from jaxnerf.outputs import chunked
from jaxnerf.outputs import geometry
from jaxnerf.training import experiment as experiment_lib
from jaxnerf.training import trainer
from tests.conftest import tree_digests
from tests.conftest import REPO
from tests.conftest import subprocess_env
from tests.tiny_configs import tiny_method_config
from tests.tiny_configs import tiny_ngp_config


def test_the_cpu_preset_is_the_quantised_twin_of_lego_ngp_cpu():
  quantised, twin = bitnerf.get_config('cpu').to_dict(), lego_ngp.get_config('cpu').to_dict()
  assert quantised['model']['hash_grid'].pop('layers') == 'ternary'
  assert twin['model']['hash_grid'].pop('layers') == 'dense'
  assert quantised['model']['hash_grid'].pop('table_bits') == 8 and twin['model']['hash_grid'].pop('table_bits') == 0
  assert quantised == twin
  paper = bitnerf.get_config()
  assert (paper.model.name, paper.model.field, paper.model.mlp.depth, paper.model.mlp.width) == ('nerf', 'mlp', 8, 256)
  assert paper.model.mlp.layers == 'ternary' and paper.model.mlp.full_precision_layers == ('input', 'output')


def _random_variables(config, seed=0):
  shapes = experiment_lib.abstract_state(experiment_lib.build_experiment(config), seed).variables
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: (rng.normal(size=s.shape) * 0.05).astype(s.dtype), shapes)


@pytest.mark.parametrize('preset', ['', 'cpu'])
def test_packed_ternary_layers_take_a_tenth_of_the_bytes(tmp_path, preset):
  config = bitnerf.get_config(preset)
  variables = _random_variables(config)
  report = export.write(tmp_path / 'packed.npz', config, 7, variables, 'packed')
  ternary = [row for row in report['layers'] if row['kind'] == 'ternary']
  # The paper's MLPs: trunk_1..7, bottleneck and view of both fields; the :cpu preset: the colour MLP's two
  # hidden layers.
  assert len(ternary) == (18 if preset == '' else 2)
  for row in ternary:  # Five weights a byte, a float32 scale, float32 bias and gain.
    layer = variables['params'][row['name'].split('/')[1]][row['name'].split('/')[2]]
    in_features, out_features = layer['kernel'].shape
    expected = -(-in_features * out_features // 5) + 4 + 4 * (in_features + out_features)
    assert row['bytes'] == expected and row['float32_bytes'] == 4 * row['parameters']
  assert report['quantised_layers']['ratio'] >= 10
  assert report['file_bytes'] >= report['total']['bytes']
  float32 = export.write(tmp_path / 'float32.npz', config, 7, variables, 'float32')
  assert float32['total']['ratio'] == 1.0


def test_the_fast_model_packed_whole_is_over_four_times_smaller_than_float32(tmp_path):
  """bitnerf.py:cpu's file, every array counted: 8-bit tables with a scale per level and the occupancy grid as
  bits (its density record dropped) take a quarter of float32's bytes; 4-bit tables an eighth."""
  config = bitnerf.get_config('cpu')
  variables = _random_variables(config)
  float32 = export.write(tmp_path / 'float32.npz', config, 7, variables, 'float32')
  packed = export.write(tmp_path / 'packed.npz', config, 7, variables, 'packed')
  assert float32['file_bytes'] / packed['file_bytes'] >= 4.0, (float32['file_bytes'], packed['file_bytes'])
  rows = {row['name']: row for row in packed['layers']}
  tables = [row for row in packed['layers'] if row['kind'] == 'table']
  assert len(tables) == config.model.hash_grid.num_levels
  assert all(row['bytes'] == row['parameters'] + 4 for row in tables)  # An int8 an entry, a float32 scale.
  assert rows['occupancy/density_ema']['bytes'] == 0 and rows['occupancy/density_ema']['ratio'] is None
  assert rows['occupancy/occupied']['bytes'] == rows['occupancy/occupied']['parameters'] // 8
  with config.unlocked():
    config.model.hash_grid.table_bits = 4
  four = export.write(tmp_path / 'four.npz', config, 7, variables, 'packed')
  assert float32['file_bytes'] / four['file_bytes'] >= 7.0
  exported = export.read(tmp_path / 'four.npz')
  q = exported.variables['params']['field']['table_3_int']
  assert q.dtype == np.int8 and q.shape == variables['params']['field']['table_3'].shape
  assert np.abs(q).max() == 7 and 'table_3' not in exported.variables['params']['field']
  np.testing.assert_array_equal(exported.variables['occupancy']['occupied'], variables['occupancy']['occupied'])
  assert not exported.variables['occupancy']['density_ema'].any()


def test_quantised_tables_and_the_occupancy_bits_give_the_checkpoints_field_and_grid(tmp_path):
  """The tiny instant-ngp model with ternary colour layers and 4-bit tables: its field computes, from the
  packed file, the checkpoint's densities and colours bit for bit, and the grid's bits are the checkpoint's;
  the renderer reads nothing else. (The bitnerf test above renders whole images both ways.)"""
  config = tiny_ngp_config()
  config.model.hash_grid.update(layers='ternary', table_bits=4)
  model = experiment_lib.build_experiment(config).model
  variables = _random_variables(config)
  rng = np.random.default_rng(0)
  variables['params']['field'] = {k: v * 1000 * rng.random(v.shape, np.float32) if k.startswith('table_') else v
                                  for k, v in variables['params']['field'].items()}  # Trained-size entries.
  variables['occupancy']['occupied'] = rng.random(variables['occupancy']['occupied'].shape) < 0.7
  export.write(tmp_path / 'packed.npz', config, 3, variables, 'packed')
  exported = export.read(tmp_path / 'packed.npz')
  points = rng.uniform(-1.4, 1.4, (4096, 3)).astype(np.float32)
  viewdirs = points / np.linalg.norm(points, axis=-1, keepdims=True)
  field = jax.jit(lambda v: model.apply(v, points, viewdirs, method=lambda m, x, d: m.field.at_positions(x, d)))
  from_checkpoint, from_file = field(variables), field(exported.variables)
  chex.assert_trees_all_equal(from_file, from_checkpoint)
  assert np.std(from_checkpoint.rgb) > 0.01 and np.std(from_checkpoint.density) > 0  # Not constant outputs.
  np.testing.assert_array_equal(exported.variables['occupancy']['occupied'], variables['occupancy']['occupied'])
  q, table_scale = quantization.absmax_table(variables['params']['field']['table_2'], 4)
  np.testing.assert_array_equal(exported.variables['params']['field']['table_2_int'], q)
  assert float(exported.variables['params']['field']['table_2_scale']) == float(table_scale)


def test_a_damaged_or_missing_export_is_refused_by_name(tmp_path):
  with pytest.raises(CheckpointError, match='missing.npz does not exist'):
    export.read(tmp_path / 'missing.npz')
  (tmp_path / 'garbled.npz').write_bytes(b'not an archive')
  with pytest.raises(CheckpointError, match='garbled.npz is not a model exported') as raised:
    export.read(tmp_path / 'garbled.npz')
  assert 'allow_pickle' not in str(raised.value)


@pytest.mark.parametrize('export_format', export.FORMATS)
def test_an_export_under_another_suffix_is_refused_before_the_restore(tmp_path, export_format):
  with pytest.raises(WorkdirError, match=rf'--out=.*model.ply: a {export_format} model is written as .npz'):
    export.export_workdir(tmp_path / 'not_a_workdir', export_format, tmp_path / 'export' / 'model.ply')
  assert not list(tmp_path.iterdir())


@pytest.fixture(scope='module')
def trained_bitnerf(scene_cache, tmp_path_factory):
  """configs/bitnerf.py (the paper's renderer and MLP fields, ternary), shrunk to the tiny scene: trained
  4 steps, then resumed to 6."""
  workdir = tmp_path_factory.mktemp('bitnerf')

  def config(num_steps):
    config = tiny_method_config('bitnerf', scene_cache, num_steps=num_steps, checkpoint_every=2)
    config.model.update(num_coarse_samples=16, num_fine_samples=16)
    return config

  first = trainer.train_and_evaluate(config(4), workdir)
  resumed = trainer.train_and_evaluate(config(6), workdir)
  assert first['step'] == 4 and resumed['resumed_from'] == 4 and resumed['step'] == 6
  return workdir


def test_bitnerf_renders_the_same_images_from_its_packed_export(trained_bitnerf, tmp_path):
  config, experiment, state = experiment_lib.restore_model(trained_bitnerf)
  assert 'norm_scale' in state.params['fine_field']['trunk_1']  # Ternary, and trained through ternary layers.
  report = export.export_workdir(trained_bitnerf, 'packed', tmp_path / 'packed.npz')
  assert report['step'] == 6 and report['quantised_layers']['count'] == 6  # trunk_1, bottleneck, view x 2.
  exported = export.read(tmp_path / 'packed.npz')
  assert exported.step == 6 and exported.config.model.mlp.layers == 'ternary'
  layer = exported.variables['params']['fine_field']['trunk_1']
  assert layer['ternary'].dtype == np.int8 and 'kernel' not in layer
  t, _ = quantization.ternary_weights(state.params['fine_field']['trunk_1']['kernel'])
  np.testing.assert_array_equal(layer['ternary'], t)
  val = datasets.load_split(config, 'val')
  rays = val.rays_of_image(0)
  from_checkpoint = chunked.render_image(experiment.steps, state.variables, rays, config.eval.chunk_size)
  from_file = chunked.render_image(
      experiment.steps, jax.device_put(exported.variables, experiment.steps.replicated), rays,
      config.eval.chunk_size)
  chex.assert_trees_all_equal(from_file, from_checkpoint)  # Bit for bit (quantization.py says why).
  summary = render.render_split(None, 'val', packed=str(tmp_path / 'packed.npz'))
  renders = pathlib.Path(summary['out_dir']).parent  # render/<the scene's folder name>/
  assert summary['out_dir'] == str(renders / 'val_6_packed') and renders.parent == tmp_path / 'render'
  assert summary['mean']['psnr'] == pytest.approx(
      render.render_split(trained_bitnerf, 'val')['mean']['psnr'], abs=0)
  # The rendering docs' promise: the float32 export beside it renders into a folder of its own, and a second
  # render of the packed file into a new one; an export over an existing file is refused.
  packed_renders = tree_digests(tmp_path / 'render')
  with pytest.raises(WorkdirError, match='packed.npz exists .* never overwritten'):
    export.export_workdir(trained_bitnerf, 'packed', tmp_path / 'packed.npz')
  with pytest.raises(WorkdirError, match='--out .*packed.npz exists .* never overwritten'):  # Written at once.
    export.write(tmp_path / 'packed.npz', config, 6, state.variables, 'packed')
  export.export_workdir(trained_bitnerf, 'float32', tmp_path / 'float32.npz')
  float32 = render.render_split(None, 'val', packed=str(tmp_path / 'float32.npz'), limit=1)
  again = render.render_split(None, 'val', packed=str(tmp_path / 'packed.npz'), limit=1)
  assert float32['out_dir'] == str(renders / 'val_6_float32_first1')
  assert again['out_dir'] == str(renders / 'val_6_packed_first1')
  again = render.render_split(None, 'val', packed=str(tmp_path / 'packed.npz'))
  assert again['out_dir'] == summary['out_dir'] + '-2' and again['mean'] == summary['mean']
  after = tree_digests(tmp_path / 'render')
  assert {path: after[path] for path in packed_renders} == packed_renders  # The first render, untouched.
  # A model that renders NaN (all 24x24 pixels) gives an error, not images and metrics.
  broken = jax.tree.map(lambda x: np.full_like(x, np.nan) if x.dtype == np.float32 else x,
                        jax.device_get(state.variables))
  export.write(tmp_path / 'nan' / 'model.npz', config, 6, broken, 'float32')
  with pytest.raises(CheckpointError, match=r'model.npz renders non-finite colours \(NaN or inf\) in 576 pixels of '
                                            'view 0: it is not a usable model, and nothing was written'):
    render.render_split(None, 'val', packed=str(tmp_path / 'nan' / 'model.npz'), limit=1)
  assert [p.name for p in (tmp_path / 'nan').iterdir()] == ['model.npz']


def test_export_and_render_commands(trained_bitnerf, tmp_path):
  env = subprocess_env()
  out = tmp_path / 'model.npz'
  result = subprocess.run([sys.executable, 'export.py', f'--workdir={trained_bitnerf}', '--format=packed',
                           f'--out={out}'], cwd=REPO, env=env, capture_output=True, text=True, check=True)
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report['file'] == str(out) and report['quantised_layers']['ratio'] > 3  # Tiny layers: gains weigh.
  result = subprocess.run([sys.executable, 'render.py', f'--packed={out}', '--split=val', '--limit=1'],
                          cwd=REPO, env=env, capture_output=True, text=True, check=True)
  assert json.loads(result.stdout.strip().splitlines()[-1])['exported_model'] == str(out)
  result = subprocess.run([sys.executable, 'render.py', f'--packed={tmp_path / "none.npz"}'], cwd=REPO,
                          env=env, capture_output=True, text=True)
  assert result.returncode == 1 and 'none.npz does not exist' in result.stderr


def test_mesh_export_of_a_trained_workdir_and_its_refusals(trained_bitnerf, tmp_path):
  from jaxnerf.commands import mesh  # pylint: disable=import-outside-toplevel
  import trimesh  # pylint: disable=import-outside-toplevel
  config, experiment, state = experiment_lib.restore_model(trained_bitnerf)
  density_at, _ = mesh.field_functions(experiment.model, state.variables)
  assert not config.scene_box  # So the region is given, and refused when it is not.
  with pytest.raises(ConfigError, match=r'no scene box .* --box=x_min,y_min,z_min,x_max,y_max,z_max'):
    mesh.export_mesh(trained_bitnerf, tmp_path / 'mesh.ply')
  box = (-1.0, -1.0, -1.0, 1.0, 1.0, 1.0)
  grid, _ = geometry.sample_density_grid(density_at, box, 12, 4096)
  threshold = float(np.median(grid))  # A tiny, barely trained model: a level its density surely crosses.
  out = tmp_path / 'mesh.obj'
  report = mesh.export_mesh(trained_bitnerf, out, resolution=12, density_threshold=threshold, box=box)
  loaded = trimesh.load(out, process=False)
  assert report['step'] == 6 and report['vertices'] == len(loaded.vertices) > 0
  assert report['faces'] == len(loaded.faces) and report['file_bytes'] == out.stat().st_size
  low, high = np.asarray(box[:3]), np.asarray(box[3:])
  assert np.all(loaded.vertices >= low - 1e-4) and np.all(loaded.vertices <= high + 1e-4)
  assert [p.name for p in tmp_path.iterdir()] == ['mesh.obj']  # No temporary file left.
  with pytest.raises(WorkdirError, match=r'mesh.npz: a mesh is written as .ply or .obj'):
    mesh.export_mesh(trained_bitnerf, tmp_path / 'mesh.npz')
  with pytest.raises(ConfigError, match=r'no surface at the threshold 1e\+09'):
    mesh.export_mesh(trained_bitnerf, tmp_path / 'none.ply', resolution=8, density_threshold=1e9, box=box)
  assert not (tmp_path / 'none.ply').exists()
  with pytest.raises(ConfigError, match=r'--density_threshold=nan: expected a finite density above 0'):
    mesh.export_mesh(trained_bitnerf, tmp_path / 'none.ply', density_threshold=float('nan'), box=box)
  with pytest.raises(ConfigError, match=r'--box=0,0,0,1,-1,1: expected 6 finite numbers'):
    mesh.parse_box(['0', '0', '0', '1', '-1', '1'])
  result = subprocess.run([sys.executable, 'export.py', f'--workdir={trained_bitnerf}', '--format=mesh',
                           '--box=0,0,x,1,1,1'], cwd=REPO, env=subprocess_env(), capture_output=True, text=True)
  assert result.returncode != 0 and '--box=0,0,x,1,1,1: expected 6 finite numbers' in result.stderr


def test_point_cloud_export_of_a_trained_workdir_and_its_refusals(trained_bitnerf, tmp_path):
  from jaxnerf.commands import point_cloud  # pylint: disable=import-outside-toplevel
  import plyfile  # pylint: disable=import-outside-toplevel
  config, experiment, state = experiment_lib.restore_model(trained_bitnerf)
  train = datasets.load_split(config, 'train')
  report = point_cloud.export_point_cloud(trained_bitnerf, tmp_path / 'points.ply', views_stride=1000,
                                          min_opacity=0.01)
  assert report['views'] == 1 and report['normals'] is False  # One view; bitnerf renders no normals.
  vertex = plyfile.PlyData.read(str(tmp_path / 'points.ply'))['vertex']
  points = np.stack([vertex['x'], vertex['y'], vertex['z']], axis=-1)
  # The brute force: the first view's pixels at least that opaque, at their rendered depth along the ray.
  rays = train.rays_of_image(0)
  rendering = chunked.render_image(experiment.steps, state.variables, rays, config.eval.chunk_size)
  keep = rendering['acc'] > 0.01
  expected = np.asarray(rays.origins)[keep] + np.asarray(rays.directions)[keep] * rendering['depth'][keep][:, None]
  assert report['points'] == len(points) == int(keep.sum()) > 0
  np.testing.assert_allclose(points, expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(vertex['red'], np.round(rendering['rgb'][keep][:, 0] * 255).astype(np.uint8))
  for kwargs, message in [(dict(views_stride=0), r'--views_stride=0: expected a positive integer'),
                          (dict(min_opacity=1.0), r'--min_opacity=1.0: expected an opacity strictly between'),
                          (dict(path=tmp_path / 'points.obj'), r'points.obj: a point cloud is written as .ply')]:
    with pytest.raises((ConfigError, WorkdirError), match=message):
      point_cloud.export_point_cloud(trained_bitnerf, **kwargs)

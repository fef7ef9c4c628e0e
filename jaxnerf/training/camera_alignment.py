"""Held-out views of a run whose training cameras were refined, and the errors of the refined cameras.

A run that refines its training cameras (a parameter group that adjusts them: training/parameter_groups.py)
learns the scene in a frame of its own: the refined cameras agree with the given ones only up to a
similarity (a drift of the whole rig, a scale). Held-out views, camera paths and the viewer are given in the
frame of the given cameras, so before they are rendered they are moved by the similarity that best maps the
given training cameras onto the refined ones (ops/rigid.py: fit_similarity, of the camera centres and
orientations). Where the training poses were perturbed on purpose (config.pose_noise), the held-out views
were not: they are in the frame of the true training poses, and the similarity is fitted to those (as BARF
aligns to the ground truth before scoring held-out views); the noisy poses would leave a gauge error of
about the noise over the square root of the number of cameras (0.3 degrees for 3 degrees and 100 cameras:
half a pixel at 100x100). Where the true training poses are known (config.pose_noise perturbed them on purpose), the
cameras a run trains on are scored against them after the same kind of alignment.

A similarity of the whole rig cannot place each held-out view as exactly as training placed each training
camera: the scene the model learnt agrees with its refined cameras, each of which is a little off the truth.
`register_views` does what BARF's evaluation does: it fits a correction of each held-out view's pose to the
view's own pixels, the model held fixed, by the same parametrisation as the training cameras' (each camera-
adjusting group's `adjust_cameras`, with arrays for the views). Scores after it are reported beside, never
instead of, those of the views placed by the similarity alone.
"""

import dataclasses
from typing import Dict, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnerf import datasets
from jaxnerf.datasets import pose_noise
from jaxnerf.datasets.scene import SceneSplit
from jaxnerf.ops import compositing
from jaxnerf.ops import rigid
from jaxnerf.outputs import evaluation
from jaxnerf import parallel
from jaxnerf.training import parameter_groups


def refined_poses(config, group_params, train_split: SceneSplit) -> Optional[np.ndarray]:
  """[N, 3, 4] the training cameras as the run's parameter groups (TrainState.group_params) correct them at
  the end of training; None where no group the config turns on adjusts them."""
  if group_params is None or not parameter_groups.adjusts_cameras(config):
    return None
  cameras = train_split.camera_table().as_arrays(jnp)
  refined = parameter_groups.adjust_cameras(config, jax.device_get(group_params), cameras, 1.0)
  return np.asarray(jax.device_get(refined.camtoworlds), np.float64)


def with_poses(split: SceneSplit, camtoworlds: np.ndarray) -> SceneSplit:
  return dataclasses.replace(split, camtoworlds=np.asarray(camtoworlds, np.float32))


def moved(split: SceneSplit, similarity: rigid.Similarity) -> SceneSplit:
  """`split` with its cameras moved by `similarity`, and its near and far bounds scaled with the scene
  (NDC bounds are those of the NDC space, which stay 0 and 1)."""
  scale = 1.0 if split.ndc is not None else similarity.scale
  return dataclasses.replace(split, camtoworlds=similarity.apply(split.camtoworlds).astype(np.float32),
                             near=split.near * scale, far=split.far * scale)


class RefinedFrame:
  """The frame a run's model was trained in: its refined training cameras and the similarity that brings
  the given frame's cameras into it (both None where the run refines no cameras)."""

  def __init__(self, config, group_params, train_split: SceneSplit):
    self.train_split = train_split
    self.refined = refined_poses(config, group_params, train_split)
    # Held-out views were never perturbed: where the training poses were (config.pose_noise), the views share
    # the frame of the true poses, and the similarity is fitted to those (the frame of the truth, 7 numbers,
    # not the poses of any view); else to the training poses as given.
    reference = train_split.camtoworlds if train_split.true_camtoworlds is None else train_split.true_camtoworlds
    self.similarity = None if self.refined is None else rigid.fit_similarity(reference, self.refined)

  def held_out(self, split: SceneSplit) -> SceneSplit:
    """A split of views in the frame of the given training poses (val, test; the true poses' where the
    training poses were perturbed on purpose), as the model sees them."""
    return split if self.similarity is None else moved(split, self.similarity)

  def training(self) -> SceneSplit:
    """The training split with the refined poses (what camera paths and the viewer start from)."""
    return self.train_split if self.refined is None else with_poses(self.train_split, self.refined)

  def pose_errors(self, scene_box) -> Dict[str, float]:
    """Where the true training poses are known: the errors of the cameras the run ended with (refined, or as
    given) against them, after the similarity that best aligns the two. {'camera_rotation_error_deg' (mean),
    'camera_rotation_error_deg_max', 'camera_translation_error' (mean, scene units),
    'camera_translation_error_fraction' (mean, of each camera's distance to the scene centre)}; {} where they
    are not known."""
    truth = self.train_split.true_camtoworlds
    if truth is None:
      return {}
    ended = self.train_split.camtoworlds if self.refined is None else self.refined
    aligned = rigid.fit_similarity(ended, truth).apply(ended)
    rotation = rigid.rotation_errors_deg(aligned, truth)
    translation = rigid.centre_errors(aligned, truth)
    true_split = with_poses(self.train_split, truth)
    distances = np.linalg.norm(np.asarray(truth)[:, :3, 3] - pose_noise.scene_centre(true_split, scene_box), axis=-1)
    return {'camera_rotation_error_deg': float(rotation.mean()), 'camera_rotation_error_deg_max': float(rotation.max()),
            'camera_translation_error': float(translation.mean()),
            'camera_translation_error_fraction': float(np.mean(translation / distances))}


def training_split(config, group_params, data_dir=None) -> SceneSplit:
  """The training split of `config` (from `data_dir` where given) with its cameras as the run refined them
  (RefinedFrame.training): what renders of training views, camera paths, meshes and point clouds start from."""
  return RefinedFrame(config, group_params, datasets.load_split(config, 'train', data_dir)).training()


def held_out_split(config, group_params, split: SceneSplit, data_dir=None) -> SceneSplit:
  """`split`, views in the given frame, moved into the frame of a run that refined its training cameras
  (RefinedFrame.held_out; the training split is read only then)."""
  if group_params is None or not parameter_groups.adjusts_cameras(config):
    return split
  return RefinedFrame(config, group_params, datasets.load_split(config, 'train', data_dir)).held_out(split)


def register_views(config, model, variables, background, split: SceneSplit, indices: Sequence[int],
                   seed: int = 0) -> Tuple[SceneSplit, Dict[str, float]]:
  """`split` with the poses of its views `indices` fitted to their pixels, the model held fixed: Adam on
  corrections laid out as the run's camera-adjusting parameter groups lay theirs out (zero at first), for
  config.eval.pose_fit_steps steps of config.eval.pose_fit_rays pixels of every view each, its learning rate
  decaying log-linearly from config.eval.pose_fit_learning_rate to a twentieth of it. Views are fitted in
  blocks of at most config.eval.chunk_size rays per step (memory is bounded by it).

  Args:
    config: the run's config (its groups completed by the training split).
    model, variables: the trained model and its variables; `background` [3].
    split: held-out views in the model's frame (RefinedFrame.held_out).
    indices: the views to fit (the others keep their poses).

  Returns:
    (the split with fitted poses, {'pose_fit_rotation_deg', 'pose_fit_translation': the mean angle and centre
    shift by which the fit moved the views, in the model's frame; 'pose_fit_failed_views': the views whose
    fit was not finite, left where they were}).
  """
  eval_config = config.eval
  groups = [g for g in parameter_groups.enabled(config) if g.adjust_cameras is not None]
  if not groups or eval_config.pose_fit_steps <= 0 or not len(indices):
    return split, {}
  # The groups' settings for cameras that are the split's views (what the split fixes, such as their number).
  views_config = config.copy_and_resolve_references()
  for group in groups:
    if group.complete is not None:
      views_config[group.name].update(group.complete(config[group.name], split))
  cameras = split.camera_table().as_arrays(jnp)
  keys = jax.random.split(jax.random.PRNGKey(seed), len(groups))
  arrays = {g.name: g.init(views_config[g.name], key) for g, key in zip(groups, keys)}
  arrays = parallel.placed_like(arrays, variables)  # (Else the step compiles twice.)
  steps = eval_config.pose_fit_steps
  first_rate = eval_config.pose_fit_learning_rate
  optimizer = optax.adam(optax.exponential_decay(first_rate, steps, 0.05, end_value=0.05 * first_rate))

  def loss(arrays, variables, image, row, col, rgb):
    moved_cameras = parameter_groups.adjust_cameras(views_config, arrays, cameras, 1.0)
    rays = moved_cameras.rays(image, row, col, xnp=jnp)
    return compositing.complete_rays_mse(model.apply(variables, None, rays, background)[-1], rgb)

  @jax.jit
  def step(arrays, opt_state, variables, image, row, col, rgb):
    grads = jax.grad(loss)(arrays, variables, image, row, col, rgb)
    updates, opt_state = optimizer.update(grads, opt_state, arrays)
    return optax.apply_updates(arrays, updates), opt_state

  indices = np.asarray(list(indices))
  rays_per_view = eval_config.pose_fit_rays
  per_block = max(1, eval_config.chunk_size // rays_per_view)
  draws = np.random.default_rng(seed)
  for block in np.array_split(indices, -(-len(indices) // per_block)):
    opt_state = parallel.placed_like(optimizer.init(arrays), variables)
    image = np.repeat(block, rays_per_view)
    for _ in range(steps):
      row = draws.integers(0, split.height, image.shape)
      col = draws.integers(0, split.width, image.shape)
      arrays, opt_state = step(arrays, opt_state, variables, image, row, col, split.images[image, row, col, :3])
  # Each block's views are fitted by their own pixels alone: a view outside the block has no gradient, and
  # Adam, its moments restarted for each block, leaves it where it is.
  moved_cameras = parameter_groups.adjust_cameras(views_config, arrays, cameras, 1.0)
  fitted = np.asarray(split.camtoworlds, np.float64)
  fitted[indices] = np.asarray(jax.device_get(moved_cameras.camtoworlds), np.float64)[indices]
  # A fit that diverged (a model rendering non-finite colours somewhere) leaves its view where it was, and
  # says how many did.
  failed = indices[~np.all(np.isfinite(fitted[indices]), axis=(-2, -1))]
  fitted[failed] = split.camtoworlds[failed]
  rotation = rigid.rotation_errors_deg(fitted[indices], split.camtoworlds[indices])
  shift = rigid.centre_errors(fitted[indices], split.camtoworlds[indices])
  return with_poses(split, fitted), {'pose_fit_rotation_deg': float(rotation.mean()),
                                     'pose_fit_translation': float(shift.mean()),
                                     'pose_fit_failed_views': int(len(failed))}


def registered_scores(config, experiment, variables, split: SceneSplit, indices: Sequence[int], chunk_size: int,
                      lpips_nets: Sequence[str] = ()) -> Dict[str, float]:
  """The mean scores of views `indices` of `split` (in the model's frame) after `register_views`, and how far
  the fit moved them ('pose_fit_rotation_deg', 'pose_fit_translation'); {} where config.eval.pose_fit_steps is
  0 or no group of the run adjusts its cameras."""
  registered, moved_by = register_views(config, experiment.model, variables,
                                        jnp.full(3, experiment.background, jnp.float32), split, indices)
  if not moved_by:
    return {}
  per_image, _ = evaluation.evaluate(experiment.steps, variables, registered, indices, chunk_size,
                                     description='evaluating the registered views', lpips_nets=lpips_nets)
  return {**evaluation.mean_metrics(per_image), **moved_by}

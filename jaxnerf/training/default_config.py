"""The default configuration: every key any experiment can set, with the values of the paper's NeRF.

The library owns the keys and their defaults: config checks name them, and a workdir saved by an older
version that lacks a key is read with that key's default here (what the older version did without it).
configs/default.py is this config; the variants in configs/ start from it and change what differs. Any
key can be overridden on the command line, e.g.

  python train.py --config=configs/default.py --config.train.batch_size=1024 --config.model.mlp.width=128

The scene is named by the top-level keys (`dataset`, `data_dir`, `factor`, ...); everything else is grouped
by concern.
"""

import ml_collections

from jaxnerf.models import conditioning


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  # The scene.
  # 'procedural' (the embedded scene), 'blender' (NeRF's synthetic layout), a real capture: 'llff'
  # (poses_bounds.npy), 'colmap' (sparse/0), 'transforms' (instant-ngp's transforms.json), or 'capture' (any
  # of these three, told apart by the files; see config.capture); 'tiny_nerf' (the tiny_nerf notebook's .npz).
  config.dataset = 'procedural'
  # The scene directory (procedural: the cache directory, '' = default; tiny_nerf: the .npz file).
  config.data_dir = ''
  config.factor = 1  # Integer downsampling factor of the images (area averaging).
  config.white_background = True  # Composite RGBA images (and renderings) on white; False: black.
  config.near = 2.0  # Ray bounds (depth along the viewing axis), those of the Blender scenes.
  config.far = 6.0
  # Axis-aligned box (x_min, y_min, z_min, x_max, y_max, z_max) holding the scene, or () for none. When
  # set, rays are sampled only inside it. Hash-grid fields need it. The Blender scenes fit [-1.5, 1.5]^3.
  config.scene_box = ()
  config.procedural = ml_collections.ConfigDict(dict(
      resolution=80, num_train=100, num_val=20, num_test=20, camera_radius=4.0, camera_angle_x=0.6911,
      supersampling=3, seed=0,
      layout='still_life',  # The embedded scene (dataset='procedural'): 'still_life' or 'unbounded'.
      train_gain_range=(1.0, 1.0),  # Each training view's exposure gain, log-uniform in (min, max); val, test clean.
      train_white_balance=0.0))  # Each training view's R, G, B times factors uniform in [1 - w, 1 + w].
  # Real captures (datasets/capture.py, llff.py): every test_every-th image is held out as test (= val).
  config.capture = ml_collections.ConfigDict(dict(
      test_every=8,
      forward_facing=True,  # LLFF: rays in NDC of the mean view (NeRF's LLFF setting).
      spherify=False,  # LLFF: an inward-facing 360 capture: centre on the cameras' focus, no NDC.
      # COLMAP and transforms.json: 'cameras' (centred on the cameras' focus, the cameras within the unit
      # sphere: for the contraction of radius 1), 'points' (the central 98% of the sparse points in
      # [-1, 1]^3: for a scene box) or 'none'.
      normalize='cameras',
      near=0.0, far=0.0,  # Ray bounds in the normalised world; 0: from the capture (bounds, sparse points).
  ))
  config.seed = 0  # Seeds parameter initialisation, ray batches and sampling.

  # How training rays are drawn (datasets/batching.py).
  config.batching = ml_collections.ConfigDict(dict(
      mode='all_images',  # 'all_images': shuffle the rays of all images; 'single_image': one image a step.
      precrop_steps=0,  # Draw from the image centres for this many first steps (0: never).
      precrop_fraction=0.5,  # Side of the central crop, as a fraction of the image.
  ))

  # The model (jaxnerf/models/): a renderer `name` over fields of kind `field`, each configured by its group.
  config.model = ml_collections.ConfigDict(dict(
      # 'nerf' (coarse-to-fine point samples), 'mipnerf' (coarse-to-fine frustums, one shared field),
      # 'proposal' (mip-NeRF 360's proposal sampling) or 'occupancy_grid' (instant-ngp's ray marching).
      name='nerf',
      field='mlp',  # 'mlp' (the paper's MLPField) or 'hash_grid' (instant-ngp's HashGridField).
      num_coarse_samples=64,  # name='nerf': samples of the coarse level...
      num_fine_samples=128,  # ...and those added for the fine level (0: no fine level).
      lindisp=False,  # 'nerf', 'mipnerf': sample linearly in disparity rather than depth.
      density_activation='relu',  # 'relu' (paper), 'softplus' (mip-NeRF) or 'trunc_exp' (instant-ngp).
      density_bias=0.0,  # Added to raw density: negative values start from nearly empty space.
      density_noise_std=0.0,  # Std of noise added to raw density while training (paper: 1 for LLFF).
      rgb_padding=0.0,  # Widened sigmoid for colour (mip-NeRF uses 0.001).
      # How fields map positions before encoding them: 'none', or 'contract' (mip-NeRF 360's contraction of
      # everything beyond contract_radius into a ball of twice that radius; for unbounded scenes).
      warp='none',
      contract_radius=1.0,
      # 'density': fields also output normals, the negative gradient of their density with respect to the
      # position (autodiff of the geometry network): normal maps in renders. 'none': no normals.
      normals='none',
      # True: fields also predict normals from their geometry features ('normals_pred', scored as
      # normal_pred_mae_deg), which loss.predicted_normals_weight ties to the density's (normals='density').
      # Ref-NeRF's appearance predicts its own.
      predicted_normals=False,
      # The colour model over the geometry: 'nerf' (the field's own view-dependent colour network) or
      # 'refnerf' (Ref-NeRF's diffuse + tint x specular of the reflected direction, model.refnerf; it needs
      # normals='density' for its predicted-normal loss).
      appearance='nerf',
      refnerf=dict(bottleneck_width=128, depth=8, width=256, skip_every=4, ide_levels=5, roughness_bias=-1.0,
                   # The normals the view direction is reflected about: 'predicted' (the paper's n') or
                   # 'density' (multinerf's enable_pred_normals=False; needs normals='density').
                   reflect_about='predicted'),
      # How the fields' linear colour becomes the pixel's: 'none', or 'srgb' (Ref-NeRF's tone mapping).
      tone_mapping='none',
      # Compute dtype: 'bfloat16' or 'float16' (T4s and other GPUs without bfloat16 tensor cores; with loss
      # scaling, optim.loss_scale) for mixed precision. Parameters, optimizer state and loss stay float32.
      dtype='float32',
      # Gradient checkpointing of the MLP fields' trunks (Flax's nn.remat): the backward pass recomputes the
      # trunk's activations instead of keeping them, for less memory at the cost of a second forward pass
      # of the trunk (README, "Memory"). It changes no parameter: a run may resume with either value.
      remat=False,
      mlp=dict(
          point_min_deg=0, point_max_deg=10,  # Positional encoding octaves of points...
          view_min_deg=0, view_max_deg=4,  # ...and of view directions.
          depth=8, width=256, skip_every=4, width_view=128,
          encoding='positional',  # 'positional' (NeRF) or 'integrated' (mip-NeRF's IPE of Gaussians).
          use_viewdirs=True,  # False: colour from the trunk alone (the tiny_nerf notebook's model).
          # 'dense' (full precision) or 'ternary' (BitNet b1.58's quantisation-aware layers: RMSNorm, 8-bit
          # activations, ternary weights; models/layers.py), except the layers whose role ('input',
          # 'hidden', 'output') or name (e.g. 'trunk_5') full_precision_layers lists.
          layers='dense', full_precision_layers=('input', 'output'), activation_bits=8),
      # name='mipnerf' (models.MipNeRF): levels of intervals, each resampled from the blurred weights before.
      mipnerf=dict(num_samples=128, num_levels=2, resample_padding=0.01),
      # name='proposal' (models.ProposalNeRF): density-only proposal fields of kind `field`, configured by
      # config.model.<field> updated by proposal.<field>, place the final field's samples.
      proposal=dict(
          field='mlp',
          num_proposal_samples=(64, 64),  # Intervals of each proposal level...
          num_nerf_samples=32,  # ...and of the final level.
          # 'disparity' or 'linear_disparity' (linear up to spacing_pivot, then disparity) for unbounded
          # scenes, 'linear' for bounded ones.
          spacing='disparity',
          spacing_pivot=1.0,
          gradient_scaling_distance=0.0,  # Scale gradients closer to the camera than this (0: off).
          opaque_background=False,  # Rays stop by far: no background shows (unbounded scenes).
          anneal_slope=10.0,  # Proposal weights anneal from uniform early in training (0: never).
          resample_padding=0.0,  # Added to the weights before resampling.
          single_jitter=True,  # One jitter per ray when resampling (mip-NeRF 360).
          # mip-NeRF 360's proposal MLP; its own choice of layers (as model.mlp.layers).
          mlp=dict(depth=4, width=256, layers='dense'),
          # nerfacto's proposal grids: small and coarse, one 16-unit hidden layer.
          hash_grid=dict(num_levels=5, features_per_level=2, log2_table_size=17, min_resolution=16,
                         max_resolution=128, density_width=16, geo_features=0, layers='dense')),
      hash_grid=dict(
          num_levels=16, features_per_level=2, log2_table_size=19,  # Tables of up to 2^19 entries a level.
          min_resolution=16, max_resolution=2048,  # Cells per side of the coarsest and finest levels.
          density_width=64, geo_features=15, color_depth=2, color_width=64,
          view_encoding='positional',  # View directions: 'positional' (view_max_deg octaves) or 'sh'.
          view_max_deg=4, sh_degree=4,  # sh: spherical harmonics of sh_degree bands (instant-ngp's 4).
          # As model.mlp's: the layers of the density and colour MLPs.
          layers='dense', full_precision_layers=('input', 'output'), activation_bits=8,
          # The tables: 0 (float32), or 8 or 4 bits per entry with a scale per level, trained with the
          # straight-through estimator (export.py --format=packed stores the integers).
          table_bits=0),
      # name='occupancy_grid' (models.OccupancyGridNeRF; uses the top-level scene_box).
      occupancy_grid=dict(
          grid_resolution=64,  # Cells per side of the occupancy grid over the scene box.
          step_size=0.01,  # Marching step in world units; each evaluated sample stands for one step.
          march_samples_per_ray=64.0,  # Slots per ray, on average over a batch, for the density pass...
          render_samples_per_ray=24.0,  # ...and for the pass with gradients (after early termination).
          # The same when rendering images, per ray of an eval chunk. Rays that cross only empty cells are
          # not rendered (they show the background) and a chunk takes as many of the others as their steps
          # fit (outputs/chunked.py), so these should be near the steps of a ray that meets the scene:
          # a call costs its slots (at 0.5 us each on lego_ngp:cpu) and its rays (10 us each, however few
          # steps they take). Fields without density normals shade in the first pass (no second buffer).
          eval_march_samples_per_ray=48.0,
          eval_render_samples_per_ray=48.0,
          # Images are rendered in rounds of this many steps of each ray, a ray's next round resuming where
          # light still arrives: a ray is evaluated little past where it turns opaque, which one call per
          # ray cannot know (on lego_ngp:cpu 49 occupied steps, of which 26 are needed). 0: one call per
          # ray, with the buffers above.
          eval_steps_per_round=24,
          min_transmittance=1e-4,  # Early ray termination: drop steps once less light than this arrives.
          update_every=16,  # Training steps between grid updates.
          warmup_steps=256,  # Until then updates sweep all cells in turn; later they draw cells at random.
          update_fraction=0.25,  # Cells measured per update: this fraction uniformly, as many occupied.
          density_decay=0.95,  # Moving-average decay of a cell's density at each measurement.
          # A cell is empty when a step through it is more transparent than this, or than the mean cell.
          opacity_threshold=0.01),
  ))

  # Per-image conditioning of the colour networks (models/conditioning.py): each component's group, with its
  # defaults and their meaning beside the component (config.model.<group>).
  for group, defaults in conditioning.default_groups().items():
    config.model[group] = ml_collections.ConfigDict(defaults)

  # Optimisation (train_state.py).
  config.optim = ml_collections.ConfigDict(dict(
      lr_init=5e-4,
      lr_final=5e-6,  # Log-linear decay from lr_init to lr_final over train.num_steps...
      lr_decay_start=0.0,  # ...after holding lr_init for this fraction of the run (0: decay from the start).
      lr_delay_steps=0,  # JaxNeRF's warm-up: scale the rate by lr_delay_mult, rising to 1 over these steps.
      lr_delay_mult=1.0,
      adam_b1=0.9, adam_b2=0.999, adam_eps=1e-8,
      grad_clip_norm=0.0,  # Clip gradients to this global norm (0: no clipping).
      # Dynamic loss scaling (flax's DynamicScale), so that float16 gradients neither underflow nor abort
      # the run: 'auto' (on for model.dtype='float16'), 'dynamic' or 'none'. The loss is multiplied by the
      # scale; a step that overflows is skipped and halves it, growth_interval finite steps double it; a
      # step that fails at the minimum stops the run. The scale is kept in the checkpoints.
      loss_scale=dict(mode='auto', initial=2.0**15, growth_interval=2000, minimum=1.0),
      # 'coarse', 'fine' or 'both': these levels' MLP weights were pruned (prune.py sets it when it
      # fine-tunes a pruned model), and their zero weights stay zero; 'none': no pruning.
      pruned_levels='none',
  ))

  # The loss (losses.py): named terms, summed.
  config.loss = ml_collections.ConfigDict(dict(
      data='mse',  # Penalty of the colour residual: 'mse' (the paper's) or 'charbonnier' (mip-NeRF 360's).
      charbonnier_eps=1e-3,
      data_weight=1.0,  # Weight of the whole data term (the paper's 1); coarse_weight scales its coarser levels.
      coarse_weight=1.0,  # Weight of the data term of every level but the finest (the paper sums them).
      interlevel_weight=0.0,  # mip-NeRF 360's proposal loss (its weight 1), which alone trains proposals.
      distortion_weight=0.0,  # mip-NeRF 360's distortion regulariser on the final level (its 0.01).
      orientation_weight=0.0,  # Ref-NeRF's penalty on normals facing away from the camera (0.1).
      predicted_normals_weight=0.0,  # Ref-NeRF's tie of predicted normals to the density's (3e-4).
      # Whether that tie also shapes the density (the paper's): second derivatives of the geometry
      # (fields.FieldBase.NORMALS_AUTODIFF); False trains only the predicted normals by it.
      predicted_normals_shape_density=True,
      # The normals the orientation loss penalises: 'normals_pred' (the paper's) or 'normals' (the density's:
      # multinerf's where Ref-NeRF reflects about them, model.refnerf.reflect_about='density').
      orientation_target='normals_pred',
  ))

  # The training loop (trainer.py).
  config.train = ml_collections.ConfigDict(dict(
      batch_size=4096,  # Rays per step, over all devices; must be divisible by the device count.
      num_steps=200_000,
      # A budget of training time (compilation and evaluation excluded, summed over resumed runs); 0: none.
      # Training stops when it is spent, and the learning-rate schedule is laid over the steps it is
      # expected to allow, so that the rate has decayed to optim.lr_final when time runs out.
      max_seconds=0.0,
      log_every=100,  # Steps between progress lines and metrics records.
      checkpoint_every=5000,
      keep_checkpoints=3,
      # Also keep the checkpoint of the best validation PSNR so far (eval.num_images views at each validation)
      # in workdir/best_checkpoint/ (render.py --step=best).
      keep_best=False,
      # Start a new run from the parameters (and model state) of a checkpoint of this workdir, with a new
      # optimizer at step 0; the model must have the same arrays. '' starts from random ones; a run resuming
      # its own checkpoint ignores it.
      init_from='',
      init_from_step='newest',  # Its checkpoint: 'newest', 'best' (its keep_best's) or a step ('3000').
      random_background=False,  # Composite RGBA training images on random colours (instant-ngp).
      stall_warning_steps=100,  # Warn when the gradient has been zero this many steps in a row (0: never).
      wandb_project='',  # Also log to this Weights & Biases project (needs `pip install wandb`).
      # Serve the live viewer (outputs/viewer.py) on this port while training (0: none), on viewer_host
      # (127.0.0.1: this machine only; 0.0.0.0: every interface, with no authentication).
      viewer_port=0,
      viewer_host='127.0.0.1',
  ))

  # Evaluation and rendering (evaluation.py).
  config.eval = ml_collections.ConfigDict(dict(
      every_steps=10_000,  # Validation during training (0: never)...
      # ...and when the training time (as train.max_seconds counts it) passes these seconds.
      at_train_seconds=(),
      num_images=3,  # Val images rendered at each validation; the first ones of the split.
      final_num_images=8,  # Val images evaluated when training ends (-1: all, 0: none).
      chunk_size=8192,  # Rays rendered at once, over all devices; bounds memory at any resolution.
      # What one render call (and export.py --format=mesh in all) may take, in MiB: on each accelerator, or
      # in all for CPU devices, which share the host's memory. A call whose compiled buffers would exceed it
      # renders fewer rays than chunk_size (density normals take several times a ray's memory; README,
      # "Rendering"). Leaves room beside it on a 16 GB T4 and a 24 GB machine.
      memory_budget_mb=6144.0,
      # LPIPS networks scored in every evaluation beside PSNR and SSIM ('alex', 'vgg'; () for none). Per view
      # on the 2-core CPU: AlexNet 10 ms at 100x100, 0.45 s at 800x800; VGG 0.23 s and 6.5 s.
      lpips=('alex', 'vgg'),
      # The camera path of the video written when training ends (camera_paths.py): 'orbit', 'spiral',
      # 'ellipse', 'interpolate' or 'auto' (spiral for forward-facing captures, ellipse for other
      # captures, orbit for synthetic scenes).
      path='auto',
      video_frames=60,  # Frames of that video (0: none).
      # Also write that video every this many training steps (0: never), to workdir/videos/<path>_<step>.gif
      # and TensorBoard/W&B, to watch the scene take shape; costs video_frames renders each time.
      video_every=0,
      video_fps=20,
      video_min_size=160,  # Video frames have at least this many pixels on their shorter side.
  ))
  return config

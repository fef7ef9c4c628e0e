"""Exports a trained model from its workdir to one file: the model for rendering, or its surface as a mesh.

  python export.py --workdir=runs/bitnerf --format=packed      # -> runs/bitnerf/export/packed.npz
  python render.py --packed=runs/bitnerf/export/packed.npz --split=val
  python export.py --workdir=runs/demo --format=mesh           # -> runs/demo/export/mesh.ply
  python export.py --workdir=runs/demo --format=mesh --resolution=384 --out=runs/demo/export/mesh.obj
  python export.py --workdir=runs/demo --format=pointcloud     # -> runs/demo/export/pointcloud.ply
  python export.py --workdir=runs/demo --format=cameras        # -> runs/demo/export/transforms.json

--format=packed stores ternary layers (configs/bitnerf.py) in 1.6 bits per weight with their scales, and
everything else in float32; --format=float32 stores every array as trained. Either way the file holds the
newest intact checkpoint's model variables (no optimiser state) and its config. Prints one JSON line: bytes
per layer as stored against float32, for the quantised layers and in total.

--format=mesh samples the final field's density on a grid of --resolution vertices along the longest side
of the scene box (of the contracted space for unbounded scenes), runs marching cubes at
--density_threshold (default: the density that makes a slab 1% of the box's diagonal half opaque) and
colours each vertex by the field seen from the nearest training camera; PLY, or OBJ for an --out ending in
.obj. Prints the box first, then one JSON line (file, vertices, faces, seconds). Marching cubes needs the
whole grid in memory: a --resolution whose grid, or a surface whose mesh, would take more than
--memory_budget_mb (default: the workdir's config.eval.memory_budget_mb) is refused with what it needs.

--format=pointcloud renders every --views_stride-th training view and keeps, for each pixel more opaque
than --min_opacity, the point at its rendered depth with its colour (and its normal where the model
renders normals), as PLY.

--format=cameras writes the training cameras the model was trained with (refined, for a run that learned its
cameras: docs/methods/learned-cameras.md; each beside its given pose) and their intrinsics as a transforms.json.
"""

from absl import flags

from jaxnerf import cli
from jaxnerf.commands import cameras
from jaxnerf.commands import export
from jaxnerf.commands import mesh
from jaxnerf.commands import point_cloud

_WORKDIR = flags.DEFINE_string('workdir', None, 'Training workdir to export.', required=True)
_FORMAT = flags.DEFINE_enum('format', 'packed', list(export.FORMATS) + ['mesh', 'pointcloud', 'cameras'],
                            'packed: ternary layers in 1.6 bits per weight; float32: as trained; mesh: the '
                            'surface by marching cubes; pointcloud: points from the training views\' depths; '
                            'cameras: the training cameras (refined, where the run refined them) as a '
                            'transforms.json.')
_OUT = flags.DEFINE_string('out', None, 'File to write (default: <workdir>/export/<format>.npz, or '
                           '<workdir>/export/mesh.ply, pointcloud.ply or transforms.json).')
_RESOLUTION = flags.DEFINE_integer('resolution', 256, 'mesh: grid vertices along the box\'s longest side.')
_DENSITY_THRESHOLD = flags.DEFINE_float('density_threshold', None, 'mesh: the density of the surface '
                                        '(default: a slab 1% of the box diagonal thick is half opaque).')
_BOX = flags.DEFINE_list('box', None, 'mesh: x_min,y_min,z_min,x_max,y_max,z_max to mesh instead of the '
                         'scene box (world units).')
_MEMORY_BUDGET = flags.DEFINE_float('memory_budget_mb', None, 'mesh: the memory the export may take, in MiB '
                                    '(default: the workdir\'s config.eval.memory_budget_mb); a grid or '
                                    'surface that needs more is refused with what it would take.')
_VIEWS_STRIDE = flags.DEFINE_integer('views_stride', 1, 'pointcloud: every how many training views to render.')
_MIN_OPACITY = flags.DEFINE_float('min_opacity', 0.5, 'pointcloud: pixels less opaque than this give no point.')


def main(argv):
  if len(argv) > 1:
    cli.exit_with_usage_error(f'unexpected arguments: {" ".join(argv[1:])}')
  with cli.friendly_errors():
    cli.initialize()
    if _FORMAT.value == 'mesh':
      report = mesh.export_mesh(_WORKDIR.value, _OUT.value, _RESOLUTION.value, _DENSITY_THRESHOLD.value,
                                mesh.parse_box(_BOX.value), memory_budget_mb=_MEMORY_BUDGET.value)
    elif _FORMAT.value == 'cameras':
      report = cameras.export_cameras(_WORKDIR.value, _OUT.value)
    elif _FORMAT.value == 'pointcloud':
      report = point_cloud.export_point_cloud(_WORKDIR.value, _OUT.value, _VIEWS_STRIDE.value, _MIN_OPACITY.value)
    else:
      report = export.export_workdir(_WORKDIR.value, _FORMAT.value, _OUT.value)
    cli.print_summary(report, _WORKDIR.value)


if __name__ == '__main__':
  cli.run(main)

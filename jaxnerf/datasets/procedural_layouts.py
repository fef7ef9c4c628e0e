"""The procedural scenes' content: the objects of each layout, the ray bounds that hold them, where cameras may
stand, and the environment mirror-like materials reflect (datasets/procedural.py renders and writes them).
A change here changes the cached scenes: bump procedural.SCENE_VERSION."""

import dataclasses

import numpy as np

from jaxnerf.datasets import raytracing as rt
from jaxnerf.datasets import textures

NEAR, FAR = 2.0, 6.0  # The still life's ray bounds: the Blender scenes'.
ELEVATION_RANGE_DEG = (15.0, 65.0)

# The default scene.

GROUND_Z = -0.4  # Top of the pedestal disc; the objects rest on it.


def default_objects() -> tuple:
  """The objects of the default scene (datasets/procedural.py's docstring describes them)."""
  return (
      rt.SceneObject('pedestal', rt.Cylinder(radius=1.15, half_height=0.05),
                     rt.Material(textures.solid((0.86, 0.84, 0.80))), centre=(0.0, 0.0, GROUND_Z - 0.05)),
      rt.SceneObject('beach_ball', rt.Sphere(radius=0.42),
                     rt.Material(textures.beach_ball([(0.92, 0.22, 0.18), (0.97, 0.95, 0.90), (0.18, 0.42, 0.88),
                                                (0.98, 0.80, 0.18), (0.97, 0.95, 0.90), (0.20, 0.68, 0.38)],
                                               cap_colour=(0.97, 0.95, 0.90))),
                     centre=(-0.40, -0.35, GROUND_Z + 0.42),
                     rotation=rt.rotation_about((1.0, 1.0, 0.0), 35.0)),
      rt.SceneObject('box', rt.Box(half_extents=(0.24, 0.24, 0.24)),
                     rt.Material(textures.box_faces([(0.95, 0.52, 0.38), (0.30, 0.62, 0.66), (0.58, 0.76, 0.34),
                                               (0.62, 0.46, 0.80), (0.97, 0.86, 0.42), (0.50, 0.50, 0.50)])),
                     centre=(0.50, -0.45, GROUND_Z + 0.24),
                     rotation=rt.rotation_about((0.0, 0.0, 1.0), 30.0)),
      rt.SceneObject('ring', rt.Torus(major_radius=0.30, minor_radius=0.08),
                     rt.Material(textures.azimuthal_bands((0.16, 0.55, 0.62), (0.55, 0.84, 0.80), count=4)),
                     centre=(0.35, 0.45, GROUND_Z + 0.38),
                     rotation=(rt.rotation_about((0.0, 0.0, 1.0), -40.0)
                               @ rt.rotation_about((1.0, 0.0, 0.0), 90.0))),
      rt.SceneObject('glossy_ball', rt.Sphere(radius=0.26),
                     rt.Material(textures.solid((0.78, 0.10, 0.12)), specular=0.8, shininess=60.0),
                     centre=(-0.45, 0.50, GROUND_Z + 0.26)),
      rt.SceneObject('pole', rt.Cylinder(radius=0.035, half_height=0.5),
                     rt.Material(textures.solid((0.35, 0.35, 0.40))), centre=(0.05, 0.0, GROUND_Z + 0.5)),
      rt.SceneObject('pole_top', rt.Sphere(radius=0.09),
                     rt.Material(textures.solid((0.98, 0.70, 0.15))), centre=(0.05, 0.0, GROUND_Z + 1.05)),
  )


DEFAULT_OBJECTS = default_objects()

GROUND_RADIUS, DOME_RADIUS = 25.0, 30.0


def unbounded_objects() -> tuple:
  """The still life on a checkered ground that reaches 25 units out, under a sky dome of radius 30 with
  hills along its horizon: content at every distance, in every direction, and no background."""
  ground = rt.SceneObject('ground', rt.Cylinder(radius=GROUND_RADIUS, half_height=0.05),
                          rt.Material(textures.checker((0.80, 0.78, 0.70), (0.42, 0.50, 0.36), size=1.5)),
                          centre=(0.0, 0.0, GROUND_Z - 0.15))
  dome = rt.SceneObject('sky', rt.Sphere(radius=DOME_RADIUS),
                        rt.Material(textures.skyline((0.85, 0.90, 0.97), (0.35, 0.55, 0.90),
                                               [(0.30, 0.45, 0.30), (0.45, 0.38, 0.30), (0.28, 0.38, 0.50),
                                                (0.55, 0.50, 0.35), (0.36, 0.30, 0.42), (0.25, 0.50, 0.40)]),
                                    unlit=True))
  return DEFAULT_OBJECTS + (ground, dome)


def studio_environment(directions: np.ndarray) -> np.ndarray:
  """[N, 3] colours of the glossy layout's surroundings seen along unit directions [N, 3] (only in
  reflections): a sky brightening to blue at the zenith, a sun-like disc towards the key light, a ring of
  eight coloured panels with dark seams around the horizon (elevations -3 to 25 degrees), and a grey
  checkered floor below; structure at every scale, worth reflecting."""
  x, y, z = directions[:, 0], directions[:, 1], np.clip(directions[:, 2], -1.0, 1.0)
  elevation, azimuth = np.arcsin(z), np.arctan2(y, x)
  sky = (np.array([0.90, 0.91, 0.93]) * (1.0 - np.clip(z, 0, 1))[:, None]
         + np.array([0.30, 0.50, 0.88]) * np.clip(z, 0, 1)[:, None])
  hues = np.array([(0.90, 0.20, 0.15), (0.95, 0.60, 0.10), (0.95, 0.90, 0.20), (0.30, 0.75, 0.25),
                   (0.15, 0.70, 0.75), (0.20, 0.35, 0.90), (0.55, 0.25, 0.80), (0.90, 0.35, 0.60)])
  position = (azimuth + np.pi) / (2 * np.pi) * len(hues)
  panel = hues[np.floor(position).astype(int) % len(hues)]
  seam = np.abs(position - np.round(position)) < 0.06
  in_band = (elevation > np.deg2rad(-3.0)) & (elevation < np.deg2rad(25.0))
  checker = (np.floor(azimuth * 8 / np.pi) + np.floor(4.0 * np.log(np.maximum(-z, 1e-3)))) % 2
  floor = np.where(checker[:, None] > 0, [[0.55, 0.55, 0.55]], [[0.25, 0.25, 0.27]])
  colour = np.where((z < 0)[:, None], floor, sky)
  colour = np.where(in_band[:, None], np.where(seam[:, None], [[0.08, 0.08, 0.08]], panel), colour)
  sun = directions @ np.asarray(rt.LIGHTING.key_direction) > np.cos(np.deg2rad(8.0))
  return np.where(sun[:, None], [[1.0, 0.98, 0.92]], colour)


def glossy_objects() -> tuple:
  """The glossy layout's objects on the pedestal: four balls from matte to mirror-like (mirror 0, 0.35,
  0.65, 0.9; roughness -, 0.3, 0.1, 0), a half-mirror box (0.5, 0.15) and a glossy ring (0.6, 0.05)."""
  ball = lambda name, colour, centre, mirror, roughness: rt.SceneObject(
      name, rt.Sphere(radius=0.3), rt.Material(textures.solid(colour), mirror=mirror, roughness=roughness),
      centre=centre + (GROUND_Z + 0.3,))
  return (
      DEFAULT_OBJECTS[0],  # The pedestal (matte).
      ball('matte_ball', (0.80, 0.30, 0.20), (-0.55, -0.45), 0.0, 0.0),
      ball('satin_ball', (0.25, 0.55, 0.80), (0.55, -0.50), 0.35, 0.3),
      ball('glossy_ball', (0.85, 0.75, 0.30), (-0.55, 0.50), 0.65, 0.1),
      ball('mirror_ball', (0.90, 0.90, 0.90), (0.50, 0.50), 0.9, 0.0),
      rt.SceneObject('glossy_box', rt.Box(half_extents=(0.2, 0.2, 0.2)),
                     rt.Material(textures.box_faces([(0.60, 0.40, 0.75), (0.45, 0.70, 0.40), (0.85, 0.55, 0.35),
                                                     (0.35, 0.60, 0.70), (0.80, 0.80, 0.45), (0.5, 0.5, 0.5)]),
                                 mirror=0.5, roughness=0.15),
                     centre=(0.0, 0.0, GROUND_Z + 0.2), rotation=rt.rotation_about((0.0, 0.0, 1.0), 25.0)),
      rt.SceneObject('glossy_ring', rt.Torus(major_radius=0.22, minor_radius=0.06),
                     rt.Material(textures.solid((0.75, 0.20, 0.45)), mirror=0.6, roughness=0.05),
                     centre=(0.0, 0.0, GROUND_Z + 0.72), rotation=rt.rotation_about((1.0, 0.0, 0.0), 90.0)),
  )


def mirror_objects() -> tuple:
  """The mirror layout's objects, large enough that reflections fill much of the view: on a wider pedestal, a
  chrome ball (radius 0.6; mirror 0.95, roughness 0), a standing gold ring (mirror 0.85, roughness 0.03), a
  glossy blue ball (mirror 0.6, roughness 0.08), a satin green box (0.4, 0.2) and a small matte ball."""
  return (
      rt.SceneObject('pedestal', rt.Cylinder(radius=1.3, half_height=0.05),
                     rt.Material(textures.solid((0.86, 0.84, 0.80))), centre=(0.0, 0.0, GROUND_Z - 0.05)),
      rt.SceneObject('chrome_ball', rt.Sphere(radius=0.6),
                     rt.Material(textures.solid((0.92, 0.92, 0.92)), mirror=0.95, roughness=0.0),
                     centre=(-0.40, -0.35, GROUND_Z + 0.6)),
      rt.SceneObject('gold_ring', rt.Torus(major_radius=0.38, minor_radius=0.13),
                     rt.Material(textures.solid((0.95, 0.75, 0.30)), mirror=0.85, roughness=0.03),
                     centre=(0.55, 0.45, GROUND_Z + 0.51),
                     rotation=rt.rotation_about((0.0, 0.0, 1.0), 35.0) @ rt.rotation_about((1.0, 0.0, 0.0), 90.0)),
      rt.SceneObject('glossy_ball', rt.Sphere(radius=0.45),
                     rt.Material(textures.solid((0.20, 0.35, 0.85)), mirror=0.6, roughness=0.08),
                     centre=(0.68, -0.55, GROUND_Z + 0.45)),
      rt.SceneObject('satin_box', rt.Box(half_extents=(0.26, 0.26, 0.26)),
                     rt.Material(textures.solid((0.30, 0.70, 0.35)), mirror=0.4, roughness=0.2),
                     centre=(-0.55, 0.60, GROUND_Z + 0.26), rotation=rt.rotation_about((0.0, 0.0, 1.0), 20.0)),
      rt.SceneObject('matte_ball', rt.Sphere(radius=0.22),
                     rt.Material(textures.solid((0.85, 0.45, 0.25))), centre=(-0.05, 0.95, GROUND_Z + 0.22)),
  )


@dataclasses.dataclass(frozen=True)
class Layout:
  """A scene's objects, the ray bounds that hold them, where its cameras may stand, and the environment
  that mirror-like materials reflect."""

  objects: tuple
  near: float
  far: float
  elevation_range_deg: tuple  # Cameras look at the origin from these elevations (uniform by area).
  environment: object = None  # Unit directions [N, 3] -> colours [N, 3] (reflections only), or None.


LAYOUTS = {
    # Cameras on the upper hemisphere at radius 4 around the still life: the Blender scenes' bounds.
    'still_life': Layout(DEFAULT_OBJECTS, NEAR, FAR, ELEVATION_RANGE_DEG),
    # Cameras low around the still life, seeing the ground and the hills behind it: near the objects at
    # radius 4 and 30 units from the horizon, so samples must be spaced for both (mip-NeRF 360's setting).
    'unbounded': Layout(unbounded_objects(), 0.5, 40.0, (2.0, 15.0)),
    # Materials from matte to mirror-like reflecting a studio around them (Ref-NeRF's kind of scene), on
    # the still life's pedestal, seen from the still life's cameras; exact normals beside the depth maps.
    'glossy': Layout(glossy_objects(), NEAR, FAR, ELEVATION_RANGE_DEG, studio_environment),
    # Where reflections dominate: large mirror-like and glossy objects in the same studio, for 128 px and up.
    'mirror': Layout(mirror_objects(), NEAR, FAR, ELEVATION_RANGE_DEG, studio_environment),
}


def layout_of(spec) -> Layout:
  """The Layout that a procedural.ProceduralSceneSpec's `layout` names."""
  if spec.layout not in LAYOUTS:
    raise ValueError(f'config.procedural.layout must be one of {sorted(LAYOUTS)}, got {spec.layout!r}.')
  return LAYOUTS[spec.layout]

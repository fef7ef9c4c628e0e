"""A live browser viewer (viser): the scene from the camera the user moves, while training or after.

A `Viewer` serves a page (viser's three.js client) that shows the training cameras as frusta and, as the
background of the 3D view, the scene rendered from the browser's camera: a coarse image while the camera
moves, refined once it has stood still for `settle_seconds`, and again whenever newer parameters arrive
(`publish`, from the training loop). The page chooses colour, depth, accumulated opacity or normals (where
the model renders them), the refined size, and starts a render of a camera path (orbit, spiral, ...), written
as render.py writes one.

One thread renders for every connected browser, from the newest parameters it was given; training goes on
at its own pace (on a CPU the two share the cores). Cameras: viser's are OpenCV's (x right, y down, looking
along +z); ours are OpenGL's (x right, y up, looking along -z), hence `camtoworld_from_viser`.
"""

import dataclasses
import functools
import pathlib
import socket
import threading
import time
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from jaxnerf import console
from jaxnerf.datasets.scene import SceneSplit
from jaxnerf.errors import ConfigError
from jaxnerf.ops import camera
from jaxnerf.ops import camera_paths
from jaxnerf.outputs import chunked
from jaxnerf.outputs import evaluation
from jaxnerf.outputs import pictures
from jaxnerf.outputs import visualization
from jaxnerf import workdirs

_OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0])


def _rotation_from_wxyz(wxyz) -> np.ndarray:
  w, x, y, z = np.asarray(wxyz, np.float64) / np.linalg.norm(wxyz)
  return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                   [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                   [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def _wxyz_from_rotation(rotation) -> np.ndarray:
  """The unit quaternion (w, x, y, z) of a rotation matrix [3, 3] (Shepperd's method: stable for any angle)."""
  m = np.asarray(rotation, np.float64)
  trace = np.trace(m)
  if trace > 0:
    s = 2.0 * np.sqrt(1.0 + trace)
    q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
  else:
    i = int(np.argmax(np.diag(m)))
    j, k = (i + 1) % 3, (i + 2) % 3
    s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
    q = np.empty(4)
    q[0] = (m[k, j] - m[j, k]) / s
    q[1 + i], q[1 + j], q[1 + k] = 0.25 * s, (m[j, i] + m[i, j]) / s, (m[k, i] + m[i, k]) / s
  q = np.asarray(q)
  return q / np.linalg.norm(q) * (1.0 if q[0] >= 0 else -1.0)


def camtoworld_from_viser(wxyz, position) -> np.ndarray:
  """Our camera-to-world [3, 4] (OpenGL axes) of a viser camera's orientation and position (OpenCV axes)."""
  rotation = _rotation_from_wxyz(wxyz) @ _OPENCV_TO_OPENGL
  return np.concatenate([rotation, np.asarray(position, np.float64)[:, None]], axis=1).astype(np.float32)


def viser_from_camtoworld(camtoworld):
  """(wxyz, position) of viser's camera for our camera-to-world [3, 4]; the inverse of the above."""
  camtoworld = np.asarray(camtoworld, np.float64)
  return _wxyz_from_rotation(camtoworld[:, :3] @ _OPENCV_TO_OPENGL), camtoworld[:, 3]


def intrinsics_for(vertical_fov: float, width: int, height: int) -> camera.Intrinsics:
  """A centred pinhole camera of `vertical_fov` radians over a width x height image."""
  return camera.Intrinsics.pinhole(0.5 * height / np.tan(0.5 * vertical_fov), width, height)


def check_servable(host: str, port: int):
  """Raises ConfigError unless this machine can listen on `host` (viser would fail in its own thread and
  leave the caller waiting)."""
  try:
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
      probe.bind((host, 0))
  except (OSError, UnicodeError) as e:
    raise ConfigError(f'cannot serve the viewer on host {host!r}: {e}; expected an address of this machine, '
                      "such as '127.0.0.1' or '0.0.0.0'.") from None


@dataclasses.dataclass
class _ClientView:
  """What a browser last asked for and was sent."""
  moved_at: float = 0.0  # When its camera last moved (time.monotonic).
  sent: Optional[tuple] = None  # (camera, size, output, step) of the last image sent.


class Viewer:
  """Serves the viewer page on host:port and renders for it until `close`.

  Args:
    steps: the compiled steps (render_rays, probe_rays, ...) of the model to show.
    split: the training split: its cameras (frusta, the first view, camera paths), bounds and NDC space.
    background: the model's background colour (pictures of depth blend to it).
    chunk_size: rays per render call.
    host, port: where to serve (127.0.0.1: this machine only).
    out_dir: where camera-path renders started from the page go (<out_dir>/<path>_<step>/).
    preview_size, refined_size: the image height while the camera moves, and once it stands still.
    appearances: whether the model has per-image components (models/conditioning.py): the page then offers
      what every view takes from them, the mean over the training images, zero, or one training image's.
    video_pictures: the pictures of camera-path videos besides the colour (config.eval.video_pictures).
  """

  def __init__(self, steps, split: SceneSplit, background, chunk_size: int, host: str = '127.0.0.1',
               port: int = 8080, out_dir=None, preview_size: int = 48, refined_size: Optional[int] = None,
               settle_seconds: float = 0.25, appearances: bool = False, *, video_pictures: Sequence[str]):
    import viser  # pylint: disable=import-outside-toplevel  # Only the viewer needs it.

    self._steps, self._split, self._background, self._chunk_size = steps, split, background, chunk_size
    self._out_dir = pathlib.Path(out_dir) if out_dir else None
    self._video_pictures = tuple(video_pictures)
    self._preview_size, self._settle_seconds = preview_size, settle_seconds
    self._lock = threading.Condition()
    self._variables, self._step = None, -1
    self._published_at = 0.0
    self._clients: Dict[int, _ClientView] = {}
    self._path_request = None
    self._closed = False
    self.last_image: Optional[np.ndarray] = None  # The last picture sent (for tests and diagnostics).
    self.render_seconds = {'preview': [], 'refined': []}  # Of every frame sent, by kind.
    # The training cameras' vertical field of view: the frusta's, and the page's at the start.
    self._fov = float(2 * np.arctan(0.5 * split.height /
                                    float(np.asarray(split.intrinsics.focal_y).reshape(-1)[0])))

    check_servable(host, port)
    self.server = viser.ViserServer(host=host, port=port, verbose=False)
    self.port = self.server.get_port()
    self.host = host
    self._add_scene()
    self._add_gui(refined_size or int(np.clip(split.height, 64, 256)), appearances)
    self.server.on_client_connect(self._connect)
    self.server.on_client_disconnect(self._disconnect)
    self._thread = threading.Thread(target=self._render_loop, name='viewer', daemon=True)
    self._thread.start()

  @property
  def frames_rendered(self) -> Dict[str, int]:
    """Frames sent so far, by kind ('preview' while the camera moves, 'refined')."""
    return {kind: len(seconds) for kind, seconds in self.render_seconds.items()}

  @property
  def url(self) -> str:
    return f'http://{self.host}:{self.port}'

  def publish(self, variables, step: int):
    """Shows parameters `variables` (placed as the steps expect; not donated later) of training step `step`.
    Every browser's view is rendered again from them."""
    with self._lock:
      self._variables, self._step = variables, int(step)
      self._lock.notify_all()

  def wants_parameters(self, min_interval: float = 1.0) -> bool:
    """Whether a browser is watching and the shown parameters are older than `min_interval` seconds: the
    training loop then publishes a copy of its newest ones."""
    with self._lock:
      if not self._clients:
        return False
      now = time.monotonic()
      if now - self._published_at < min_interval:
        return False
      self._published_at = now
      return True

  def close(self):
    with self._lock:
      self._closed = True
      self._lock.notify_all()
    self._thread.join(timeout=30)
    self.server.stop()

  # The page.

  def _add_scene(self):
    split = self._split
    up = np.mean(split.camtoworlds[:, :3, 1], axis=0)
    self.server.scene.set_up_direction(up / np.linalg.norm(up))
    spread = np.linalg.norm(split.camtoworlds[:, :3, 3] - split.camtoworlds[:, :3, 3].mean(0), axis=-1)
    scale = 0.05 * max(float(np.median(spread)), 1e-3)
    stride = max(1, split.num_images // 100)  # At most about 100 frusta keep the page light.
    self._frusta = []
    for i in range(0, split.num_images, stride):
      wxyz, position = viser_from_camtoworld(split.camtoworlds[i])
      # Wireframes only: a frustum's photo would hide the render wherever it lies in front of the camera
      # (the page starts at the first training camera, behind its own frustum).
      self._frusta.append(self.server.scene.add_camera_frustum(
          f'/cameras/{i}', fov=self._fov, aspect=split.width / split.height, scale=scale, wxyz=wxyz,
          position=position, thickness=1.5, thickness_units='screen', color=(90, 90, 90)))

  def _add_gui(self, refined_size: int, appearances: bool):
    gui = self.server.gui
    self._status = gui.add_markdown('Waiting for parameters...')
    self.output = gui.add_dropdown('Output', tuple(pictures.PICTURES), initial_value='rgb')
    # What per-image components take: the mean over the training images, zero, or one training image's.
    self._appearances = {'mean': camera.ANY_CAMERA, 'zero': camera.NO_CAMERA}
    if appearances:  # (A training image named 'mean' or 'zero' is shadowed, as in render.py --appearance.)
      self._appearances.update({name: index for index, name in enumerate(self._split.names)
                                if name not in self._appearances})
    self.appearance = gui.add_dropdown('Appearance', tuple(self._appearances), initial_value='mean',
                                       visible=appearances)
    self.refined_height = gui.add_slider('Refined height', min=16, max=1024, step=8, initial_value=refined_size)
    cameras = gui.add_checkbox('Training cameras', initial_value=True)

    @cameras.on_update
    def _(_):
      for frustum in self._frusta:
        frustum.visible = cameras.value
    with gui.add_folder('Camera path'):
      self.path_name = gui.add_dropdown('Path', camera_paths.PATHS, initial_value='auto')
      self.path_frames = gui.add_number('Frames', initial_value=60, min=2, max=3600, step=1)
      button = gui.add_button('Render video', disabled=self._out_dir is None)
      button.on_click(lambda _: self._request_path())
    for handle in (self.output, self.refined_height, self.appearance):
      handle.on_update(lambda _: self._invalidate())

  def _connect(self, client):
    first = self._split.camtoworlds[0]
    wxyz, position = viser_from_camtoworld(first)
    with client.atomic():
      client.camera.fov = self._fov
      client.camera.position, client.camera.wxyz = position, wxyz
    with self._lock:
      self._clients[client.client_id] = _ClientView(moved_at=time.monotonic())
      self._lock.notify_all()

    @client.camera.on_update
    def _(_):
      with self._lock:
        view = self._clients.get(client.client_id)
        if view is not None:
          view.moved_at = time.monotonic()
        self._lock.notify_all()

  def _disconnect(self, client):
    with self._lock:
      self._clients.pop(client.client_id, None)

  def _invalidate(self):
    with self._lock:
      for view in self._clients.values():
        view.sent = None
      self._lock.notify_all()

  def _request_path(self):
    with self._lock:
      self._path_request = (self.path_name.value, int(self.path_frames.value))
      self._lock.notify_all()

  # Rendering.

  def _render_loop(self):
    while True:
      with self._lock:
        if self._closed:
          return
        job = self._next_job()
        if job is None:
          self._lock.wait(timeout=0.05)
          continue
      try:
        job()
      except Exception as e:  # pylint: disable=broad-except  # The page shows what went wrong; serving goes on.
        self._status.content = f'**Render failed:** {type(e).__name__}: {e}'
        time.sleep(0.5)

  def _next_job(self) -> Optional[Callable[[], None]]:
    """The most useful thing to render next (called holding the lock), or None."""
    if self._variables is None:
      return None
    if self._path_request is not None:
      request, self._path_request = self._path_request, None
      return lambda: self._render_path(*request)
    now = time.monotonic()
    for client_id, view in self._clients.items():
      client = self.server.get_clients().get(client_id)
      if client is None:
        continue
      cam = client.camera
      key = (tuple(np.round(cam.position, 6)), tuple(np.round(cam.wxyz, 6)), round(float(cam.fov), 6),
             round(float(cam.aspect), 4))
      settled = now - view.moved_at >= self._settle_seconds
      size = int(self.refined_height.value) if settled else self._preview_size
      wanted = (key, size, self.output.value, self._step, self._appearances[self.appearance.value])
      if view.sent != wanted:
        view.sent = wanted
        variables = self._variables  # Those of `wanted`'s step, whatever is published meanwhile.
        return functools.partial(self._render_view, client, variables, wanted, settled)
    return None

  def _render_view(self, client, variables, wanted, settled: bool):
    (position, wxyz, fov, aspect), height, output, step, cam_idx = wanted
    width = max(1, round(height * aspect))
    start = time.perf_counter()
    rays = self._split.rays_of_view(camtoworld_from_viser(wxyz, position), intrinsics_for(fov, width, height),
                                    width, height, cam_idx)
    # Coarse frames have a few thousand rays: chunks of a quarter of the size waste less on padding.
    num_devices = self._steps.batch_sharding.mesh.size
    chunk_size = self._chunk_size
    if not settled and chunk_size % (4 * num_devices) == 0:
      chunk_size //= 4
    rendering = chunked.render_image(self._steps, variables, rays, chunk_size)
    drawn = evaluation.visualize(rendering, self._split, self._background)
    picture = drawn.get(output, drawn['rgb'])
    image = visualization.to_uint8(picture)
    client.scene.set_background_image(image, format='jpeg', jpeg_quality=90)
    seconds = time.perf_counter() - start
    kind = 'refined' if settled else 'preview'
    self.render_seconds[kind].append(seconds)
    self.last_image = image
    note = '' if output in drawn else f' ({output} not rendered by this model: colour shown)'
    self._status.content = (f'Step **{step}** · {kind} {width}x{height} in {seconds:.2f} s '
                            f'({1 / max(seconds, 1e-6):.1f} fps){note}')

  def _render_path(self, name: str, num_frames: int):
    if self._out_dir is None:
      return
    step, variables, appearance = self._step, self._variables, self.appearance.value
    path_name, poses = evaluation.camera_path(self._split, name, num_frames)
    self._status.content = f'Rendering the {path_name} ({num_frames} frames) at step {step}...'
    frames = evaluation.render_path(self._steps, variables, self._split, poses, self._chunk_size,
                                    self._background, description=f'viewer: rendering the {path_name}',
                                    cam_idx=self._appearances[appearance])
    suffix = '' if appearance == 'mean' else f'_appearance-{appearance}'
    out_dir = workdirs.claim_new_folder(self._out_dir / f'{path_name}_{step}{suffix}')
    paths = evaluation.write_video(out_dir, path_name, frames, fps=30, formats=('gif', 'mp4'),
                                   pictures_wanted=self._video_pictures)
    self._status.content = f'Wrote {len(paths)} videos to {out_dir}.'
    console.message(f'viewer: wrote {", ".join(str(p) for p in paths)}')
    for client in self.server.get_clients().values():
      client.add_notification('Video written', str(paths[0]), auto_close_seconds=10.0)

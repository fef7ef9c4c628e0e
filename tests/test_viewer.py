"""The live viewer (outputs/viewer.py): camera conventions, and the page in a real headless browser."""

import io
import re
import shutil
import time

import jax
import numpy as np
import pytest
from PIL import Image

from jaxnerf.commands import view
from jaxnerf.errors import ConfigError
from jaxnerf.outputs import viewer as viewer_lib
from jaxnerf.training import trainer
from tiny_configs import small_mlp_config
from waiting import wait_for


def _random_rotation(rng):
  q, r = np.linalg.qr(rng.normal(size=(3, 3)))
  q *= np.sign(np.diag(r))
  return q * np.linalg.det(q)  # A proper rotation.


def test_viser_cameras_round_trip_and_look_the_way_ours_do():
  rng = np.random.default_rng(0)
  half_turns = [np.diag(d) for d in ([1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0])]
  for rotation in [_random_rotation(rng) for _ in range(20)] + half_turns + [np.eye(3)]:
    pose = np.concatenate([rotation, rng.normal(size=(3, 1))], axis=1)
    wxyz, position = viewer_lib.viser_from_camtoworld(pose)
    np.testing.assert_allclose(np.linalg.norm(wxyz), 1.0, rtol=1e-6)
    np.testing.assert_allclose(viewer_lib.camtoworld_from_viser(wxyz, position), pose, atol=1e-6)
  # viser's identity camera looks along +z with y down (OpenCV); ours look along -z with y up.
  pose = viewer_lib.camtoworld_from_viser([1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
  np.testing.assert_allclose(-pose[:, 2], [0.0, 0.0, 1.0])  # Our view direction is -z of the camera.
  np.testing.assert_allclose(pose[:, 1], [0.0, -1.0, 0.0])  # Our up is viser's -y.
  # A quarter turn about viser's y axis: the camera then looks along +x.
  quarter = [np.cos(np.pi / 4), 0.0, np.sin(np.pi / 4), 0.0]
  np.testing.assert_allclose(-viewer_lib.camtoworld_from_viser(quarter, [0, 0, 0])[:, 2], [1.0, 0.0, 0.0],
                             atol=1e-6)
  intrinsics = viewer_lib.intrinsics_for(np.pi / 2, 200, 100)
  assert intrinsics.focal_y == pytest.approx(50.0) and intrinsics.center_x == 100.0


def test_a_host_this_machine_cannot_serve_on_is_refused_before_serving():
  # viser would fail in its own thread and leave the caller waiting for ever.
  with pytest.raises(ConfigError, match=r"cannot serve the viewer on host '999.1.1.1': .*expected an address "
                     'of this machine'):
    viewer_lib.check_servable('999.1.1.1', 8080)
  viewer_lib.check_servable('127.0.0.1', 8080)


def _browser():
  """A headless Chromium driven by selenium, or a skip that says what is missing."""
  webdriver = pytest.importorskip('selenium.webdriver', reason='the browser test needs selenium '
                                  '(pip install -r requirements.txt)')
  chromium, driver = shutil.which('chromium'), shutil.which('chromedriver')
  if not chromium or not driver:
    pytest.skip('the browser test needs Debian\'s chromium and chromium-driver (apt-get install chromium '
                'chromium-driver; .ci/run installs them)')
  from selenium.webdriver.chrome.options import Options  # pylint: disable=import-outside-toplevel
  from selenium.webdriver.chrome.service import Service  # pylint: disable=import-outside-toplevel
  options = Options()
  options.binary_location = chromium
  for argument in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--window-size=900,700',
                   '--use-angle=swiftshader', '--enable-unsafe-swiftshader'):
    options.add_argument(argument)
  return webdriver.Chrome(service=Service(driver), options=options)


def viewer_variables(viewer):
  return viewer._variables  # pylint: disable=protected-access


def _canvas_picture(element) -> np.ndarray:
  return np.asarray(Image.open(io.BytesIO(element.screenshot_as_png)).convert('RGB'), np.float32)


def _correlation(a, b) -> float:
  a, b = a - a.mean(), b - b.mean()
  return float(np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b)))


def test_viewer_page_shows_the_rendered_scene_and_follows_the_camera(scene_cache, tmp_path):
  from selenium.webdriver.common.action_chains import ActionChains  # pylint: disable=import-outside-toplevel
  from selenium.webdriver.common.by import By  # pylint: disable=import-outside-toplevel

  browser = _browser()
  try:
    config = small_mlp_config(scene_cache, num_steps=60, checkpoint_every=60)
    config.eval.final_num_images = 0
    trainer.train_and_evaluate(config, tmp_path)
    viewer = view.open_viewer(tmp_path, port=8123)
    try:
      assert viewer.host == '127.0.0.1'
      assert not viewer.appearance.visible  # No per-image components: no Appearance menu.
      browser.get(viewer.url)
      wait_for(lambda: viewer.frames_rendered['refined'] >= 1)
      time.sleep(1.5)  # The page draws the image it was sent.
      canvas = browser.find_element(By.TAG_NAME, 'canvas')
      first, sent = _canvas_picture(canvas), viewer.last_image.astype(np.float32)
      # The scene fills the canvas: compare where no panel covers it (the left half, below the corner
      # notifications), at the rendered image's resolution.
      height, width = first.shape[:2]
      region = (slice(height // 3, height), slice(0, width // 2))
      shown = np.asarray(Image.fromarray(first.astype(np.uint8)).resize(sent.shape[1::-1], Image.BILINEAR),
                         np.float32)
      sent_region = (slice(sent.shape[0] // 3, None), slice(0, sent.shape[1] // 2))
      assert first[region].std() > 10, 'a blank page'
      assert _correlation(shown[sent_region].mean(-1), sent[sent_region].mean(-1)) > 0.6
      steps_shown = lambda: re.findall(r'Step (\d+)', browser.find_element(By.TAG_NAME, 'body').text)
      assert steps_shown() == ['60']

      # Drag to orbit: the browser's camera moves, the viewer renders the new view, the page shows it.
      rendered = viewer.frames_rendered['refined']
      ActionChains(browser).move_to_element(canvas).click_and_hold().move_by_offset(150, 0).pause(0.2) \
          .move_by_offset(50, 30).release().perform()
      wait_for(lambda: viewer.frames_rendered['refined'] > rendered)
      time.sleep(1.5)
      second = _canvas_picture(browser.find_element(By.TAG_NAME, 'canvas'))
      assert np.abs(second[region] - first[region]).mean() > 5, 'the page did not change'
      assert viewer.frames_rendered['preview'] >= 1  # Coarse frames while the camera moved.

      # A camera path rendered from the page, written as render.py writes one.
      viewer.path_frames.value = 3
      browser.find_element(By.XPATH, "//button[contains(., 'Render video')]").click()
      wait_for(lambda: sorted(p.name for p in (tmp_path / 'render' / 'viewer').glob('*/*')) == [
          'orbit.gif', 'orbit.mp4', 'orbit_depth.gif', 'orbit_depth.mp4'])

      # Newer parameters (what the training loop publishes) are rendered and their step shown.
      rendered = viewer.frames_rendered['refined']
      viewer.publish(jax.tree.map(lambda x: x * 0.5 if x.dtype == np.float32 else x, viewer_variables(viewer)),
                     61)
      wait_for(lambda: steps_shown() == ['61'] and viewer.frames_rendered['refined'] > rendered)
    finally:
      viewer.close()
  finally:
    browser.quit()

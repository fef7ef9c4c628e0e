"""LPIPS against the reference PyTorch implementation's values (tests/lpips_reference.json, written by
tests/make_lpips_reference.py), and how evaluations ask for it."""

import json
import pathlib

import numpy as np
import pytest

from jaxnerf.errors import ConfigError
from jaxnerf import metrics
from jaxnerf import perceptual
from jaxnerf.training import config_checks
from jaxnerf.training import default_config
import make_lpips_reference

REFERENCE = json.loads((pathlib.Path(__file__).with_name('lpips_reference.json')).read_text())


@pytest.mark.parametrize('net', perceptual.NETS)
def test_lpips_matches_the_reference_implementation(net):
  pairs = make_lpips_reference.image_pairs()
  assert {name for name, _, _ in pairs} == set(REFERENCE['values'])
  for name, image, reference in pairs:
    # float32 convolutions in another order: the two agree to 1e-7 (measured: at most 9e-8).
    assert perceptual.lpips(image, reference, net) == pytest.approx(REFERENCE['values'][name][net], abs=1e-6,
                                                                    rel=1e-4), name


def test_reference_pairs_span_near_and_far():
  # The pairs would not catch a wrong scaling if they all scored alike.
  values = [v['alex'] for name, v in REFERENCE['values'].items() if not name.startswith('same')]
  assert min(values) < 0.005 and max(values) > 0.2
  assert REFERENCE['head_max_abs_difference'] == {'alex': 0.0, 'vgg': 0.0}


def test_images_too_small_for_the_network_score_nan_and_bad_shapes_are_refused():
  image = np.full((30, 40, 3), 0.5, np.float32)
  assert np.isnan(perceptual.lpips(image, image, 'alex'))  # AlexNet needs 31 pixels a side.
  with pytest.raises(ValueError, match=r'one shape, got \(30, 40, 3\) and \(40, 30, 3\)'):
    perceptual.lpips(image, image.transpose(1, 0, 2), 'vgg')
  with pytest.raises(ValueError, match="unknown LPIPS network 'squeeze'"):
    perceptual.lpips(image, image, 'squeeze')


def test_lpips_is_computed_only_where_asked_for():
  image = np.zeros((8, 8, 3), np.float32)
  rendering, truth = {'rgb': image}, {'rgb': image}
  assert set(metrics.view_metrics(rendering, truth)) == {'psnr', 'ssim'}
  assert set(metrics.view_metrics(rendering, truth, metrics.lpips_metric_names(['alex']))) == {
      'psnr', 'ssim', 'lpips_alex'}
  with pytest.raises(ValueError, match=r"unknown optional metrics \['lpips_squeeze'\]"):
    metrics.view_metrics(rendering, truth, ['lpips_squeeze'])


@pytest.mark.parametrize('value', [('alexnet',), ('alex', 'alex')])
def test_config_refuses_unknown_or_repeated_lpips_networks(value):
  config = default_config.get_config()
  config.eval.lpips = value
  with pytest.raises(ConfigError, match=r'config.eval.lpips=.*a tuple of distinct LPIPS networks'):
    config_checks.check_values(config)

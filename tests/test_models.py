"""Fields and renderers: the architectures the papers describe."""

import jax
import jax.numpy as jnp

from jaxnerf import models


def test_the_paper_mlp_feeds_the_encoded_point_again_to_its_sixth_layer():
  """NeRF's Fig. 7 and its code (skips=[4]), JaxNeRF and multinerf: the 5th layer's output is concatenated
  with the encoded point, so the 6th layer (trunk_5) reads 256 + 63 inputs and every other layer 256."""
  field = models.MLPField()  # The paper's: 8x256, positional encoding of 10 octaves (3 + 3 * 2 * 10 = 63).
  points = jnp.zeros((2, 3))
  shapes = jax.eval_shape(field.init, jax.random.key(0), points, points)['params']
  input_sizes = {name: shapes[name]['kernel'].shape[0] for name in shapes if name.startswith('trunk_')}
  assert input_sizes == {'trunk_0': 63, 'trunk_1': 256, 'trunk_2': 256, 'trunk_3': 256, 'trunk_4': 256,
                         'trunk_5': 256 + 63, 'trunk_6': 256, 'trunk_7': 256}

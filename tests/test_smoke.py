import jax
import jax.numpy as jnp

import jaxmix


def test_version_and_mixup_label_mass():
  assert isinstance(jaxmix.__version__, str)
  x = jnp.ones((4, 8, 8, 3))
  _, y = jaxmix.mixup(jax.random.key(0), x, jnp.arange(4), num_classes=4)
  assert jnp.allclose(y.sum(-1), 1.0)

"""Manifold Mixup (Verma et al. 2019, "Manifold Mixup: Better Representations by
Interpolating Hidden States", ICML).

Each training step picks one layer ``k`` at random from a set of eligible
layers (``k = 0`` is the input) and mixes the hidden states there, with the same
partners and λ as the labels. In JAX the chosen layer is a traced integer, so
the model is compiled once: at every eligible point the model calls
:func:`manifold_point`, which selects the mixed or the untouched hidden state
with ``jnp.where``. Nothing here depends on Flax linen or NNX; the plan is a
pytree, so it passes through ``nn.Module.__call__``, ``nnx.Module.__call__``,
``jax.jit`` and ``nnx.jit`` like any other argument.

Example (any framework)::

    class Net(nn.Module):
      @nn.compact
      def __call__(self, x, mix=None):
        x = jaxmix.manifold_point(x, mix, 0)        # the input
        x = nn.relu(nn.Conv(32, (3, 3))(x))
        x = jaxmix.manifold_point(x, mix, 1)        # after block 1
        x = nn.relu(nn.Conv(64, (3, 3))(x))
        x = jaxmix.manifold_point(x, mix, 2)        # after block 2
        return nn.Dense(10)(x.mean((1, 2)))

    mix = jaxmix.sample_manifold(key, batch_size, layers=3, alpha=2.0)
    logits = Net().apply(params, images, mix)
    targets = jaxmix.mix_labels(mix, labels, num_classes=10)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import validation
from jaxmix._src.methods import mixup as mixup_lib


@struct.dataclass
class ManifoldPlan(plan_lib.WrapsPlan):
  """A mixing plan plus the layer at which it is applied this step.

  Behaves like its inner plan for labels: ``lam``, ``batch_size`` and
  ``mix_labels`` are the inner plan's, so :func:`jaxmix.mix_labels` works on it
  directly. It has no ``mix_leaf`` on purpose: mix hidden states with
  :func:`manifold_point` (or ``mix.at(i, h)``), which mixes only at the chosen
  layer; to mix unconditionally use ``jaxmix.apply(mix.plan, h)``.

  Attributes:
    plan: the inner plan (a MixUp :class:`Plan` from :func:`sample_manifold`;
      any plan that does not fix spatial shapes works at every layer).
    layer: int32 scalar, the chosen layer (traced).
    layers: the eligible layers, a static tuple of ints.
  """

  plan: Any
  layer: jax.Array
  layers: tuple[int, ...] = struct.field(pytree_node=False, default=(0,))

  def at(self, i: int, h: Any, *, data_format: str = "NHWC") -> Any:
    """``h`` mixed if ``i`` is the chosen layer, else ``h`` unchanged. See :func:`manifold_point`."""
    return manifold_point(h, self, i, data_format=data_format)


def _check_layers(layers: int | Sequence[int]) -> tuple[int, ...]:
  if isinstance(layers, bool):
    raise TypeError(f"layers must be an int or a sequence of ints, got {layers!r}.")
  if isinstance(layers, int):
    if layers < 1:
      raise ValueError(f"layers must be >= 1 (the number of eligible layers 0..layers-1), got {layers}.")
    return tuple(range(layers))
  try:
    out = tuple(layers)
  except TypeError:
    raise TypeError(f"layers must be an int or a sequence of ints, got {type(layers).__name__}.") from None
  if not out or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in out):
    raise ValueError(f"layers must be a non-empty sequence of non-negative ints, got {layers!r}.")
  if len(set(out)) != len(out):
    raise ValueError(f"layers must not repeat, got {layers!r}.")
  return out


def sample_manifold(
  key: jax.Array,
  batch_size: int,
  spatial_shape: tuple[int, int] | None = None,
  *,
  layers: int | Sequence[int] = 3,
  alpha: jax.typing.ArrayLike = 2.0,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "flip",
) -> ManifoldPlan:
  """Samples a Manifold Mixup plan: a MixUp plan and a layer drawn uniformly from `layers`.

  Defaults follow the paper's CIFAR recipe and official code
  (``--mixup_alpha 2.0``, layer k drawn uniformly from {0, 1, 2}: the input and
  the outputs of the first two residual stages of a PreAct ResNet).

  Args:
    key: PRNG key.
    batch_size: B (static).
    spatial_shape: unused (the plan does not depend on it); accepted so that every
      sampler has the one signature ``sample_<m>(key, batch_size, spatial_shape=None, *, ...)``.
    layers: the eligible layers: an int ``n`` for ``0..n-1`` or a sequence
      of distinct ints (static). Layer 0 is the input by convention.
    alpha: Beta concentration of λ; 0 turns mixing off. Traced. Edges as in
      :func:`jaxmix.sample_mixup` (≤ 0 or NaN: off; +inf: λ = 0.5).
    prob: probability that the batch (or a sample, in ``pair``/``elem``
      modes) is mixed at all. Traced.
    mode: ``"batch"``, ``"pair"`` or ``"elem"``, as in :func:`jaxmix.sample_mixup`.
      The layer is always one per batch (static shapes differ per layer).
    pairing: ``"flip"``, ``"roll"`` or ``"permute"``. Static.

  Returns:
    A :class:`ManifoldPlan`; ``layer`` is a traced int32 scalar, so one
    compiled train step serves every choice.

  Example:
    >>> def model(x, mix):                    # a stand-in network with 3 eligible points
    ...   x = jaxmix.manifold_point(x, mix, 0)
    ...   h = jaxmix.manifold_point(jnp.tanh(x.mean((1, 2))), mix, 1)
    ...   return jaxmix.manifold_point(h, mix, 2) @ jnp.ones((3, 10))
    >>> mix = jaxmix.sample_manifold(key, 8, layers=3, alpha=2.0)
    >>> logits = model(images, mix)
    >>> loss = optax.softmax_cross_entropy(logits, jaxmix.mix_labels(mix, labels, num_classes=10))
    >>> loss.shape
    (8,)
  """
  validation.check_key(key)
  batch_size = validation.check_batch_size(batch_size)
  eligible = _check_layers(layers)
  k_mix, k_layer = jax.random.split(key)
  plan = mixup_lib.sample_mixup(k_mix, batch_size, alpha=alpha, prob=prob, mode=mode, pairing=pairing)
  choice = jax.random.randint(k_layer, (), 0, len(eligible))
  layer = jnp.asarray(eligible, jnp.int32)[choice]
  return ManifoldPlan(plan=plan, layer=layer, layers=eligible)


def manifold_point(h: Any, mix: ManifoldPlan | None, i: int, *, data_format: str = "NHWC") -> Any:
  """Mixes the hidden state `h` if this point `i` is the layer chosen for this step.

  Call it at every eligible point of the model, with a distinct static ``i``
  per point. It computes ``jnp.where(mix.layer == i, apply(mix.plan, h), h)``:
  the layer is traced, so the model compiles once for every choice; the select
  fuses with the blend (one extra elementwise pass per eligible point).
  Gradients flow only through the branch taken.

  Args:
    h: a hidden state, or any pytree of arrays sharing the batch axis.
    mix: a :class:`ManifoldPlan`, or None (evaluation, or a method that
      mixes the inputs elsewhere): then `h` is returned as is.
    i: this point's layer index (a static int listed in ``mix.layers``).
    data_format: passed to :func:`jaxmix.apply` (matters only for plans with
      regions or masks).

  Returns:
    `h`, mixed at the chosen layer, otherwise unchanged (same shapes, dtypes).

  Example:
    >>> mix = jaxmix.sample_manifold(key, 8, layers=(0, 1))
    >>> h = images.mean(-1)                   # a hidden state inside the model
    >>> h = jaxmix.manifold_point(h, mix, 1)  # mixed only when mix.layer == 1
    >>> h.shape
    (8, 32, 32)
  """
  if mix is None:
    return h
  if not isinstance(mix, ManifoldPlan):
    raise TypeError(
      f"mix must be a ManifoldPlan from jaxmix.sample_manifold or None, got {type(mix).__name__}."
    )
  if not isinstance(i, int) or isinstance(i, bool):
    raise TypeError(f"i must be a static int (this point's layer index), got {type(i).__name__}.")
  if i not in mix.layers:
    raise ValueError(f"i={i} is not one of the eligible layers {mix.layers} the plan was sampled for.")
  mixed = plan_lib.apply(mix.plan, h, data_format=data_format)
  chosen = mix.layer == i
  return jax.tree_util.tree_map(lambda m, x: jnp.where(chosen, m, x), mixed, h)

"""AlignMix (Venkataramanan, Kijak, Amsaleg, Avrithis 2022, "AlignMixup: Improving Representations By
Interpolating Aligned Features", CVPR; arXiv:2103.15375).

The feature maps of a sample, ``A``, and of its partner, ``A'``, each ``r`` positions of ``C``
channels at a chosen layer, are matched by entropic optimal transport: the cost ``M`` holds the
squared distances between their feature vectors, the plan ``P`` minimises ``<P, M> − ε·H(P)`` with
uniform marginals ``1/r`` (Sinkhorn in the log domain), and the assignment ``R = r·P`` moves one map
onto the other's positions. Then the two are interpolated with MixUp's λ:

* the partner aligned to the sample, ``Ã = A'·Rᵀ``: ``λ·A + (1 − λ)·Ã`` (the sample's geometry, the
  partner's appearance mixed in);
* or the sample aligned to the partner, ``Ã' = A·R``: ``λ·Ã' + (1 − λ)·A'``.

Labels are mixed with the same λ and partners in both cases (``jaxmix.mix_labels``).

The official code (github.com/shashankvkt/AlignMixup_CVPR22: ``mixup_aligned`` in
``cifar10_100/models/resnet18_classifier.py``, the same in the WRN, Tiny-ImageNet and ImageNet
classifiers; ``SinkhornDistance`` in ``utils/OT.py``, adapted from dfdazac/wassdistance):

* each step picks, with probability 1/2 each, plain MixUp of the input images or AlignMix of the
  last feature map (layer4 of the ResNet: 4×4×512 on CIFAR, 7×7×2048 on ImageNet); the classifier
  then pools it;
* λ ~ Beta(α, α) once per batch with ``α = 2.0`` (the argparse default and every command of the
  README), partners a random permutation of the batch;
* the cost is ``Σ_c |a_ic − b_jc|²`` (``_cost_matrix``, ``p=2``); the marginals are uniform; the
  Sinkhorn updates are the log-domain ones, ``ε = 0.1``, at most ``max_iter = 100`` iterations; the
  plan is detached (no gradient flows through it), and ``R = r·P``;
* the direction is drawn per batch, 1/2 each (``align_mix = random.randint(0, 1)``).

Here each step picks one of the eligible ``layers`` (a traced int, so the model compiles once, as
:func:`jaxmix.manifold_point`): layer 0 is the input and gets plain MixUp, every other layer is
aligned. The defaults (``layers=2``, ``alpha=2.0``, ``epsilon=0.1``, ``iterations=100``,
``align="random"``) are the official recipe when the model calls :func:`alignmix_point` with ``0``
on its input and ``1`` on its last feature map.

Differences from the official code:

* always ``iterations`` Sinkhorn steps (a static count, so the step compiles to one loop); the
  official loop also stops early once the mean change of its potential ``u`` falls below 0.1 (on
  4×4×512 ReLU'd Gaussian features at ε 0.1 it never did: all 100 iterations ran);
* the aligned vectors are exact convex combinations: ``R``'s rows (or columns, aligning the sample
  to the partner) are normalised to sum to 1, computed as a softmax of ``log P``; the official
  ``r·P`` has those sums only at convergence (on the features above, a NumPy transcription of the
  official loop left row sums of ``r·P`` between 0.33 and 2.0 after 100 iterations, which scales
  the aligned vectors by as much).
  The log marginals are exact (``−log r``; the official adds 1e-8 inside the log);
* partners are flip by default (``pairing="permute"`` is the official random permutation), and
  ``prob``, ``mode`` (a λ per pair or per sample) are available; a sample that is not mixed (``prob``,
  or its own partner in an odd batch under flip) comes back unchanged in either direction.

Not in ``jaxmix.SAMPLERS``: the mix needs the model's features, so it cannot be applied to the
inputs alone.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxmix._src.core import pairing as pairing_lib
from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import validation
from jaxmix._src.methods import mixup as mixup_lib
from jaxmix._src.train import manifold

ALIGNS = ("random", "partner", "sample")


def _check_epsilon(epsilon: Any) -> None:
  validation.check_array("epsilon", epsilon, rank=0, dtype=validation.REAL, expected="a real scalar")
  if validation.is_static_number(epsilon) and not epsilon > 0:
    raise ValueError(f"epsilon must be > 0 (the entropic regularisation), got {epsilon!r}.")


def _check_iterations(iterations: Any) -> int:
  return validation.check_static_int("iterations", iterations, 1, "the number of Sinkhorn iterations")


def _check_features(features_a: Any, features_b: Any) -> None:
  for name, x in (("features_a", features_a), ("features_b", features_b)):
    validation.check_array(
      name,
      x,
      dtype=validation.REAL,
      message="{name} must be real feature vectors [..., positions, channels], got dtype {dtype}.",
    )
    validation.check_array(
      name,
      x,
      rank=set(range(2, 33)),
      message="{name} must be feature vectors [..., positions, channels] (rank >= 2), got shape {shape}.",
    )
    if np.shape(x)[-2] < 1:
      raise ValueError(f"{name} must have at least one position, got shape {np.shape(x)}.")
  shape_a, shape_b = np.shape(features_a), np.shape(features_b)
  if shape_a[:-2] != shape_b[:-2] or shape_a[-1] != shape_b[-1]:
    raise ValueError(
      f"features_a {shape_a} and features_b {shape_b} must share the leading (batch) axes and the "
      "channels; only the number of positions may differ."
    )


def _compute_dtype(dtype: Any) -> Any:
  return jnp.promote_types(dtype, jnp.float32) if jnp.issubdtype(dtype, jnp.floating) else jnp.float32


@functools.partial(jax.jit, static_argnums=3)  # eager calls reuse one compiled loop per shape
def _log_plan(a: jax.Array, b: jax.Array, epsilon: Any, iterations: int) -> jax.Array:
  """``log P`` `[..., n, m]` of the entropic transport between the rows of `a` `[..., n, C]` and `b`
  `[..., m, C]`: squared Euclidean cost, uniform marginals, `iterations` log-domain Sinkhorn steps."""
  dtype = _compute_dtype(jnp.result_type(a, b))
  a, b = a.astype(dtype), b.astype(dtype)
  eps = jnp.asarray(epsilon, dtype)
  highest = jax.lax.Precision.HIGHEST  # the cost is divided by a small ε: TF32/bf16 passes would show
  cross = jnp.einsum("...ic,...jc->...ij", a, b, precision=highest)
  sq_a = jnp.sum(a * a, axis=-1)
  sq_b = jnp.sum(b * b, axis=-1)
  cost = jnp.maximum(sq_a[..., :, None] + sq_b[..., None, :] - 2 * cross, 0.0)
  n, m = a.shape[-2], b.shape[-2]
  log_mu, log_nu = -jnp.log(jnp.asarray(n, dtype)), -jnp.log(jnp.asarray(m, dtype))

  def step(_: Any, fg: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
    f, g = fg
    f = eps * (log_mu - jax.nn.logsumexp((g[..., None, :] - cost) / eps, axis=-1))
    g = eps * (log_nu - jax.nn.logsumexp((f[..., :, None] - cost) / eps, axis=-2))
    return f, g

  f0 = jnp.zeros(cost.shape[:-1], dtype)
  g0 = jnp.zeros(cost.shape[:-2] + cost.shape[-1:], dtype)
  f, g = jax.lax.fori_loop(0, iterations, step, (f0, g0))
  return (f[..., :, None] + g[..., None, :] - cost) / eps


def transport_plan(
  features_a: jax.Array,
  features_b: jax.Array,
  *,
  epsilon: jax.typing.ArrayLike = 0.1,
  iterations: int = 100,
) -> jax.Array:
  """The entropic optimal transport plan between two sets of feature vectors (Sinkhorn, log domain).

  Minimises ``<P, M> − ε·H(P)`` over plans ``P`` `[n, m]` with uniform marginals (rows summing to
  ``1/n``, columns to ``1/m``), where ``M_ij = |a_i − b_j|²``: AlignMix's plan (official
  ``SinkhornDistance``, ``ε = 0.1``, 100 iterations). Runs exactly `iterations` steps of the
  log-domain updates of the potentials (a ``lax.fori_loop``), ending with the column update, so
  the columns' sums are exact and the rows' are exact at convergence. Stable for any scale of
  features (identical or all-zero maps included: zero costs give the uniform plan); differentiable;
  works under ``jit`` and ``vmap``.

  Args:
    features_a: `[..., n, C]`, n feature vectors (positions) of C channels, any leading batch axes.
    features_b: `[..., m, C]`, with the same leading axes and channels.
    epsilon: the entropic regularisation ε > 0, in units of the squared distances (a smaller ε
      gives a sharper plan, closer to a permutation, and needs more iterations). Traced.
    iterations: the number of Sinkhorn iterations (static, >= 1).

  Returns:
    float32 (float64 for float64 inputs) `[..., n, m]`, the plan ``P``, non-negative.

  Example:
    >>> a = jax.random.normal(key, (16, 8))       # a 4×4 feature map of 8 channels, flattened
    >>> p = jaxmix.guided.transport_plan(a, a[::-1], epsilon=0.1)
    >>> p.shape, bool(jnp.allclose(p.sum(0), 1 / 16, atol=1e-6))
    ((16, 16), True)
  """
  _check_features(features_a, features_b)
  _check_epsilon(epsilon)
  iterations = _check_iterations(iterations)
  return jnp.exp(_log_plan(jnp.asarray(features_a), jnp.asarray(features_b), epsilon, iterations))


def sinkhorn_align(
  features_a: jax.Array,
  features_b: jax.Array,
  *,
  epsilon: jax.typing.ArrayLike = 0.1,
  iterations: int = 100,
) -> jax.Array:
  """`features_b` moved onto the positions of `features_a` by the entropic transport plan.

  Position i of the result is ``Σ_j R_ij·b_j`` with ``R_ij = P_ij / Σ_k P_ik``, ``P`` the plan of
  :func:`transport_plan`: each aligned vector is a convex combination of `features_b`'s vectors,
  weighted by how much of position i's mass goes to each. This is AlignMix's ``Ã = A'·Rᵀ`` with
  the assignment ``R = n·P`` (the paper's, equal to the row-normalised plan at convergence); to
  align `features_a` onto `features_b`'s positions, swap the arguments (the plan is transposed).
  With a small ε and a permuted copy of `features_a` as `features_b`, the result is `features_a`.

  Args:
    features_a: `[..., n, C]`, the positions to align to (any leading batch axes).
    features_b: `[..., m, C]`, the vectors to move, with the same leading axes and channels.
    epsilon: the entropic regularisation ε > 0 (traced), as in :func:`transport_plan`.
    iterations: the number of Sinkhorn iterations (static, >= 1).

  Returns:
    `[..., n, C]` in `features_b`'s float dtype (float32 for integers; computed in float32 at
    least): `features_b` aligned to `features_a`. Gradients flow into both arguments (through the
    plan too; AlignMix itself, in :func:`alignmix_point`, stops them at the plan as the official
    code does).

  Example:
    >>> a = jax.random.normal(key, (16, 8))
    >>> moved = jaxmix.guided.sinkhorn_align(a, a[::-1], epsilon=0.01)
    >>> bool(jnp.allclose(moved, a, atol=1e-3))   # the permutation is undone
    True
  """
  _check_features(features_a, features_b)
  _check_epsilon(epsilon)
  iterations = _check_iterations(iterations)
  b = jnp.asarray(features_b)
  return _align_rows(_log_plan(jnp.asarray(features_a), b, epsilon, iterations), b)


def _align_rows(log_p: jax.Array, b: jax.Array) -> jax.Array:
  """``softmax(log P, rows) @ b``: `b` `[..., m, C]` moved onto the n positions of ``log P``'s rows."""
  weights = jax.nn.softmax(log_p, axis=-1)
  highest = jax.lax.Precision.HIGHEST
  moved = jnp.einsum("...ij,...jc->...ic", weights, b.astype(weights.dtype), precision=highest)
  return moved.astype(b.dtype if jnp.issubdtype(b.dtype, jnp.floating) else weights.dtype)


@struct.dataclass
class AlignMixPlan(plan_lib.WrapsPlan):
  """An AlignMix plan: a MixUp plan, the layer chosen this step, and the direction of alignment.

  Behaves like its inner plan for labels (``lam``, ``batch_size``, ``mix_labels``), so
  :func:`jaxmix.mix_labels` works on it directly; the features are mixed inside the model with
  :func:`alignmix_point` (or ``mix.at(i, h)``). It has no ``mix_leaf``: ``jaxmix.apply`` on it is a
  TypeError (use ``jaxmix.apply(mix.plan, x)`` for plain MixUp).

  Attributes:
    plan: the inner MixUp :class:`jaxmix.Plan` (λ in ``blend``, partners in ``index``).
    layer: int32 scalar, the chosen layer (traced). Layer 0 is mixed as plain MixUp, any other
      layer is aligned.
    align_partner: bool scalar (traced): True aligns the partner to the sample (``λ·A + (1 −
      λ)·A'Rᵀ``, the sample's positions kept), False the sample to the partner (``λ·AR + (1 −
      λ)·A'``).
    epsilon: float32 scalar, the entropic regularisation of the transport (traced).
    layers: the eligible layers, a static tuple of ints.
    iterations: the number of Sinkhorn iterations (static).
  """

  plan: Any
  layer: jax.Array
  align_partner: jax.Array
  epsilon: jax.Array
  layers: tuple[int, ...] = struct.field(pytree_node=False, default=(0, 1))
  iterations: int = struct.field(pytree_node=False, default=100)

  def at(self, i: int, h: Any, *, data_format: str = "NHWC") -> Any:
    """``h`` mixed if ``i`` is the chosen layer, else ``h`` unchanged. See :func:`alignmix_point`."""
    return alignmix_point(h, self, i, data_format=data_format)


def sample_alignmix(
  key: jax.Array,
  batch_size: int,
  spatial_shape: tuple[int, int] | None = None,
  *,
  layers: int | Sequence[int] = 2,
  alpha: jax.typing.ArrayLike = 2.0,
  prob: jax.typing.ArrayLike = 1.0,
  epsilon: jax.typing.ArrayLike = 0.1,
  iterations: int = 100,
  align: str = "random",
  mode: str = "batch",
  pairing: str = "flip",
) -> AlignMixPlan:
  """Samples an AlignMix plan: a MixUp plan, a layer drawn uniformly from `layers`, a direction.

  Defaults are the official recipe (github.com/shashankvkt/AlignMixup_CVPR22): ``α = 2.0``,
  Sinkhorn with ``ε = 0.1`` and 100 iterations, the direction drawn per batch, and the layer drawn
  from {0, 1}, 1/2 each, where the model mixes its input at point 0 (plain MixUp) and aligns its
  last feature map at point 1. See :mod:`jaxmix._src.train.alignmix` for the differences.

  Args:
    key: PRNG key.
    batch_size: B (static).
    spatial_shape: unused (the plan fits features of any size); accepted so that every sampler has
      the one signature ``sample_<m>(key, batch_size, spatial_shape=None, *, ...)``.
    layers: the eligible points: an int ``n`` for ``0..n-1`` or a sequence of distinct ints
      (static). Point 0 is the input, mixed as plain MixUp; every other point is aligned.
    alpha: Beta concentration of λ; 0 turns mixing off. Traced. Edges as in
      :func:`jaxmix.sample_mixup`.
    prob: probability that the batch (or a sample, in ``pair``/``elem`` modes) is mixed. Traced.
    epsilon: the entropic regularisation ε > 0 of the transport, in units of the squared feature
      distances. Traced.
    iterations: the number of Sinkhorn iterations (static, >= 1).
    align: ``"random"`` (official: 1/2 each, per batch), ``"partner"`` (always align the partner to
      the sample) or ``"sample"`` (always the sample to the partner). Static.
    mode: ``"batch"``, ``"pair"`` or ``"elem"``, as in :func:`jaxmix.sample_mixup` (the official
      code draws one λ per batch). Static.
    pairing: ``"flip"``, ``"roll"`` or ``"permute"`` (the official random permutation). Static.

  Returns:
    An :class:`AlignMixPlan`; the layer, the direction, λ and ε are traced, so one compiled train
    step serves every draw and every value of `alpha`, `prob` and `epsilon`.

  Example:
    >>> def model(x, mix):                     # the input, then a 4×4 feature map of 16 channels
    ...   x = jaxmix.guided.alignmix_point(x, mix, 0)
    ...   h = jnp.tanh(x.reshape(8, 4, 8, 4, 8, 3).mean((2, 4)) @ jnp.ones((3, 16)))
    ...   h = jaxmix.guided.alignmix_point(h, mix, 1)
    ...   return h.mean((1, 2)) @ jnp.ones((16, 10))
    >>> mix = jaxmix.guided.sample_alignmix(key, 8)
    >>> logits = model(images, mix)
    >>> loss = optax.softmax_cross_entropy(logits, jaxmix.mix_labels(mix, labels, num_classes=10))
    >>> loss.shape
    (8,)
  """
  validation.check_key(key)
  batch_size = validation.check_batch_size(batch_size)
  eligible = manifold._check_layers(layers)
  _check_epsilon(epsilon)
  iterations = _check_iterations(iterations)
  validation.check_choice("align", align, ALIGNS)
  k_mix, k_layer, k_align = jax.random.split(key, 3)
  plan = mixup_lib.sample_mixup(k_mix, batch_size, alpha=alpha, prob=prob, mode=mode, pairing=pairing)
  choice = jax.random.randint(k_layer, (), 0, len(eligible))
  layer = jnp.asarray(eligible, jnp.int32)[choice]
  if align == "random":
    align_partner = jax.random.bernoulli(k_align)
  else:
    align_partner = jnp.asarray(align == "partner")
  return AlignMixPlan(
    plan=plan,
    layer=layer,
    align_partner=align_partner,
    epsilon=jnp.asarray(epsilon, jnp.float32),
    layers=eligible,
    iterations=iterations,
  )


def _aligned_mix(h: jax.Array, mix: AlignMixPlan, data_format: str) -> jax.Array:
  """AlignMix of one feature map, ``[B, *positions, C]`` (NHWC) or ``[B, C, *positions]`` (NCHW)."""
  inner = mix.plan
  x = h if data_format == "NHWC" else jnp.moveaxis(h, 1, -1)
  moved_shape = x.shape
  dtype = _compute_dtype(h.dtype)
  a = x.reshape(x.shape[0], int(np.prod(x.shape[1:-1])), x.shape[-1]).astype(dtype)  # [B, r, C]
  b = pairing_lib.take_partner(a, inner.pairing, inner.index)
  # The official plan is detached: gradients reach the features through the interpolation only.
  fixed_a, fixed_b = jax.lax.stop_gradient(a), jax.lax.stop_gradient(b)
  log_p = _log_plan(fixed_a, fixed_b, mix.epsilon, mix.iterations)  # rows: A's positions
  partner_on_sample = _align_rows(log_p, b)  # Ã = A'·Rᵀ
  sample_on_partner = _align_rows(jnp.swapaxes(log_p, -1, -2), a)  # Ã' = A·R
  lam = inner.blend.astype(dtype)[:, None, None]
  out = jnp.where(
    mix.align_partner,
    lam * a + (1 - lam) * partner_on_sample,
    lam * sample_on_partner + (1 - lam) * b,
  )
  # A sample left unmixed (prob, or its own partner) comes back exactly, in either direction.
  keep = (inner.blend == 1) | pairing_lib.self_pairs(inner.index)
  out = jnp.where(keep[:, None, None], a, out)
  out = out.reshape(moved_shape).astype(h.dtype)
  return out if data_format == "NHWC" else jnp.moveaxis(out, -1, 1)


def alignmix_point(h: Any, mix: AlignMixPlan | None, i: int, *, data_format: str = "NHWC") -> Any:
  """Mixes `h` if this point `i` is the layer chosen for this step: plain MixUp at 0, AlignMix elsewhere.

  Call it at every eligible point of the model with a distinct static ``i``. The chosen layer is
  traced, so the model compiles once for every choice. At point 0 (the input) it is
  :func:`jaxmix.manifold_point`'s select of ``jaxmix.apply(mix.plan, h)``; at any other point `h`
  is a feature map and, under ``lax.cond`` (the transport runs only on the steps that pick this
  point, outside ``vmap``), each sample's map is aligned with its partner's by
  :func:`transport_plan` (with ``mix.epsilon``, ``mix.iterations``; no gradient through the plan,
  as the official code) and interpolated with λ in the plan's direction (see
  :class:`AlignMixPlan`).

  Args:
    h: at point 0, any pytree of arrays sharing the batch axis; at an aligned point, one float
      feature map ``[B, *positions, C]`` (``[B, H, W, C]``, or ``[B, N, C]`` tokens) with
      ``data_format="NHWC"``, or ``[B, C, *positions]`` with ``"NCHW"``.
    mix: an :class:`AlignMixPlan`, or None (evaluation): then `h` is returned as is.
    i: this point's layer index (a static int listed in ``mix.layers``).
    data_format: ``"NHWC"`` (channels last) or ``"NCHW"`` (channels right after the batch axis).

  Returns:
    `h`, mixed at the chosen layer, otherwise unchanged (same shapes and dtypes).

  Example:
    >>> mix = jaxmix.guided.sample_alignmix(key, 8, layers=(1,), align="partner")
    >>> h = jax.random.normal(key, (8, 4, 4, 16))     # a feature map inside the model
    >>> jaxmix.guided.alignmix_point(h, mix, 1).shape
    (8, 4, 4, 16)
  """
  if mix is None:
    return h
  if not isinstance(mix, AlignMixPlan):
    raise TypeError(
      f"mix must be an AlignMixPlan from jaxmix.guided.sample_alignmix or None, got {type(mix).__name__}."
    )
  if not isinstance(i, int) or isinstance(i, bool):
    raise TypeError(f"i must be a static int (this point's layer index), got {type(i).__name__}.")
  if i not in mix.layers:
    raise ValueError(f"i={i} is not one of the eligible layers {mix.layers} the plan was sampled for.")
  validation.check_choice("data_format", data_format, validation.DATA_FORMATS)
  chosen = mix.layer == i
  if i == 0:
    mixed = plan_lib.apply(mix.plan, h, data_format=data_format)
    return jax.tree_util.tree_map(lambda m, x: jnp.where(chosen, m, x), mixed, h)
  if not hasattr(h, "shape") or not hasattr(h, "dtype"):
    raise TypeError(f"h must be one feature map (an array) at an aligned point, got {type(h).__name__}.")
  validation.check_array(
    "h",
    h,
    dtype=jnp.floating,
    message="h must be a float feature map at an aligned point, got dtype {dtype}.",
  )
  validation.check_array(
    "h",
    h,
    rank=set(range(3, 33)),
    batch_size=mix.batch_size,
    message=f"h must be a feature map [B, *positions, C] ({data_format}) with B = {mix.batch_size}, "
    "got shape {shape}.",
  )
  if min(h.shape[1:]) < 1:
    raise ValueError(f"h must have at least one position and one channel, got shape {h.shape}.")
  return jax.lax.cond(chosen, lambda x: _aligned_mix(x, mix, data_format), lambda x: x, h)

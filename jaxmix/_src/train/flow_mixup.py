"""Flow-Mixup (Chen, Yu, Feng, Chen, Wu 2020, "Flow-Mixup: Classifying Multi-labeled Medical
Images with Corrupted Labels", IEEE BIBM; arXiv 2102.08148).

What the paper says, and what this module reads into it
-------------------------------------------------------

Only the paper's abstract and introduction (Sec. I) could be consulted when this was
written; its method section and equations could not, and no official code exists. The
abstract specifies: Flow-Mixup is a regulariser for *multi-label* classification with
corrupted labels; it "decouples the extracted features by adding constraints to the
hidden states of the models"; it is "more stable" than Mixup and Manifold Mixup, which
Sec. I says were "proposed for single-output tasks". Everything below that goes beyond
those sentences is this module's reading, chosen as follows:

1. **Two flows through one network.** Each step runs the network on the clean batch
   and on its MixUp, ``x~ = λ x + (1 - λ) x[π]``, stacked into one batch of 2B
   (:func:`flow_inputs`; one pass, so BatchNorm and the compiled program see one
   batch). The clean flow keeps its ordinary loss; the mixed flow learns the mixed
   labels. Reading of "more stable": nothing is drawn per layer (Manifold Mixup draws
   one random layer per step), and the clean loss is never replaced by the mixed one.
2. **The constraint on hidden states.** At every point the model exposes (the outputs
   of its stages), the mixed flow's hidden state must equal the same mixture of the
   clean flow's hidden states: ``h~_l ≈ λ h_l + (1 - λ) h_l[π]``
   (:func:`flow_constraint`). This is our reading of "decoupling the extracted
   features": a sample made of two sources is represented as the sum of its sources'
   representations, so the evidence for each label is additive and not entangled with
   the other labels present. The penalty is the relative squared error
   ``|h~ - target|² / |target|²`` per point, averaged over points: scale-invariant,
   because a network whose blocks end in BatchNorm could otherwise satisfy an absolute
   penalty by shrinking its features.
3. **λ and partners.** λ ~ Beta(α, α) with α = 1 (uniform) by default, one λ per batch
   (``mode="batch"``; ``"pair"``/``"elem"`` per sample), partners by flip pairing; the
   same λ and partner at every point and for the labels (a mixture that changed along
   the flow would have no single label). α = 1 is our choice: the paper's value was not
   available.
4. **Label rule for multi-hot targets.** Each class is its own binary task, mixed as
   in Mixup: ``y~[k] = λ y[k] + (1 - λ) y[π][k]`` (a class present in both sources
   stays 1; in one, it gets that source's share). Integer ids become one-hot first
   (``num_classes``). :func:`flow_targets` stacks the clean targets over the mixed ones
   to match the 2B outputs; train with a per-class sigmoid loss.

The total loss is ``BCE(logits, flow_targets(...)) + β · flow_constraint(...)``.

In a model (Flax linen; NNX is the same with ``self.sow(nnx.Intermediate, ...)``)::

    class Net(nn.Module):
      @nn.compact
      def __call__(self, x, mix=None):
        x = flow_inputs(x, mix)                      # [B] -> [2B]: clean ; mixed
        h = nn.relu(nn.Conv(16, (3, 3), 2)(x))
        self.sow("intermediates", "flow", h)         # a constrained point
        h = nn.relu(nn.Conv(32, (3, 3), 2)(h))
        self.sow("intermediates", "flow", h)         # another
        return nn.Dense(num_classes)(h.mean((1, 2)))

    mix = sample_flow_mixup(key, batch_size, alpha=1.0)
    logits, state = Net().apply(params, x, mix, mutable=["intermediates"])
    loss = optax.sigmoid_binary_cross_entropy(logits, flow_targets(mix, y)).mean()
    loss += beta * flow_constraint(mix, state["intermediates"]["flow"])

With ``mix=None`` (evaluation) the model is the plain network: ``flow_inputs`` returns
its input and nothing is sown unless ``"intermediates"`` is mutable.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxmix._src.core import labels as labels_lib
from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import validation
from jaxmix._src.methods import mixup as mixup_lib


@struct.dataclass
class FlowPlan(plan_lib.WrapsPlan):
  """A Flow-Mixup plan: the MixUp plan that makes the mixed flow from the clean one.

  Behaves like its inner plan for labels (``lam``, ``batch_size``,
  ``mix_labels``), so :func:`jaxmix.mix_labels` gives the mixed flow's targets;
  :func:`flow_targets` gives both flows' targets stacked. It has no ``mix_leaf``:
  start the two flows with :func:`flow_inputs`.

  Attributes:
    plan: the inner MixUp :class:`~jaxmix.Plan` (λ per sample, partners).
  """

  plan: Any


def sample_flow_mixup(
  key: jax.Array,
  batch_size: int,
  spatial_shape: tuple[int, int] | None = None,
  *,
  alpha: jax.typing.ArrayLike = 1.0,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "flip",
) -> FlowPlan:
  """Samples a Flow-Mixup plan (Chen et al. 2020, arXiv 2102.08148): λ and partners for the mixed flow.

  See the module docstring for the reading of the paper implemented here.

  Args:
    key: PRNG key.
    batch_size: B, the clean batch (static).
    spatial_shape: unused (the plan fits hidden states of any shape); accepted so
      that every sampler has the signature ``sample_<m>(key, batch_size, spatial_shape=None, *, ...)``.
    alpha: Beta(α, α) concentration of λ (default 1: uniform, our choice). Traced;
      edges as in :func:`jaxmix.sample_mixup` (≤ 0 or NaN: off, λ = 1; +inf: λ = 0.5).
    prob: probability that the batch (a sample, in ``pair``/``elem`` modes) is
      mixed. Traced. Unmixed samples have λ = 1: their mixed flow is a copy of the
      clean one, with zero constraint.
    mode: ``"batch"`` (one λ, default), ``"pair"`` or ``"elem"``. Static.
    pairing: ``"flip"`` (default), ``"roll"`` or ``"permute"``. Static.

  Returns:
    A :class:`FlowPlan`. Nothing in it is static but the mode and pairing, so one
    compiled train step serves every λ, α, ``prob`` and step.

  Example:
    >>> from jaxmix.flow_mixup import sample_flow_mixup
    >>> mix = sample_flow_mixup(key, 8, alpha=1.0)
    >>> mix.lam.shape, mix.batch_size
    ((8,), 8)
  """
  validation.check_key(key)
  batch_size = validation.check_batch_size(batch_size)
  plan = mixup_lib.sample_mixup(key, batch_size, alpha=alpha, prob=prob, mode=mode, pairing=pairing)
  return FlowPlan(plan=plan)


def _check_mix(mix: Any) -> None:
  if not isinstance(mix, FlowPlan):
    raise TypeError(f"mix must be a FlowPlan from sample_flow_mixup or None, got {type(mix).__name__}.")


def flow_inputs(x: Any, mix: FlowPlan | None, *, data_format: str = "NHWC") -> Any:
  """Starts the two flows: the clean batch with its MixUp stacked under it, ``[B, ...] -> [2B, ...]``.

  Call it on the network's input (or on the first hidden state to be mixed). Rows
  ``:B`` are `x` unchanged, rows ``B:`` are ``λ x + (1 - λ) x[π]``.

  Args:
    x: the inputs, or any pytree of arrays sharing the batch axis B.
    mix: a :class:`FlowPlan`, or None (evaluation): then `x` is returned as is.
    data_format: passed to :func:`jaxmix.apply`.

  Returns:
    A pytree like `x` with every leaf ``[2B, ...]`` (same dtypes).

  Example:
    >>> from jaxmix.flow_mixup import flow_inputs, sample_flow_mixup
    >>> mix = sample_flow_mixup(key, 8)
    >>> both = flow_inputs(images, mix)
    >>> both.shape, bool((both[:8] == images).all())
    ((16, 32, 32, 3), True)
  """
  if mix is None:
    return x
  _check_mix(mix)
  batch = validation.batch_size_of(x, "x")
  if batch != mix.batch_size:
    raise ValueError(f"x has batch size {batch} but the plan was sampled for {mix.batch_size}.")
  mixed = plan_lib.apply(mix.plan, x, data_format=data_format)
  return jax.tree_util.tree_map(lambda a, m: jnp.concatenate([jnp.asarray(a), m], axis=0), x, mixed)


def flow_targets(
  mix: FlowPlan | None,
  labels: jax.typing.ArrayLike,
  *,
  num_classes: int | None = None,
  label_smoothing: jax.typing.ArrayLike = 0.0,
) -> jax.Array:
  """Targets for both flows: the clean labels stacked over the mixed ones, float32 ``[2B, K]``.

  The mixed rows follow the plan's partners and λ per class:
  ``y~[k] = λ y[k] + (1 - λ) y[π][k]``, so multi-hot rows stay in [0, 1] per
  class (a class in both sources stays 1). Smoothing is applied before mixing.

  Args:
    mix: the :class:`FlowPlan` given to the model, or None: then the clean targets
      ``[B, K]`` alone.
    labels: multi-hot / soft float targets ``[B, K]``, or int class ids ``[B]``
      (then `num_classes` is required).
    num_classes: K (static).
    label_smoothing: in [0, 1]; may be traced.

  Returns:
    float32 ``[2B, K]`` (``[B, K]`` when `mix` is None).

  Example:
    >>> from jaxmix.flow_mixup import flow_targets, sample_flow_mixup
    >>> multi_hot = jnp.array([[1., 1., 0.], [0., 0., 1.]])
    >>> mix = sample_flow_mixup(key, 2, alpha=float("inf"))   # λ = 0.5
    >>> flow_targets(mix, multi_hot)
    Array([[1. , 1. , 0. ],
           [0. , 0. , 1. ],
           [0.5, 0.5, 0.5],
           [0.5, 0.5, 0.5]], dtype=float32)
  """
  if mix is not None:
    _check_mix(mix)
    size = mix.batch_size
  else:
    shape = np.shape(validation.numbers_as_array(labels))
    size = int(shape[0]) if shape else 0  # rank 0 is refused by soft_labels, naming labels
  y = labels_lib.soft_labels(labels, size, num_classes=num_classes, smoothing=label_smoothing)
  if mix is None:
    return y
  return jnp.concatenate([y, mix.mix_labels(y)], axis=0)


def flow_constraint(
  mix: FlowPlan | None,
  states: Any,
  *,
  stop_gradient: bool = False,
  data_format: str = "NHWC",
) -> jax.Array:
  """The Flow-Mixup constraint on hidden states: how far the mixed flow is from the mix of the clean one.

  For every hidden state ``h`` of shape ``[2B, ...]`` in `states` (clean rows
  ``:B``, mixed rows ``B:``), with ``target = λ h[:B] + (1 - λ) h[:B][π]``::

      c(h) = mean((h[B:] - target)²) / (mean(target²) + 1e-8)

  and the result is the mean of ``c`` over the states. It is 0 where the network
  maps the mix of two inputs to the mix of their features (and for unmixed
  samples, λ = 1, whose two flows are identical), and is unchanged by a rescaling
  of the features. Add ``β · flow_constraint(...)`` to the loss. β is yours to
  choose (the paper's value was not available): a network can satisfy the
  constraint by becoming linear on its training batches (ReLUs all active), so a
  large β costs accuracy; the Fashion-MNIST example uses β = 0.1.

  Args:
    mix: the :class:`FlowPlan` given to the model, or None: then 0.
    states: the hidden states at the constrained points, an array or any pytree
      of arrays (e.g. the tuple that ``self.sow`` collects), each ``[2B, ...]`` float.
    stop_gradient: if True the clean flow's mixture is a fixed target, so the
      constraint moves only the mixed flow; if False (default) both flows are pulled
      together, as a plain penalty on the hidden states does.
    data_format: passed to :func:`jaxmix.apply` (matters only for plans with boxes or masks).

  Returns:
    float32 scalar.

  Example:
    >>> from jaxmix.flow_mixup import flow_constraint, flow_inputs, sample_flow_mixup
    >>> mix = sample_flow_mixup(key, 8)
    >>> x = flow_inputs(images, mix)
    >>> float(flow_constraint(mix, [x, 2.0 * x]))        # linear maps keep the constraint at 0
    0.0
    >>> bool(flow_constraint(mix, jnp.tanh(10 * x)) > 0)  # a non-linear one does not
    True
  """
  if mix is None:
    return jnp.zeros((), jnp.float32)
  _check_mix(mix)
  leaves = validation.leaves_with_names(states, "states")
  if not leaves:
    raise ValueError("states must hold at least one hidden state [2B, ...]; got no arrays.")
  b = mix.batch_size
  costs = []
  for name, h in leaves:
    shape = np.shape(h)
    dtype = jnp.result_type(h)
    if not jnp.issubdtype(dtype, jnp.floating):
      raise TypeError(f"{name} must be a float hidden state, got dtype {dtype}.")
    if len(shape) < 1 or shape[0] != 2 * b:
      raise ValueError(
        f"{name} must have a leading axis of 2B = {2 * b} (clean ; mixed flows, from flow_inputs), "
        f"got shape {shape}."
      )
    if b == 0:
      continue
    h = jnp.asarray(h, jnp.promote_types(dtype, jnp.float32))
    clean, mixed = h[:b], h[b:]
    target = plan_lib.apply(mix.plan, clean, data_format=data_format)
    if stop_gradient:
      target = jax.lax.stop_gradient(target)
    costs.append(jnp.mean(jnp.square(mixed - target)) / (jnp.mean(jnp.square(target)) + 1e-8))
  if not costs:
    return jnp.zeros((), jnp.float32)
  return jnp.mean(jnp.stack(costs)).astype(jnp.float32)

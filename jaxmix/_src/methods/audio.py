"""Audio: MixUp on waveforms/spectrograms and SpecMix band masks on spectrograms.

Waveforms ``[B, T]`` / ``[B, T, C]`` and spectrograms ``[B, T, F]`` /
``[B, T, F, C]`` mix with :func:`jaxmix.mixup` as they are (a blend does not
care about the layout); :func:`audio_mixup` is that call with the layouts
checked.

SpecMix (Kim, Han and Ko 2021, "SpecMix: A Mixed Sample Data Augmentation
method for Training with Time-Frequency Domain Features", Interspeech) pastes
whole *time bands* (all frequencies over a range of frames) and whole
*frequency bands* (all frames over a range of bins) from the partner, which
keeps each source's spectral structure intact (a CutMix box would cut
harmonics). A spectrogram is ``[B, T, F]`` or ``[B, T, F, C]``
(``data_format="NHWC"``, time first), or ``[B, C, T, F]`` with
``data_format="NCHW"``. The plan is a core :class:`jaxmix.Plan` with a
``mask`` built from iota comparisons, so :func:`jaxmix.apply` mixes any
aligned pytree (e.g. a spectrogram and a per-frame target).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix._src.core import one_call
from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import sampling
from jaxmix._src.core import validation
from jaxmix._src.methods import mixup as mixup_lib


def _check_bands(name: str, value: Any) -> int:
  if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
    raise ValueError(f"{name} must be a static int >= 0, got {value!r}.")
  return int(value)


def band_indicator(
  key: jax.Array, n: int, size: int, max_bands: int, gamma: jax.typing.ArrayLike
) -> jax.Array:
  """bool `[n, size]`: the union of 1..`max_bands` random bands along one axis.

  Each draw takes a band count uniform in ``{1, ..., max_bands}``; each band
  has a width uniform in ``{0, ..., floor(gamma·size)}`` and a start uniform
  over the positions where it fits. Built from iota comparisons.
  """
  if max_bands == 0:
    return jnp.zeros((n, size), bool)
  k_count, k_width, k_start = jax.random.split(key, 3)
  count = jax.random.randint(k_count, (n, 1), 1, max_bands + 1)
  max_width = jnp.floor(jnp.asarray(gamma, jnp.float32) * size).astype(jnp.int32)
  max_width = jnp.clip(max_width, 0, size)
  width = jax.random.randint(k_width, (n, max_bands), 0, max_width + 1)
  start = jax.random.randint(k_start, (n, max_bands), 0, size - width + 1)
  active = jnp.arange(max_bands)[None, :] < count
  pos = jnp.arange(size, dtype=jnp.int32)[None, None, :]
  inside = (pos >= start[..., None]) & (pos < (start + width)[..., None]) & active[..., None]
  return jnp.any(inside, axis=1)


def sample_specmix(
  key: jax.Array,
  batch_size: int,
  spatial_shape: tuple[int, int] | None = None,
  *,
  gamma: jax.typing.ArrayLike = 0.3,
  max_time_bands: int = 3,
  max_freq_bands: int = 3,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "flip",
) -> plan_lib.Plan:
  """Samples a SpecMix plan: time and frequency bands taken from the partner.

  Defaults: up to 3 time bands and 3 frequency bands per mix, each band at
  most ``gamma = 0.3`` of its axis. The paper masks "up to a few" bands on
  each axis with widths bounded by the ratio γ; 3 bands and γ ≈ 0.3 are the
  values of the public re-implementations (the paper's text could not be
  checked offline), and both are options.

  Args:
    key: PRNG key.
    batch_size: B (static).
    spatial_shape: (T, F), frames and frequency bins (static).
    gamma: largest band width as a fraction of its axis, in [0, 1]. Traced.
    max_time_bands, max_freq_bands: most bands per axis; the count is drawn
      uniformly from 1..max (0 disables that axis). Static.
    prob: probability that a batch/sample is mixed at all. Traced.
    mode: ``"batch"`` (one mask), ``"pair"`` or ``"elem"``. Static.
    pairing: ``"flip"``, ``"roll"`` or ``"permute"``. Static.

  Returns:
    A :class:`jaxmix.Plan` whose ``mask`` is 0 inside the bands (partner)
    and 1 elsewhere; ``lam`` is the exact share of own time-frequency bins.

  Example:
    >>> plan = jaxmix.sample_specmix(key, 8, (64, 40))   # (frames, mel bins)
    >>> specs = jaxmix.apply(plan, specs)
    >>> specs.shape
    (8, 64, 40)
  """
  validation.check_key(key)
  batch_size = validation.check_batch_size(batch_size)
  validation.check_unit_interval("gamma", gamma)
  validation.check_unit_interval("prob", prob)
  max_time_bands = _check_bands("max_time_bands", max_time_bands)
  max_freq_bands = _check_bands("max_freq_bands", max_freq_bands)
  t, f = validation.check_spatial_shape(spatial_shape, "(T, F)")
  n = sampling.num_draws(mode, batch_size)
  k_pair, k_time, k_freq, k_gate = jax.random.split(key, 4)
  index = sampling.partner_index(k_pair, batch_size, pairing, involution=mode == "pair")
  in_time = band_indicator(k_time, n, t, max_time_bands, gamma)
  in_freq = band_indicator(k_freq, n, f, max_freq_bands, gamma)
  on = sampling.gate(k_gate, prob, (n,))
  taken = (in_time[:, :, None] | in_freq[:, None, :]) & on[:, None, None]
  mask = 1.0 - taken.astype(jnp.float32)
  return plan_lib.mask_plan(mask, index, mode=mode, pairing=pairing, selects_pixels=True)


def specmix(
  key: jax.Array,
  inputs: Any,
  labels: jax.typing.ArrayLike | None = None,
  *,
  gamma: jax.typing.ArrayLike = 0.3,
  max_time_bands: int = 3,
  max_freq_bands: int = 3,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "flip",
  num_classes: int | None = None,
  label_smoothing: jax.typing.ArrayLike = 0.0,
  data_format: str = "NHWC",
) -> tuple[Any, jax.Array | None]:
  """SpecMix: paste random time and frequency bands of the partner's spectrogram.

  Kim et al. 2021. Labels are weighted by the exact share of own bins.

  Args:
    key: PRNG key.
    inputs: spectrograms `[B, T, F]`, `[B, T, F, C]` (NHWC) or `[B, C, T, F]`
      (NCHW), or a pytree of such leaves sharing (T, F).
    labels: int ids `[B]` (with `num_classes`), float `[B, K]`, or None.
    gamma, max_time_bands, max_freq_bands, prob, mode, pairing: as in
      :func:`sample_specmix`.
    num_classes: K for integer labels (static).
    label_smoothing: applied before mixing. Traced.
    data_format: ``"NHWC"`` (time, frequency, channels) or ``"NCHW"``.

  Returns:
    ``(mixed_inputs, soft_labels)``.

  Example:
    >>> specs, targets = jaxmix.specmix(key, specs, labels, num_classes=50)   # [B, frames, mel bins]
    >>> targets.shape
    (8, 50)
  """
  return one_call.mix(
    sample_specmix,
    key,
    inputs,
    labels,
    spatial=True,
    num_classes=num_classes,
    label_smoothing=label_smoothing,
    data_format=data_format,
    gamma=gamma,
    max_time_bands=max_time_bands,
    max_freq_bands=max_freq_bands,
    prob=prob,
    mode=mode,
    pairing=pairing,
  )


def audio_mixup(
  key: jax.Array,
  inputs: Any,
  labels: jax.typing.ArrayLike | None = None,
  *,
  alpha: jax.typing.ArrayLike = 1.0,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "flip",
  num_classes: int | None = None,
  label_smoothing: jax.typing.ArrayLike = 0.0,
) -> tuple[Any, jax.Array | None]:
  """MixUp for audio: waveforms `[B, T]`/`[B, T, C]` or spectrograms `[B, T, F(, C)]`.

  Identical to :func:`jaxmix.mixup` (a sample-wise blend), with a check that
  every leaf is a batch of waveforms or spectrograms (rank 2 to 4).

  Args:
    key: PRNG key.
    inputs: an array or pytree of audio batches.
    labels: int ids `[B]` (with `num_classes`), float `[B, K]`, or None.
    alpha, prob, mode, pairing: as in :func:`jaxmix.sample_mixup`.
    num_classes: K for integer labels (static).
    label_smoothing: applied before mixing. Traced.

  Returns:
    ``(mixed_inputs, soft_labels)``.

  Example:
    >>> waves = jax.random.normal(key, (8, 16_000))    # 1 s at 16 kHz
    >>> waves, targets = jaxmix.audio_mixup(key, waves, labels, alpha=0.2, num_classes=527)
    >>> waves.shape, targets.shape
    ((8, 16000), (8, 527))
  """
  for path, leaf in validation.leaves_with_names(inputs, "inputs"):
    if not 2 <= np.ndim(leaf) <= 4:
      raise ValueError(
        f"{path} must be waveforms [B, T] / [B, T, C] or spectrograms [B, T, F] / [B, T, F, C]; "
        f"got shape {np.shape(leaf)}."
      )
  return mixup_lib.mixup(
    key,
    inputs,
    labels,
    alpha=alpha,
    prob=prob,
    mode=mode,
    pairing=pairing,
    num_classes=num_classes,
    label_smoothing=label_smoothing,
  )

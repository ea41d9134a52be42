"""A small ResNet for 28×28 / 16×16 greyscale images, in Flax linen and in Flax NNX.

Both versions accept an optional Manifold Mixup plan and call
:func:`jaxmix.manifold_point` at their eligible layers:

* layer 0: the input,
* layer 1: the output of stage 1 (after the stem's stride),
* layer 2: the output of stage 2 (half that resolution),

as in the paper's PreAct ResNet setting (k ∈ {0, 1, 2}). The chosen layer is
traced, so one compiled train step serves every choice.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn
from flax import nnx

import jaxmix

NUM_MIX_LAYERS = 3  # eligible Manifold Mixup layers: 0 (input), 1, 2


# ----------------------------------------------------------------------------- linen


class Block(nn.Module):
  """A basic residual block: conv-BN-ReLU-conv-BN plus a (projected) shortcut."""

  features: int
  stride: int = 1

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    norm = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.9)
    y = nn.Conv(self.features, (3, 3), self.stride, use_bias=False)(x)
    y = nn.relu(norm()(y))
    y = nn.Conv(self.features, (3, 3), use_bias=False)(y)
    y = norm()(y)
    if x.shape[-1] != self.features or self.stride != 1:
      x = nn.Conv(self.features, (1, 1), self.stride, use_bias=False)(x)
      x = norm()(x)
    return nn.relu(x + y)


class ResNet(nn.Module):
  """Stem (stride 2 by default, to keep CPU runs short), three one-block stages (widths w, 2w, 4w),
  global average pooling and a linear head."""

  num_classes: int = 10
  width: int = 16
  stem_stride: int = 2

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False, mix: jaxmix.ManifoldPlan | None = None) -> jax.Array:
    x = jaxmix.manifold_point(x, mix, 0)
    x = nn.Conv(self.width, (3, 3), self.stem_stride, use_bias=False)(x)
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(x))
    x = Block(self.width)(x, train)
    x = jaxmix.manifold_point(x, mix, 1)
    x = Block(2 * self.width, stride=2)(x, train)
    x = jaxmix.manifold_point(x, mix, 2)
    x = Block(4 * self.width, stride=2)(x, train)
    return nn.Dense(self.num_classes)(x.mean(axis=(1, 2)))


# ----------------------------------------------------------------------------- NNX


class NNXBlock(nnx.Module):
  def __init__(self, in_features: int, features: int, stride: int, *, rngs: nnx.Rngs):
    self.conv1 = nnx.Conv(in_features, features, (3, 3), strides=stride, use_bias=False, rngs=rngs)
    self.bn1 = nnx.BatchNorm(features, momentum=0.9, rngs=rngs)
    self.conv2 = nnx.Conv(features, features, (3, 3), use_bias=False, rngs=rngs)
    self.bn2 = nnx.BatchNorm(features, momentum=0.9, rngs=rngs)
    self.has_proj = in_features != features or stride != 1
    if self.has_proj:
      self.proj = nnx.Conv(in_features, features, (1, 1), strides=stride, use_bias=False, rngs=rngs)
      self.bn_proj = nnx.BatchNorm(features, momentum=0.9, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    y = nnx.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    if self.has_proj:
      x = self.bn_proj(self.proj(x))
    return nnx.relu(x + y)


class NNXResNet(nnx.Module):
  """The same network as :class:`ResNet` in Flax NNX (train/eval via ``model.train()``/``model.eval()``)."""

  def __init__(
    self,
    in_channels: int = 1,
    num_classes: int = 10,
    width: int = 16,
    stem_stride: int = 2,
    *,
    rngs: nnx.Rngs,
  ):
    self.stem = nnx.Conv(in_channels, width, (3, 3), strides=stem_stride, use_bias=False, rngs=rngs)
    self.bn = nnx.BatchNorm(width, momentum=0.9, rngs=rngs)
    self.block1 = NNXBlock(width, width, 1, rngs=rngs)
    self.block2 = NNXBlock(width, 2 * width, 2, rngs=rngs)
    self.block3 = NNXBlock(2 * width, 4 * width, 2, rngs=rngs)
    self.head = nnx.Linear(4 * width, num_classes, rngs=rngs)

  def __call__(self, x: jax.Array, mix: jaxmix.ManifoldPlan | None = None) -> jax.Array:
    x = jaxmix.manifold_point(x, mix, 0)
    x = nnx.relu(self.bn(self.stem(x)))
    x = self.block1(x)
    x = jaxmix.manifold_point(x, mix, 1)
    x = self.block2(x)
    x = jaxmix.manifold_point(x, mix, 2)
    x = self.block3(x)
    return self.head(jnp.mean(x, axis=(1, 2)))


# ----------------------------------------------------------------------------- a tiny ViT (linen)


class EncoderBlock(nn.Module):
  """Pre-norm transformer block; also returns its attention weights `[B, heads, T, T]`."""

  dim: int
  heads: int
  mlp_ratio: int = 2

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    b, t, _ = x.shape
    head_dim = self.dim // self.heads
    qkv = nn.Dense(3 * self.dim)(nn.LayerNorm()(x)).reshape(b, t, 3, self.heads, head_dim)
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # [B, heads, T, head_dim]
    attention = jax.nn.softmax(q @ k.transpose(0, 1, 3, 2) / jnp.sqrt(head_dim), axis=-1)
    y = (attention @ v).transpose(0, 2, 1, 3).reshape(b, t, self.dim)
    x = x + nn.Dense(self.dim)(y)
    y = nn.Dense(self.dim)(nn.gelu(nn.Dense(self.mlp_ratio * self.dim)(nn.LayerNorm()(x))))
    return x + y, attention


class ViT(nn.Module):
  """A tiny vision transformer (Dosovitskiy et al. 2021) for 28×28 greyscale images.

  Patches of `patch` × `patch` pixels (7 × 7 = 49 tokens at patch 4), one CLS token, learned position
  embeddings, `depth` pre-norm blocks and a linear head on the CLS token. Returns ``(logits,
  attention)`` with ``attention`` the last block's CLS row over the patch tokens, `[B, heads, N]`
  (``attn[:, :, 0, 1:]``): what TransMix reads (:func:`jaxmix.losses.transmix_labels`).
  """

  num_classes: int = 10
  patch: int = 4
  dim: int = 64
  depth: int = 4
  heads: int = 4

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
    del train  # no dropout or batch statistics: one signature with the ResNet
    x = nn.Conv(self.dim, (self.patch, self.patch), self.patch)(x)  # patch embedding
    b = x.shape[0]
    x = x.reshape(b, -1, self.dim)
    cls = self.param("cls", nn.initializers.zeros, (1, 1, self.dim))
    x = jnp.concatenate([jnp.broadcast_to(cls, (b, 1, self.dim)), x], axis=1)
    x = x + self.param("pos", nn.initializers.normal(0.02), (1, x.shape[1], self.dim))
    attention = None
    for _ in range(self.depth):
      x, attention = EncoderBlock(self.dim, self.heads)(x)
    assert attention is not None
    logits = nn.Dense(self.num_classes)(nn.LayerNorm()(x[:, 0]))
    return logits, attention[:, :, 0, 1:]

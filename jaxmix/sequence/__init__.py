"""Sequences: MixUp for `[B, T, ...]` batches with padding masks, and token labels."""

from jaxmix._src.families.sequence import SequencePlan
from jaxmix._src.families.sequence import mix_token_labels
from jaxmix._src.families.sequence import sample_sequence_mixup as sample_mixup
from jaxmix._src.families.sequence import sequence_mixup as mixup

__all__ = [
  "mix_token_labels",
  "mixup",
  "sample_mixup",
  "SequencePlan",
]

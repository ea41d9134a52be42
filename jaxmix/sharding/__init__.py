"""Mixing a batch sharded over devices with no traffic between them."""

from jaxmix._src.families.sharding import local
from jaxmix._src.families.sharding import local_key

__all__ = [
  "local",
  "local_key",
]

"""Old spellings of renamed keywords and attributes, kept working for one release.

Every renamed keyword goes through :func:`renamed`, every renamed plan attribute
through :func:`warn_attribute`, so the message, the category and the release
that removes the old spelling are written once. CHANGELOG.md lists every rename.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any
from typing import TypeVar

REMOVED_IN = "0.3.0"

F = TypeVar("F", bound=Callable[..., Any])


def renamed(**old_to_new: str) -> Callable[[F], F]:
  """A decorator: ``fn(old=...)`` still works, warns, and means ``fn(new=...)``.

  Passing both spellings is a TypeError naming both. The decorated function keeps its name,
  docstring and signature (which shows only the new spellings).

  Example: ``@deprecation.renamed(p="cell_prob")``.
  """

  def decorate(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
      for old, new in old_to_new.items():
        if old in kwargs:
          if new in kwargs:
            raise TypeError(
              f"{fn.__name__}() got both {old}= (its old spelling) and {new}=; pass only {new}=."
            )
          warnings.warn(
            f"{fn.__name__}({old}=...) is deprecated; use {new}= (the old spelling will be removed in "
            f"{REMOVED_IN}).",
            DeprecationWarning,
            stacklevel=2,
          )
          kwargs[new] = kwargs.pop(old)
      return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]

  return decorate


def warn_attribute(owner: Any, old: str, new: str) -> None:
  """The DeprecationWarning of a renamed (read-only) attribute, e.g. ``Plan.box`` -> ``Plan.region``."""
  warnings.warn(
    f"{type(owner).__name__}.{old} is deprecated; use .{new} (the old spelling will be removed in "
    f"{REMOVED_IN}).",
    DeprecationWarning,
    stacklevel=3,
  )

"""What "correct" means for cnn-rosetta.

- ``reference.ops``: every op of docs/api.md, forward and backward, in slow, loop-based float64
  code that mirrors the formulas: the oracle the backends are compared with.
- ``reference.gradcheck``: central differences, which check the reference's own backward.
- ``reference.vectors``: known answers (reference/vectors/*.json) from the seed tutorials and
  hand-worked examples, each saying where it came from and how it was computed.
"""

from . import gradcheck, ops, vectors

__all__ = ["gradcheck", "ops", "vectors"]

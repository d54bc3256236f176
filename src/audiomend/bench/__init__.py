"""Side-by-side scoring of restoration systems on paired corpora (``audiomend bench``).

- :mod:`audiomend.bench.systems`: the :class:`~audiomend.bench.systems.System` adapters (our
  pipeline and stages, the unprocessed input, the clean upper bound, noisereduce, RNNoise,
  DeepFilterNet3, any external command) and the ``SYSTEMS`` registry.
- :mod:`audiomend.bench.corpus`: finding ``clean/`` + ``degraded/`` pairs, building a corpus.
- :mod:`audiomend.bench.run`: processing (timed, one thread), alignment, scoring.
- :mod:`audiomend.bench.report`: markdown, CSV, JSON and PNG outputs.

Nothing heavy is imported here; each system imports its package only when it is built.
"""

from __future__ import annotations

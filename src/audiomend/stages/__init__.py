"""Restoration stages, one module each, registered by name in :data:`STAGES`.

Repair order used by the planner: dehum -> declick -> declip -> dereverb -> denoise -> bandwidth
-> loudness. ``align`` estimates and removes a delay between two recordings.
"""

from __future__ import annotations

import importlib

from audiomend.stages.base import STAGES, Stage, register

# Importing each module registers its stage. A module that does not exist yet is skipped, so
# stages can land one at a time.
_MODULES = ("dehum", "declick", "declip", "denoise", "dereverb", "bandwidth", "loudness", "align",
            "neural")
for _module in _MODULES:
    try:
        importlib.import_module(f"audiomend.stages.{_module}")
    except ModuleNotFoundError as _err:
        if _err.name != f"audiomend.stages.{_module}":
            raise

__all__ = ["STAGES", "Stage", "register"]

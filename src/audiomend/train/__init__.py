"""Training of audiomend's restoration network (extra ``train``: torch, CPU).

Nothing here is imported by ``import audiomend``; every module imports torch at the top and is
reached only through ``audiomend train`` / ``audiomend export`` or explicit imports.
"""


def require_torch():
    """Import torch or raise MissingDependencyError with the install command."""
    try:
        import torch
    except ImportError as e:
        from audiomend.errors import MissingDependencyError

        raise MissingDependencyError(
            "training needs torch: pip install torch==2.13.0 && pip install 'audiomend[train]'"
        ) from e
    return torch

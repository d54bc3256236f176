"""Root pytest configuration: keep torch-only modules out of doctest collection."""

import importlib.util

collect_ignore_glob = []
if importlib.util.find_spec("torch") is None:
    # audiomend.train needs the 'train' extra; its doctests run only where torch is installed.
    collect_ignore_glob.append("src/audiomend/train/*")

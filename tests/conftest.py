"""Shared fixtures: real speech from ../shared/data (skipped with a reason where absent), RNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
TEST_DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ../shared/data folder; skips the test with a visible reason where it is absent."""
    if not (SHARED_DATA / "smoke").is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(seed=440)


@pytest.fixture(scope="session")
def speech_16k(shared_data: Path) -> tuple[np.ndarray, int]:
    """A real 16 kHz speech clip from smoke/, float32 (1, n)."""
    from audiomend.io import load

    return load(shared_data / "smoke" / "speech" / "sisec_dev1_male4_src1_16k_1.flac")


@pytest.fixture(scope="session")
def speech_48k(shared_data: Path) -> tuple[np.ndarray, int]:
    """A real 48 kHz speech clip from smoke/, float32 (1, n)."""
    from audiomend.io import load

    return load(shared_data / "smoke" / "speech" / "freesound33711_48k_1.flac")

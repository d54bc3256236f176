"""The network: a causal GRU that predicts a real gain per STFT bin from log magnitudes.

Shape of the computation per frame (16 kHz, 512-sample frames, 256-sample hop, 257 bins):
log-magnitude (257) -> linear 257->128 + PReLU -> 2-layer GRU (hidden 256) -> linear
(256 + 128)->257 -> sigmoid gain (the shipped widths; ``audiomend train --hidden/--embed``).
Causal: each frame's gain depends only on this and earlier frames; the GRU state is an explicit
input/output so inference can stream. See docs/model.md for the reasons.
"""

from __future__ import annotations

import torch
from torch import nn

SAMPLE_RATE = 16_000
FRAME_LENGTH = 512
HOP_LENGTH = 256
N_BINS = FRAME_LENGTH // 2 + 1

#: Log-magnitude normalisation constants (natural log of linear magnitude): roughly the mean and
#: spread of speech-plus-noise at -26 dBFS with this frame size. Fixed, so no state is needed.
LOG_MEAN = -4.0
LOG_STD = 2.5


class MaskGRU(nn.Module):
    """Magnitude ``(batch, frames, bins)`` and state ``(layers, batch, hidden)`` -> gains, state."""

    def __init__(self, n_bins: int = N_BINS, embed: int = 128, hidden: int = 256, layers: int = 2):
        super().__init__()
        self.n_bins, self.hidden, self.layers = n_bins, hidden, layers
        self.encode = nn.Sequential(nn.Linear(n_bins, embed), nn.PReLU())
        self.gru = nn.GRU(embed, hidden, num_layers=layers, batch_first=True)
        self.decode = nn.Linear(hidden + embed, n_bins)

    def initial_state(self, batch: int = 1) -> torch.Tensor:
        return torch.zeros(self.layers, batch, self.hidden)

    def forward(self, magnitude: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = (torch.log(magnitude + 1e-5) - LOG_MEAN) / LOG_STD
        embedded = self.encode(features)
        recurrent, state_out = self.gru(embedded, state)
        gains = torch.sigmoid(self.decode(torch.cat([recurrent, embedded], dim=-1)))
        return gains, state_out


class MaskEnsemble(nn.Module):
    """Several trained MaskGRUs as one streaming network: the geometric mean of their gains.

    Members must share ``hidden`` and ``layers``; their states are stacked along the first
    axis, so the ensemble's state is ``(members * layers, batch, hidden)`` and it streams
    exactly like one MaskGRU (same inputs and outputs, only a taller state).
    """

    def __init__(self, members: list[MaskGRU]):
        super().__init__()
        shapes = {(m.layers, m.hidden) for m in members}
        if len(shapes) != 1:  # also refuses an empty list
            raise ValueError(f"ensemble members must share layers and hidden width, got {shapes}")
        self.members = nn.ModuleList(members)
        self.layers, self.hidden = members[0].layers, members[0].hidden

    def initial_state(self, batch: int = 1) -> torch.Tensor:
        return torch.zeros(self.layers * len(self.members), batch, self.hidden)

    def forward(self, magnitude: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_gains, states = [], []
        for member, member_state in zip(self.members, torch.split(state, self.layers, dim=0)):
            gains, member_state = member(magnitude, member_state)
            log_gains.append(torch.log(gains.clamp_min(1e-6)))
            states.append(member_state)
        # geometric mean: a bin is cut as deep as the members agree it should be, on average in dB
        return torch.exp(torch.stack(log_gains).mean(dim=0)), torch.cat(states, dim=0)


def stft(audio: torch.Tensor) -> torch.Tensor:
    """Complex STFT ``(batch, frames, bins)`` of ``(batch, samples)`` audio, sqrt-Hann window.

    Frames are centred (zero padding at both ends) so :func:`istft` inverts it exactly; the frame
    grid differs from the streaming one only by an offset, which a per-frame model does not see.
    """
    window = torch.hann_window(FRAME_LENGTH, periodic=True).sqrt()
    spec = torch.stft(audio, FRAME_LENGTH, HOP_LENGTH, window=window, center=True,
                      pad_mode="constant", return_complex=True)
    return spec.transpose(1, 2)


def istft(spec: torch.Tensor, length: int) -> torch.Tensor:
    window = torch.hann_window(FRAME_LENGTH, periodic=True).sqrt()
    return torch.istft(spec.transpose(1, 2), FRAME_LENGTH, HOP_LENGTH, window=window,
                       center=True, length=length)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

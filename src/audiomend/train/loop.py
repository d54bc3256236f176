"""The training loop: background-friendly, checkpointed, resumable, with validation and a curve.

A run folder holds ``config.json`` (everything needed to resume), ``checkpoint.pt`` (model,
optimiser, step and RNG state; loaded with ``weights_only=True``), ``log.jsonl`` (one line per
logged step and per validation) and ``curve.png``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from audiomend.train.data import Mixer, MixSettings, load_noises, load_rirs, load_speech
from audiomend.train.network import SAMPLE_RATE, MaskGRU, count_parameters, istft, stft


@dataclass
class TrainConfig:
    speech: list[str]
    noise: list[str]
    rir: list[str] = field(default_factory=list)
    steps: int = 24000
    batch_size: int = 16
    learning_rate: float = 1e-3
    seed: int = 0
    threads: int = 1
    log_every: int = 25
    validate_every: int = 500
    checkpoint_every: int = 200
    validation_examples: int = 24
    holdout_every: int = 20  # every Nth speech clip and noise is held out for validation
    si_sdr_weight: float = 0.001  # weight of -SI-SDR (dB) of the waveform, beside the spectral loss
    # Share of examples low-passed at 7.0-7.9 kHz like resampled material (MixSettings.p_rolloff).
    p_rolloff: float = 0.0
    # Network width (see network.MaskGRU): the shipped model's. (Runs from before these fields
    # existed used 96/160/2; resuming one needs them added to its config.json.)
    embed: int = 128
    hidden: int = 256
    layers: int = 2

    def network(self) -> MaskGRU:
        return MaskGRU(embed=self.embed, hidden=self.hidden, layers=self.layers)


def compressed_spectral_loss(estimate: torch.Tensor, target: torch.Tensor, c: float = 0.3) -> torch.Tensor:
    """Mean squared error of power-law compressed magnitudes plus compressed complex spectra
    (as in DeepFilterNet and GTCRN): weights quiet bins more than a plain MSE would."""
    est_mag = estimate.abs().clamp_min(1e-8)
    tgt_mag = target.abs().clamp_min(1e-8)
    est_c, tgt_c = est_mag.pow(c), tgt_mag.pow(c)
    magnitude = torch.mean((est_c - tgt_c) ** 2)
    complex_ = torch.mean(torch.abs(est_c * estimate / est_mag - tgt_c * target / tgt_mag) ** 2)
    return 0.7 * magnitude + 0.3 * complex_


def negative_si_sdr(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean of -SI-SDR in dB over ``(batch, samples)`` waveforms whose target is not silent.

    The spectral loss alone lets the mask shave a little off every bin; this term penalises any
    distortion of the waveform, which keeps clean and high-SNR speech intact.
    """
    energy = torch.sum(target**2, dim=1)
    keep = energy > 1e-8
    if not bool(keep.any()):
        return estimate.new_zeros(())
    estimate, target, energy = estimate[keep], target[keep], energy[keep]
    alpha = torch.sum(estimate * target, dim=1, keepdim=True) / energy[:, None]
    projection = alpha * target
    ratio = torch.sum(projection**2, dim=1) / (torch.sum((estimate - projection) ** 2, dim=1) + 1e-8)
    return -torch.mean(10 * torch.log10(ratio + 1e-8))


def _split(items: list, every: int) -> tuple[list, list]:
    held = [x for i, x in enumerate(items) if i % every == every - 1]
    kept = [x for i, x in enumerate(items) if i % every != every - 1]
    return kept, held or items[:1]


def split_speech(folders: list[str], sample_rate: int, *, holdout_every: int
                 ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, dict]:
    """Training clips, held-out clips, each training clip's draw probability, and a summary.

    Each folder is split on its own (every ``holdout_every``-th clip held out), so adding a
    folder never moves another folder's held-out clips into training
    (benchmarks/make_dev_corpus.py relies on that), and every folder gets the same share of the
    training examples, whatever its number of clips.
    """
    train, held_out, weights, summary = [], [], [], {}
    for folder in folders:
        clips, folder_summary = load_speech([folder], sample_rate)
        kept, held = _split(clips, holdout_every)
        train += kept
        held_out += held
        weights += [1.0 / (len(kept) * len(folders))] * len(kept)
        for key, value in folder_summary.items():
            summary[key] = round(summary.get(key, 0) + value, 3)
    return train, held_out, np.asarray(weights) / np.sum(weights), summary


def _si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    alpha = np.dot(estimate, reference) / (np.dot(reference, reference) + 1e-12)
    projection = alpha * reference
    return float(10 * np.log10(np.sum(projection**2) / (np.sum((estimate - projection) ** 2) + 1e-12) + 1e-12))


def validate(model: MaskGRU, noisy: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Mean SI-SDR and PESQ-WB of the enhanced validation examples and of the unprocessed input."""
    from pesq import NoUtterancesError, pesq

    with torch.no_grad():
        x = torch.from_numpy(noisy)
        spec = stft(x)
        gains, _ = model(spec.abs(), model.initial_state(x.shape[0]))
        enhanced = istft(spec * gains, x.shape[1]).numpy()
    scores: dict[str, list[float]] = {"si_sdr": [], "pesq_wb": [], "input_si_sdr": [], "input_pesq_wb": []}
    for est, inp, ref in zip(enhanced, noisy, target):
        if np.sqrt(np.mean(ref**2)) < 1e-5:
            continue
        scores["si_sdr"].append(_si_sdr(est, ref))
        scores["input_si_sdr"].append(_si_sdr(inp, ref))
        try:
            scores["pesq_wb"].append(pesq(SAMPLE_RATE, ref, est, "wb"))
            scores["input_pesq_wb"].append(pesq(SAMPLE_RATE, ref, inp, "wb"))
        except NoUtterancesError:  # a crop of a pause: nothing for PESQ to score
            continue
    return {k: float(np.mean(v)) if v else float("nan") for k, v in scores.items()}


def plot_curve(run_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip()]
    train = [r for r in rows if "loss" in r]
    val = [r for r in rows if "pesq_wb" in r]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    if train:
        steps, losses = [r["step"] for r in train], np.array([r["loss"] for r in train])
        a.plot(steps, losses, lw=0.5, alpha=0.4)
        width = min(20, len(losses))  # moving average over ~500 steps
        a.plot(steps[width - 1:], np.convolve(losses, np.ones(width) / width, "valid"), lw=1.5)
    a.set_xlabel("step"), a.set_ylabel("training loss")  # linear: the -SI-SDR term can be < 0
    if val:
        steps = [r["step"] for r in val]
        b.plot(steps, [r["pesq_wb"] for r in val], "o-", label="enhanced")
        # per point: the validation mixes change when the data settings of a resumed run do
        b.plot(steps, [r["input_pesq_wb"] for r in val], "--", color="gray", label="input")
        b.legend()
    b.set_xlabel("step"), b.set_ylabel("validation PESQ-WB")
    fig.tight_layout()
    fig.savefig(run_dir / "curve.png", dpi=90)
    plt.close(fig)


def train(config: TrainConfig, run_dir: str | Path, *, resume: bool = False, progress=print) -> Path:
    """Train (or resume) a run in ``run_dir``; returns the checkpoint path."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = run_dir / "checkpoint.pt"
    if resume and (run_dir / "config.json").exists():
        saved = json.loads((run_dir / "config.json").read_text())
        saved["steps"] = config.steps  # resuming may extend the run
        config = TrainConfig(**saved)
    (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)

    train_speech, val_speech, speech_weights, summary = split_speech(
        config.speech, SAMPLE_RATE, holdout_every=config.holdout_every)
    noises = load_noises(config.noise, SAMPLE_RATE)
    rirs = load_rirs(config.rir, SAMPLE_RATE) if config.rir else []
    train_noise, val_noise = _split(noises, max(config.holdout_every // 2, 2))
    train_rir, val_rir = _split(rirs, 5) if len(rirs) > 1 else (rirs, rirs)
    mixer = Mixer(train_speech, train_noise, train_rir, SAMPLE_RATE,
                  MixSettings(p_rolloff=config.p_rolloff),
                  speech_weights=speech_weights)
    val_noisy, val_target = Mixer(val_speech, val_noise, val_rir, SAMPLE_RATE).batch(
        config.validation_examples, np.random.default_rng(12345))
    summary.update(noises=len(noises), rirs=len(rirs), validation_examples=config.validation_examples)
    (run_dir / "data.json").write_text(json.dumps(summary, indent=2))

    model = config.network()
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    step = 0
    rng = np.random.default_rng(config.seed)
    if resume and checkpoint_path.exists():
        state = torch.load(checkpoint_path, weights_only=True)
        model.load_state_dict(state["model"])
        step = int(state["step"])
        rng = np.random.default_rng(config.seed + step)  # a fresh, reproducible stream after resume
        if "optimiser" in state:
            optimiser.load_state_dict(state["optimiser"])
            progress(f"resumed {run_dir} at step {step}")
        else:  # a finished run committed with its weights only, to keep the repository small
            progress(f"resumed {run_dir} at step {step} from weights only: the optimiser restarts")
    progress(f"model: {count_parameters(model)} parameters; data: {summary}")

    def save() -> None:
        tmp = checkpoint_path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(), "step": step}, tmp)
        tmp.replace(checkpoint_path)

    log = (run_dir / "log.jsonl").open("a")
    started = time.time()
    while step < config.steps:
        # Cosine decay to 5 % of the initial rate over the planned steps.
        lr = config.learning_rate * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / config.steps)))
        for group in optimiser.param_groups:
            group["lr"] = lr
        noisy, target = mixer.batch(config.batch_size, rng)
        spec_noisy, spec_target = stft(torch.from_numpy(noisy)), stft(torch.from_numpy(target))
        gains, _ = model(spec_noisy.abs(), model.initial_state(config.batch_size))
        loss = compressed_spectral_loss(spec_noisy * gains, spec_target)
        if config.si_sdr_weight:
            waveform = istft(spec_noisy * gains, noisy.shape[1])
            loss = loss + config.si_sdr_weight * negative_si_sdr(waveform, torch.from_numpy(target))
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimiser.step()
        step += 1
        if step % config.log_every == 0:
            row = {"step": step, "loss": loss.item(), "lr": lr, "seconds": round(time.time() - started, 1)}
            log.write(json.dumps(row) + "\n")
            log.flush()
        if step % config.checkpoint_every == 0 or step == config.steps:
            save()
        if step % config.validate_every == 0 or step == config.steps:
            scores = validate(model, val_noisy, val_target)
            log.write(json.dumps({"step": step, **scores}) + "\n")
            log.flush()
            progress(f"step {step}: loss {loss.item():.4f}, validation {scores}")
            plot_curve(run_dir)
    log.close()
    return checkpoint_path

"""Speech Commands v0.02 (Warden 2018), ten command words, as 161 x 20 MFCC sequences.

Features follow Kidger et al. 2020 (Neural CDE), who used
``torchaudio.transforms.MFCC(log_mels=True, n_mfcc=20, melkwargs=dict(n_fft=200, n_mels=64))``
at 16 kHz. That transform is re-implemented here in numpy (no torchaudio: it pins its own
torch; no librosa at run time: heavy), step for step:

- waveform: 16-bit PCM / 2**15, zero-padded or trimmed to 16000 samples (1 s);
- power spectrogram: periodic Hann window of 200 samples (12.5 ms), hop 100 (6.25 ms),
  ``center=True`` with reflect padding of 100 samples per side, so 16000 samples give
  ``1 + 16000 // 100 = 161`` frames;
- 64 triangular HTK-mel filters over 0..8000 Hz (no area normalisation);
- ``log(mel + 1e-6)``, then an orthonormal DCT-II keeping the first 20 coefficients.

Project choices (Kidger differ): short clips are zero-padded rather than discarded, and the
split is the dataset's own ``validation_list.txt`` / ``testing_list.txt`` (everything else of
the ten words is training) rather than a random 70/15/15 split. Each MFCC coefficient is
standardised with the mean/std over all frames of the training clips.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
# SHA-256 of the v0.02 archive, as published in torchaudio's SPEECHCOMMANDS dataset checksums.
KNOWN_HASH = "sha256:af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58"
WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SAMPLE_RATE = 16000
N_SAMPLES = 16000
N_FFT = 200
HOP = 100
N_MELS = 64
N_MFCC = 20
N_FRAMES = 1 + N_SAMPLES // HOP  # 161
LOG_OFFSET = 1e-6


def read_wav(path: str | Path, n_samples: int = N_SAMPLES) -> np.ndarray:
    """Mono 16-bit 16 kHz wav as float32 in [-1, 1), zero-padded/trimmed to ``n_samples``."""
    with wave.open(str(path), "rb") as w:
        if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, SAMPLE_RATE):
            raise ValueError(
                f"{path}: expected mono 16-bit {SAMPLE_RATE} Hz, got {w.getnchannels()} ch, "
                f"{8 * w.getsampwidth()} bit, {w.getframerate()} Hz"
            )
        audio = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    out = np.zeros(n_samples, np.float32)
    out[: min(len(audio), n_samples)] = audio[:n_samples] / 2.0**15
    return out


def mel_filterbank(
    n_freqs: int = N_FFT // 2 + 1, n_mels: int = N_MELS, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """(n_freqs, n_mels) triangular HTK-mel filters from 0 Hz to Nyquist, peak 1 (no norm)."""

    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    freqs = np.linspace(0, sample_rate // 2, n_freqs)
    f_pts = 700.0 * (10 ** (np.linspace(0, hz_to_mel(sample_rate / 2), n_mels + 2) / 2595.0) - 1.0)
    slopes = f_pts[None, :] - freqs[:, None]  # (n_freqs, n_mels + 2)
    f_diff = np.diff(f_pts)
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return np.maximum(0.0, np.minimum(down, up))


def dct_matrix(n_mfcc: int = N_MFCC, n_mels: int = N_MELS) -> np.ndarray:
    """(n_mels, n_mfcc) orthonormal DCT-II basis: ``coeffs = log_mel @ dct_matrix()``."""
    n = np.arange(n_mels)[:, None]
    k = np.arange(n_mfcc)[None, :]
    basis = np.cos(np.pi / n_mels * (n + 0.5) * k) * np.sqrt(2.0 / n_mels)
    basis[:, 0] /= np.sqrt(2.0)
    return basis


def power_spectrogram(audio: np.ndarray, n_fft: int = N_FFT, hop: int = HOP) -> np.ndarray:
    """(..., 1 + n // hop, n_fft // 2 + 1) |STFT|^2 of (..., n) audio; periodic Hann, centred
    with reflect padding (as torch.stft(center=True, pad_mode="reflect"))."""
    audio = np.asarray(audio, np.float64)
    pad = [(0, 0)] * (audio.ndim - 1) + [(n_fft // 2, n_fft // 2)]
    frames = np.lib.stride_tricks.sliding_window_view(
        np.pad(audio, pad, mode="reflect"), n_fft, axis=-1
    )
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    return np.abs(np.fft.rfft(frames[..., ::hop, :] * window, axis=-1)) ** 2


def mfcc(audio: np.ndarray) -> np.ndarray:
    """(..., 161, 20) float32 MFCCs of (..., 16000) clips (see the module docstring).

    Pass clips in batches: one large matrix product is much faster than many small ones
    (multithreaded BLAS has a large per-call overhead on small matrices).
    """
    spec = power_spectrogram(audio)
    # flattened to 2-D: one BLAS call for the batch, not one per clip
    mel = spec.reshape(-1, spec.shape[-1]) @ mel_filterbank()
    out = np.log(mel + LOG_OFFSET) @ dct_matrix()
    return out.reshape(*spec.shape[:-1], N_MFCC).astype(np.float32)


def list_files(root: str | Path) -> dict[str, list[str]]:
    """Relative paths ``word/clip.wav`` of the ten words per split, from the dataset's lists."""
    root = Path(root)

    def read_list(name):
        return {ln.strip() for ln in (root / name).read_text().splitlines() if ln.strip()}

    val, test = read_list("validation_list.txt"), read_list("testing_list.txt")
    out: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for word in WORDS:
        for p in sorted((root / word).glob("*.wav")):
            rel = f"{word}/{p.name}"
            out["test" if rel in test else "val" if rel in val else "train"].append(rel)
    return out


def _subsample(files: list[str], max_per_class: int, rng: np.random.Generator) -> list[str]:
    kept = []
    for word in WORDS:
        mine = [f for f in files if f.split("/", 1)[0] == word]
        if len(mine) > max_per_class:
            mine = [mine[i] for i in np.sort(rng.choice(len(mine), max_per_class, replace=False))]
        kept += mine
    return kept


def load_speech_commands(
    root: str | Path, *, max_per_class: int | None = None, seed: int = 0, batch_size: int = 512
) -> dict:
    """MFCC sequences of the ten Speech Commands words, split by the dataset's lists.

    Args:
        root: the unpacked archive (folders ``yes/``, ``no/``, ... and the two list files).
        max_per_class: keep at most this many clips per word and split (random, seeded), for
            quick runs; None keeps all.
        seed: seeds that subsampling only (the split itself is fixed by the lists).
        batch_size: clips featurised together (memory vs. speed only; results identical).

    Returns:
        ``{"train"|"val"|"test": {"x": (S, 161, 20) float32 standardised MFCCs (time, coeff),
        "y": (S,) int64 index into classes, "files": [word/clip.wav]}, "classes": list of the
        ten words, "mean", "std": (20,) float32 training statistics used}``.
    """
    rng = np.random.default_rng(seed)
    files = list_files(root)
    out: dict = {}
    for split in ("train", "val", "test"):
        names = (
            files[split] if max_per_class is None else _subsample(files[split], max_per_class, rng)
        )
        x = np.zeros((len(names), N_FRAMES, N_MFCC), np.float32)
        for s in range(0, len(names), batch_size):  # batches bound memory (35k clips = 2.2 GB)
            chunk = names[s : s + batch_size]
            x[s : s + len(chunk)] = mfcc(np.stack([read_wav(Path(root) / f) for f in chunk]))
        y = np.array([WORDS.index(f.split("/", 1)[0]) for f in names], np.int64)
        out[split] = {"x": x, "y": y, "files": names}
    if len(out["train"]["x"]) == 0:
        raise ValueError(f"no training clips of {WORDS} under {root}")
    frames = out["train"]["x"].reshape(-1, N_MFCC)
    mean, std = frames.mean(0, dtype=np.float64), frames.std(0, dtype=np.float64) + 1e-5
    for split in ("train", "val", "test"):
        out[split]["x"] = ((out[split]["x"] - mean) / std).astype(np.float32)
    out.update(classes=list(WORDS), mean=mean.astype(np.float32), std=std.astype(np.float32))
    return out

"""Speech Commands loader: wav reading, MFCC features (161 x 20), list-based split."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from gnode.datasets import load_speech_commands
from gnode.datasets.speech_commands import (
    WORDS,
    dct_matrix,
    mel_filterbank,
    mfcc,
    power_spectrogram,
    read_wav,
)

SR = 16000


def write_wav(path: Path, samples: np.ndarray, rate: int = SR) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes(np.asarray(samples, "<i2").tobytes())


def tone(freq: float, n: int = SR, amp: float = 0.3, seed: int = 0) -> np.ndarray:
    noise = 0.003 * np.random.default_rng(seed).standard_normal(n)
    return np.round((amp * np.sin(2 * np.pi * freq * np.arange(n) / SR) + noise) * 2**15)


FREQS = {w: 300.0 + 400.0 * k for k, w in enumerate(WORDS)}  # one tone per word


@pytest.fixture(scope="module")
def speech_root(tmp_path_factory) -> Path:
    """Four clips per word (clip 0 short, clip 3 too long); clip 1 is val, clip 2 is test."""
    root = tmp_path_factory.mktemp("sc")
    for w in WORDS:
        for j, n in enumerate((SR // 2, SR, SR, SR + 3000)):
            write_wav(root / w / f"{j:08x}_nohash_0.wav", tone(FREQS[w], n, seed=j))
    write_wav(root / "_background_noise_" / "noise.wav", tone(50.0))
    write_wav(root / "bed" / "0_nohash_0.wav", tone(50.0))  # not one of the ten words
    (root / "validation_list.txt").write_text(
        "".join(f"{w}/00000001_nohash_0.wav\n" for w in WORDS) + "bed/0_nohash_0.wav\n"
    )
    (root / "testing_list.txt").write_text("".join(f"{w}/00000002_nohash_0.wav\n" for w in WORDS))
    return root


@pytest.fixture(scope="module")
def speech(speech_root):
    return load_speech_commands(speech_root)


def test_read_wav_scales_pads_and_trims(tmp_path):
    write_wav(tmp_path / "a.wav", [0, 16384, -32768, 32767])
    a = read_wav(tmp_path / "a.wav")
    assert a.shape == (SR,) and a.dtype == np.float32
    np.testing.assert_array_equal(a[:4], [0, 0.5, -1, 32767 / 32768])
    assert np.all(a[4:] == 0)
    write_wav(tmp_path / "b.wav", np.arange(SR + 10) % 100)
    np.testing.assert_array_equal(read_wav(tmp_path / "b.wav") * 2**15, np.arange(SR) % 100)
    write_wav(tmp_path / "c.wav", [0, 1], rate=8000)
    with pytest.raises(ValueError, match="16000 Hz"):
        read_wav(tmp_path / "c.wav")


def test_splits_follow_the_lists(speech):
    for s, j in (("val", 1), ("test", 2)):
        assert speech[s]["files"] == [f"{w}/{j:08x}_nohash_0.wav" for w in WORDS]
    assert speech["train"]["files"] == [f"{w}/{j:08x}_nohash_0.wav" for w in WORDS for j in (0, 3)]
    assert speech["classes"] == list(WORDS)
    for s in ("train", "val", "test"):
        x, y = speech[s]["x"], speech[s]["y"]
        assert x.shape == (len(y), 161, 20) and x.dtype == np.float32 and y.dtype == np.int64
        np.testing.assert_array_equal(y, [WORDS.index(f.split("/")[0]) for f in speech[s]["files"]])


def test_features_normalised_on_train_and_discriminative(speech):
    frames = speech["train"]["x"].reshape(-1, 20).astype(np.float64)
    np.testing.assert_allclose(frames.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(frames.std(0), 1, atol=1e-3)
    assert speech["mean"].shape == speech["std"].shape == (20,)

    # a clip's mid-clip mean feature is nearest to the same word's train clip (same tone)
    def mid(x):
        return x[:, 20:60].mean(1)  # frames well inside even the half-second clip

    train = mid(speech["train"]["x"])[1::2]  # the full-length train clip of each word
    for s in ("val", "test"):
        d = np.linalg.norm(mid(speech[s]["x"])[:, None] - train[None], axis=-1)
        np.testing.assert_array_equal(d.argmin(1), np.arange(10))
        assert np.all(np.diag(d) * 5 < np.sort(d, 1)[:, 1])  # different tones: far apart


def test_short_clip_is_zero_padded(speech, speech_root):
    x = speech["train"]["x"][0]  # yes/00000000 lasts 0.5 s: the last frames are silence
    raw = mfcc(read_wav(speech_root / "yes" / "00000000_nohash_0.wav"))
    silent = np.log(1e-6) * dct_matrix()[:, 0].sum()  # c0 of log(0 + 1e-6) in every mel band
    np.testing.assert_allclose(raw[90:, 0], silent, rtol=1e-5)
    assert np.all(raw[:70, 0] > silent + 10)
    assert np.ptp(x[90:], axis=0).max() < 1e-4


def test_max_per_class_is_seeded(speech_root):
    a = load_speech_commands(speech_root, max_per_class=1, seed=3)
    b = load_speech_commands(speech_root, max_per_class=1, seed=3)
    assert [len(a[s]["y"]) for s in ("train", "val", "test")] == [10, 10, 10]
    np.testing.assert_array_equal(a["train"]["y"], np.arange(10))
    assert a["train"]["files"] == b["train"]["files"]
    picks = {
        tuple(load_speech_commands(speech_root, max_per_class=1, seed=s)["train"]["files"])
        for s in range(4)
    }
    assert len(picks) > 1


def test_mfcc_shape_and_time_frequency_layout():
    t = np.arange(SR) / SR
    spec = power_spectrogram(np.sin(2 * np.pi * 1040.0 * t))
    assert spec.shape == (161, 101)  # 1 + 16000 // 100 frames, n_fft // 2 + 1 bins of 80 Hz
    assert np.all(spec[2:-2].argmax(1) == 13)  # 1040 Hz is bin 13 (edge frames: reflect pad)
    fb = mel_filterbank()
    assert fb.shape == (101, 64) and fb.max() <= 1 + 1e-12
    d = dct_matrix()
    np.testing.assert_allclose(d.T @ d, np.eye(20), atol=1e-12)  # orthonormal columns
    batch = np.stack([np.sin(2 * np.pi * f * t) for f in (500.0, 2000.0)])
    m = mfcc(batch)
    assert m.shape == (2, 161, 20) and m.dtype == np.float32
    np.testing.assert_array_equal(m[1], mfcc(batch[1]))


def test_power_spectrogram_matches_torch_stft():
    import torch

    a = np.random.default_rng(0).standard_normal(SR)
    ref = (
        torch.stft(
            torch.tensor(a),
            200,
            100,
            200,
            window=torch.hann_window(200, dtype=torch.float64),
            center=True,
            pad_mode="reflect",
            return_complex=True,
        ).abs()
        ** 2
    )
    np.testing.assert_allclose(power_spectrogram(a), ref.numpy().T, rtol=1e-9, atol=1e-9)


def test_mfcc_matches_librosa_reference():
    librosa = pytest.importorskip("librosa")
    a = tone(700.0, seed=1) / 2**15
    with pytest.warns(UserWarning, match="Empty filters"):  # 64 mels on 101 bins: expected
        fb = librosa.filters.mel(
            sr=SR, n_fft=200, n_mels=64, fmin=0, fmax=8000, htk=True, norm=None
        )
    np.testing.assert_allclose(mel_filterbank(), fb.T, atol=1e-6)
    S = np.abs(librosa.stft(a, n_fft=200, hop_length=100, center=True, pad_mode="reflect")) ** 2
    ref = librosa.feature.mfcc(S=np.log(fb @ S + 1e-6), n_mfcc=20, dct_type=2, norm="ortho").T
    np.testing.assert_allclose(mfcc(a), ref, rtol=1e-4, atol=1e-3)

"""Spectral features in torch: STFT, log-mel and MFCC (with deltas), batched, CPU or GPU.

Each operation is a plain function over a tensor shaped ``[..., samples]`` (typically
``[batch, channels, samples]``) plus a thin ``nn.Module`` that stores the settings and
registers the constant tensors (window, mel filterbank, DCT matrix) as buffers, so the module
moves with ``.to(device)`` and exports with the model.

Parameter names and defaults follow librosa (``n_fft``, ``hop_length``, ``n_mels``, ``fmin``,
``top_db``...) and the results match librosa on the same parameters: librosa is the oracle
the tests check against. The mel filterbank and the DCT are built here in numpy (Slaney or
HTK mel scale, Slaney area normalization, orthonormal DCT-II), so the frontend does not need
librosa at run time.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from earmark.errors import ParameterError

__all__ = [
    "MFCC",
    "STFT",
    "LogMel",
    "dct_matrix",
    "delta",
    "framed",
    "hz_to_mel",
    "logmel",
    "mel_filterbank",
    "mel_to_hz",
    "mfcc",
    "power_to_db",
    "stft",
]

# ---------------------------------------------------------------------------------------------
# Mel scale, filterbank and DCT (numpy; constants for the torch code)


def hz_to_mel(frequencies: np.ndarray | float, *, htk: bool = False) -> np.ndarray:
    """Frequencies in Hz to mels: HTK's ``2595 log10(1 + f/700)`` or Slaney's (linear below
    1 kHz, logarithmic above), the latter librosa's default."""
    f = np.asanyarray(frequencies, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    mels = f / f_sp
    return np.where(
        f >= min_log_hz,
        min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep,
        mels,
    )


def mel_to_hz(mels: np.ndarray | float, *, htk: bool = False) -> np.ndarray:
    """Mels to Hz; the inverse of :func:`hz_to_mel`."""
    m = np.asanyarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@functools.lru_cache(maxsize=32)
def mel_filterbank(
    *,
    sr: int,
    n_fft: int,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: Literal["slaney"] | None = "slaney",
) -> np.ndarray:
    """Triangular mel filters, float32 ``[n_mels, 1 + n_fft // 2]``, as ``librosa.filters.mel``.

    ``fmin`` / ``fmax`` in Hz (``fmax`` defaults to ``sr / 2``). ``norm='slaney'`` scales each
    triangle to unit area, so the mel energies are comparable across bands. The returned
    array is shared by the cache: copy it before writing to it.
    """
    fmax = sr / 2.0 if fmax is None else float(fmax)
    if not 0 <= fmin < fmax <= sr / 2.0 + 1e-6:
        raise ParameterError(f"need 0 <= fmin < fmax <= sr/2, got fmin={fmin}, fmax={fmax}")
    if n_mels < 1:
        raise ParameterError(f"n_mels must be >= 1, got {n_mels}")
    fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    mel_pts = np.linspace(hz_to_mel(fmin, htk=htk), hz_to_mel(fmax, htk=htk), n_mels + 2)
    mel_f = mel_to_hz(mel_pts, htk=htk)
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    elif norm is not None:
        raise ParameterError(f"unknown mel norm {norm!r}; use 'slaney' or None")
    weights = weights.astype(np.float32)
    weights.flags.writeable = False
    return weights


@functools.lru_cache(maxsize=32)
def dct_matrix(n_mfcc: int, n_mels: int) -> np.ndarray:
    """Orthonormal DCT-II as float32 ``[n_mfcc, n_mels]`` (``scipy.fft.dct(norm='ortho')``)."""
    if not 1 <= n_mfcc <= n_mels:
        raise ParameterError(f"need 1 <= n_mfcc <= n_mels, got n_mfcc={n_mfcc}, n_mels={n_mels}")
    k = np.arange(n_mfcc)[:, None]
    n = np.arange(n_mels)[None, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_mels)) * np.sqrt(2.0 / n_mels)
    basis[0] /= np.sqrt(2.0)
    basis = basis.astype(np.float32)
    basis.flags.writeable = False
    return basis


@functools.lru_cache(maxsize=32)
def _window(name: str, win_length: int) -> np.ndarray:
    # scipy's periodic ("fftbins") windows are exactly what librosa.filters.get_window uses;
    # the usual Hann window is computed here, since importing scipy.signal costs ~80 MB RSS.
    if name == "hann":
        w = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win_length) / win_length)).astype(np.float32)
    else:
        import scipy.signal

        w = scipy.signal.get_window(name, win_length, fftbins=True).astype(np.float32)
    w.flags.writeable = False
    return w


def _as_tensor(a: np.ndarray, like: Tensor) -> Tensor:
    return torch.from_numpy(np.array(a)).to(device=like.device, dtype=like.dtype)


# ---------------------------------------------------------------------------------------------
# Functions


def _check_wave(y: Tensor) -> Tensor:
    if not isinstance(y, Tensor):
        y = torch.as_tensor(np.asarray(y))
    if y.ndim < 1 or y.shape[-1] == 0:
        raise ParameterError(f"expected audio shaped [..., samples], got {tuple(y.shape)}")
    if not y.is_floating_point():
        raise ParameterError(f"expected floating-point audio, got {y.dtype}")
    return y


_CHUNK_BYTES = 8 << 20  # frames per CPU chunk sized so the windowed frames stay in cache


def _spectrogram(
    y: Tensor,
    window: Tensor,
    *,
    n_fft: int,
    hop_length: int,
    center: bool,
    pad_mode: str,
    power: float | None,
    project: Tensor | None = None,
) -> Tensor:
    """STFT of ``[..., samples]`` as ``[..., freq, frames]``; with ``power``, ``|X| ** power``
    optionally projected by ``project`` (``[freq, bands]``, e.g. the transposed mel matrix)
    into ``[..., bands, frames]``.

    The complex STFT is ``torch.stft``. The power path frames the signal itself, because
    ``torch.stft`` returns a transposed ``[freq, frames]`` view that every later step walks
    with bad strides: frames are cut in ``[frames, freq]`` order, only the ``win_length``
    samples under the window are multiplied (the window sits centred in the ``n_fft`` frame;
    a circular shift inside the frame does not change ``|X|``), the batch is processed in
    chunks that stay in cache on the CPU, and the result is transposed once at the end.
    """
    lead = y.shape[:-1]
    flat = y.reshape(-1, y.shape[-1])
    if not center and flat.shape[-1] < n_fft:
        raise ParameterError(
            f"input is too short (n={flat.shape[-1]}) for n_fft={n_fft} with center=False"
        )
    win_length = window.shape[-1]
    if power is None:
        spec = torch.stft(
            flat,
            n_fft=n_fft,
            hop_length=hop_length,
            win_length=win_length,
            window=window,
            center=center,
            pad_mode=pad_mode,
            return_complex=True,
        )
        return spec.reshape(*lead, *spec.shape[-2:])
    padded = flat.shape[-1] + (2 * (n_fft // 2) if center else 0)
    n_frames = 1 + (padded - n_fft) // hop_length
    offset = (n_fft - win_length) // 2
    step = flat.shape[0]
    if flat.device.type == "cpu":
        step = max(1, _CHUNK_BYTES // (n_frames * n_fft * flat.element_size()))
    outs = []
    # Windowed frames are written into the head of a zeroed [chunk, frames, n_fft] buffer kept
    # across chunks: the window multiply and the zero padding to n_fft in one pass (rfft's
    # own padding would zero-fill and copy every frame again).
    buf = flat.new_zeros((min(step, flat.shape[0]), n_frames, n_fft))
    for i in range(0, flat.shape[0], step):
        part = flat[i : i + step]
        if center:
            part = torch.nn.functional.pad(part, (n_fft // 2, n_fft // 2), mode=pad_mode)
        frames = part[:, offset:].unfold(-1, win_length, hop_length)[:, :n_frames]
        held = buf[: part.shape[0]]
        torch.mul(frames, window, out=held[..., :win_length])
        spec = torch.fft.rfft(held, n=n_fft)
        if power == 2.0 and project is not None:
            # |X|^2 projected: square the [re, im] pairs in place and project them with each
            # filterbank row repeated for re and im: one pass and one matmul, no temporaries.
            pairs = torch.view_as_real(spec).square_().flatten(-2)
            outs.append(torch.matmul(pairs, project.repeat_interleave(2, dim=0)))
            continue
        if power == 2.0:  # |X|^2 = re^2 + im^2: no square root then square
            re, im = torch.view_as_real(spec).unbind(-1)
            S = torch.addcmul(re * re, im, im)
        else:
            S = spec.abs()
            if power != 1.0:
                S = S.pow(power)
        outs.append(S if project is None else torch.matmul(S, project))
    out = torch.cat(outs) if len(outs) > 1 else outs[0]
    return out.transpose(-1, -2).reshape(*lead, out.shape[-1], n_frames)


def stft(
    y: Tensor,
    *,
    n_fft: int = 2048,
    hop_length: int | None = None,
    win_length: int | None = None,
    window: str = "hann",
    center: bool = True,
    pad_mode: Literal["constant", "reflect"] = "constant",
    power: float | None = None,
) -> Tensor:
    """Short-time Fourier transform of ``y`` (``[..., samples]``).

    Returns ``[..., 1 + n_fft // 2, frames]``: complex when ``power`` is ``None``, else the
    magnitude raised to ``power`` (1: magnitude, 2: power). ``hop_length`` defaults to
    ``win_length // 4``; frames are centred with ``n_fft // 2`` samples of padding as in
    librosa (whose default ``pad_mode`` is also ``constant``).
    """
    y = _check_wave(y)
    win_length = win_length or n_fft
    hop_length = hop_length or win_length // 4
    w = _as_tensor(_window(window, win_length), y)
    return _spectrogram(
        y, w, n_fft=n_fft, hop_length=hop_length, center=center, pad_mode=pad_mode, power=power
    )


def power_to_db(
    S: Tensor, *, ref: float = 1.0, amin: float = 1e-10, top_db: float | None = 80.0
) -> Tensor:
    """Power to decibels: ``10 log10(max(S, amin) / ref)``, floored at ``top_db`` dB below the
    maximum. The maximum is taken per spectrogram over the last two dimensions
    ``[freq, frames]`` and, when there are three or more, over the channel dimension too
    (``[..., channels, freq, frames]``), so every item of a batch is treated as librosa treats
    that item alone."""
    if amin <= 0:
        raise ParameterError(f"amin must be > 0, got {amin}")
    db = 10.0 * torch.log10(torch.clamp(S, min=amin))
    db = db - 10.0 * float(np.log10(max(amin, ref)))
    if top_db is not None:
        if top_db < 0:
            raise ParameterError(f"top_db must be >= 0 dB, got {top_db}")
        dims = (-3, -2, -1) if db.ndim >= 3 else (-2, -1)
        db = torch.maximum(db, db.amax(dim=dims, keepdim=True) - top_db)
    return db


def _logmel(
    y: Tensor,
    window: Tensor,
    mel_fb: Tensor,
    *,
    n_fft: int,
    hop_length: int,
    center: bool,
    pad_mode: str,
    power: float,
    top_db: float | None,
    amin: float,
    ref: float,
) -> Tensor:
    mel = _spectrogram(
        y,
        window,
        n_fft=n_fft,
        hop_length=hop_length,
        center=center,
        pad_mode=pad_mode,
        power=power,
        project=mel_fb.T,
    )
    return power_to_db(mel, ref=ref, amin=amin, top_db=top_db).contiguous()


def logmel(
    y: Tensor,
    sr: int,
    *,
    n_fft: int = 2048,
    hop_length: int | None = None,
    win_length: int | None = None,
    window: str = "hann",
    center: bool = True,
    pad_mode: Literal["constant", "reflect"] = "constant",
    power: float = 2.0,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: Literal["slaney"] | None = "slaney",
    ref: float = 1.0,
    amin: float = 1e-10,
    top_db: float | None = 80.0,
) -> Tensor:
    """Log-mel spectrogram in dB, ``[..., n_mels, frames]``.

    Equal to ``librosa.power_to_db(librosa.feature.melspectrogram(...), top_db=...)`` on the
    same parameters. ``sr``, ``fmin``, ``fmax`` in Hz; ``top_db`` in dB (``None``: no floor).
    """
    y = _check_wave(y)
    win_length = win_length or n_fft
    hop_length = hop_length or win_length // 4
    w = _as_tensor(_window(window, win_length), y)
    fb = _as_tensor(
        mel_filterbank(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm),
        y,
    )
    return _logmel(
        y,
        w,
        fb,
        n_fft=n_fft,
        hop_length=hop_length,
        center=center,
        pad_mode=pad_mode,
        power=power,
        top_db=top_db,
        amin=amin,
        ref=ref,
    )


@functools.lru_cache(maxsize=8)
def _delta_kernel(width: int, order: int) -> np.ndarray:
    # Savitzky-Golay coefficients: what librosa.feature.delta convolves with (via scipy).
    import scipy.signal

    return scipy.signal.savgol_coeffs(width, polyorder=order, deriv=order, use="conv")


def delta(x: Tensor, *, width: int = 9, order: int = 1) -> Tensor:
    """Local derivative of ``order`` along the last axis (frames), as ``librosa.feature.delta``.

    Interior frames use a Savitzky-Golay filter of ``width`` frames; the first and last
    ``width // 2`` frames take the value of the nearest full window, which is what librosa's
    default ``mode='interp'`` gives for a polynomial of degree ``order``. Inputs shorter than
    ``width`` use the largest odd width that fits (librosa raises instead).
    """
    if width < 3 or width % 2 == 0:
        raise ParameterError(f"width must be an odd integer >= 3, got {width}")
    if order < 1:
        raise ParameterError(f"order must be >= 1, got {order}")
    n = x.shape[-1]
    width = min(width, n if n % 2 else n - 1)
    if width < max(3, order + 1 + (order % 2 == 0)):
        return torch.zeros_like(x)
    half = width // 2
    kernel = torch.from_numpy(_delta_kernel(width, order).copy()).to(x)
    lead = x.shape[:-1]
    flat = x.reshape(-1, 1, n)
    # conv1d correlates; the savgol "conv" kernel is meant for convolution, hence the flip.
    inner = torch.nn.functional.conv1d(flat, kernel.flip(0).view(1, 1, -1))
    out = torch.cat(
        [inner[..., :1].expand(-1, -1, half), inner, inner[..., -1:].expand(-1, -1, half)], dim=-1
    )
    return out.reshape(*lead, n)


def _mfcc_from_logmel(mel_db: Tensor, dct: Tensor, lifter: float, deltas: int) -> Tensor:
    coeffs = torch.matmul(dct, mel_db)
    if lifter > 0:
        k = torch.arange(coeffs.shape[-2], device=coeffs.device, dtype=coeffs.dtype)
        coeffs = coeffs * (1 + (lifter / 2) * torch.sin(torch.pi * (k + 1) / lifter))[:, None]
    parts = [coeffs] + [delta(coeffs, order=o) for o in range(1, deltas + 1)]
    return torch.cat(parts, dim=-2) if deltas else coeffs


def mfcc(
    y: Tensor,
    sr: int,
    *,
    n_mfcc: int = 20,
    deltas: int = 0,
    lifter: float = 0.0,
    n_fft: int = 2048,
    hop_length: int | None = None,
    win_length: int | None = None,
    window: str = "hann",
    center: bool = True,
    pad_mode: Literal["constant", "reflect"] = "constant",
    power: float = 2.0,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    mel_norm: Literal["slaney"] | None = "slaney",
    top_db: float | None = 80.0,
) -> Tensor:
    """Mel-frequency cepstral coefficients, ``[..., n_mfcc * (1 + deltas), frames]``.

    The coefficients equal ``librosa.feature.mfcc`` (orthonormal DCT-II of the log-mel in dB);
    with ``deltas`` 1 or 2 the first and second derivatives (``librosa.feature.delta``) are
    stacked below them. ``mel_norm`` is the filterbank normalization (librosa's ``norm`` in
    ``melspectrogram``; in ``librosa.feature.mfcc`` that name means the DCT norm, which is
    always orthonormal here).
    """
    if deltas not in (0, 1, 2):
        raise ParameterError(f"deltas must be 0, 1 or 2, got {deltas}")
    mel_db = logmel(
        y,
        sr,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=win_length,
        window=window,
        center=center,
        pad_mode=pad_mode,
        power=power,
        n_mels=n_mels,
        fmin=fmin,
        fmax=fmax,
        htk=htk,
        norm=mel_norm,
        top_db=top_db,
    )
    return _mfcc_from_logmel(mel_db, _as_tensor(dct_matrix(n_mfcc, n_mels), mel_db), lifter, deltas)


# ---------------------------------------------------------------------------------------------
# Modules: settings + buffers, forward calls the functions above


def _uncentred(module: nn.Module, y: Tensor, project: Tensor | None = None) -> Tensor:
    """``module``'s spectrogram of ``y`` without centre padding (for :func:`framed`)."""
    return _spectrogram(
        _check_wave(y),
        module.window,
        n_fft=module.n_fft,
        hop_length=module.hop_length,
        center=False,
        pad_mode=module.pad_mode,
        power=module.power,
        project=project,
    )


class STFT(nn.Module):
    """Module form of :func:`stft`: ``[..., samples] -> [..., 1 + n_fft // 2, frames]``."""

    def __init__(
        self,
        *,
        n_fft: int = 2048,
        hop_length: int | None = None,
        win_length: int | None = None,
        window: str = "hann",
        center: bool = True,
        pad_mode: Literal["constant", "reflect"] = "constant",
        power: float | None = 2.0,
    ) -> None:
        super().__init__()
        win_length = win_length or n_fft
        self.n_fft, self.hop_length = n_fft, hop_length or win_length // 4
        self.center, self.pad_mode, self.power = center, pad_mode, power
        self.register_buffer("window", torch.from_numpy(_window(window, win_length).copy()))

    def forward(self, y: Tensor) -> Tensor:
        return _spectrogram(
            _check_wave(y),
            self.window,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            center=self.center,
            pad_mode=self.pad_mode,
            power=self.power,
        )

    def frames(self, y: Tensor) -> Tensor:
        """The frames of ``y`` without centre padding (frame ``j`` covers samples
        ``[j * hop, j * hop + n_fft)``), before any per-spectrogram step: see :func:`framed`."""
        return _uncentred(self, y)

    def finish(self, frames: Tensor) -> Tensor:
        """What :meth:`forward` does after framing (nothing, for a plain spectrogram)."""
        return frames


class LogMel(nn.Module):
    """Module form of :func:`logmel`: ``[..., samples] -> [..., n_mels, frames]`` in dB."""

    def __init__(
        self,
        sr: int,
        *,
        n_fft: int = 2048,
        hop_length: int | None = None,
        win_length: int | None = None,
        window: str = "hann",
        center: bool = True,
        pad_mode: Literal["constant", "reflect"] = "constant",
        power: float = 2.0,
        n_mels: int = 128,
        fmin: float = 0.0,
        fmax: float | None = None,
        htk: bool = False,
        norm: Literal["slaney"] | None = "slaney",
        ref: float = 1.0,
        amin: float = 1e-10,
        top_db: float | None = 80.0,
    ) -> None:
        super().__init__()
        win_length = win_length or n_fft
        self.sr, self.n_fft, self.hop_length = sr, n_fft, hop_length or win_length // 4
        self.center, self.pad_mode, self.power = center, pad_mode, power
        self.ref, self.amin, self.top_db = ref, amin, top_db
        self.register_buffer("window", torch.from_numpy(_window(window, win_length).copy()))
        fb = mel_filterbank(
            sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm
        )
        self.register_buffer("mel_fb", torch.from_numpy(fb.copy()))

    @property
    def n_mels(self) -> int:
        return self.mel_fb.shape[0]

    def forward(self, y: Tensor) -> Tensor:
        return _logmel(
            _check_wave(y),
            self.window,
            self.mel_fb,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            center=self.center,
            pad_mode=self.pad_mode,
            power=self.power,
            top_db=self.top_db,
            amin=self.amin,
            ref=self.ref,
        )

    def frames(self, y: Tensor) -> Tensor:
        """Mel power frames of ``y`` without centre padding (frame ``j`` covers samples
        ``[j * hop, j * hop + n_fft)``), before the conversion to dB: see :func:`framed`."""
        return _uncentred(self, y, project=self.mel_fb.T)

    def finish(self, frames: Tensor) -> Tensor:
        """Mel power frames of whole windows ``[..., n_mels, frames]`` to dB, with the
        ``top_db`` floor taken per window as :meth:`forward` does."""
        return power_to_db(frames, ref=self.ref, amin=self.amin, top_db=self.top_db).contiguous()


class MFCC(nn.Module):
    """Module form of :func:`mfcc`: ``[..., samples] -> [..., n_mfcc * (1 + deltas), frames]``.

    ``mel_norm`` is the filterbank normalization; other keyword arguments go to :class:`LogMel`.
    """

    def __init__(
        self,
        sr: int,
        *,
        n_mfcc: int = 20,
        deltas: int = 0,
        lifter: float = 0.0,
        mel_norm: Literal["slaney"] | None = "slaney",
        **logmel_kw,
    ) -> None:
        super().__init__()
        if deltas not in (0, 1, 2):
            raise ParameterError(f"deltas must be 0, 1 or 2, got {deltas}")
        self.logmel = LogMel(sr, norm=mel_norm, **logmel_kw)
        self.deltas, self.lifter = deltas, lifter
        self.register_buffer("dct", torch.from_numpy(dct_matrix(n_mfcc, self.logmel.n_mels).copy()))

    def forward(self, y: Tensor) -> Tensor:
        return _mfcc_from_logmel(self.logmel(y), self.dct, self.lifter, self.deltas)

    @property
    def n_fft(self) -> int:
        return self.logmel.n_fft

    @property
    def hop_length(self) -> int:
        return self.logmel.hop_length

    @property
    def center(self) -> bool:
        return self.logmel.center

    @property
    def pad_mode(self) -> str:
        return self.logmel.pad_mode

    def frames(self, y: Tensor) -> Tensor:
        """Mel power frames without centre padding: see :meth:`LogMel.frames`."""
        return self.logmel.frames(y)

    def finish(self, frames: Tensor) -> Tensor:
        """Mel power frames of whole windows to MFCCs (and deltas), per window."""
        return _mfcc_from_logmel(self.logmel.finish(frames), self.dct, self.lifter, self.deltas)


_FRAMED_SPAN = 1024  # frames computed at once by framed()


def framed(frontend: nn.Module, y: Tensor, starts: Sequence[int], length: int) -> Tensor:
    """``frontend`` (an :class:`STFT`, :class:`LogMel` or :class:`MFCC` with ``center=True``
    and constant padding) applied to the windows ``y[..., s : s + length]`` for each start
    ``s`` in ``starts`` (samples, multiples of the frontend's hop), computing the frames that
    overlapping windows share once.

    ``y`` is ``[channels, samples]`` and must hold ``n_fft // 2`` samples of context before
    the first start and after the last window's end (zeros at a recording's edges: exactly
    the centre padding of a clip). Returns ``[windows, channels, bins, frames]``, equal to
    ``frontend(stack of the windows)`` to float rounding except that the frames at a window's
    edges see the neighbouring audio instead of zero padding.
    """
    hop, half = frontend.hop_length, frontend.n_fft // 2
    if not frontend.center or frontend.pad_mode != "constant":
        raise ParameterError("shared frames need a frontend with centre, constant padding")
    offsets = torch.as_tensor(list(starts), dtype=torch.long)
    if len(offsets) == 0:
        raise ParameterError("no window starts given")
    if bool(((offsets - offsets[0]) % hop != 0).any()):
        raise ParameterError(f"window starts must be multiples of the hop ({hop} samples)")
    per_window = 1 + length // hop
    first = int(offsets[0]) - half  # the first frame's first sample
    stop = int(offsets[-1]) + (per_window - 1) * hop + half  # the last frame's end
    if first < 0 or stop > y.shape[-1]:
        raise ParameterError(
            f"y ({y.shape[-1]} samples) does not hold the windows and {half} samples of "
            "context on each side"
        )
    # Windows go in groups spanning at most _FRAMED_SPAN frames, so the transient FFT
    # buffers stay a few MB however many windows are asked for (frames shared across a
    # group boundary are computed twice).
    outs = []
    k = 0
    while k < len(offsets):
        span_end = int(offsets[k]) + max(_FRAMED_SPAN - per_window, 0) * hop
        j = k + int(torch.searchsorted(offsets[k:], span_end, right=True).clamp_min(1))
        group = offsets[k:j]
        lo = int(group[0]) - half
        hi = int(group[-1]) + (per_window - 1) * hop + half
        frames = frontend.frames(y[..., lo:hi])  # [channels, bins, T]
        index = ((group - group[0]) // hop)[:, None] + torch.arange(per_window)  # [windows, F]
        outs.append(frontend.finish(frames[..., index].permute(2, 0, 1, 3)))
        k = j
    return torch.cat(outs) if len(outs) > 1 else outs[0]

"""Loudness: audio the relay re-encodes comes out at one loudness (EBU R128), and every clip's
measured loudness is recorded with its rendition.

Two passes, as ffmpeg's ``loudnorm`` is meant to be used (ffmpeg-filters, "loudnorm";
http://k.ylo.ph/2016/04/04/loudnorm.html): the first measures the audio stream alone (no video
decoded), the second applies one gain for the whole clip, so music and speech keep their
dynamics. That gain is what loudnorm's ``linear=true`` mode computes from the ``measured_*``
figures (target minus measured integrated loudness, allowed while the measured true peak plus
the gain stays under the true-peak target), applied by a plain ``volume`` filter: loudnorm works
at 192 kHz even when all it does is one gain, which made the audio handler 4× dearer for
nothing. Only when one gain would push the peak over the target does loudnorm itself run with
the measured figures (its dynamic mode, which ``linear=true`` falls back to as well). One pass,
dynamic throughout, pumps and lands further from the target.

The first pass is ffmpeg's ``ebur128`` meter (``peak=true``), not loudnorm's own first pass: the
same ITU-R BS.1770 measurement, but loudnorm resamples everything to 192 kHz first, which made
its pass 4× dearer (0.6 against 0.14 CPU s for 30 s of AAC here). That matters most where
nothing is re-encoded: a remuxed clip and a copied MP3 are measured but left as they are.

A silent track measures ``-inf`` (ebur128: -70 LUFS and a peak of ``-inf``): nothing is applied
to it (no gain makes silence loud) and its loudness is recorded as ``None``.

``loudness_filter`` is the second pass's filter as a string, for any encode that wants the same
audio (the HLS ladder); ``apply`` is the same on an ffmpeg-python stream.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Final

from handlers import ffmpeg as av
from relay.errors import MediaError
from relay.model import HandlerInput

TARGET_LUFS: Final = -16.0
"""Integrated loudness for the web (what podcasts and most players aim at)."""
TRUE_PEAK_DBTP: Final = -1.5
LOUDNESS_RANGE_LU: Final = 11.0
SAMPLE_RATE: Final = 48000
"""loudnorm works at 192 kHz and hands that on: every output is resampled to this."""

_SILENT_BELOW: Final = -70.0
"""EBU R128's absolute gate: anything quieter has no integrated loudness."""
_SUMMARY: Final = re.compile(
    r"Summary:.*?I:\s*(?P<i>\S+) LUFS.*?Threshold:\s*(?P<thresh>\S+) LUFS.*?"
    r"LRA:\s*(?P<lra>\S+) LU.*?Peak:\s*(?P<tp>\S+) dBFS",
    re.S,
)


@dataclass(frozen=True, slots=True)
class Measured:
    """What the first pass found in the input, and the target it is taken to."""

    integrated: float | None
    """LUFS; None for silence (``-inf``)."""
    true_peak: float | None
    """dBTP; None for silence."""
    lra: float
    """Loudness range, LU."""
    threshold: float
    """The relative gate of the integrated loudness, LUFS (loudnorm's ``measured_thresh``)."""
    target: float = TARGET_LUFS

    @property
    def gain(self) -> float:
        """dB that bring the integrated loudness to the target (0 for silence)."""
        return 0.0 if self.integrated is None else self.target - self.integrated

    @property
    def linear(self) -> bool:
        """One gain reaches the target without the true peak passing ``TRUE_PEAK_DBTP``."""
        return self.true_peak is not None and self.true_peak + self.gain <= TRUE_PEAK_DBTP

    @property
    def silent(self) -> bool:
        return self.integrated is None or self.true_peak is None

    def as_json(self, normalized: bool) -> dict[str, Any]:
        """The rendition's ``loudness`` in the API (relay/openapi.json, ``Loudness``)."""
        return {
            "integrated_lufs": self.integrated,
            "true_peak_dbtp": self.true_peak,
            "range_lu": self.lra,
            "normalized_to_lufs": self.target if normalized else None,
        }


def recorded(measured: Measured | None, reencoded: bool) -> dict[str, Any] | None:
    """The rendition's ``loudness``: what was measured, and the target only when the sound was
    re-encoded through ``apply`` (a remux or a copied MP3 is left as it came) and is not
    silence."""
    if measured is None:
        return None
    return measured.as_json(normalized=reencoded and not measured.silent)


def target_from(options: dict[str, Any]) -> float | None:
    """The integrated loudness to aim at (``RELAY_AUDIO_LOUDNESS_LUFS``); None: left alone."""
    value = options.get("audio_loudness_lufs", TARGET_LUFS)
    if value is None:
        return None
    try:
        target = float(value)
    except (TypeError, ValueError):
        return TARGET_LUFS
    return max(-70.0, min(-5.0, target)) if math.isfinite(target) else TARGET_LUFS


def _settings(target: float) -> dict[str, Any]:
    return {"I": f"{target:g}", "TP": f"{TRUE_PEAK_DBTP:g}", "LRA": f"{LOUDNESS_RANGE_LU:g}"}


def _second_pass(measured: Measured) -> dict[str, Any]:
    assert measured.integrated is not None and measured.true_peak is not None
    return {
        **_settings(measured.target),
        "measured_I": f"{measured.integrated:.2f}",
        "measured_TP": f"{measured.true_peak:.2f}",
        "measured_LRA": f"{measured.lra:.2f}",
        "measured_thresh": f"{measured.threshold:.2f}",
        "linear": "true",
        "print_format": "none",
    }


def _chain(measured: Measured) -> list[tuple[str, dict[str, Any]]]:
    """The filters (name, options) of the second pass, before resampling."""
    if measured.silent:
        return []
    if measured.linear:
        return [("volume", {"volume": f"{measured.gain:.2f}dB"})]
    return [("loudnorm", _second_pass(measured))]


def loudness_filter(measured: Measured, sample_rate: int = SAMPLE_RATE) -> str:
    """The audio filter chain that brings this input to its target (``-af`` / ``-filter:a``);
    ``aresample`` only for silence, which is left as it is. The encode must set its channels
    (``-ac``): ffmpeg 5.1's loudnorm passes on no channel layout."""
    filters = [
        f"{name}=" + ":".join(f"{key}={value}" for key, value in options.items())
        for name, options in _chain(measured)
    ]
    return ",".join([*filters, f"aresample={sample_rate}"])


def apply(stream: Any, measured: Measured | None, sample_rate: int = SAMPLE_RATE) -> Any:
    """``stream`` (an ffmpeg-python audio stream) through ``loudness_filter``; as it is when
    nothing was measured or the input is silent."""
    if measured is None or measured.silent:
        return stream
    for name, options in _chain(measured):
        stream = stream.filter(name, **options)
    return stream.filter("aresample", sample_rate)


def parse(log: str, target: float) -> Measured | None:
    """The summary ebur128 logged at the end of the first pass; None if it logged none."""
    found = list(_SUMMARY.finditer(log))
    if not found:
        return None
    try:
        integrated, threshold, lra, true_peak = (
            float(found[-1].group(name)) for name in ("i", "thresh", "lra", "tp")
        )
    except ValueError:
        return None
    silent = not (math.isfinite(integrated) and integrated > _SILENT_BELOW)
    silent = silent or not math.isfinite(true_peak)
    return Measured(
        integrated=None if silent else round(integrated, 2),
        true_peak=None if silent else round(true_peak, 2),
        lra=round(lra, 2) if math.isfinite(lra) else 0.0,
        threshold=threshold if math.isfinite(threshold) else _SILENT_BELOW,
        target=target,
    )


async def measure(job: HandlerInput, demuxer: str, probed: av.Probe) -> Measured | None:
    """The first pass (ebur128) over ``probed``'s first audio stream; None when the relay is
    told to leave loudness alone, there is no audio, or the meter could not say (the clip then
    goes on as it is: loudness is an improvement, never a reason to fail an item)."""
    target = target_from(job.options)
    if target is None or probed.audio is None:
        return None
    stream = av.open_input(job.source, demuxer)[str(probed.audio.index)]
    node = av.output(
        # framelog=verbose: its line every 100 ms stays out of an info log.
        stream.filter("ebur128", peak="true", framelog="verbose"),
        path=job.workdir / "loudness.null",
        muxer="null",
    )
    try:
        log = await av.transcode(
            av.compile_args(node, loglevel="info"),
            timeout=av.budget(probed.duration, job.limits.timeout),
            memory_bytes=av.memory_limit(job.options),
            max_seconds=job.limits.max_duration + 1,
        )
    except MediaError as exc:
        if exc.code in ("media.timeout", "media.too_long"):
            raise
        return None
    return parse(log, target)

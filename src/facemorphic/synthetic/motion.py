"""What the synthetic subject does over time: AU activations, talking, blinks and idle head motion.

A recording is a :class:`Script`, a handful of parametric pieces that can be evaluated at any time
(the RGB frames at 30 fps and the event renders at several hundred Hz sample the same motion):

* :class:`Activation` - one AU following an onset-apex-offset profile (smooth cosine ramps up to a
  peak intensity, a hold, a ramp back down), as in FACS-coded sequences;
* :class:`Talk` - mouth motion while speaking: lips part (AU25) and the jaw drops (AU26) at a syllable
  rate of 3-5 Hz with a slowly varying loudness envelope;
* idle motion - small head sway (sums of slow sinusoids, a few tenths of a degree) and a fraction of a
  millimetre of head translation, always present, plus spontaneous blinks (AU45 activations at about one every four
  seconds, except in AU43 / AU45 recordings).

AU intensities are in [0, 1] in the class order of :data:`facemorphic.ACTION_UNITS`; head AUs 51-56
drive the head pose with the peak angles of :data:`facemorphic.synthetic.face.HEAD_AU_DEGREES`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .. import ACTION_UNITS, au_class_index
from .face import HEAD_AU_DEGREES

N_CLASSES = len(ACTION_UNITS)
_BLINK = au_class_index(45)
_LIPS_PART = au_class_index(25)
_JAW_DROP = au_class_index(26)

#: Sentences read aloud in AU_READING recordings (public-domain style pangrams and plain sentences).
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Pack my box with five dozen liquor jugs.",
    "A wizard's job is to vex chumps quickly in fog.",
    "The early bird catches the worm before breakfast.",
    "Please bring the blue umbrella when it rains tomorrow.",
    "We walked along the river until the sun went down.",
    "Every morning she reads the newspaper with a cup of tea.",
    "The train to the city leaves at half past seven.",
    "My grandmother planted tomatoes and basil in the garden.",
    "How vexingly quick daft zebras jump over the fence.",
    "The museum opens its new exhibition next Thursday.",
    "Bright stars filled the sky above the quiet village.",
    "He forgot his keys on the kitchen table again.",
    "Children laughed as the puppy chased its own tail.",
    "The library is closed on public holidays.",
    "Fresh bread smells wonderful early in the morning.",
)


def _ease(x: np.ndarray) -> np.ndarray:
    """Cosine ease from 0 to 1 on x in [0, 1]."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))


@dataclass
class Activation:
    """One AU with an onset-apex-offset profile; times in seconds from RGB time zero."""

    au: int
    start: float
    onset: float
    hold: float
    offset: float
    peak: float

    @property
    def apex_start(self) -> float:
        return self.start + self.onset

    @property
    def apex_end(self) -> float:
        return self.start + self.onset + self.hold

    @property
    def end(self) -> float:
        return self.apex_end + self.offset

    def value(self, t: np.ndarray) -> np.ndarray:
        rise = _ease((t - self.start) / self.onset)
        fall = 1.0 - _ease((t - self.apex_end) / self.offset)
        return self.peak * np.minimum(rise, fall)


@dataclass
class Talk:
    """Speaking from ``start`` to ``end``: AU25 and AU26 pulse with the syllables."""

    start: float
    end: float
    syllable_hz: float
    phase: float
    lips: float
    jaw: float
    envelope_hz: float
    envelope_phase: float

    def values(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gate = np.minimum(_ease((t - self.start) / 0.15), 1.0 - _ease((t - self.end + 0.15) / 0.15))
        syllable = np.clip(np.sin(2 * np.pi * self.syllable_hz * t + self.phase), 0.0, None)
        envelope = 0.65 + 0.35 * np.sin(2 * np.pi * self.envelope_hz * t + self.envelope_phase)
        s = gate * syllable * envelope
        return self.lips * np.sqrt(s), self.jaw * s


@dataclass
class Script:
    """Everything one recording's subject does; :meth:`evaluate` samples it at any times."""

    duration: float
    activations: list[Activation] = field(default_factory=list)
    talks: list[Talk] = field(default_factory=list)
    sway_amplitude_deg: np.ndarray = field(default_factory=lambda: np.zeros((3, 2)))
    sway_hz: np.ndarray = field(default_factory=lambda: np.ones((3, 2)))
    sway_phase: np.ndarray = field(default_factory=lambda: np.zeros((3, 2)))
    translation_m: np.ndarray = field(default_factory=lambda: np.zeros(3))
    translation_hz: np.ndarray = field(default_factory=lambda: np.ones(3))
    translation_phase: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def evaluate(self, times) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """AU intensities [T, 24], head pose [T, 3] (yaw, pitch, roll degrees), head translation [T, 3] m."""
        t = np.asarray(times, dtype=np.float64)
        au = np.zeros((len(t), N_CLASSES))
        for act in self.activations:
            au[:, au_class_index(act.au)] += act.value(t)
        for talk in self.talks:
            lips, jaw = talk.values(t)
            au[:, _LIPS_PART] += lips
            au[:, _JAW_DROP] += jaw
        au = np.clip(au, 0.0, 1.0)
        sway = (self.sway_amplitude_deg[None] * np.sin(2 * np.pi * self.sway_hz[None] * t[:, None, None]
                                                        + self.sway_phase[None])).sum(-1)
        head = lambda a: au[:, au_class_index(a)] * HEAD_AU_DEGREES[a]  # noqa: E731
        pose = sway + np.stack([head(51) - head(52), head(53) - head(54), head(55) - head(56)], -1)
        translation = self.translation_m * np.sin(2 * np.pi * self.translation_hz * t[:, None] + self.translation_phase)
        return au, pose, translation

    def describe(self) -> dict:
        """A JSON-able description (stored in the truth file)."""
        return {"duration": self.duration, "activations": [asdict(a) for a in self.activations],
                "talks": [asdict(k) for k in self.talks]}


def _idle(rng: np.random.Generator, duration: float, blinks: bool) -> Script:
    script = Script(duration=duration)
    script.sway_amplitude_deg = rng.uniform(0.03, 0.15, size=(3, 2))
    script.sway_hz = rng.uniform(0.1, 0.4, size=(3, 2))
    script.sway_phase = rng.uniform(0, 2 * np.pi, size=(3, 2))
    script.translation_m = rng.uniform(0.0001, 0.0004, size=3)
    script.translation_hz = rng.uniform(0.1, 0.4, size=3)
    script.translation_phase = rng.uniform(0, 2 * np.pi, size=3)
    if blinks:
        t = rng.exponential(4.0)
        while t < duration:
            script.activations.append(_blink(rng, t))
            t += 0.6 + rng.exponential(4.0)
    return script


def _blink(rng: np.random.Generator, start: float) -> Activation:
    return Activation(45, start, rng.uniform(0.06, 0.1), rng.uniform(0.02, 0.05), rng.uniform(0.1, 0.16),
                      rng.uniform(0.85, 1.0))


def _activation(rng: np.random.Generator, au: int, start: float, scale: float) -> Activation:
    """An AU activation with onset/hold/offset durations proportional to ``scale`` seconds."""
    if au == 45:
        return _blink(rng, start)
    peak = rng.uniform(0.65, 1.0)
    return Activation(au, start, rng.uniform(0.1, 0.16) * scale, rng.uniform(0.1, 0.22) * scale,
                      rng.uniform(0.1, 0.16) * scale, peak)


def _talk(rng: np.random.Generator, start: float, end: float) -> Talk:
    return Talk(start, end, rng.uniform(3.0, 5.0), rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 0.9),
                rng.uniform(0.25, 0.55), rng.uniform(0.4, 1.0), rng.uniform(0, 2 * np.pi))


def au_script(rng: np.random.Generator, au: int, duration: float) -> Script:
    """An AU recording: idle, then one onset-apex-offset of ``au`` inside the recording."""
    script = _idle(rng, duration, blinks=au not in (43, 45))
    start = rng.uniform(0.12, 0.3) * duration
    script.activations.append(_activation(rng, au, start, duration))
    return script


def free_script(rng: np.random.Generator, duration: float) -> Script:
    """Free interaction: a few AUs of any kind at random times, overlapping with bouts of talking."""
    script = _idle(rng, duration, blinks=True)
    for _ in range(rng.integers(3, 6)):
        au = int(rng.choice(ACTION_UNITS))
        script.activations.append(_activation(rng, au, rng.uniform(0.0, 0.65) * duration, duration * 0.5))
    t = rng.uniform(0.1, 0.5)
    while t < duration - 0.6:
        end = min(duration - 0.1, t + rng.uniform(0.8, 1.6))
        script.talks.append(_talk(rng, t, end))
        t = end + rng.uniform(0.4, 1.2)
    return script


def reading_script(rng: np.random.Generator, duration: float) -> Script:
    """Reading a sentence aloud: talking throughout, blinks, now and then raised brows or a smile."""
    script = _idle(rng, duration, blinks=True)
    script.talks.append(_talk(rng, rng.uniform(0.2, 0.4), duration - rng.uniform(0.2, 0.4)))
    for _ in range(rng.integers(0, 2)):
        au = int(rng.choice([1, 2, 12]))
        script.activations.append(_activation(rng, au, rng.uniform(0.1, 0.6) * duration, duration * 0.4))
        script.activations[-1].peak *= 0.6
    return script

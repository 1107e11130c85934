"""The parameters of the detection model and the log-likelihood tables they imply.

See docs/detection-model.md for the derivation. Every number here is a probability with
a field meaning (how often a last gasp arrives, how often a lit meter fails to answer a
ping, ...), so an engineer can tune it from field data rather than guess a threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from detectors import _codes as c

# Probability that a device of each kind (substation .. transformer) is out at a random
# instant; ordered like gridwatch.topology.DEVICE_KINDS.
DEFAULT_OUTAGE_PRIOR: tuple[float, ...] = (1e-6, 1e-5, 5e-5, 5e-5, 5e-5, 1e-4, 2e-4)


def _check_probability(name: str, value: float, *, allow_one: bool = False) -> None:
    upper_ok = value <= 1.0 if allow_one else value < 1.0
    if not (value > 0.0 and upper_ok) or math.isnan(value):
        raise ValueError(f"{name} must be a probability in (0, 1), got {value!r}")


@dataclass(frozen=True)
class DetectionModel:
    """Observation model: how likely each kind of evidence is from a dark vs a lit meter."""

    p_gasp_delivery: float = 0.5  # a dark meter's last gasp reaches us
    p_comm_silent: float = 0.02  # a meter is silent for communication reasons
    p_false_off: float = 1e-4  # a lit meter sends gasp / zero-voltage read anyway
    p_ping_lost: float = 0.05  # a lit meter fails to answer a ping in time
    p_report_dark: float = 0.05  # a dark customer calls it in
    p_report_lit: float = 5e-4  # a lit customer reports an outage (own breaker, mistake)
    p_on_dark: float = 1e-4  # a dark meter is seen "on" (wrong connectivity, backfeed)
    p_on_seen_lit: float = 0.5  # a lit meter shows "on" evidence after the onset
    p_lit_unknown: float = 0.9  # a lit meter shows nothing after the onset
    outage_prior: tuple[float, ...] = field(default=DEFAULT_OUTAGE_PRIOR)
    v_dead_v: float = 20.0  # a read below this is "no supply"; above it is supplied
    v_max_v: float = 1000.0  # a read above this is corrupt, not evidence
    onset_lookback_s: float = 6 * 3600.0  # off evidence older than this does not set an onset
    # How many pings' worth of belief p_ping_lost carries before the engine has seen how
    # often this head-end actually answers (``observed_ping_answer_rate``).
    ping_rate_prior_n: float = 10.0

    def __post_init__(self) -> None:
        for name in (
            "p_gasp_delivery",
            "p_comm_silent",
            "p_false_off",
            "p_ping_lost",
            "p_report_dark",
            "p_report_lit",
            "p_on_dark",
            "p_on_seen_lit",
            "p_lit_unknown",
        ):
            _check_probability(name, float(getattr(self, name)))
        if not self.outage_prior:
            raise ValueError("outage_prior needs one probability per device kind")
        for i, p in enumerate(self.outage_prior):
            _check_probability(f"outage_prior[{i}]", float(p))
        if not (0.0 <= self.v_dead_v < self.v_max_v):
            raise ValueError("need 0 <= v_dead_v < v_max_v")
        if not self.onset_lookback_s > 0:
            raise ValueError("onset_lookback_s must be > 0")
        if not (math.isfinite(self.ping_rate_prior_n) and self.ping_rate_prior_n > 0):
            raise ValueError("ping_rate_prior_n must be a finite number > 0")

    # Per-meter log-likelihood ratios log P(obs | dark) - log P(obs | lit).
    def llr_off_by_source(
        self, *, ping_answer_rate: float | None = None
    ) -> npt.NDArray[np.float64]:
        """``ping_answer_rate``: how often pings are answered at all (default: the field
        value 1 - p_ping_lost). A dark meter never answers, a lit one fails 1 - rate of
        the time, so a timeout weighs log(1 / (1 - rate)): nothing where nobody answers."""
        strong = math.log((1 - self.p_comm_silent) * self.p_gasp_delivery / self.p_false_off)
        table = np.zeros(c.N_METER_KINDS, dtype=np.float64)
        table[c.READING] = strong  # zero voltage
        table[c.LAST_GASP] = strong
        table[c.PING_OFF] = strong
        rate = 1.0 - self.p_ping_lost if ping_answer_rate is None else float(ping_answer_rate)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"ping_answer_rate must be in [0, 1], got {rate!r}")
        table[c.PING_TIMEOUT] = -math.log1p(-min(rate, 1.0 - self.p_ping_lost))
        table[c.REPORT_OUT] = math.log(self.p_report_dark / self.p_report_lit)
        return table

    def observed_ping_answer_rate(self, answered: int, timed_out: int) -> float:
        """The rate pings are answered, from what the engine saw (``answered`` replies,
        ``timed_out`` pings never answered), with the field value 1 - p_ping_lost as a
        prior worth ``ping_rate_prior_n`` pings. It is capped there: the field value is
        the best a head-end does, the observation can only show one that answers less
        (pings to dark meters count too, which errs towards weighing silence less)."""
        if answered < 0 or timed_out < 0:
            raise ValueError("ping counts must be >= 0")
        n = self.ping_rate_prior_n
        rate = (answered + n * (1.0 - self.p_ping_lost)) / (answered + timed_out + n)
        return min(rate, 1.0 - self.p_ping_lost)

    def llr_on_by_source(self) -> npt.NDArray[np.float64]:
        strong = math.log(self.p_on_dark / self.p_on_seen_lit)
        table = np.zeros(c.N_METER_KINDS, dtype=np.float64)
        table[c.READING] = strong
        table[c.POWER_RESTORE] = strong
        table[c.PING_ON] = strong
        table[c.REPORT_ON] = math.log(self.p_report_lit / self.p_report_dark)
        return table

    def llr_unknown(self) -> float:
        p_unknown_dark = 1.0 - (1.0 - self.p_comm_silent) * self.p_gasp_delivery
        return math.log(p_unknown_dark / self.p_lit_unknown)

    def prior_log_odds(self, kind: npt.NDArray[np.int8]) -> npt.NDArray[np.float64]:
        """Prior log-odds that each device is out, from its kind code."""
        priors = np.asarray(self.outage_prior, dtype=np.float64)
        k = np.asarray(kind)
        if k.size and (int(k.min()) < 0 or int(k.max()) >= priors.shape[0]):
            raise ValueError(f"device kind codes must be in [0, {priors.shape[0]})")
        p = priors[k.astype(np.intp)]
        return np.log(p / (1.0 - p))

"""Score calibration as the tagger applies it (`tagstream.model.calibration`)."""

from __future__ import annotations

import pytest

from tagstream.model.calibration import Calibration, logit, sigmoid


def test_the_identity_leaves_scores_as_they_are():
    assert Calibration().identity
    assert Calibration().apply("PER", 0.73) == 0.73


def test_platt_scaling_per_label_else_the_default():
    cal = Calibration((0.5, 0.0), {"PER": (1.0, 1.0)})
    assert cal.apply("LOC", 0.9) == pytest.approx(sigmoid(0.5 * logit(0.9)))
    assert cal.apply("PER", 0.5) == pytest.approx(sigmoid(1.0))
    scores = [0.0, 0.2, 0.5, 0.9, 0.999, 1.0]
    calibrated = [cal.apply("LOC", p) for p in scores]
    assert calibrated == sorted(calibrated) and 0 < calibrated[0] and calibrated[-1] < 1


def test_the_metadata_round_trips():
    cal = Calibration((0.6, -0.4), {"ORG": (0.58, -0.46)})
    meta = cal.to_meta(fitted_on="dev")
    assert meta["fitted_on"] == "dev" and meta["method"] == "platt"
    assert Calibration.from_meta(meta, ("ORG", "PER")) == cal
    assert Calibration.from_meta(None) == Calibration()


@pytest.mark.parametrize(
    "meta, says",
    [
        ({"method": "isotonic"}, "expected method 'platt'"),
        ({"method": "platt", "default": [0.0, 1.0]}, "slope must be positive"),
        ({"method": "platt", "default": [1.0]}, "two finite numbers"),
        ({"method": "platt", "default": [1, 0], "by_label": {"GPE": [1, 0]}}, "GPE"),
    ],
)
def test_a_malformed_calibration_is_refused(meta, says):
    with pytest.raises(ValueError, match=says):
        Calibration.from_meta(meta, ("PER", "LOC"))

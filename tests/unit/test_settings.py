"""Settings read from the environment: the Stripe price maps and the local clock offset."""

from __future__ import annotations

import pytest

from chalicelib.settings import load_settings


def test_the_clock_offset_applies_on_the_local_stage_only(monkeypatch):
    monkeypatch.setenv("TALLY_CLOCK_OFFSET_SECONDS", str(15 * 86400))
    monkeypatch.setenv("TALLY_STAGE", "local")
    assert load_settings().clock_offset_seconds == 15 * 86400
    for stage in ("test", "prod"):
        monkeypatch.setenv("TALLY_STAGE", stage)
        assert load_settings().clock_offset_seconds == 0  # never a shifted clock where it matters


def test_stripe_prices_are_tier_to_price_pairs(monkeypatch):
    monkeypatch.setenv("TALLY_STRIPE_PRICE_IDS", "pilot=price_1, starter=price_2")
    assert load_settings().stripe_price_ids == {"pilot": "price_1", "starter": "price_2"}
    monkeypatch.delenv("TALLY_STRIPE_PRICE_IDS")
    assert load_settings().stripe_price_ids["growth"] == "price_tally_growth"  # the stand-in's, by default
    monkeypatch.setenv("TALLY_STRIPE_OVERAGE_PRICE_IDS", "pilot")
    with pytest.raises(RuntimeError, match="tier=price_id"):
        load_settings()

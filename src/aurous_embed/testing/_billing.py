"""Prices from token counts [DOC: 18.75 text / 48.75 visual credits per 1M tokens]."""

from __future__ import annotations

from dataclasses import dataclass

from aurous_embed._config import TEXT_CREDITS_PER_M, VISUAL_CREDITS_PER_M

# [NOT FOUND] the rounding of embedding credits. The contract says: do not round, or round to
# at least 6 places. 10 places removes binary-float dust (0.19124999999999998) and nothing else.
CREDIT_DECIMALS = 10


@dataclass(frozen=True)
class Price:
    """Credits for one request, per bucket and in total."""

    text: float
    visual: float

    @property
    def total(self) -> float:
        """``text + visual`` (video is always 0)."""
        return round(self.text + self.visual, CREDIT_DECIMALS)

    def breakdown(self, model: str) -> dict[str, object]:
        """The documented ``breakdown`` object."""
        return {"input": {"text": self.text, "visual": self.visual, "video": 0}, "model": model}


def price(text_tokens: int, image_tokens: int) -> Price:
    """Price tokens with the documented formula ``tokens / 1e6 x credits_per_M`` per bucket."""
    return Price(
        text=round(text_tokens * TEXT_CREDITS_PER_M / 1_000_000, CREDIT_DECIMALS),
        visual=round(image_tokens * VISUAL_CREDITS_PER_M / 1_000_000, CREDIT_DECIMALS),
    )

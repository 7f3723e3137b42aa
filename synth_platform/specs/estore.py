"""config/estore.yaml: customers, products, the action mix of their journeys, and delivery to Tinybird."""

from __future__ import annotations

from dataclasses import dataclass

import pydantic

from synth_platform.specs.loader import Spec, dividing

ACTIONS = ("view", "cart", "uncart", "purchase", "return")

# Journey shape limits (the world's step matrix has this many view and cart-cycle positions).
MAX_VIEWS = 12
MAX_CART_CYCLES = 8
MEAN_VIEWS = 2.0  # views per journey the plan aims for before any cart
RECART_PROBABILITY = 0.3  # after an uncart, chance to put the product back (raised when carts outnumber views)


class Weights(Spec):
    """Relative frequency of each action. Journeys are self-contained, so every cart ends in an uncart or a
    purchase (cart = uncart + purchase) and a return needs a purchase (return <= purchase)."""

    view: float = pydantic.Field(0.55, gt=0)
    cart: float = pydantic.Field(0.20, gt=0)
    uncart: float = pydantic.Field(0.07, ge=0)
    purchase: float = pydantic.Field(0.13, gt=0)
    return_: float = pydantic.Field(0.05, ge=0, alias="return")

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @pydantic.model_validator(mode="after")
    def _reachable(self) -> Weights:
        closed = self.uncart + self.purchase
        if abs(self.cart - closed) > 0.02 * max(self.cart, closed):
            raise ValueError(
                f"cart ({self.cart:g}) must equal uncart + purchase ({closed:g}): every cart ends in an uncart "
                "or a purchase inside its journey"
            )
        if self.return_ > self.purchase:
            raise ValueError(f"return ({self.return_:g}) cannot exceed purchase ({self.purchase:g})")
        journey_plan(self)  # raises when the cart/view ratio is out of reach
        return self

    def normalised(self) -> dict[str, float]:
        values = [self.view, self.cart, self.uncart, self.purchase, self.return_]
        total = sum(values)
        return {a: v / total for a, v in zip(ACTIONS, values, strict=True)}


@dataclass(frozen=True)
class JourneyPlan:
    """Branching probabilities of one journey that reproduce the weights in expectation:
    views (1 + geometric, mean `mean_views`), then with `p_cart` one or more cart cycles, each ending in an
    uncart (`p_uncart`, after which `p_recart` starts another cycle) or a purchase, and after a purchase a
    return with `p_return`."""

    mean_views: float
    p_cart: float
    p_uncart: float
    p_recart: float
    p_return: float


def journey_plan(w: Weights) -> JourneyPlan:
    p_uncart = w.uncart / (w.uncart + w.purchase)
    p_return = w.return_ / w.purchase
    carts_per_view = w.cart / w.view
    p_recart = RECART_PROBABILITY
    cycles = 1.0 / (1.0 - p_uncart * p_recart)  # expected cart cycles once carting
    mean_views = min(MEAN_VIEWS, cycles / carts_per_view)
    if mean_views < 1.0:
        # More carts than one journey's views allow: re-cart more often instead.
        mean_views, cycles = 1.0, carts_per_view
        p_recart = (1.0 - 1.0 / cycles) / p_uncart if p_uncart else 1.0
        if p_recart > 0.9:
            raise ValueError(
                f"cart/view ratio {carts_per_view:.2f} is out of reach: raise view or uncart relative to cart"
            )
    p_cart = carts_per_view * mean_views / cycles
    return JourneyPlan(mean_views, min(p_cart, 1.0), p_uncart, p_recart, p_return)


class Catalog(Spec):
    customers: int = pydantic.Field(500, ge=1, le=10_000_000, description="Customer ids 1..customers")
    products: int = pydantic.Field(200, ge=1, le=1_000_000, description="Product ids 1..products")
    price_range: tuple[float, float] = pydantic.Field((2.0, 500.0), description="[low, high] (log-uniform)")
    popularity_skew: float = pydantic.Field(
        1.0, ge=0, le=3, description="Zipf exponent of product popularity (0 = uniform)"
    )
    max_quantity: int = pydantic.Field(3, ge=1, le=100, description="Quantity per journey is 1..max_quantity")

    @pydantic.field_validator("price_range")
    @classmethod
    def _range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] <= v[1]:
            raise ValueError("must be [low, high] with 0 < low <= high")
        return v


class Journeys(Spec):
    per_customer_per_day: float = pydantic.Field(
        4.0, gt=0, description="Mean shopping journeys a customer starts per day"
    )
    slot_minutes: int = pydantic.Field(
        120,
        description="Each customer has at most one journey per slot; a journey (its return too) stays inside "
        "its slot, so a day's events are complete on their own. Must divide a day and be >= 60",
    )

    _slot = pydantic.field_validator("slot_minutes")(dividing(1440, "minutes", "a day", "60, 120, 240", minimum=60))

    @pydantic.model_validator(mode="after")
    def _fits(self) -> Journeys:
        slots = 1440 // self.slot_minutes
        if self.per_customer_per_day > slots:
            raise ValueError(
                f"per_customer_per_day ({self.per_customer_per_day:g}) exceeds the {slots} slots of "
                f"{self.slot_minutes} minutes in a day; lower slot_minutes"
            )
        return self

    @property
    def slot_seconds(self) -> int:
        return self.slot_minutes * 60


class SqlTarget(Spec):
    events: bool = pydantic.Field(True, description="Also write the distinct events to the SQL database")
    totals: bool = pydantic.Field(True, description="Write estore_totals (counts per action and interval)")
    totals_interval_minutes: int = pydantic.Field(60, description="Interval of estore_totals; divides a day")

    _interval = pydantic.field_validator("totals_interval_minutes")(dividing(1440, "minutes", "a day", "15, 60, 240"))


class EstoreSpec(Spec):
    catalog: Catalog = Catalog()
    weights: Weights = Weights()
    journeys: Journeys = Journeys()
    duplicate_percent: float = pydantic.Field(
        1.0, ge=0, le=50, description="Share of events re-emitted as exact copies (same event_id)"
    )
    micro_batch_seconds: int = pydantic.Field(60, ge=1, le=86_400, description="Live window length")
    datasource: str = pydantic.Field(
        "estore_events", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Tinybird data source name"
    )
    mix_tolerance: float = pydantic.Field(
        0.03, gt=0, le=1, description="Allowed absolute difference between each action's share and its weight"
    )
    sql: SqlTarget = SqlTarget()
    retention_days: int = pydantic.Field(30, ge=1, description="Outbox/Tinybird events older than this are deleted")

    _window = pydantic.field_validator("micro_batch_seconds")(dividing(86_400, "seconds", "a day", "10, 30, 60, 300"))

    @property
    def plan(self) -> JourneyPlan:
        return journey_plan(self.weights)

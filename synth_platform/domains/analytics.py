"""Analytics on the delivered data: config/analytics.yaml; meter_minutes, top devices, histograms, the Tinybird
transfer and the query load test (retention follows the streams it reads)."""

from synth_platform.assets import analytics as assets
from synth_platform.domains.record import Domain
from synth_platform.specs.analytics import AnalyticsSpec
from synth_platform.specs.loader import load

DOMAIN = Domain("analytics", lambda config: load(AnalyticsSpec, config / "analytics.yaml"), assets.build)

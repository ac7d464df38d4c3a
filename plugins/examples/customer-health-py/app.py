"""Example plugin in Python: a customer-health score.

Customers who bought recently and often, and have no open complaints, score high.
Configuration (optional): {"recentDays": 90, "inquiryPenalty": 15}.

Build: componentize-py -d ../../wit -w plugin componentize app -o customer_health.wasm
"""

import json
from datetime import datetime

import wit_world
from wit_world.imports import types
from componentize_py_types import Err


def _when(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _fail(code, message):
    raise Err(types.PluginError(code=code, message=message))


class WitWorld(wit_world.WitWorld):
    def describe(self):
        return types.Description(
            name="customer-health",
            version="1.0.0",
            implements=types.Capabilities.SCORE,
        )

    def score(self, input):
        try:
            data = json.loads(input.data)
            config = json.loads(input.config)
        except ValueError as e:
            _fail("bad-input", str(e))
        contact = data.get("contact")
        if not contact:
            _fail("bad-input", "the input has no contact")
        recent_days = float(config.get("recentDays", 90))
        penalty = float(config.get("inquiryPenalty", 15))
        now = _when(input.as_of)

        orders = [
            e["node"]
            for e in contact["orders"]["edges"]
            if e["node"]["status"] not in ("CANCELLED", "REFUNDED")
        ]
        recent = [o for o in orders if (now - _when(o["placedAt"])).days <= recent_days]
        open_inquiries = contact["inquiries"]["totalCount"]

        reasons = []
        score = 0.0
        if orders:
            frequency = min(40.0, 8.0 * len(orders))
            score += frequency
            reasons.append(types.Reason("orders", frequency, f"{len(orders)} orders"))
            days = (now - _when(orders[0]["placedAt"])).days
            recency = max(0.0, 40.0 * (1.0 - days / (4.0 * recent_days)))
            score += recency
            reasons.append(types.Reason("recency", recency, f"last order {days} days ago"))
        if recent:
            score += 20.0
            reasons.append(types.Reason("recent orders", 20.0, f"{len(recent)} in the last {recent_days:.0f} days"))
        if open_inquiries:
            cost = -min(score, penalty * open_inquiries)
            score += cost
            reasons.append(types.Reason("open inquiries", cost, f"{open_inquiries} open inquiries"))
        reasons.sort(key=lambda r: abs(r.contribution), reverse=True)
        return types.ScoreResult(score=max(0.0, min(100.0, score)), reasons=reasons)

    def next_best_actions(self, input):
        _fail("unsupported", "this plugin only scores")

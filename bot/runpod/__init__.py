"""Runpod Public Endpoints: the catalog, prices, the client and what outputs mean.

What the adapters may use is imported here; the other modules are the package's own.
"""

from bot.runpod.catalog import Model
from bot.runpod.pricing import describe_price, exact_usd

__all__ = ["Model", "describe_price", "exact_usd"]

"""The order-status hotline: orders in Redis and the tools that read them."""

from service.agent.hotline.orders import get_order, hotline_seed_main, seed_orders, spoken_digits
from service.agent.hotline.tools import (
    LOOKUP_ORDER,
    VERIFY_CALLER,
    hotline_registry,
    lookup_order,
    verify_caller,
)

__all__ = [
    "LOOKUP_ORDER",
    "VERIFY_CALLER",
    "get_order",
    "hotline_registry",
    "hotline_seed_main",
    "lookup_order",
    "seed_orders",
    "spoken_digits",
    "verify_caller",
]

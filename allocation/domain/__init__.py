"""The allocation domain model (standard library only); see `model` for the rules."""

from .model import Batch, OrderLine, OutOfStockError, Product, allocate, place

__all__ = ["Batch", "OrderLine", "OutOfStockError", "Product", "allocate", "place"]

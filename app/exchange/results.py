"""What the exchange answers for each command, independent of the wire format."""

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution as seen from one of its two orders."""

    shares: Decimal
    price: Decimal
    time: int  # whole seconds since the Unix epoch


@dataclass(frozen=True, slots=True)
class Cancellation:
    shares: Decimal
    time: int


@dataclass(frozen=True, slots=True)
class OrderView:
    """An order's state: open or canceled shares (never both), then fills, oldest first."""

    order_id: int
    open_shares: Decimal
    canceled: Cancellation | None
    fills: tuple[Fill, ...]


@dataclass(frozen=True, slots=True)
class Created:
    pass


@dataclass(frozen=True, slots=True)
class Opened:
    """An order placed; what it executed on arrival is not in the reply, only in metrics."""

    order_id: int
    executions: int = 0
    traded_shares: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Status:
    order: OrderView


@dataclass(frozen=True, slots=True)
class Canceled:
    order: OrderView


@dataclass(frozen=True, slots=True)
class Failed:
    reason: str
    cause: str | None = field(default=None, compare=False)  # for the logs, never the reply


Result = Created | Opened | Status | Canceled | Failed

"""zarr byte-range requests, translated to (offset, length, suffix)."""

from __future__ import annotations

from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, SuffixByteRequest

from py_hamt.errors import InvalidArgumentError, InvalidTypeError

__all__ = ["to_hamt_range"]


def to_hamt_range(
    byte_range: ByteRequest | None,
) -> tuple[int | None, int | None, int | None]:
    """``(offset, length, suffix)`` for :meth:`HAMT.get`.

    Raises:
        InvalidTypeError: (a ``TypeError``) ``byte_range`` is not one of
            zarr's request types.
        InvalidArgumentError: a range whose end is before its start.
    """
    match byte_range:
        case None:
            return None, None, None
        case RangeByteRequest(start=start, end=end):
            if end < start:
                raise InvalidArgumentError(f"byte range end {end} is before its start {start}")
            return start, end - start, None
        case OffsetByteRequest(offset=offset):
            return offset, None, None
        case SuffixByteRequest(suffix=suffix):
            return None, None, suffix
        case _:
            raise InvalidTypeError(f"Unexpected byte_range, got {byte_range!r}")

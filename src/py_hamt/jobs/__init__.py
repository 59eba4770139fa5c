"""Long jobs over whole datasets (conversion, copies, imports), each
reporting progress through a callback rather than printing."""

from py_hamt.jobs.convert import convert_hamt_to_sharded
from py_hamt.jobs.progress import Progress, ProgressCallback

__all__ = ["Progress", "ProgressCallback", "convert_hamt_to_sharded"]

"""Long jobs over whole datasets (conversion, copies, imports), each
reporting progress through a callback rather than printing."""

from py_hamt.jobs.car import ExportReport, ImportReport, export_car, import_car
from py_hamt.jobs.convert import convert_hamt_to_sharded
from py_hamt.jobs.copy import CopyReport, copy_dag
from py_hamt.jobs.fsck import FsckReport, fsck
from py_hamt.jobs.progress import Progress, ProgressCallback

__all__ = [
    "CopyReport",
    "ExportReport",
    "FsckReport",
    "ImportReport",
    "Progress",
    "ProgressCallback",
    "convert_hamt_to_sharded",
    "copy_dag",
    "export_car",
    "fsck",
    "import_car",
]

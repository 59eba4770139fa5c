"""The datasets both sides of the py-hamt 3.6.0 oracle tests build (numpy,
pandas and xarray only, so upstream's interpreter can import it too)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

SHAPE = (40, 18, 24)


def dataset(variables: dict[str, list[int]]) -> xr.Dataset:
    """time x lat x lon; variable i is float32, int16 or float64 in turn."""
    rng = np.random.default_rng(36)
    data_vars = {}
    for i, name in enumerate(variables):
        dtype = ("float32", "int16", "float64")[i % 3]
        data_vars[name] = (("time", "lat", "lon"), (rng.normal(size=SHAPE) * 100).astype(dtype))
    return xr.Dataset(
        data_vars,
        coords={
            "time": pd.date_range("2000-01-01", periods=SHAPE[0], freq="D"),
            "lat": np.linspace(-85, 85, SHAPE[1]),
            "lon": np.linspace(-180, 172.5, SHAPE[2]),
        },
    )


def encoding(variables: dict[str, list[int]]) -> dict[str, dict[str, tuple[int, ...]]]:
    return {name: {"chunks": tuple(chunks)} for name, chunks in variables.items()}

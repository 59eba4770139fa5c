"""Small, realistic climate datasets for demos, tests and benchmarks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["climate_dataset"]


def climate_dataset(
    n_time: int = 48, n_lat: int = 36, n_lon: int = 72, seed: int = 0
) -> xr.Dataset:
    """A time x lat x lon dataset with three variables on a regular grid.

    ``temperature`` (K) follows latitude with a daily cycle and noise,
    ``precipitation`` (mm/h) is non-negative and sparse, ``pressure`` (hPa) is
    float64. Coordinates carry CF attributes; the values are deterministic
    for a given ``seed``.
    """
    rng = np.random.default_rng(seed)
    time = pd.date_range("2024-01-01", periods=n_time, freq="h")
    lat = np.linspace(-87.5, 87.5, n_lat)
    lon = np.linspace(0.0, 360.0, n_lon, endpoint=False)
    hours = np.arange(n_time)[:, None, None]
    base = 288.0 - 40.0 * np.abs(np.sin(np.deg2rad(lat)))[None, :, None]
    daily = 5.0 * np.sin(2 * np.pi * (hours / 24.0 + lon[None, None, :] / 360.0))
    temperature = (base + daily + rng.normal(0, 1.5, (n_time, n_lat, n_lon))).astype("float32")
    rain = rng.gamma(0.3, 2.0, (n_time, n_lat, n_lon))
    precipitation = np.where(rng.random((n_time, n_lat, n_lon)) < 0.7, 0.0, rain).astype("float32")
    pressure = 1013.25 + rng.normal(0, 8.0, (n_time, n_lat, n_lon))
    dims = ("time", "lat", "lon")
    return xr.Dataset(
        {
            "temperature": (dims, temperature, {"units": "K", "long_name": "air temperature"}),
            "precipitation": (dims, precipitation, {"units": "mm/h", "long_name": "precipitation"}),
            "pressure": (dims, pressure, {"units": "hPa", "long_name": "surface pressure"}),
        },
        coords={
            "time": ("time", time),
            "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
        },
        attrs={"title": "py_hamt synthetic climate sample", "Conventions": "CF-1.8"},
    )

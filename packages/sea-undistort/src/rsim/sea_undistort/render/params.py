"""Seeded sampling of the per-scene parameters of the Sea-Undistort generator (no Blender needed)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

SEABED_TYPES = ("rock", "sand", "gravel", "seagrass")


@dataclass(frozen=True)
class RenderConfig:
    """Ranges of the generator; defaults follow the released dataset's README [code] unless tagged otherwise.

    Args:
        resolution: Rendered side in pixels (512 = the released central crop).
        samples: Cycles samples per image [assumption; the released value is unknown].
        sun_elevation_deg: Sun elevation range (25-70° [code]).
        altitude_m: Camera altitude range (30-200 m [code]).
        sensor_width_mm: Full-frame sensor width (36 mm [code]).
        image_widths_px: Full image widths of the simulated cameras (4000, 5472 [code]).
        focal_lengths_mm: Focal lengths (20, 24 mm [code]).
        max_tilt_deg: Camera tilt bound (5° [code]).
        mean_depth_m: Mean seabed depth range (-8 to -0.5 m [code]).
        wind_speed_ms: Ocean-spectrum wind speed [assumption].
        wave_scale: Ocean modifier wave amplitude scale [assumption].
        choppiness: Ocean choppiness [assumption].
        scatter_density: Water scattering density per metre [assumption].
        absorption_density: Water absorption density per metre [assumption].
        air_density: Nishita sky air density [assumption].
        dust_density: Nishita sky dust density [assumption].
        clean_scatter_factor: Scattering kept in the clean (``_no_waves``) render [assumption: 0 = clear water].
        exposure: Film exposure in stops for all four renders (keeps the dry ``_ground`` render unclipped)
            [assumption].
        ior: Water index of refraction (1.333).
        seabed_types: Seabed classes to draw from.
    """

    resolution: int = 512
    samples: int = 16
    sun_elevation_deg: tuple[float, float] = (25.0, 70.0)
    altitude_m: tuple[float, float] = (30.0, 200.0)
    sensor_width_mm: float = 36.0
    image_widths_px: tuple[int, ...] = (4000, 5472)
    focal_lengths_mm: tuple[float, ...] = (20.0, 24.0)
    max_tilt_deg: float = 5.0
    mean_depth_m: tuple[float, float] = (-8.0, -0.5)
    wind_speed_ms: tuple[float, float] = (2.0, 8.0)
    wave_scale: tuple[float, float] = (0.1, 0.6)
    choppiness: tuple[float, float] = (0.5, 1.2)
    scatter_density: tuple[float, float] = (0.005, 0.05)
    absorption_density: tuple[float, float] = (0.05, 0.3)
    air_density: tuple[float, float] = (0.5, 2.0)
    dust_density: tuple[float, float] = (0.0, 3.0)
    clean_scatter_factor: float = 0.0
    exposure: float = -1.0
    ior: float = 1.333
    seabed_types: tuple[str, ...] = field(default=SEABED_TYPES)


def sample_scene(index: int, seed: int, config: RenderConfig) -> dict[str, Any]:
    """All parameters of scene ``index`` drawn from ``numpy.random.default_rng([seed, index])`` (order-independent).

    The render covers the central ``resolution`` px of a ``image_width_px`` wide frame, so the effective sensor
    width is ``sensor_width_mm * 512 / image_width_px`` and the ground sampling distance (GSD, at the mean water
    surface) is ``altitude * sensor_width / (image_width * focal)``.
    """
    bad = set(config.seabed_types) - set(SEABED_TYPES)
    if bad:
        raise ValueError(f"unknown seabed type(s) {sorted(bad)}; expected {SEABED_TYPES}")
    rng = np.random.default_rng([seed, index])

    def u(lo_hi: tuple[float, float]) -> float:
        return float(rng.uniform(*lo_hi))

    altitude = u(config.altitude_m)
    image_width = int(rng.choice(config.image_widths_px))
    focal = float(rng.choice(config.focal_lengths_mm))
    gsd_full = altitude * (config.sensor_width_mm / 1000) / (image_width * focal / 1000)
    crop_px = 512
    footprint = gsd_full * crop_px
    depth = u(config.mean_depth_m)
    # keep the seabed under water across the footprint: relief <= 40 % and slope rise <= 30 % of the depth
    displacement = min(float(rng.uniform(0.05, 0.6)), 0.4 * abs(depth))
    max_slope = math.degrees(math.atan(0.3 * abs(depth) / max(footprint / 2, 1e-3)))
    slope = float(rng.uniform(0.0, min(8.0, max_slope)))
    water_rgb = [float(rng.uniform(0.3, 0.6)), float(rng.uniform(0.75, 0.95)), float(rng.uniform(0.75, 0.95))]
    return {
        "scene_id": f"{index:04d}",
        "seed": int(seed),
        "index": int(index),
        "resolution_px": int(config.resolution),
        "samples": int(config.samples),
        "seabed_type": str(rng.choice(config.seabed_types)),
        "seabed_texture_seed": int(rng.integers(0, 2**16)),
        "seabed_texture_scale": float(rng.uniform(0.5, 2.0)),
        "seabed_displacement_m": displacement,
        "seabed_slope_deg": slope,
        "seabed_slope_azimuth_deg": float(rng.uniform(0, 360)),
        "mean_depth_m": depth,
        "sun_elevation_deg": u(config.sun_elevation_deg),
        "sun_azimuth_deg": float(rng.uniform(0, 360)),
        "sun_strength": float(rng.uniform(3.0, 5.0)),
        "exposure": float(config.exposure),
        "sun_angle_deg": 0.53,
        "air_density": u(config.air_density),
        "dust_density": u(config.dust_density),
        "camera_altitude_m": altitude,
        "sensor_width_mm": float(config.sensor_width_mm),
        "image_width_px": image_width,
        "focal_length_mm": focal,
        "effective_sensor_width_mm": config.sensor_width_mm * crop_px / image_width,
        "tilt_deg": float(rng.uniform(0, config.max_tilt_deg)),
        "tilt_azimuth_deg": float(rng.uniform(0, 360)),
        "gsd_m": gsd_full * crop_px / config.resolution,
        "footprint_m": footprint,
        "wind_speed_ms": u(config.wind_speed_ms),
        "wave_scale": u(config.wave_scale),
        "choppiness": u(config.choppiness),
        "wave_time": float(rng.uniform(0, 100)),
        "wave_seed": int(rng.integers(0, 2**16)),
        "water_ior": float(config.ior),
        "surface_roughness": float(rng.uniform(0.03, 0.1)),
        "water_color": water_rgb,
        "scatter_density": u(config.scatter_density),
        "absorption_density": u(config.absorption_density),
        "scatter_anisotropy": float(rng.uniform(0.3, 0.9)),
        "clean_scatter_factor": float(config.clean_scatter_factor),
    }


def sun_direction(elevation_deg: float, azimuth_deg: float) -> tuple[float, float, float]:
    """Unit vector pointing towards the sun (x east, y north, z up)."""
    el, az = math.radians(elevation_deg), math.radians(azimuth_deg)
    return (math.cos(el) * math.sin(az), math.cos(el) * math.cos(az), math.sin(el))


def config_dict(config: RenderConfig) -> dict[str, Any]:
    """JSON-ready view of a :class:`RenderConfig`."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}

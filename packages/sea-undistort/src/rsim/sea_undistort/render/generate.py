"""Dataset generation: Dask-parallel over scenes, resumable (finished scenes are skipped), seeded, atomic writes."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsim.core.io import atomic_path
from rsim.sea_undistort.render.params import RenderConfig, config_dict, sample_scene

VARIANTS = ("", "_no_waves", "_no_sunglint", "_ground")
MARKERS = ".scene_settings"  # per-scene JSON, written last = the scene is complete


@dataclass(frozen=True)
class SceneJob:
    """One scene to render (picklable for Dask workers)."""

    index: int
    seed: int
    config: RenderConfig
    out_dir: str
    threads: int = 1
    device: str = "CPU"
    quiet: bool = True


def scene_done(out_dir: str | os.PathLike[str], scene_id: str) -> bool:
    """Whether all four PNGs and the scene's settings record exist."""
    out = Path(out_dir)
    pngs = all((out / f"render_{scene_id}{v}.png").is_file() for v in VARIANTS)
    return pngs and (out / MARKERS / f"render_{scene_id}.json").is_file()


@contextlib.contextmanager
def _silence_stdout(enabled: bool) -> Iterator[None]:
    """Redirect the C-level stdout (Blender's per-sample log) to /dev/null."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def render_job(job: SceneJob) -> dict[str, Any]:
    """Render one scene (skipped when already complete); returns its settings record plus timing."""
    params = sample_scene(job.index, job.seed, job.config)
    sid = params["scene_id"]
    marker = Path(job.out_dir) / MARKERS / f"render_{sid}.json"
    if scene_done(job.out_dir, sid):
        return {**json.loads(marker.read_text()), "skipped": True}
    from rsim.sea_undistort.render.blender import render_scene

    start = time.perf_counter()
    with _silence_stdout(job.quiet):
        render_scene(params, job.out_dir, threads=job.threads, device=job.device)
    record = {**params, "render_seconds": round(time.perf_counter() - start, 3),
              "files": [f"render_{sid}{v}.png" for v in VARIANTS]}  # fmt: skip
    with atomic_path(marker) as tmp:
        tmp.write_text(json.dumps(record, indent=2))
    return {**record, "skipped": False}


def write_settings(out_dir: str | os.PathLike[str], records: list[dict[str, Any]], config: RenderConfig) -> Path:
    """Merge per-scene records into ``scene_settings.json`` and write empty curation lists if absent."""
    out = Path(out_dir)
    data = {f"render_{r['scene_id']}": {k: v for k, v in r.items() if k != "skipped"} for r in records}
    existing: dict[str, Any] = {}
    if (out / "scene_settings.json").is_file():
        existing = json.loads((out / "scene_settings.json").read_text())
    existing.update(data)
    existing = dict(sorted(existing.items()))
    with atomic_path(out / "scene_settings.json") as tmp:
        tmp.write_text(json.dumps(existing, indent=2))
    with atomic_path(out / "render_config.json") as tmp:
        tmp.write_text(json.dumps(config_dict(config), indent=2))
    for name, header in (("blacklist.txt", "# generated scenes: no manual curation"),
                         ("test_list.txt", "# generated scenes: no fixed test list")):  # fmt: skip
        if not (out / name).is_file():
            with atomic_path(out / name) as tmp:
                tmp.write_text(header + "\n")
    return out / "scene_settings.json"


def generate(
    out_dir: str | os.PathLike[str], num_scenes: int, *, seed: int = 0, config: RenderConfig | None = None,
    start: int = 0, n_workers: int = 1, threads_per_scene: int = 1, scheduler: str | None = None,
    device: str = "CPU", show_progress: bool = True, quiet: bool = True, processes: bool = True,
) -> list[dict[str, Any]]:  # fmt: skip
    """Render scenes ``start .. start+num_scenes-1`` into ``out_dir`` on a Dask cluster.

    Each scene's parameters depend only on ``(seed, index)``, so reruns and partial reruns reproduce the same
    scenes; complete scenes are skipped (resume). Every PNG and JSON is written to a temp file and renamed.

    ``processes=False`` runs the local cluster's workers as threads of this process (only safe for one worker:
    Blender is not thread-safe).

    Returns:
        The settings record of every scene (``skipped`` tells whether it was already there).
    """
    from rsim.core.parallel import dask_client, map_with_progress

    config = config or RenderConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [
        SceneJob(i, seed, config, str(out), threads_per_scene, device, quiet) for i in range(start, start + num_scenes)
    ]
    with dask_client(scheduler, n_workers=n_workers, processes=processes) as client:
        records = map_with_progress(render_job, jobs, client=client, description="rendering scenes",
                                    show_progress=show_progress)  # fmt: skip
    write_settings(out, records, config)
    return records

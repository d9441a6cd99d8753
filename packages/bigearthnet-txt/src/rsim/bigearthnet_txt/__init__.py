"""BigEarthNet.txt: annotation generator from BigEarthNet v2 reference maps, loader and evaluator."""

from rsim.bigearthnet_txt.attributes import AttributeConfig, PatchAttributes, extract_attributes
from rsim.bigearthnet_txt.data import BigEarthNetTxtDataModule
from rsim.bigearthnet_txt.evaluate import (
    bert_score,
    evaluate_predictions,
    meteor,
    meteor_scores,
    parse_box,
    parse_letter,
    parse_yes_no,
)
from rsim.bigearthnet_txt.generate import COLUMNS, GeneratorConfig, PatchContext, generate_patch
from rsim.bigearthnet_txt.pipeline import generate_archive, read_annotations
from rsim.bigearthnet_txt.rewrite import (
    IdentityRewriter,
    LLMRewriterConfig,
    Rewriter,
    TransformersRewriter,
    check_rewrite,
    rewrite_rows,
)

__all__ = [
    "COLUMNS",
    "AttributeConfig",
    "BigEarthNetTxtDataModule",
    "GeneratorConfig",
    "IdentityRewriter",
    "LLMRewriterConfig",
    "PatchAttributes",
    "PatchContext",
    "Rewriter",
    "TransformersRewriter",
    "bert_score",
    "check_rewrite",
    "evaluate_predictions",
    "extract_attributes",
    "generate_archive",
    "generate_patch",
    "meteor",
    "meteor_scores",
    "parse_box",
    "parse_letter",
    "parse_yes_no",
    "read_annotations",
    "rewrite_rows",
]

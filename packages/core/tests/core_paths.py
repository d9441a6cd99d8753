from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "shared" / "data"
BENV2 = DATA / "benv2"
BENV1 = DATA / "benv1-examples"
S2_CROP = DATA / "s2-l1c-crop"
S2_SAMPLE = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_75_43"
S1_SAMPLE = "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_70_48"
REF_SAMPLE = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_26_57"

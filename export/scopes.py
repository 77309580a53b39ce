"""Which nodes of an exported graph belong to the backbone, the part that may run in reduced precision.

The legacy exporter names nodes after the module path (`/features/...`,
`/trunk.0/...`, `/pose_heads.3/...`), so the backbone of
vantage.train.model.JointPoseNet (its frozen `features` and fine-tuned `trunk`) is
found by name scope (under `/net/` when the flip-averaging wrapper of
vantage.train.test_time holds it; an ensemble of vantage.train.ensemble runs
`/features/` (and any other members' networks as `/more_features.<j>/`) and names
its members' trunks `/members.<i>/trunk`, wrapped or not,
because the wrapper calls the ensemble's `hypotheses`, not its forward). Everything else (category network, pose heads, fusion,
Rodrigues, embedding) stays float32 in every variant: reduced precision there costs
accuracy and breaks the orthonormality of R for no speed (MEASURED.md). A model
that names its backbone otherwise gets no reduced-precision variant (the tools say
so) rather than a wrongly quantised one.
"""

from __future__ import annotations

import re

BACKBONE_SCOPE = re.compile(r"^(/net)?(/members\.\d+)?/(features/|more_features\.\d+/|trunk)")


def in_backbone(node_name: str) -> bool:
    return BACKBONE_SCOPE.match(node_name) is not None

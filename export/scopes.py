"""Which nodes of an exported graph belong to the backbone, the part that may run in reduced precision.

The legacy exporter names nodes after the module path (`/features/...`,
`/trunk.0/...`, `/pose_heads.3/...`), so the backbone of
vantage.train.model.JointPoseNet (its frozen `features` and fine-tuned `trunk`) is
found by name scope (under `/net/` when the flip-averaging wrapper of
vantage.train.test_time holds it). Everything else (category network, pose heads, fusion,
Rodrigues, embedding) stays float32 in every variant: reduced precision there costs
accuracy and breaks the orthonormality of R for no speed (MEASURED.md). A model
that names its backbone otherwise gets no reduced-precision variant (the tools say
so) rather than a wrongly quantised one.
"""

from __future__ import annotations

BACKBONE_SCOPES: tuple[str, ...] = ("/features/", "/trunk", "/net/features/", "/net/trunk")


def in_backbone(node_name: str) -> bool:
    return node_name.startswith(BACKBONE_SCOPES)

"""The twelve PASCAL3D+ categories in the fixed order of POSE.md."""

from __future__ import annotations

CATEGORIES: tuple[str, ...] = (
    "aeroplane",
    "bicycle",
    "boat",
    "bottle",
    "bus",
    "car",
    "chair",
    "diningtable",
    "motorbike",
    "sofa",
    "train",
    "tvmonitor",
)


def category_index(name: str, categories: tuple[str, ...] | list[str] = CATEGORIES) -> int:
    """Index of `name` in `categories`; ValueError naming the known ones otherwise."""
    try:
        return list(categories).index(name)
    except ValueError:
        raise ValueError(f"unknown category {name!r}; known: {', '.join(categories)}") from None

"""Seeded procedural meshes for the twelve categories, in the object frame of POSE.md.

Built-in models let Vantage render unlimited training views without any CAD data:
each category has one small builder that assembles trimesh primitives (boxes,
cylinders, tori, spheres, convex hulls of cross-sections, surfaces of revolution)
whose proportions and optional parts are drawn from a seeded generator, so that
unseen seeds give visibly different instances. Frame: +z up, ground at z = 0, the
object's front towards −y. Meshes stay small (well under 6,000 faces) because
they are ray-cast at hundreds of views per second; `ModelSpec.load()` normalises
them afterwards, so builders work in whatever units are natural (metres mostly).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import trimesh

from vantage.categories import category_index

Builder = Callable[[np.random.Generator], list[trimesh.Trimesh]]
Point = Sequence[float]

SIDES = (-1.0, 1.0)  # left (−x) and right (+x), for parts that come in mirrored pairs

# ----------------------------------------------------------------------------------
# Shared primitives. Every helper returns closed meshes with outward normals, so that
# the concatenation ray-casts like a solid; parts may overlap (no boolean ops needed).
# ----------------------------------------------------------------------------------


def _box(size: Point, center: Point) -> trimesh.Trimesh:
    """Axis-aligned box of `size` (x, y, z) centred at `center`."""
    return trimesh.creation.box(extents=size, transform=trimesh.transformations.translation_matrix(center))


def _span_box(lo: Point, hi: Point) -> trimesh.Trimesh:
    """Axis-aligned box between two opposite corners (easier to read than size/centre)."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    return _box(np.abs(hi - lo), (lo + hi) / 2.0)


def _soft_box(lo: Point, hi: Point, chamfer: float) -> trimesh.Trimesh:
    """Box between two corners with every edge chamfered: upholstery, cushions."""
    (x0, y0, z0), (x1, y1, z1) = lo, hi
    c = min(chamfer, (x1 - x0) * 0.45, (y1 - y0) * 0.45, (z1 - z0) * 0.45)
    hx, xc = (x1 - x0) / 2, (x0 + x1) / 2
    sections = [
        _rect(y0, hx - c, z0 + c, z1 - c, c), _rect(y0 + c, hx, z0, z1, c),
        _rect(y1 - c, hx, z0, z1, c), _rect(y1, hx - c, z0 + c, z1 - c, c),
    ]
    return _loft(sections).apply_translation((xc, 0.0, 0.0))


def _hull(points: np.ndarray | Sequence[Point]) -> trimesh.Trimesh:
    """Convex hull: tapered solids (noses, hulls, wings) from a handful of points."""
    return trimesh.convex.convex_hull(np.asarray(points, dtype=float))


def _rod(p0: Point, p1: Point, radius: float, sections: int = 8) -> trimesh.Trimesh:
    """Cylinder between two points: tubes, legs, axles, masts."""
    return trimesh.creation.cylinder(radius=radius, segment=[p0, p1], sections=sections)


def _polyline(points: Sequence[Point], radius: float, sections: int = 6) -> list[trimesh.Trimesh]:
    """Bent tube as rods between consecutive points (handlebars, frames)."""
    return [_rod(a, b, radius, sections) for a, b in zip(points[:-1], points[1:])]


def _ball(center: Point, radius: float, subdivisions: int = 1) -> trimesh.Trimesh:
    """Icosphere (80 faces at subdivision 1): lamps, casters, knobs."""
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    mesh.apply_translation(center)
    return mesh


def _ring(y: float, half_width: float, z_center: float, half_height: float, n: int = 12) -> np.ndarray:
    """Elliptic cross-section in the x-z plane at `y`, for lofting bodies along y."""
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    return np.stack([half_width * np.cos(t), np.full(n, y), z_center + half_height * np.sin(t)], axis=1)


def _rect(y: float, half_width: float, z0: float, z1: float, chamfer: float = 0.0) -> np.ndarray:
    """Rectangular cross-section at `y` from z0 to z1, corners cut by `chamfer`."""
    c = min(chamfer, half_width * 0.9, (z1 - z0) * 0.45)
    xs = [-half_width, -half_width + c, half_width - c, half_width]
    return np.array(
        [
            (xs[0], y, z0 + c), (xs[1], y, z0), (xs[2], y, z0), (xs[3], y, z0 + c),
            (xs[3], y, z1 - c), (xs[2], y, z1), (xs[1], y, z1), (xs[0], y, z1 - c),
        ]
    )


def _loft(sections: Sequence[np.ndarray]) -> trimesh.Trimesh:
    """Convex body through cross-sections (fuselages, noses, tanks, car bodies)."""
    return _hull(np.concatenate(sections, axis=0))


def _panel(
    root_le: Point, tip_le: Point, root_chord: float, tip_chord: float, thickness: float, thick_axis: int
) -> trimesh.Trimesh:
    """Thin tapered lifting surface (wing, tailplane, fin, sail) with its chord along +y.

    Each end is a flat diamond aerofoil: leading edge, trailing edge, and the
    thickest point at 30 % chord; `thick_axis` is 2 for wings, 0 for fins.
    """
    points = []
    for le, chord, t in ((root_le, root_chord, thickness), (tip_le, tip_chord, thickness * 0.6)):
        le = np.asarray(le, dtype=float)
        offset = np.zeros(3)
        offset[thick_axis] = t / 2.0
        mid = le + (0.0, 0.3 * chord, 0.0)
        points += [le, le + (0.0, chord, 0.0), mid + offset, mid - offset]
    return _hull(points)


def _along(direction: Point, center: Point) -> np.ndarray:
    """Transform taking a primitive's +z axis to `direction` and its origin to `center`."""
    transform = trimesh.geometry.align_vectors([0.0, 0.0, 1.0], direction)
    transform[:3, 3] = center
    return transform


def _disc(
    center: Point, radius: float, thickness: float, direction: Point = (1.0, 0.0, 0.0), sections: int = 16
) -> trimesh.Trimesh:
    """Cylinder of `thickness` about `direction` (default x, the wheel axis) centred at `center`."""
    transform = _along(direction, center)
    return trimesh.creation.cylinder(radius=radius, height=thickness, sections=sections, transform=transform)


def _wheel(
    center: Point,
    radius: float,
    width: float,
    tyre: float | None = None,
    spokes: int = 0,
    rim: float = 0.0,
    sections: int = 16,
) -> list[trimesh.Trimesh]:
    """A wheel in the y-z plane turning about x, `radius` to the tread.

    Without `tyre`: a solid disc of `width` (railway wheels). With `tyre` (the tyre's
    tube radius): a torus tyre, an axle hub of `width`, a solid rim disc of radius
    `rim` if given (cars, buses, motorbikes) and `spokes` diametral spokes (bicycles).
    """
    center = np.asarray(center, dtype=float)
    if tyre is None:
        return [_disc(center, radius, width, sections=sections)]
    parts = [
        trimesh.creation.torus(
            radius - tyre, tyre, major_sections=sections, minor_sections=6, transform=_along((1, 0, 0), center)
        ),
        _rod(center - (width / 2, 0, 0), center + (width / 2, 0, 0), max(tyre * 1.2, radius * 0.08), 8),
    ]
    if rim:
        parts.append(_disc(center, rim, 1.6 * tyre, sections=sections))
    for k in range(spokes):
        angle = np.pi * k / spokes
        d = (radius - tyre) * np.array([0.0, np.cos(angle), np.sin(angle)])
        parts.append(_rod(center - d, center + d, max(radius * 0.006, 0.002), 4))
    return parts


def _arc(
    center: Point, radius: float, start: float, stop: float, width: float, thickness: float, n: int = 6
) -> list[trimesh.Trimesh]:
    """Curved strip in the y-z plane made of `n` boxes: mudguards and wheel fenders.

    Angles are in degrees about +x from the +y axis (90 = straight up).
    """
    center = np.asarray(center, dtype=float)
    angles = np.radians(np.linspace(start, stop, n + 1))
    chord = 2.0 * radius * np.sin((angles[1] - angles[0]) / 2.0) * 1.15
    parts = []
    for a in (angles[:-1] + angles[1:]) / 2.0:
        box = trimesh.creation.box(extents=(width, chord, thickness))
        box.apply_transform(trimesh.transformations.rotation_matrix(a - np.pi / 2, [1.0, 0.0, 0.0]))
        box.apply_translation(center + radius * np.array([0.0, np.cos(a), np.sin(a)]))
        parts.append(box)
    return parts


def _legs(
    feet: Sequence[Point], z_top: float, thickness: float, round_legs: bool, splay: float = 0.0
) -> list[trimesh.Trimesh]:
    """Vertical legs from the floor up to `z_top` at the (x, y) `feet`.

    `splay` moves each foot outwards (away from the centre of the feet) by that
    distance, as on many chairs and tables.
    """
    feet = np.asarray(feet, dtype=float)
    middle = feet.mean(axis=0)
    parts = []
    for x, y in feet:
        out = np.array([x, y]) - middle
        out = out / max(np.linalg.norm(out), 1e-9) * splay
        top = (x, y, z_top)
        bottom = (x + out[0], y + out[1], 0.0)
        if round_legs:
            parts.append(_rod(bottom, top, thickness / 2.0, 10))
        else:
            h = thickness / 2.0
            parts.append(
                _hull(
                    [(top[0] + dx, top[1] + dy, z_top) for dx in (-h, h) for dy in (-h, h)]
                    + [(bottom[0] + dx * 0.8, bottom[1] + dy * 0.8, 0.0) for dx in (-h, h) for dy in (-h, h)]
                )
            )
    return parts


def _corners(half_x: float, half_y: float) -> list[tuple[float, float]]:
    """The four (x, y) corners of a rectangle, for legs and wheels."""
    return [(sx * half_x, sy * half_y) for sx in SIDES for sy in SIDES]


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    """One uniform draw as a plain float (keeps builder lines short)."""
    return float(rng.uniform(lo, hi))


# ----------------------------------------------------------------------------------
# Category builders. Each takes the seeded generator and returns its parts.
# ----------------------------------------------------------------------------------


def _aeroplane(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    """Fuselage along y (nose at −y), swept wings, tailplane and fin at +y, engines or a propeller."""
    length = 1.0
    r = length * _u(rng, 0.04, 0.065)
    nose = length * _u(rng, 0.07, 0.14)
    tail = length * _u(rng, 0.22, 0.32)
    y0, y1 = -length / 2, length / 2
    tail_rise = r * _u(rng, 0.3, 0.7)
    parts = [
        _loft(
            [
                _ring(y0, 0.15 * r, -0.25 * r, 0.12 * r),
                _ring(y0 + 0.35 * nose, 0.7 * r, -0.08 * r, 0.7 * r, 14),
                _ring(y0 + nose, r, 0.0, r, 14),
                _ring(y1 - tail, r, 0.0, r, 14),
                _ring(y1, 0.22 * r, tail_rise, 0.3 * r),
            ]
        )
    ]

    span = length * _u(rng, 0.8, 1.15)
    chord = length * _u(rng, 0.13, 0.22)
    taper = _u(rng, 0.25, 0.55)
    sweep = _u(rng, 0.0, 0.6) * span / 2
    wing_le = length * _u(rng, -0.2, -0.05)
    wing_z = r * float(rng.choice([-0.6, 0.0, 0.75]))
    dihedral = span / 2 * _u(rng, -0.02, 0.08)
    for s in SIDES:
        parts.append(
            _panel((0, wing_le, wing_z), (s * span / 2, wing_le + sweep, wing_z + dihedral),
                   chord, chord * taper, 0.12 * chord, 2)
        )

    # Fin: shifted so that its trailing edge ends just behind the tail cone.
    fin_h = length * _u(rng, 0.11, 0.18)
    fin_c = length * _u(rng, 0.12, 0.2)
    fin_sweep = fin_h * _u(rng, 0.4, 1.2)
    fin_taper = _u(rng, 0.35, 0.7)
    fin_back = max(fin_c, fin_sweep + fin_c * fin_taper)
    fin_le = y1 + length * _u(rng, 0.0, 0.03) - fin_back
    fin_z = 0.5 * r
    parts.append(
        _panel((0, fin_le, fin_z), (0, fin_le + fin_sweep, fin_z + fin_h),
               fin_c, fin_c * fin_taper, 0.1 * fin_c, 0)
    )

    t_tail = rng.random() < 0.25
    tp_span = span * _u(rng, 0.3, 0.42)
    tp_c = fin_c * _u(rng, 0.6, 0.9)
    tp_sweep = tp_span / 2 * _u(rng, 0.1, 0.6)
    tp_taper = _u(rng, 0.4, 0.7)
    if t_tail:
        tp_le, tp_z = fin_le + fin_sweep, fin_z + fin_h
    else:
        tp_le = y1 - length * _u(rng, 0.0, 0.02) - max(tp_c, tp_sweep + tp_c * tp_taper)
        tp_z = tail_rise * 0.5
    for s in SIDES:
        parts.append(
            _panel((0, tp_le, tp_z), (s * tp_span / 2, tp_le + tp_sweep, tp_z),
                   tp_c, tp_c * tp_taper, 0.1 * tp_c, 2)
        )

    engines = rng.choice(["wing2", "wing4", "rear2", "prop"], p=[0.4, 0.2, 0.15, 0.25])
    nacelle_r = r * _u(rng, 0.4, 0.6)
    nacelle_len = chord * _u(rng, 0.5, 0.8)

    def nacelle(x: float, y_mid: float, z: float) -> trimesh.Trimesh:
        return _loft(
            [_ring(y_mid - nacelle_len / 2, nacelle_r, z, nacelle_r, 10),
             _ring(y_mid + nacelle_len / 2, 0.6 * nacelle_r, z, 0.6 * nacelle_r, 10)]
        ).apply_translation((x, 0, 0))

    if engines in ("wing2", "wing4"):
        fractions = (0.35,) if engines == "wing2" else (0.3, 0.6)
        for f in fractions:
            for s in SIDES:
                le = wing_le + sweep * f
                parts.append(nacelle(s * f * span / 2, le + 0.1 * nacelle_len, wing_z + dihedral * f - nacelle_r))
    elif engines == "rear2":
        for s in SIDES:
            parts.append(nacelle(s * (r + nacelle_r * 1.2), y1 - tail + nacelle_len * 0.6, 0.4 * r))
            parts.append(_span_box((s * 0.5 * r, y1 - tail + 0.5 * nacelle_len, 0.3 * r),
                                   (s * (r + 0.3 * nacelle_r), y1 - tail + 0.8 * nacelle_len, 0.45 * r)))
    else:
        blade = length * _u(rng, 0.08, 0.12)
        hub = (0, y0 + 0.1 * r, -0.25 * r)
        spinner = trimesh.creation.cone(0.2 * r, 0.6 * r, sections=10, transform=_along((0, -1, 0), hub))
        parts += [spinner, _box((blade, 0.01 * r + 0.004, 0.12 * r), (0, y0 - 0.1 * r, -0.25 * r))]
    return parts


def _bicycle(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    """Two spoked wheels (front at −y), diamond or step-through frame, saddle, handlebar at the front."""
    radius = _u(rng, 0.30, 0.36)
    base = _u(rng, 0.98, 1.12)
    tyre = _u(rng, 0.014, 0.028)
    tube = _u(rng, 0.012, 0.02)
    spokes = int(rng.integers(3, 6))
    front = np.array([0.0, -base / 2, radius])
    rear = np.array([0.0, base / 2, radius])
    parts = _wheel(front, radius, 0.1, tyre, spokes) + _wheel(rear, radius, 0.12, tyre, spokes)

    bb = np.array([0.0, base / 2 - _u(rng, 0.40, 0.46), radius - _u(rng, 0.04, 0.08)])
    seat_angle = np.radians(_u(rng, 70, 76))
    seat_dir = np.array([0.0, np.cos(seat_angle), np.sin(seat_angle)])  # leans back (+y) going up
    seat_top = bb + _u(rng, 0.42, 0.58) * seat_dir
    head_angle = np.radians(_u(rng, 68, 74))
    head_dir = np.array([0.0, np.cos(head_angle), np.sin(head_angle)])
    head_bottom = front + _u(rng, 0.38, 0.46) * head_dir
    head_top = head_bottom + _u(rng, 0.1, 0.2) * head_dir

    parts += [_rod(head_bottom, head_top, tube * 1.4), _rod(bb, seat_top, tube), _rod(bb, head_bottom, tube * 1.2)]
    if rng.random() < 0.25:  # step-through frame: a low second tube instead of the top tube
        parts.append(_rod(bb + 0.3 * (seat_top - bb), head_bottom + 0.04 * head_dir, tube))
    else:
        parts.append(_rod(seat_top - 0.03 * seat_dir, head_top - 0.02 * head_dir, tube))
    for s in SIDES:
        hub = (s * 0.05, 0, 0)
        parts += [
            _rod(bb + (s * 0.03, 0, 0), rear + hub, tube * 0.7, 6),
            _rod(seat_top - 0.03 * seat_dir + (s * 0.02, 0, 0), rear + hub, tube * 0.7, 6),
            _rod(head_bottom + (s * 0.03, 0, 0), front + hub, tube * 0.8, 6),
        ]

    post_top = seat_top + _u(rng, 0.06, 0.2) * seat_dir
    parts.append(_rod(seat_top, post_top, tube * 0.8, 6))
    saddle_w = _u(rng, 0.12, 0.2)
    parts.append(
        _hull([(sx * saddle_w / 2, 0.08, dz) for sx in SIDES for dz in (0.0, 0.05)]
              + [(sx * 0.02, -0.18, dz) for sx in SIDES for dz in (0.01, 0.045)]).apply_translation(post_top)
    )

    stem_end = head_top + (0.0, -_u(rng, 0.04, 0.12), _u(rng, 0.02, 0.12))
    parts.append(_rod(head_top, stem_end, tube, 6))
    style = rng.choice(["flat", "drop", "upright"])
    bar_w = _u(rng, 0.40, 0.46) if style == "drop" else _u(rng, 0.48, 0.64)
    bar = [(-bar_w / 2, 0, 0), (bar_w / 2, 0, 0)]
    parts += _polyline([stem_end + p for p in bar], tube * 0.8)
    for s in SIDES:
        end = stem_end + (s * bar_w / 2, 0, 0)
        if style == "drop":
            drop = [end, end + (0, -0.08, -0.04), end + (0, -0.05, -0.12), end + (0, 0.03, -0.13)]
            parts += _polyline(drop, tube * 0.8)
        elif style == "upright":
            parts += _polyline([end, end + (s * 0.02, 0.14, 0.03)], tube)

    crank = _u(rng, 0, np.pi)
    for s in SIDES:
        d = s * 0.17 * np.array([0.0, np.cos(crank), np.sin(crank)])
        foot = bb + d + (s * 0.07, 0, 0)
        parts += [_rod(bb + (s * 0.07, 0, 0), foot, 0.01, 6), _box((0.09, 0.08, 0.02), foot + (s * 0.05, 0, 0))]
    parts.append(_disc(bb + (0.05, 0, 0), _u(rng, 0.08, 0.11), 0.008))  # chainring

    if rng.random() < 0.3:  # mudguards
        for hub, span in ((front, (20, 150)), (rear, (30, 160))):
            parts += _arc(hub, radius + 0.02, span[0], span[1], tyre * 3, 0.004, 6)
    if rng.random() < 0.3:  # rear rack
        top = rear + (0, -0.05, radius + 0.06)
        parts.append(_box((0.14, 0.36, 0.015), top))
        parts += [_rod(top + (s * 0.06, 0.12, 0), rear + (s * 0.06, 0, 0), 0.006, 4) for s in SIDES]
    if rng.random() < 0.2:  # front basket
        parts.append(_box((0.32, 0.24, 0.2), stem_end + (0, -0.18, -0.08)))
    return parts


def _boat(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    """Hull tapering to a bow at −y with a deck, and a cabin, sails, superstructure or benches."""
    length = 1.0
    beam = length * _u(rng, 0.2, 0.38) / 2
    depth = length * _u(rng, 0.07, 0.13)
    stern = beam * _u(rng, 0.7, 0.95)
    y0, y1 = -length / 2, length / 2
    bow_rise = depth * _u(rng, 0.05, 0.3)
    fullness = _u(rng, 0.4, 0.65)  # how far aft the hull reaches full beam
    keel = beam * _u(rng, 0.1, 0.4)
    transom = depth * _u(rng, 0.1, 0.4)
    sections = []
    for t in np.linspace(0.0, 1.0, 9):
        taper = 1.0 - (1.0 - min(t / fullness, 1.0)) ** 2  # parabolic bow waterline
        half = beam * taper if t <= fullness else beam + (stern - beam) * (t - fullness) / (1 - fullness)
        deck = depth + bow_rise * (1.0 - t) ** 2
        bottom = depth * 0.7 * (1.0 - min(t / 0.2, 1.0)) ** 2 + transom * max(t - 0.8, 0.0) / 0.2
        y = y0 + t * length
        outline = ((half, deck), (half * 0.85, bottom + (deck - bottom) * 0.35), (keel * taper, bottom))
        sections.append(np.array([(sx * w, y, z) for sx in SIDES for w, z in outline]))
    parts = [_loft(sections)]
    kind = rng.choice(["motor", "sail", "ship", "open"])
    if kind == "motor":
        front = _u(rng, -0.15, 0.1)
        back = y1 - _u(rng, 0.08, 0.25)
        h = depth * _u(rng, 0.6, 1.3)
        w = beam * _u(rng, 0.55, 0.8)
        slant = _u(rng, 0.05, 0.15)
        parts.append(_loft([_rect(front, w, depth - 0.01, depth), _rect(back, w, depth - 0.01, depth + h),
                            _rect(front + slant, w * 0.9, depth + h - 0.005, depth + h)]))
        if rng.random() < 0.4:  # flybridge with a console
            parts.append(_span_box((-w * 0.7, front + slant + 0.05, depth + h),
                                   (w * 0.7, back - 0.03, depth + h + 0.015)))
            parts.append(_box((w * 0.5, 0.04, 0.04), (0, front + slant + 0.1, depth + h + 0.035)))
    elif kind == "sail":
        mast_y = y0 + length * _u(rng, 0.3, 0.42)
        mast_h = length * _u(rng, 0.8, 1.3)
        boom = length * _u(rng, 0.3, 0.45)
        boom_z = depth + 0.06
        parts += [
            _rod((0, mast_y, depth), (0, mast_y, depth + mast_h), 0.007, 8),
            _rod((0, mast_y, boom_z), (0, mast_y + boom, boom_z), 0.005, 6),
            _sail([(mast_y + 0.01, boom_z + 0.01), (mast_y + 0.01, depth + mast_h * 0.95),
                   (mast_y + boom, boom_z + 0.01)]),
            _span_box((-beam * 0.5, mast_y + 0.04, depth - 0.01),
                      (beam * 0.5, mast_y + _u(rng, 0.18, 0.3), depth + depth * 0.4)),
        ]
        if rng.random() < 0.6:  # jib from the mast head to the bow
            parts.append(_sail([(mast_y - 0.01, depth + mast_h * 0.8), (mast_y - 0.01, depth + 0.04),
                                (y0 + 0.04, depth + 0.04)]))
    elif kind == "ship":
        levels = int(rng.integers(2, 4))
        back = y1 - _u(rng, 0.04, 0.1)
        size = _u(rng, 0.2, 0.35)
        z = depth
        for k in range(levels):
            h = depth * _u(rng, 0.5, 0.8)
            width = beam * (0.85 - 0.12 * k)
            parts.append(_span_box((-width, back - size * (1 - 0.2 * k), z - 0.005), (width, back, z + h)))
            z += h
        parts.append(_rod((0, back - size * 0.3, depth), (0, back - size * 0.3, z + depth * 0.8), beam * 0.18, 12))
        if rng.random() < 0.6:  # deck cargo
            for k in range(int(rng.integers(1, 4))):
                yc = y0 + 0.35 * length + k * 0.12
                parts.append(_box((beam * 1.2, 0.1, depth * 0.6), (0, yc, depth + depth * 0.3)))
    else:
        for k in range(int(rng.integers(2, 4))):
            yc = y0 + 0.35 * length + k * _u(rng, 0.15, 0.22)
            half = beam * 0.9 if yc > y0 + 0.3 * length else beam * 0.6
            parts.append(_box((2 * half, 0.05, 0.015), (0, yc, depth + 0.01)))
        if rng.random() < 0.7:  # outboard motor on the transom
            parts += [
                _box((0.05, 0.05, 0.07), (0, y1 + 0.015, depth + 0.04)),
                _rod((0, y1 + 0.025, depth), (0, y1 + 0.025, -depth * 0.3), 0.008, 6),
            ]
    return parts


def _sail(corners: Sequence[tuple[float, float]]) -> trimesh.Trimesh:
    """Thin triangular sail in the y-z plane through three (y, z) corners."""
    return _hull([(x, y, z) for x in (-0.002, 0.002) for y, z in corners])


def _bottle(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    """Surface of revolution about z: body, shoulder, neck, lip and an optional cap."""
    height = 1.0
    r = height * _u(rng, 0.12, 0.22)
    neck = r * _u(rng, 0.28, 0.5)
    body = height * _u(rng, 0.4, 0.65)
    shoulder = height * _u(rng, 0.06, 0.22)
    cap = height * _u(rng, 0.04, 0.08) if rng.random() < 0.6 else 0.0
    lip = neck * _u(rng, 1.08, 1.25)
    curve = _u(rng, 0.5, 2.0)  # <1: round (wine) shoulder, >1: sharp (beer) shoulder
    t = np.linspace(0.0, 1.0, 6)
    shoulder_r = neck + (r - neck) * (1.0 - t**curve) ** (1.0 / curve)
    top = height - cap
    profile = (
        [(0.0, 0.0), (r * 0.92, 0.0), (r, 0.03 * height), (r, body)]
        + [(sr, body + ti * shoulder) for sr, ti in zip(shoulder_r[1:], t[1:])]
        + [(neck, top - 0.04 * height), (lip, top - 0.03 * height), (lip, top - 0.01 * height), (neck, top)]
    )
    if cap:
        profile += [(lip * 1.05, top), (lip * 1.05, height)]
    profile += [(0.0, height)]
    return [trimesh.creation.revolve(np.asarray(profile), sections=16)]


def _bus(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    """Long body along y with a bevelled windscreen at −y, bumper, mirrors and two or three axles."""
    width = _u(rng, 2.4, 2.6)
    length = _u(rng, 8.5, 13.5)
    double = rng.random() < 0.25
    height = _u(rng, 4.0, 4.4) if double else _u(rng, 2.9, 3.5)
    wheel_r = _u(rng, 0.45, 0.55)
    floor = wheel_r * _u(rng, 0.5, 0.9)
    bevel = _u(rng, 0.4, 0.9)
    screen_base = floor + _u(rng, 0.8, 1.2)
    round_top = _u(rng, 0.05, 0.3)
    y0, y1 = -length / 2, length / 2
    half = width / 2
    parts = [
        _loft([
            _rect(y0, half - 0.05, floor, screen_base, 0.1),
            _rect(y0 + bevel, half, floor, height, round_top),
            _rect(y1, half, floor, height, round_top),
        ]),
        _span_box((-half + 0.05, y0 - 0.08, floor - 0.05), (half - 0.05, y0 + 0.1, floor + 0.3)),
    ]
    for s in SIDES:  # wing mirrors hanging in front of the windscreen
        arm = [(s * (half - 0.05), y0 + bevel, height - 0.4), (s * (half + 0.2), y0 - 0.05, height - 0.5)]
        parts += _polyline(arm, 0.03) + [_box((0.08, 0.05, 0.35), (s * (half + 0.2), y0 - 0.05, height - 0.7))]
    axles = [y0 + _u(rng, 2.0, 2.8), y1 - _u(rng, 2.4, 3.4)]
    if length > 11.5 and rng.random() < 0.5:
        axles.append(axles[-1] + 1.3)
    tyre_w = 0.3
    for y in axles:
        for s in SIDES:
            hub = (s * (half - tyre_w / 2 + 0.02), y, wheel_r)
            parts += _wheel(hub, wheel_r, tyre_w, tyre=tyre_w / 2, rim=wheel_r - 0.2)
    if rng.random() < 0.5:  # roof air-conditioning unit
        parts.append(_box((width * 0.6, _u(rng, 1.5, 3.0), 0.25), (0, _u(rng, -1, 1), height + 0.1)))
    return parts


def _car(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    """Lower body with a hood sloping down to −y, a cabin set back, four wheels; sedan to pickup."""
    kind = rng.choice(["sedan", "hatch", "suv", "pickup"], p=[0.35, 0.25, 0.25, 0.15])
    length = _u(rng, *{"sedan": (4.2, 5.0), "hatch": (3.6, 4.3), "suv": (4.3, 5.0), "pickup": (4.9, 5.6)}[kind])
    width = _u(rng, 1.7, 1.95)
    wheel_r = _u(rng, 0.36, 0.42) if kind in ("suv", "pickup") else _u(rng, 0.3, 0.36)
    clearance = wheel_r * _u(rng, 0.45, 0.7)
    belt = 2 * wheel_r + _u(rng, 0.15, 0.3)
    hood_drop = _u(rng, 0.08, 0.22)
    roof = belt + (_u(rng, 0.6, 0.75) if kind == "suv" else _u(rng, 0.42, 0.58))
    y0, y1 = -length / 2, length / 2
    half = width / 2
    parts = [
        _loft([
            _rect(y0, half * 0.92, clearance + 0.1, belt - hood_drop, 0.1),
            _rect(y0 + 0.3, half, clearance, belt - hood_drop * 0.5, 0.12),
            _rect(y1 - 0.25, half, clearance, belt, 0.12),
            _rect(y1, half * 0.95, clearance + 0.1, belt, 0.1),
        ])
    ]
    hood = _u(rng, 1.1, 1.45) if kind == "sedan" else _u(rng, 0.85, 1.3)
    screen = y0 + hood
    run = _u(rng, 0.55, 0.8)
    if kind == "sedan":
        base_back = y1 - _u(rng, 0.55, 0.85)
        top_back = base_back - _u(rng, 0.3, 0.5)
    elif kind == "pickup":
        base_back = screen + _u(rng, 1.5, 2.3)
        top_back = base_back - 0.05
    else:
        base_back = y1 - 0.1
        top_back = y1 - _u(rng, 0.15, 0.45)
    parts.append(_loft([_rect(screen, half * 0.92, belt - 0.05, belt), _rect(base_back, half * 0.92, belt - 0.05, belt),
                        _rect(screen + run, half * _u(rng, 0.72, 0.82), roof - 0.02, roof),
                        _rect(top_back, half * 0.75, roof - 0.02, roof)]))
    if kind == "pickup":  # open bed: side walls and tailgate
        wall = belt + _u(rng, 0.15, 0.3)
        parts += [_span_box((s * half, base_back, belt - 0.05), (s * (half - 0.06), y1, wall)) for s in SIDES]
        parts.append(_span_box((-half, y1 - 0.06, belt - 0.05), (half, y1, wall)))
    elif rng.random() < 0.2:  # rear spoiler
        parts.append(_box((width * 0.85, 0.25, 0.04), (0, y1 - 0.2, belt + 0.12)))
        parts += [_box((0.05, 0.1, 0.12), (s * width * 0.3, y1 - 0.2, belt + 0.05)) for s in SIDES]
    for s in SIDES:  # side mirrors at the foot of the windscreen
        parts.append(_box((0.18, 0.08, 0.12), (s * (half + 0.06), screen + 0.1, belt + 0.08)))
    for y in (y0 + _u(rng, 0.75, 1.0), y1 - _u(rng, 0.75, 1.1)):
        for s in SIDES:
            parts += _wheel((s * (half - 0.08), y, wheel_r), wheel_r, 0.2, tyre=0.11, rim=wheel_r - 0.16)
    return parts


def _chair(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    """Seat whose front faces −y, backrest at +y, legs/sled/pedestal base, optional armrests."""
    seat_z = _u(rng, 0.42, 0.5)
    sw = _u(rng, 0.4, 0.56)
    sd = _u(rng, 0.38, 0.5)
    st = _u(rng, 0.03, 0.08)
    back_h = _u(rng, 0.35, 0.6)
    tilt = _u(rng, 0.0, 0.25) * back_h
    bt = _u(rng, 0.02, 0.06)
    top_z = seat_z + back_h
    parts = [_box((sw, sd, st), (0, 0, seat_z - st / 2))]
    base = rng.choice(["legs", "legs", "sled", "pedestal"])
    if base == "legs":
        lt = _u(rng, 0.025, 0.05)
        inset = _u(rng, 0.0, 0.03)
        feet = _corners(sw / 2 - lt / 2 - inset, sd / 2 - lt / 2 - inset)
        parts += _legs(feet, seat_z - st, lt, rng.random() < 0.4, _u(rng, 0.0, 0.05))
        if rng.random() < 0.4:  # stretchers between the legs
            z = _u(rng, 0.1, 0.2)
            hx, hy = sw / 2 - lt - inset, sd / 2 - lt - inset
            parts += [_rod((s * hx, -hy, z), (s * hx, hy, z), lt * 0.3, 6) for s in SIDES]
            parts.append(_rod((-hx, -hy, z), (hx, -hy, z), lt * 0.3, 6))
    elif base == "sled":
        for s in SIDES:
            x = s * sw / 2 * 0.9
            parts += _polyline([(x, sd / 2, seat_z - st), (x, sd / 2 + 0.03, 0.01), (x, -sd / 2 - 0.03, 0.01),
                                (x, -sd / 2, seat_z - st)], 0.012, 8)
    else:
        arm = _u(rng, 0.28, 0.34)
        parts += [_rod((0, 0, 0.1), (0, 0, seat_z - st), 0.025, 10),
                  _box((0.12, 0.12, 0.05), (0, 0, seat_z - st - 0.02))]
        for k in range(5):
            a = 2 * np.pi * k / 5 + np.pi / 2
            end = (arm * np.cos(a), arm * np.sin(a), 0.07)
            parts += [_rod((0, 0, 0.1), end, 0.018, 6), _ball((end[0], end[1], 0.03), 0.03, 0)]

    style = rng.choice(["panel", "slats", "rails"])
    y_back = sd / 2 - bt / 2
    if style == "panel":
        gap = _u(rng, 0.0, 0.12)
        bw = sw * _u(rng, 0.8, 1.0)
        z0 = seat_z + gap
        parts.append(_hull(np.concatenate([_rect(y, bw / 2, z, z + 0.01) for y, z in (
            (y_back, z0), (y_back + bt, z0), (y_back + tilt, top_z - 0.01), (y_back + tilt + bt, top_z - 0.01))])))
        if gap > 0:
            parts.append(_span_box((-0.03, y_back - bt / 2, seat_z - st), (0.03, y_back + bt / 2, z0 + 0.03)))
    else:
        post = _u(rng, 0.025, 0.04)
        for s in SIDES:
            x = s * (sw / 2 - post / 2)
            parts.append(_rod((x, y_back, seat_z - st), (x, y_back + tilt, top_z), post / 2, 8))
        rail_h = _u(rng, 0.05, 0.12)
        parts.append(_box((sw, bt, rail_h), (0, y_back + tilt * (1 - rail_h / back_h / 2), top_z - rail_h / 2)))
        n = int(rng.integers(2, 5))
        for k in range(n):
            if style == "slats":  # vertical slats
                x = (k + 1) / (n + 1) * sw - sw / 2
                parts.append(_rod((x, y_back, seat_z), (x, y_back + tilt, top_z - rail_h), 0.012, 6))
            else:  # horizontal rails
                f = (k + 1) / (n + 1) * (1 - rail_h / back_h)
                parts.append(_box((sw, bt * 0.8, 0.025), (0, y_back + tilt * f, seat_z + f * back_h)))
    if rng.random() < 0.35:  # armrests
        arm_z = seat_z + _u(rng, 0.18, 0.26)
        for s in SIDES:
            x = s * (sw / 2 + 0.02)
            parts += [_span_box((x - 0.03, -sd / 2 + 0.02, arm_z - 0.03), (x + 0.03, sd / 2 + tilt * 0.4, arm_z)),
                      _rod((x, -sd / 2 + 0.06, seat_z - st), (x, -sd / 2 + 0.06, arm_z), 0.015, 6)]
    return parts


def _diningtable(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    """Top wider (x) than deep (y), on four legs, one or two pedestals, or trestles."""
    width = _u(rng, 1.2, 2.2)
    depth = width * _u(rng, 0.45, 0.8)
    height = _u(rng, 0.72, 0.78)
    t = _u(rng, 0.03, 0.07)
    under = height - t
    if rng.random() < 0.3:  # oval or rounded top
        top = trimesh.creation.cylinder(1.0, t, sections=24)
        top.apply_scale((width / 2, depth / 2, 1.0))
        top.apply_translation((0, 0, height - t / 2))
        reach = 0.7  # legs must stay under an ellipse
    else:
        top = _box((width, depth, t), (0, 0, height - t / 2))
        reach = 1.0
    parts = [top]
    base = rng.choice(["legs", "legs", "pedestal", "trestle"])
    if base == "legs":
        lt = _u(rng, 0.04, 0.09)
        hx = (width / 2 - _u(rng, 0.04, 0.15)) * reach - lt / 2
        hy = (depth / 2 - _u(rng, 0.04, 0.1)) * reach - lt / 2
        parts += _legs(_corners(hx, hy), under, lt, rng.random() < 0.4, _u(rng, 0.0, 0.04))
        if rng.random() < 0.6:  # apron under the top
            a = _u(rng, 0.06, 0.12)
            parts += [_span_box((-hx, s * hy - 0.01, under - a), (hx, s * hy + 0.01, under)) for s in SIDES]
            parts += [_span_box((s * hx - 0.01, -hy, under - a), (s * hx + 0.01, hy, under)) for s in SIDES]
    elif base == "pedestal":
        column = _u(rng, 0.05, 0.1)
        xs = (0.0,) if width < 1.6 else (-width * 0.3, width * 0.3)
        for x in xs:
            parts.append(_rod((x, 0, 0.03), (x, 0, under), column, 12))
            if len(xs) == 1:
                parts.append(_disc((x, 0, 0.02), depth * 0.3, 0.04, (0, 0, 1), 20))
            else:
                parts.append(_box((0.1, depth * 0.7, 0.05), (x, 0, 0.025)))
            parts.append(_box((column * 3, depth * 0.5, 0.04), (x, 0, under - 0.02)))
    else:
        panel = _u(rng, 0.04, 0.08)
        xs = [s * (width / 2 - _u(rng, 0.12, 0.25)) for s in SIDES]
        for x in xs:
            parts += [_box((panel, depth * 0.3, under), (x, 0, under / 2)),
                      _box((panel * 1.5, depth * 0.8, 0.06), (x, 0, 0.03)),
                      _box((panel * 1.5, depth * 0.7, 0.05), (x, 0, under - 0.025))]
        parts.append(_box((xs[1] - xs[0], 0.05, 0.08), (0, 0, _u(rng, 0.15, 0.4))))
    return parts


def _motorbike(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    """Two wheels (front at −y), engine, tank, seat, fork up to a wide handlebar and headlight at −y."""
    base = _u(rng, 1.3, 1.6)
    radius = _u(rng, 0.28, 0.34)
    tyre = _u(rng, 0.05, 0.08)
    front = np.array([0.0, -base / 2, radius])
    rear = np.array([0.0, base / 2, radius])
    rim = radius - tyre * 1.5
    parts = _wheel(front, radius, 0.16, tyre, rim=rim) + _wheel(rear, radius, 0.2, tyre, rim=rim)

    rake = np.radians(_u(rng, 22, 32))
    fork_dir = np.array([0.0, np.sin(rake), np.cos(rake)])  # up and back from the front hub
    head_top = front + _u(rng, 0.62, 0.75) * fork_dir
    for s in SIDES:
        parts.append(_rod(front + (s * 0.08, 0, 0), head_top + (s * 0.07, 0, 0), 0.022, 8))
    bar_w = _u(rng, 0.62, 0.85)
    bar = head_top + (0.0, _u(rng, 0.0, 0.12), _u(rng, 0.04, 0.15))
    parts += _polyline([bar + (-bar_w / 2, 0.06, 0), bar + (-0.12, 0, 0), bar + (0.12, 0, 0),
                        bar + (bar_w / 2, 0.06, 0)], 0.014)
    lamp = head_top + (0.0, -0.1, -0.12)
    parts.append(_disc(lamp, _u(rng, 0.07, 0.1), 0.1, (0, 1, 0), 14))

    engine_y = _u(rng, -0.1, 0.1)
    engine_z = radius * _u(rng, 0.9, 1.2)
    engine = (_u(rng, 0.26, 0.36), _u(rng, 0.35, 0.5), _u(rng, 0.3, 0.42))
    parts.append(_box(engine, (0, engine_y, engine_z)))
    engine_top = engine_z + engine[2] / 2
    parts.append(_rod((0, engine_y - 0.05, engine_top), (0, engine_y - 0.15, engine_top + 0.12), engine[0] * 0.3, 12))
    tank_top = engine_top + _u(rng, 0.2, 0.3)
    tank_front = head_top[1] + 0.08
    tank_back = engine_y + engine[1] * 0.4
    parts.append(_loft([_ring(tank_front, 0.1, tank_top - 0.1, 0.08, 10),
                        _ring(tank_back, 0.16, tank_top - 0.12, 0.12, 10),
                        _ring(tank_back + 0.08, 0.1, tank_top - 0.18, 0.06, 10)]))
    seat_top = tank_top - _u(rng, 0.02, 0.1)
    seat_back = rear[1] - _u(rng, 0.0, 0.15)
    parts.append(_loft([_rect(tank_back, 0.14, seat_top - 0.12, seat_top, 0.04),
                        _rect(seat_back, 0.1, seat_top - 0.08, seat_top + _u(rng, 0.0, 0.08), 0.03)]))
    parts.append(_hull([(s * 0.05, y, z) for s in SIDES for y, z in
                        ((engine_y, engine_z), (seat_back + 0.1, seat_top - 0.1), (seat_back - 0.2, seat_top - 0.12))]))
    for s in SIDES:  # swing arm
        parts.append(_rod((s * 0.08, engine_y + engine[1] / 2, engine_z - 0.05), rear + (s * 0.09, 0, 0), 0.02, 6))
    low = engine_z - engine[2] / 2
    parts += _polyline([head_top, (0, engine_y - engine[1] / 2, low + 0.05)], 0.025, 8)  # down tube
    parts += _polyline([head_top, (0, tank_back, tank_top - 0.2), (0, seat_back, seat_top - 0.1)], 0.02, 8)  # backbone
    for s in SIDES:  # rear shocks
        parts.append(_rod((s * 0.1, seat_back - 0.1, seat_top - 0.1), rear + (s * 0.1, -0.08, 0.02), 0.025, 8))
    side = float(rng.choice(SIDES))  # exhaust along one side
    parts += _polyline([(side * 0.08, engine_y - engine[1] / 2, engine_z), (side * 0.14, engine_y, low - 0.03),
                        (side * 0.16, engine_y + engine[1] / 2 + 0.1, low + 0.02),
                        (side * 0.17, rear[1] + 0.05, radius + 0.1)],
                       0.035, 10)
    parts += _arc(front, radius + 0.03, 40, 140, 0.12, 0.01, 4) + _arc(rear, radius + 0.04, 60, 150, 0.16, 0.01, 4)
    if rng.random() < 0.35:  # sport fairing around the headlight and windscreen
        parts.append(_hull([(s * w, y, z) for s in SIDES for w, y, z in
                            ((0.18, lamp[1] - 0.02, lamp[2] - 0.15), (0.12, lamp[1] - 0.05, lamp[2] + 0.12),
                             (0.2, tank_front + 0.05, engine_z), (0.18, tank_front + 0.05, tank_top))]))
        screen = ((0.1, lamp[1] - 0.02, lamp[2] + 0.1), (0.08, lamp[1] + 0.08, lamp[2] + 0.3),
                  (0.1, lamp[1] + 0.03, lamp[2] + 0.1))
        parts.append(_hull([(s * w, y, z) for s in SIDES for w, y, z in screen]))
    return parts


def _sofa(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    """Base with seat cushions facing −y, a back at +y, armrests on ±x, short legs or a plinth."""
    width = _u(rng, 1.4, 2.4)
    depth = _u(rng, 0.8, 1.0)
    seat = _u(rng, 0.38, 0.48)
    top = _u(rng, 0.75, 1.0)
    back_t = _u(rng, 0.15, 0.3)
    arms = rng.random() < 0.85
    arm_w = _u(rng, 0.1, 0.25) if arms else 0.0
    rolled = arms and rng.random() < 0.4
    arm_h = min(_u(rng, 0.55, 0.72), top - 0.1 - (0.6 * arm_w if rolled else 0.0))  # the back stays highest
    leg = _u(rng, 0.03, 0.12) if rng.random() < 0.6 else 0.0
    cushion = _u(rng, 0.08, 0.15)
    soft = _u(rng, 0.01, 0.06)
    parts = [
        _soft_box((-width / 2, -depth / 2, leg), (width / 2, depth / 2, seat - cushion), soft * 0.5),
        _soft_box((-width / 2 + arm_w * 0.5, depth / 2 - back_t, seat - cushion - 0.01),
                  (width / 2 - arm_w * 0.5, depth / 2, top), soft),
    ]
    if leg:
        parts += _legs(_corners(width / 2 - 0.06, depth / 2 - 0.06), leg, 0.05, rng.random() < 0.5)
    if arms:
        for s in SIDES:
            x0, x1 = s * width / 2, s * (width / 2 - arm_w)
            parts.append(_soft_box((min(x0, x1), -depth / 2, seat - cushion - 0.01),
                                   (max(x0, x1), depth / 2, arm_h), soft))
            if rolled:  # rolled arm top
                xm = (x0 + x1) / 2
                parts.append(_rod((xm, -depth / 2, arm_h), (xm, depth / 2, arm_h), arm_w * 0.6, 12))
    n = int(rng.integers(1, 4))
    inner = width - 2 * arm_w
    seat_depth = depth - back_t
    gap = 0.01
    for k in range(n):
        x0 = -inner / 2 + k * inner / n
        parts.append(_soft_box((x0 + gap, -depth / 2 - 0.02, seat - cushion),
                               (x0 + inner / n - gap, -depth / 2 + seat_depth, seat), soft))
    if rng.random() < 0.6:  # back cushions leaning on the back
        lean = _u(rng, 0.04, 0.1)
        for k in range(n):
            x0 = -inner / 2 + k * inner / n + gap
            x1 = x0 + inner / n - 2 * gap
            yb = depth / 2 - back_t
            parts.append(_hull([(x, yb - t, z) for x in (x0, x1) for t, z in
                                ((0.12 + lean, seat), (0.0, seat), (lean * 0.5, top - 0.05), (0.0, top - 0.05))]))
    return parts


def _train(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    """A leading vehicle, nose at −y (streamlined, cab-fronted or steam), on bogies; maybe a coach behind."""
    gauge = 1.435
    width = _u(rng, 2.8, 3.2)
    half = width / 2
    floor = _u(rng, 0.9, 1.2)
    height = _u(rng, 3.8, 4.4)
    wheel_r = _u(rng, 0.42, 0.5)
    kind = rng.choice(["streamlined", "cab", "steam"], p=[0.4, 0.4, 0.2])
    length = _u(rng, 13.0, 20.0) if kind != "steam" else _u(rng, 11.0, 14.0)
    y0 = -length / 2
    roof = _u(rng, 0.3, 0.6)

    def bogies(y_start: float, car_length: float) -> list[trimesh.Trimesh]:
        out = []
        offset = _u(rng, 2.5, 4.0)
        for yc in (y_start + offset, y_start + car_length - offset):
            out.append(_box((gauge + 0.4, 2.8, 0.4), (0, yc, wheel_r + 0.05)))
            for dy in (-0.9, 0.9):
                for s in SIDES:
                    out += _wheel((s * gauge / 2, yc + dy, wheel_r), wheel_r, 0.14, sections=12)
        return out

    parts = [_span_box((-half * 0.9, y0 - 0.3, floor), (half * 0.9, y0 + 0.2, floor + 0.4))]  # buffer beam
    if kind == "steam":
        boiler_r = _u(rng, 0.75, 0.9)
        cab = _u(rng, 2.5, 3.5)
        boiler_z = floor + 0.3 + boiler_r
        parts += [
            _span_box((-half * 0.9, y0, floor), (half * 0.9, y0 + length, floor + 0.3)),
            _rod((0, y0 + 0.5, boiler_z), (0, y0 + length - cab, boiler_z), boiler_r, 16),
            _span_box((-half, y0 + length - cab, floor), (half, y0 + length, height)),
            _rod((0, y0 + 1.2, boiler_z), (0, y0 + 1.2, boiler_z + boiler_r + _u(rng, 0.5, 0.9)), 0.3, 12),
            _ball((0, y0 + length * 0.45, boiler_z + boiler_r), 0.4, 1),
        ]
        drivers = int(rng.integers(2, 4))
        big = _u(rng, 0.75, 0.9)
        for k in range(drivers):
            yc = y0 + length - cab - 0.6 - k * (2 * big + 0.2)
            for s in SIDES:
                parts += _wheel((s * gauge / 2, yc, big), big, 0.14, sections=14)
        for s in SIDES:
            parts += _wheel((s * gauge / 2, y0 + 1.5, wheel_r * 0.8), wheel_r * 0.8, 0.14, sections=12)
    else:
        nose = _u(rng, 3.0, 6.0) if kind == "streamlined" else _u(rng, 0.8, 1.6)
        tip_top = floor + (_u(rng, 0.3, 0.6) if kind == "streamlined" else _u(rng, 1.4, 1.9))
        tip_half = half * (_u(rng, 0.35, 0.6) if kind == "streamlined" else 0.95)
        mid = y0 + nose * 0.5
        parts.append(_loft([
            _rect(y0, tip_half, floor, tip_top, 0.1),
            _rect(mid, half * 0.92, floor, tip_top + (height - tip_top) * 0.75, roof),  # a rounded nose
            _rect(y0 + nose, half, floor, height, roof),
            _rect(y0 + length, half, floor, height, roof),
        ]))
        parts += bogies(y0, length)
        if rng.random() < 0.5:  # pantograph on the roof
            yp = y0 + length * _u(rng, 0.55, 0.8)
            parts += _polyline([(0, yp - 0.8, height), (0, yp, height + 0.9), (0, yp + 0.8, height + 0.3)], 0.05)
            parts.append(_box((1.6, 0.2, 0.06), (0, yp, height + 0.92)))
    if rng.random() < 0.25 or kind == "steam":  # a coach or tender coupled behind
        gap = 0.6
        car = _u(rng, 5.0, 7.0) if kind == "steam" else _u(rng, 10.0, 16.0)
        start = y0 + length + gap
        h = height - (_u(rng, 0.8, 1.2) if kind == "steam" else 0.0)
        parts.append(_loft([_rect(start, half, floor, h, roof), _rect(start + car, half, floor, h, roof)]))
        parts.append(_box((0.4, gap + 0.2, 0.3), (0, start - gap / 2, floor + 0.3)))
        parts += bogies(start, car)
    return parts


def _tvmonitor(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    """Screen facing −y framed by a bezel, back housing at +y, on a pedestal, feet, or a CRT box."""
    crt = rng.random() < 0.2
    width = _u(rng, 0.4, 0.6) if crt else _u(rng, 0.5, 1.2)
    aspect = _u(rng, 0.72, 0.8) if crt else _u(rng, 0.55, 0.72)
    height = width * aspect
    panel = _u(rng, 0.015, 0.05)
    bezel = _u(rng, 0.01, 0.04) * width
    lift = 0.0
    stand = "crt" if crt else rng.choice(["pedestal", "feet", "none"], p=[0.6, 0.25, 0.15])
    if stand == "pedestal":
        lift = _u(rng, 0.06, 0.2) * width
    elif stand == "feet":
        lift = _u(rng, 0.03, 0.08)
    z0, z1 = lift, lift + height
    lip = 0.006
    parts = [_span_box((-width / 2, 0, z0), (width / 2, panel, z1))]
    # Bezel: a frame standing `lip` proud of the screen, so the screen reads as recessed.
    parts += [
        _span_box((-width / 2, -lip, z0), (width / 2, 0.001, z0 + bezel * 1.4)),
        _span_box((-width / 2, -lip, z1 - bezel), (width / 2, 0.001, z1)),
        _span_box((-width / 2, -lip, z0), (-width / 2 + bezel, 0.001, z1)),
        _span_box((width / 2 - bezel, -lip, z0), (width / 2, 0.001, z1)),
    ]
    zc = (z0 + z1) / 2
    back = width * (_u(rng, 0.6, 0.8) if crt else _u(rng, 0.03, 0.12))
    shrink = _u(rng, 0.45, 0.7)
    parts.append(_loft([_rect(panel, width * 0.42, zc - height * 0.4, zc + height * 0.4),
                        _rect(panel + back, width * 0.42 * shrink, zc - height * 0.4 * shrink,
                              zc + height * 0.4 * shrink)]))
    if stand == "pedestal":
        neck_y = panel + back * 0.5
        base_d = _u(rng, 0.12, 0.25) * width + 0.05
        base_y = max(neck_y, base_d / 2)
        parts += [
            _span_box((-0.03 * width - 0.01, neck_y - 0.015, 0.01), (0.03 * width + 0.01, neck_y + 0.015, zc)),
            _box((width * _u(rng, 0.25, 0.5), base_d, 0.015), (0, base_y, 0.0075)),
        ]
    elif stand == "feet":
        for s in SIDES:
            x = s * width * _u(rng, 0.3, 0.42)
            parts.append(_hull([(x - 0.01, y, 0.0) for y in (0.0, 0.18)] + [(x + 0.01, y, 0.0) for y in (0.0, 0.18)]
                               + [(x + dx, panel / 2, z0 + 0.02) for dx in (-0.01, 0.01)]
                               + [(x + dx, panel / 2 + 0.01, 0.0) for dx in (-0.01, 0.01)]))
    elif stand == "crt":
        parts.append(_box((width * 0.6, back * 0.8, 0.03), (0, panel + back * 0.45, z0 + 0.015)))
    return parts


CATEGORY_BUILDERS: dict[str, Builder] = {
    "aeroplane": _aeroplane,
    "bicycle": _bicycle,
    "boat": _boat,
    "bottle": _bottle,
    "bus": _bus,
    "car": _car,
    "chair": _chair,
    "diningtable": _diningtable,
    "motorbike": _motorbike,
    "sofa": _sofa,
    "train": _train,
    "tvmonitor": _tvmonitor,
}


def generate_mesh(category: str, seed: int) -> trimesh.Trimesh:
    """The procedural mesh of `category` for `seed` (deterministic), in POSE.md's object frame.

    Not normalised: `vantage.train.meshes.ModelSpec.load()` centres and scales it.
    Raises ValueError naming the known categories for an unknown one.
    """
    category_index(category)
    rng = np.random.default_rng(seed)
    parts = CATEGORY_BUILDERS[category](rng)
    return trimesh.util.concatenate(parts)

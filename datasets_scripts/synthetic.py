"""Procedural Cityscapes-like road scenes: the embedded benchmark that needs no downloads.

Every scene is a pure function of `(seed, split, index)` and is drawn at any resolution with vectorised numpy
(no files, no state). Splits:

- `"train"` and `"validation"`: Cityscapes trainIds 0-18 (sky, road with markings, sidewalk, buildings,
  vegetation, terrain, fences, walls, poles, signs, traffic lights, cars, trucks, buses, people, riders,
  bicycles, motorcycles), OOD objects of the *training* families (`TRAIN_OOD_FAMILIES`) labelled 19 and the
  ego vehicle labelled 255 (ignore), as in Cityscapes.
- `"anomaly"`: the same kind of scenes, but the unknown objects come from families never used for training
  (`ANOMALY_FAMILIES`); labels 0 = in-distribution, 1 = anomaly, 255 = void (the ego vehicle). About 1-5 % of
  the pixels of every anomaly scene are anomalous.

Known classes look alike from scene to scene (a colour range and a texture per class), so that a tiny model
learns them in minutes; unknown objects are saturated, patterned and oddly shaped, their colours drawn at
random, so that no single colour identifies them.
"""

import colorsys
import functools

import numpy as np

from .common import encode_array


SPLITS = ("train", "validation", "anomaly")
TRAIN_OOD_FAMILIES = ("crate", "ball")
ANOMALY_FAMILIES = ("star", "blob")
OOD_TRAIN_ID = 19
IGNORE_INDEX = 255

ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN = range(8)
VEGETATION, TERRAIN, SKY, PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE = range(8, 19)

_SPLIT_CODES = {split: code for code, split in enumerate(SPLITS)}
_NOISE_SEED = 20250521
_NOISE_PAD = 64

# Base appearance of every label value (RGB), and the amplitude of its grain texture.
_BASE_COLOURS = np.zeros((256, 3), dtype=np.float32)
_GRAIN = np.zeros(256, dtype=np.float32)
for _train_id, _colour, _grain in (
    (ROAD, (78, 76, 82), 7),
    (SIDEWALK, (168, 150, 132), 9),
    (BUILDING, (120, 110, 100), 6),
    (WALL, (150, 146, 120), 10),
    (FENCE, (96, 84, 66), 5),
    (POLE, (70, 72, 78), 3),
    (TRAFFIC_LIGHT, (28, 30, 32), 3),
    (TRAFFIC_SIGN, (200, 185, 90), 4),
    (VEGETATION, (52, 102, 38), 22),
    (TERRAIN, (128, 146, 76), 14),
    (SKY, (150, 185, 230), 2),
    (PERSON, (110, 60, 50), 6),
    (RIDER, (60, 70, 110), 6),
    (CAR, (40, 45, 70), 5),
    (TRUCK, (170, 170, 160), 5),
    (BUS, (170, 150, 90), 5),
    (TRAIN, (150, 150, 170), 5),
    (MOTORCYCLE, (40, 40, 40), 4),
    (BICYCLE, (30, 60, 40), 4),
    (OOD_TRAIN_ID, (0, 0, 0), 4),
    (IGNORE_INDEX, (30, 30, 34), 3),
):
    _BASE_COLOURS[_train_id] = _colour
    _GRAIN[_train_id] = _grain

_CAR_COLOURS = np.array(
    [(40, 45, 70), (30, 30, 34), (200, 200, 205), (140, 140, 150), (110, 40, 40), (60, 80, 60), (90, 90, 110)],
    dtype=np.float32,
)
_CLOTHES_COLOURS = np.array([(110, 60, 50), (50, 50, 60), (130, 110, 80), (70, 40, 70), (40, 60, 90)], dtype=np.float32)
_FACADE_COLOURS = np.array(
    [(120, 110, 100), (140, 125, 105), (100, 100, 104), (150, 140, 130), (110, 90, 80)], dtype=np.float32
)


def generate_scene(
    index: int, split: str = "train", height: int = 512, width: int = 1024, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one synthetic road scene.

    Args:
        index (`int`):
            Index of the scene in its split (>= 0). Together with `seed` and `split` it fixes the scene.
        split (`str`, *optional*, defaults to `"train"`):
            One of `"train"`, `"validation"` (trainIds 0-18, 19 = OOD object, 255 = ignore) or `"anomaly"`
            (0 = in-distribution, 1 = anomaly, 255 = void).
        height (`int`, *optional*, defaults to 512):
            Image height in pixels (>= 32).
        width (`int`, *optional*, defaults to 1024):
            Image width in pixels (>= 32).
        seed (`int`, *optional*, defaults to 0):
            Seed of the whole benchmark (>= 0); another seed gives other scenes.

    Returns:
        `tuple[np.ndarray, np.ndarray]`: the RGB image (`uint8`, `(height, width, 3)`) and its label map
        (`uint8`, `(height, width)`).
    """
    _check_arguments(index, split, height, width, seed)
    rng = np.random.default_rng([seed, _SPLIT_CODES[split], index])
    scene = _Scene(rng, height, width)
    scene.draw_background()
    scene.draw_street_furniture()
    scene.draw_traffic()
    if split == "anomaly":
        anomaly_mask = draw_unknown_objects(scene, ANOMALY_FAMILIES, total_fraction=rng.uniform(0.015, 0.04))
    elif rng.random() < 0.7:
        draw_unknown_objects(scene, TRAIN_OOD_FAMILIES, total_fraction=rng.uniform(0.005, 0.03))
    scene.draw_ego_vehicle()
    image = scene.finish_image()
    label = scene.label
    if split == "anomaly":
        label = np.where(label == IGNORE_INDEX, IGNORE_INDEX, 0).astype(np.uint8)
        label[anomaly_mask] = 1
    return image, label


def _check_arguments(index, split, height, width, seed):
    if split not in _SPLIT_CODES:
        raise ValueError(f"Unknown synthetic split {split!r}; expected one of {SPLITS}.")
    for name, value, minimum in (("index", index, 0), ("seed", seed, 0), ("height", height, 32), ("width", width, 32)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise ValueError(f"Synthetic scene argument {name}={value!r} must be an integer >= {minimum}.")


@functools.lru_cache(maxsize=4)
def _grain_field(height, width):
    """A fixed noise field (one per size, same in every process) that scenes crop at random offsets."""
    rng = np.random.default_rng(_NOISE_SEED)
    field = rng.standard_normal((height + _NOISE_PAD, width + _NOISE_PAD), dtype=np.float32)
    field.setflags(write=False)
    return field


def _saturated_colours(rng, count):
    """`count` random vivid RGB colours (saturation and value >= 0.75), as float32 (count, 3)."""
    colours = [
        colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.75, 1.0), rng.uniform(0.75, 1.0)) for _ in range(count)
    ]
    return np.asarray(colours, dtype=np.float32) * 255.0


class _Scene:
    """Label map and image of one scene, drawn in layers (background, furniture, traffic, unknowns, ego car)."""

    def __init__(self, rng, height, width):
        self.rng = rng
        self.height = height
        self.width = width
        self.rows = np.arange(height, dtype=np.float32)[:, None]
        self.cols = np.arange(width, dtype=np.float32)[None, :]
        self.horizon = height * rng.uniform(0.36, 0.48)
        self.vanishing_x = width * rng.uniform(0.4, 0.6)
        self.road_left = width * rng.uniform(-0.15, 0.2)
        self.road_right = width * rng.uniform(0.8, 1.15)
        self.sidewalk_width = width * rng.uniform(0.1, 0.3)
        self.hood_top = height * rng.uniform(0.9, 0.95)
        self.label = np.empty((height, width), dtype=np.uint8)
        self.image = np.empty((height, width, 3), dtype=np.float32)

    # Geometry of the ground plane: x of the road and sidewalk edges at row y (linear in y below the horizon).
    def _depth(self, y):
        return np.clip((y - self.horizon) / (self.height - self.horizon), 0.0, 1.0)

    def _edge(self, y, bottom_x):
        return self.vanishing_x + (bottom_x - self.vanishing_x) * self._depth(y)

    def _roadside_x(self, offset):
        """Bottom-row x of a line `offset` pixels outside the left or the right road edge (chosen at random)."""
        return self.road_left - offset if self.rng.random() < 0.5 else self.road_right + offset

    def draw_background(self):
        """Sky, skyline, and the ground plane: terrain, sidewalks, the road and its markings, maybe a barrier."""
        ground = int(self.horizon) + 1  # first row below the horizon
        rows = self.rows[ground:]
        left, right = self._edge(rows, self.road_left), self._edge(rows, self.road_right)
        left_walk = self._edge(rows, self.road_left - self.sidewalk_width)
        right_walk = self._edge(rows, self.road_right + self.sidewalk_width)
        ground_label = self.label[ground:]
        ground_label[:] = TERRAIN
        ground_label[(self.cols >= left_walk) & (self.cols <= right_walk)] = SIDEWALK
        ground_label[(self.cols >= left) & (self.cols <= right)] = ROAD
        np.take(_BASE_COLOURS, ground_label, axis=0, out=self.image[ground:])
        self.label[:ground] = SKY
        gradient = 1.0 - 0.35 * self.rows[:ground, :, None] / max(self.horizon, 1.0)
        self.image[:ground] = _BASE_COLOURS[SKY] * gradient
        self._draw_skyline(ground)
        self._draw_lane_markings(ground, left, right)
        if self.rng.random() < 0.6:
            self._draw_roadside_barrier()

    def _draw_skyline(self, ground):
        """Buildings (a roof line per facade, windows) and tree crowns above the horizon."""
        rng, width = self.rng, self.width
        edges = np.sort(rng.integers(0, width, size=rng.integers(4, 12)))
        edges = np.concatenate([[0], edges, [width]])
        roof = np.empty(width, dtype=np.float32)
        facade = np.empty((width, 3), dtype=np.float32)
        for start, stop in zip(edges[:-1], edges[1:]):
            roof[start:stop] = self.horizon * rng.uniform(0.05, 0.8)
            facade[start:stop] = _FACADE_COLOURS[rng.integers(len(_FACADE_COLOURS))] + rng.uniform(-10, 10)
        if rng.random() < 0.8:
            roof[np.abs(self.cols[0] - self.vanishing_x) < self.width * rng.uniform(0.02, 0.12)] = self.horizon
        building = self.rows[:ground] >= roof[None, :]
        self.label[:ground][building] = BUILDING
        period_y, period_x = rng.integers(10, 24), rng.integers(12, 30)
        windows = ((self.rows[:ground] % period_y) < period_y * 0.5) & ((self.cols % period_x) < period_x * 0.45)
        shade = np.where(windows, np.float32(0.55), np.float32(1.0))[..., None]
        np.copyto(self.image[:ground], facade[None] * shade, where=building[..., None])
        for _ in range(rng.integers(1, 5)):
            centre_y = self.horizon * rng.uniform(0.4, 0.95)
            radius_y = self.horizon * rng.uniform(0.15, 0.4)
            radius_x = self.width * rng.uniform(0.04, 0.12)
            centre_x = self.width * rng.choice([rng.uniform(0.0, 0.3), rng.uniform(0.7, 1.0)])
            self._fill_ellipse(centre_y, centre_x, radius_y, radius_x, VEGETATION, max_row=ground)

    def _draw_lane_markings(self, ground, left, right):
        """Dashed centre line and solid edge lines, painted on the road (still labelled road).

        Lines are thin, so they are painted as per-row spans of pixel indices rather than full-image masks.
        """
        rows = self.rows[ground:, 0]
        depth = self._depth(rows)
        half = np.maximum(0.006 * self.width * depth, 0.5)
        centre = (left[:, 0] + right[:, 0]) * 0.5
        dashes = (np.sqrt(depth) * 14.0 + self.rng.random()) % 1.0 < 0.5
        offsets = np.arange(int(np.ceil(2 * half.max())) + 1)
        for middle, visible in ((centre, dashes), (left[:, 0] + 3 * half, True), (right[:, 0] - 3 * half, True)):
            start = np.floor(middle - half)
            span_cols = start[:, None] + offsets[None, :]
            keep = (span_cols < (middle + half)[:, None]) & (span_cols >= 0) & (span_cols < self.width)
            keep &= np.broadcast_to(np.asarray(visible)[..., None], keep.shape)
            span_rows = np.broadcast_to(rows.astype(np.int64)[:, None], keep.shape)[keep]
            span_cols = span_cols[keep].astype(np.int64)
            on_road = self.label[span_rows, span_cols] == ROAD
            self.image[span_rows[on_road], span_cols[on_road]] = (225.0, 225.0, 215.0)

    def _draw_roadside_barrier(self):
        """A wall or fence standing on the outer edge of one sidewalk (over terrain and facades behind it)."""
        rng = self.rng
        side_bottom_x = self._roadside_x(self.sidewalk_width)
        train_id = WALL if rng.random() < 0.5 else FENCE
        # Column x meets the sidewalk's outer edge at depth d(x); the barrier rises from there.
        depth = (self.cols - self.vanishing_x) / (side_bottom_x - self.vanishing_x)
        ground = self.horizon + depth * (self.height - self.horizon)
        top = ground - depth * self.height * rng.uniform(0.08, 0.2)
        barrier = (depth > 0) & (self.rows <= ground) & (self.rows >= top)
        self.label[barrier] = train_id
        colour = self._colour(train_id, None)
        if train_id == FENCE:
            slats = (self.cols % rng.integers(4, 9)) < 2
            self.image[barrier & slats] = colour * 0.6
            self.image[barrier & ~slats] = colour
        else:
            self.image[barrier] = colour

    def draw_street_furniture(self):
        """Poles with traffic signs or traffic lights on the outer sidewalk edges."""
        rng = self.rng
        for _ in range(rng.integers(1, 5)):
            bottom = self.horizon + (self.height - self.horizon) * rng.uniform(0.1, 0.6)
            depth = self._depth(bottom)
            x = self._edge(bottom, self._roadside_x(self.sidewalk_width * 0.6))
            pole_height = self.height * 0.9 * depth + 8
            pole_width = max(1.0, 0.008 * self.width * depth)
            self._fill_rect(bottom - pole_height, x - pole_width, bottom, x + pole_width, POLE)
            head = max(3.0, pole_width * rng.uniform(3, 5))
            top = bottom - pole_height
            if rng.random() < 0.5:
                self._fill_rect(top - head, x - head, top + head, x + head, TRAFFIC_SIGN)
            else:
                self._fill_rect(top, x - head * 0.6, top + 3 * head, x + head * 0.6, TRAFFIC_LIGHT)
                lamp = (220.0, 40.0, 30.0) if rng.random() < 0.5 else (40.0, 220.0, 90.0)
                self._fill_ellipse(top + head * 0.6, x, head * 0.4, head * 0.4, TRAFFIC_LIGHT, colour=lamp)

    def draw_traffic(self):
        """Vehicles on the road and people on the sidewalks, far ones first."""
        rng = self.rng
        agents = []
        for _ in range(rng.integers(1, 6)):
            agents.append(("vehicle", rng.uniform(0.05, 0.9)))
        for _ in range(rng.integers(0, 5)):
            agents.append(("person", rng.uniform(0.1, 0.9)))
        for kind, depth in sorted(agents, key=lambda agent: agent[1]):
            bottom = self.horizon + (self.height - self.horizon) * depth
            scale = self._depth(bottom) * self.height
            if kind == "vehicle":
                lateral = rng.uniform(0.1, 0.9)
                x = self._edge(bottom, self.road_left + (self.road_right - self.road_left) * lateral)
                self._draw_vehicle(bottom, x, scale)
            else:
                side_x = self._roadside_x(rng.uniform(0.2, 0.8) * self.sidewalk_width)
                self._draw_person(bottom, self._edge(bottom, side_x), scale)

    def _draw_vehicle(self, bottom, x, scale):
        rng = self.rng
        train_id = rng.choice([CAR, CAR, CAR, CAR, TRUCK, BUS, MOTORCYCLE, BICYCLE])
        if train_id in (MOTORCYCLE, BICYCLE):
            self._draw_two_wheeler(bottom, x, scale, train_id)
            return
        size = {CAR: (0.35, 0.7), TRUCK: (0.6, 0.8), BUS: (0.7, 1.0)}[train_id]
        height, width = scale * size[0], scale * size[1]
        colour = _CAR_COLOURS[rng.integers(len(_CAR_COLOURS))] if train_id == CAR else None
        body_top = bottom - height * (0.55 if train_id == CAR else 1.0)
        self._fill_rect(body_top, x - width / 2, bottom - height * 0.1, x + width / 2, train_id, colour=colour)
        if train_id == CAR:
            self._fill_rect(bottom - height, x - width * 0.35, body_top + 1, x + width * 0.35, CAR, colour=colour)
            self._fill_rect(
                bottom - height * 0.9, x - width * 0.3, body_top, x + width * 0.3, CAR, colour=(25.0, 30.0, 40.0)
            )
        else:
            self._fill_rect(
                body_top + height * 0.1, x - width * 0.45, body_top + height * 0.35, x + width * 0.45, train_id,
                colour=(30.0, 40.0, 50.0),
            )
        wheel = height * 0.12
        for wheel_x in (x - width * 0.32, x + width * 0.32):
            self._fill_ellipse(bottom - wheel, wheel_x, wheel, wheel * 0.8, train_id, colour=(15.0, 15.0, 15.0))

    def _draw_two_wheeler(self, bottom, x, scale, train_id):
        wheel = scale * 0.09
        for wheel_x in (x - wheel * 1.6, x + wheel * 1.6):
            self._fill_ellipse(bottom - wheel, wheel_x, wheel, wheel, train_id)
        self._fill_rect(bottom - wheel * 2.2, x - wheel * 1.6, bottom - wheel, x + wheel * 1.6, train_id)
        self._draw_person(bottom - wheel * 1.5, x, scale * 0.75, train_id=RIDER)

    def _draw_person(self, bottom, x, scale, train_id=PERSON):
        rng = self.rng
        height = scale * rng.uniform(0.28, 0.36)
        half = height * 0.14
        clothes = _CLOTHES_COLOURS[rng.integers(len(_CLOTHES_COLOURS))]
        self._fill_rect(bottom - height * 0.45, x - half * 0.8, bottom, x + half * 0.8, train_id, colour=clothes * 0.6)
        self._fill_rect(bottom - height * 0.82, x - half, bottom - height * 0.45, x + half, train_id, colour=clothes)
        head = height * 0.09
        self._fill_ellipse(bottom - height * 0.9, x, head, head * 0.85, train_id, colour=(205.0, 160.0, 130.0))

    def draw_ego_vehicle(self):
        """The ego vehicle's bonnet at the bottom (ignore label, as in Cityscapes)."""
        rows = slice(int(self.hood_top), self.height)
        curve = self.hood_top + (self.height - self.hood_top) * ((self.cols - self.width / 2) / (self.width / 2)) ** 2
        hood = self.rows[rows] >= curve
        self.label[rows][hood] = IGNORE_INDEX
        self.image[rows][hood] = _BASE_COLOURS[IGNORE_INDEX]

    def finish_image(self):
        """Add the per-class grain and a global exposure change; return uint8 RGB."""
        rng = self.rng
        field = _grain_field(self.height, self.width)
        dy, dx = rng.integers(0, _NOISE_PAD, size=2)
        grain = field[dy : dy + self.height, dx : dx + self.width] * _GRAIN[self.label]
        exposure = np.float32(rng.uniform(0.85, 1.15))
        tint = rng.uniform(-8, 8, size=3).astype(np.float32)
        image = self.image
        image += grain[..., None]
        image *= exposure
        image += tint
        np.clip(image, 0, 255, out=image)
        return image.astype(np.uint8)

    # Primitive fills, clipped to the image; `colour=None` keeps the class colour with a random tint.
    def _fill_rect(self, top, left, bottom, right, train_id, colour=None):
        rows, cols = self._clip(top, bottom, self.height), self._clip(left, right, self.width)
        if rows is None or cols is None:
            return
        self.label[rows, cols] = train_id
        self.image[rows, cols] = self._colour(train_id, colour)

    def _fill_ellipse(self, centre_y, centre_x, radius_y, radius_x, train_id, colour=None, max_row=None):
        bottom = centre_y + radius_y if max_row is None else min(centre_y + radius_y, max_row)
        rows = self._clip(centre_y - radius_y, bottom, self.height)
        cols = self._clip(centre_x - radius_x, centre_x + radius_x, self.width)
        if rows is None or cols is None:
            return
        inside = ((self.rows[rows] + 0.5 - centre_y) / max(radius_y, 0.5)) ** 2 + (
            (self.cols[:, cols] + 0.5 - centre_x) / max(radius_x, 0.5)
        ) ** 2 <= 1.0
        self.label[rows, cols][inside] = train_id
        self.image[rows, cols][inside] = self._colour(train_id, colour)

    def _colour(self, train_id, colour):
        base = _BASE_COLOURS[train_id] if colour is None else np.asarray(colour, dtype=np.float32)
        return base + self.rng.uniform(-12, 12, size=3).astype(np.float32)

    @staticmethod
    def _clip(start, stop, size):
        start, stop = max(int(round(start)), 0), min(int(round(stop)), size)
        return slice(start, stop) if stop > start else None


def draw_unknown_objects(scene: _Scene, families, total_fraction):
    """One to three unknown objects of `families` on the ground of `scene`, covering `total_fraction` of the image.

    Every object lies fully inside the image, in its own horizontal slot, so the fraction holds to within the
    rounding of the shapes. Returns the boolean mask of their pixels; the label map gets 19 there.
    """
    rng = scene.rng
    count = int(rng.integers(1, 4))
    mask = np.zeros((scene.height, scene.width), dtype=bool)
    max_height = scene.hood_top - scene.horizon - 2
    for slot in range(count):
        family = families[rng.integers(len(families))]
        shape = _SHAPES[family](rng)
        box_area = total_fraction * scene.height * scene.width / count / _shape_fill(shape)
        box_width = min(np.sqrt(box_area * rng.uniform(0.6, 1.6)), scene.width / count - 2)
        box_height = min(box_area / box_width, max_height)
        box_width = min(box_area / box_height, scene.width / count - 2)
        rows, cols = max(int(round(box_height)), 2), max(int(round(box_width)), 2)
        top = int(rng.integers(int(scene.horizon) + 1, int(scene.hood_top) - rows + 1))
        slot_left = slot * scene.width // count
        left = slot_left + int(rng.integers(0, max(scene.width // count - cols, 1)))
        local = _shape_mask(shape, rows, cols)
        region = (slice(top, top + rows), slice(left, left + cols))
        scene.label[region][local] = OOD_TRAIN_ID
        scene.image[region][local] = _TEXTURES[family](rng, rows, cols)[local]
        mask[region] |= local
    return mask


# Unknown-object families. A shape is a predicate on normalised box coordinates (u, v in [-1, 1]); a texture
# fills a (rows, cols, 3) box with vivid random colours. Training families: "crate" (tilted box, checkerboard)
# and "ball" (ellipse, stripes). Anomaly families: "star" (spiky star, polka dots) and "blob" (lumpy outline,
# concentric rings).
def _crate_shape(rng):
    angle, half_u, half_v = rng.uniform(-0.35, 0.35), rng.uniform(0.6, 0.8), rng.uniform(0.6, 0.8)
    cos, sin = np.cos(angle), np.sin(angle)
    return lambda u, v: (np.abs(u * cos + v * sin) <= half_u) & (np.abs(v * cos - u * sin) <= half_v)


def _ball_shape(rng):
    squash = rng.uniform(0.8, 1.0)
    return lambda u, v: u**2 + (v / squash) ** 2 <= 1.0


def _star_shape(rng):
    spikes, phase, inner = int(rng.integers(5, 9)), rng.uniform(0, 2 * np.pi), rng.uniform(0.35, 0.5)

    def inside(u, v):
        spike = ((np.cos(spikes * np.arctan2(u, v) + phase) + 1.0) / 2.0) ** 2
        return np.hypot(u, v) <= inner + (1.0 - inner) * spike

    return inside


def _blob_shape(rng):
    amplitudes, phases = rng.uniform(0.05, 0.12, size=3), rng.uniform(0, 2 * np.pi, size=3)

    def inside(u, v):
        angle = np.arctan2(u, v)
        radius = 0.64 + sum(a * np.cos((k + 2) * angle + p) for k, (a, p) in enumerate(zip(amplitudes, phases)))
        return np.hypot(u, v) <= radius

    return inside


def _box_coordinates(rows, cols):
    u = (np.arange(rows, dtype=np.float32)[:, None] + 0.5) / rows * 2.0 - 1.0
    v = (np.arange(cols, dtype=np.float32)[None, :] + 0.5) / cols * 2.0 - 1.0
    return u, v


def _shape_mask(shape, rows, cols):
    return np.broadcast_to(shape(*_box_coordinates(rows, cols)), (rows, cols))


def _shape_fill(shape):
    """Fraction of its bounding box that a shape covers."""
    return max(float(_shape_mask(shape, 64, 64).mean()), 0.05)


def _two_colour_texture(rng, pattern):
    first, second = _saturated_colours(rng, 2)
    return np.where(pattern[..., None], first, second)


def _checker_texture(rng, rows, cols):
    cell = max(rows / rng.uniform(3, 7), 2.0)
    row_index, col_index = np.arange(rows)[:, None] // cell, np.arange(cols)[None, :] // cell
    return _two_colour_texture(rng, (row_index + col_index) % 2 == 0)


def _stripe_texture(rng, rows, cols):
    period = max(rows / rng.uniform(3, 8), 2.0)
    slope = rng.uniform(-1, 1)
    rows_grid, cols_grid = np.arange(rows)[:, None], np.arange(cols)[None, :]
    return _two_colour_texture(rng, ((rows_grid + slope * cols_grid) // period) % 2 == 0)


def _dots_texture(rng, rows, cols):
    period = max(min(rows, cols) / rng.uniform(3, 6), 4.0)
    rows_grid, cols_grid = np.arange(rows)[:, None] % period, np.arange(cols)[None, :] % period
    dots = (rows_grid - period / 2) ** 2 + (cols_grid - period / 2) ** 2 <= (period * 0.3) ** 2
    return _two_colour_texture(rng, dots)


def _rings_texture(rng, rows, cols):
    u, v = _box_coordinates(rows, cols)
    rings = (np.hypot(u, v) * rng.uniform(3, 6)) % 1.0 < 0.5
    return _two_colour_texture(rng, rings)


_SHAPES = {"crate": _crate_shape, "ball": _ball_shape, "star": _star_shape, "blob": _blob_shape}
_TEXTURES = {"crate": _checker_texture, "ball": _stripe_texture, "star": _dots_texture, "blob": _rings_texture}


DEFAULT_NUM_EXAMPLES = {"train": 2975, "validation": 500, "anomaly": 100}


def build_generator(split, num_examples=None, height=512, width=1024, seed=0):
    """Generator and shardable `gen_kwargs` (one shard per scene index) for `load_benchmark("synthetic")`.

    Args:
        split (`str`): `"train"`, `"validation"` or `"anomaly"`.
        num_examples (`int`, *optional*): scenes in the split (default: 2975 / 500 / 100, Cityscapes-like sizes).
        height (`int`, *optional*, defaults to 512): image height.
        width (`int`, *optional*, defaults to 1024): image width.
        seed (`int`, *optional*, defaults to 0): seed of the benchmark.
    """
    num_examples = DEFAULT_NUM_EXAMPLES[split] if num_examples is None else num_examples
    if isinstance(num_examples, bool) or not isinstance(num_examples, int) or num_examples < 1:
        raise ValueError(f"Synthetic num_examples={num_examples!r} must be an integer >= 1.")
    _check_arguments(0, split, height, width, seed)
    gen_kwargs = {"indices": list(range(num_examples)), "split": split, "height": height, "width": width, "seed": seed}
    return _generate_examples, gen_kwargs


def _generate_examples(indices, split, height, width, seed):
    for index in indices:
        image, label = generate_scene(index, split=split, height=height, width=width, seed=seed)
        yield {
            "image": encode_array(image),
            "label": encode_array(label),
            "id": f"synthetic_{split}_seed{seed}_{index:06d}",
            "dataset": "synthetic",
        }

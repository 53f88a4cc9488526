"""The item catalogue: hidden item attributes (ground truth) and the noisy text metadata derived from them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from vidrec.world.spec import WorldSpec


@dataclass(frozen=True)
class Category:
    """A content category and the evidence it leaves in each modality."""

    name: str
    hue: float  # HSV hue in [0, 1) of the background
    pitch_hz: float  # base tone of the soundtrack
    vocab: tuple[str, ...]


CATEGORIES: tuple[Category, ...] = (
    Category(
        "cooking",
        0.05,
        220.0,
        (
            "recipe",
            "kitchen",
            "pasta",
            "bake",
            "chef",
            "spicy",
            "dinner",
            "soup",
            "grill",
            "dessert",
            "bread",
            "sauce",
            "salad",
            "noodles",
            "breakfast",
        ),
    ),
    Category(
        "tech",
        0.17,
        262.0,
        (
            "laptop",
            "smartphone",
            "review",
            "unboxing",
            "gadget",
            "coding",
            "robot",
            "battery",
            "keyboard",
            "camera",
            "chip",
            "drone",
            "software",
            "headphones",
            "setup",
        ),
    ),
    Category(
        "sports",
        0.33,
        330.0,
        (
            "football",
            "goal",
            "match",
            "training",
            "marathon",
            "tennis",
            "basketball",
            "highlights",
            "coach",
            "sprint",
            "league",
            "workout",
            "dribble",
            "stadium",
            "cycling",
        ),
    ),
    Category(
        "travel",
        0.50,
        392.0,
        (
            "beach",
            "mountain",
            "city",
            "roadtrip",
            "island",
            "hiking",
            "hotel",
            "passport",
            "backpacking",
            "sunset",
            "museum",
            "flight",
            "market",
            "village",
            "camping",
        ),
    ),
    Category(
        "gaming",
        0.67,
        494.0,
        (
            "speedrun",
            "boss",
            "level",
            "console",
            "arcade",
            "quest",
            "loot",
            "multiplayer",
            "controller",
            "strategy",
            "raid",
            "esports",
            "walkthrough",
            "glitch",
            "respawn",
        ),
    ),
    Category(
        "music",
        0.83,
        587.0,
        (
            "guitar",
            "piano",
            "song",
            "concert",
            "melody",
            "drums",
            "album",
            "chorus",
            "remix",
            "vocals",
            "jam",
            "symphony",
            "playlist",
            "bass",
            "orchestra",
        ),
    ),
)
CATEGORY_NAMES: tuple[str, ...] = tuple(c.name for c in CATEGORIES)

# Style 0/1/2 is drawn as circles/squares/stripes and sounds as sine/square/sawtooth.
STYLE_WORDS: tuple[tuple[str, ...], ...] = (
    ("smooth", "soft", "mellow", "round"),
    ("retro", "pixel", "boxy", "chiptune"),
    ("striped", "edgy", "buzzy", "raw"),
)
LOW_ENERGY_WORDS = ("chill", "calm", "slow", "relaxing")
HIGH_ENERGY_WORDS = ("hype", "fast", "intense", "energetic")

HUE_NOISE_RATE = 0.15
NO_AUDIO_RATE = 0.20
EMPTY_DESCRIPTION_RATE = 0.25
OWN_VOCAB_RATE = 0.75
MISLABEL_RATE = 0.10
CREATOR_HOME_RATE = 0.80
LIVE_HOST_RATE = 0.15
PRODUCT_RATE = 0.25
COLD_START_RATE = 0.15


def parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def to_ns(timestamps: pd.Series) -> np.ndarray:
    """UTC timestamps as int64 nanoseconds, whatever unit the series is stored in."""
    return pd.DatetimeIndex(timestamps).tz_convert("UTC").as_unit("ns").asi8


def _sample_durations(spec: WorldSpec, rng: np.random.Generator, n: int) -> np.ndarray:
    # Durations are whole frames so that "frame count = duration * fps" holds exactly.
    raw = rng.uniform(spec.min_duration_s, spec.max_duration_s, n)
    return np.maximum(np.round(raw * spec.fps), 1) / spec.fps


def _sample_published_at(spec: WorldSpec, rng: np.random.Generator, n: int) -> pd.Series:
    start = pd.Timestamp(parse_utc(spec.start))
    window = pd.Timedelta(days=spec.n_days)
    offsets_s = rng.uniform(-60 * 86400, -3600, n)  # back catalogue: the 60 days before the window
    n_cold = int(round(COLD_START_RATE * n))
    cold = rng.permutation(n)[:n_cold]
    # Cold-start items arrive in the last quarter, early enough that some sessions can show them.
    offsets_s[cold] = rng.uniform(0.75, 0.95, n_cold) * window.total_seconds()
    return pd.Series(start + pd.to_timedelta(np.round(offsets_s), unit="s"))


def sample_items(spec: WorldSpec, rng: np.random.Generator) -> pd.DataFrame:
    """Hidden per-item attributes: the ground truth every modality is rendered from."""
    n, k = spec.n_videos, len(CATEGORIES)
    n_creators = max(2, n // 8)
    creator_home = rng.integers(0, k, n_creators)
    creator_live = rng.random(n_creators) < LIVE_HOST_RATE
    creator = rng.integers(0, n_creators, n)
    category = np.where(rng.random(n) < CREATOR_HOME_RATE, creator_home[creator], rng.integers(0, k, n))
    hue_noisy = rng.random(n) < HUE_NOISE_RATE
    # A noisy hue is always another category's, so the colour really is misleading.
    hue_category = np.where(hue_noisy, (category + rng.integers(1, k, n)) % k, category)
    is_product = rng.random(n) < PRODUCT_RATE
    price = np.where(is_product, np.round(np.exp(rng.normal(np.log(20.0), 0.6, n)), 2), np.nan)
    durations = _sample_durations(spec, rng, n)
    return pd.DataFrame(
        {
            "video_id": [f"v{i:05d}" for i in range(n)],
            "category": [CATEGORY_NAMES[c] for c in category],
            "category_idx": category.astype(np.int64),
            "style": rng.integers(0, 3, n).astype(np.int64),
            "energy": rng.random(n),
            "quality": rng.beta(2.0, 1.5, n),
            "duration_s": durations,
            "n_frames": np.round(durations * spec.fps).astype(np.int64),
            "has_audio": rng.random(n) >= NO_AUDIO_RATE,
            "hue_noisy": hue_noisy,
            "hue_category_idx": hue_category.astype(np.int64),
            "creator_id": [f"c{c:04d}" for c in creator],
            "is_live_host": creator_live[creator],
            "is_product": is_product,
            "price": price,
            "published_at": _sample_published_at(spec, rng, n),
        }
    )


def _words(rng: np.random.Generator, category: int, n_words: int) -> list[str]:
    words = []
    for _ in range(n_words):
        source = category if rng.random() < OWN_VOCAB_RATE else int(rng.integers(0, len(CATEGORIES)))
        words.append(str(rng.choice(CATEGORIES[source].vocab)))
    return words


def _energy_word(rng: np.random.Generator, energy: float) -> str:
    return str(rng.choice(HIGH_ENERGY_WORDS if energy >= 0.5 else LOW_ENERGY_WORDS))


def build_metadata(items: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Public text metadata: titles, tags and descriptions carrying noisy evidence of the hidden attributes."""
    k = len(CATEGORIES)
    titles, descriptions, tags, declared = [], [], [], []
    for row in items.itertuples(index=False):
        cat = int(row.category_idx)
        titles.append(" ".join(_words(rng, cat, int(rng.integers(3, 6)))).capitalize())
        # Style words are sometimes wrong, as uploaders' self-descriptions are.
        style = int(row.style) if rng.random() < 0.8 else int(rng.integers(0, 3))
        style_word = str(rng.choice(STYLE_WORDS[style]))
        energy_word = _energy_word(rng, float(row.energy))
        tags.append("|".join(dict.fromkeys(_words(rng, cat, 2) + [style_word, energy_word])))
        if rng.random() < EMPTY_DESCRIPTION_RATE:
            descriptions.append("")
        else:
            a, b, c = _words(rng, cat, 3)
            descriptions.append(f"A {energy_word} {a} video with {style_word} visuals. Featuring {b} and {c}.")
        declared.append(CATEGORY_NAMES[cat if rng.random() >= MISLABEL_RATE else int(rng.integers(0, k))])
    return pd.DataFrame(
        {
            "video_id": items["video_id"],
            "title": titles,
            "description": descriptions,
            "tags": tags,
            "category": declared,
            "creator_id": items["creator_id"],
            "is_product": items["is_product"],
            "price": items["price"],
            "is_live_host": items["is_live_host"],
            "published_at": items["published_at"],
        }
    )


def write_metadata_csv(metadata: pd.DataFrame, path: Path | str) -> None:
    """Write metadata.csv in its contract format (true/false booleans, ISO-8601 UTC, empty price)."""
    out = metadata.copy()
    for col in ("is_product", "is_live_host"):
        out[col] = np.where(out[col], "true", "false")
    out["price"] = [f"{p:.2f}" if np.isfinite(p) else "" for p in out["price"]]
    out["published_at"] = out["published_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.to_csv(path, index=False, lineterminator="\n")

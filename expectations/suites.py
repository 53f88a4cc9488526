"""Data-quality suites for the tables that pass between stages, declared as data.

Each `Rule` names a Great Expectations 1.x expectation class, its keyword arguments and
the sentence a person reads when a row is quarantined; `expectations.validate` builds them.
"""

from __future__ import annotations

from collections.abc import Iterable

from expectations.rules import Rule, Suite, between, columns_present, in_set, not_null, unique

MAX_DURATION_S = 4 * 3600.0
# Audio of any rate in this range is resampled to the feature rate (12 kHz phone audio included); the
# probe marks a track outside it as missing audio (vidrec.media.probe), so an accepted row never has one.
AUDIO_SAMPLE_RATE_RANGE = (1000, 384_000)
# Frame limits follow decode cost (vidrec.media.rules.ProbeLimits): pixels per frame, not orientation.
MAX_SIDE, MAX_FPS = 8192, 1000


VIDEO_COLUMNS = (
    "video_id", "path", "sha256", "bytes", "container", "video_codec", "width", "height",
    "fps", "duration_s", "n_frames_decoded", "has_audio", "audio_codec", "sample_rate",
    "rotation", "status", "reason",
)  # fmt: skip
_ACCEPTED = {"status": "accepted"}
_WITH_AUDIO = {"status": "accepted", "has_audio": True}
_WITHOUT_AUDIO = {"status": "accepted", "has_audio": False}

VIDEOS = Suite(
    name="videos",
    columns=VIDEO_COLUMNS,
    rules=(
        columns_present(VIDEO_COLUMNS),
        not_null("video_id"),
        unique("video_id"),
        not_null("status"),
        in_set("status", ["accepted", "quarantined"], "status is accepted or quarantined"),
        # Probe results are only trusted for accepted rows; quarantined rows carry a reason.
        Rule(
            "ExpectColumnValuesToMatchRegex",
            {"column": "sha256", "regex": "^[0-9a-f]{64}$"},
            "sha256 is 64 lowercase hex digits",
            _ACCEPTED,
        ),
        not_null("sha256", _ACCEPTED),
        not_null("container", _ACCEPTED),
        not_null("video_codec", _ACCEPTED),
        *(not_null(c, _ACCEPTED) for c in ("width", "height", "fps", "duration_s")),
        not_null("n_frames_decoded", _ACCEPTED),
        not_null("has_audio", _ACCEPTED),
        # Either orientation (2160x3840 portrait 4K as well as 3840x2160); the probe limits the pixel count.
        between("width", 16, MAX_SIDE, f"width is between 16 and {MAX_SIDE} pixels", _ACCEPTED),
        between("height", 16, MAX_SIDE, f"height is between 16 and {MAX_SIDE} pixels", _ACCEPTED),
        # Slow motion (240 fps and more) is ordinary phone output.
        between("fps", 0, MAX_FPS, f"fps is above 0 and at most {MAX_FPS}", _ACCEPTED, strict_min=True),
        # A one-frame clip or a still picture (one frame interval) is a video too, as a cover is.
        between("duration_s", 0, MAX_DURATION_S, "duration_s is above 0 s and at most 4 h", _ACCEPTED, strict_min=True),
        between("n_frames_decoded", 1, None, "at least one frame decoded", _ACCEPTED),
        in_set("rotation", [0, 90, 180, 270], "rotation is a quarter turn", _ACCEPTED),
        not_null("sample_rate", _WITH_AUDIO),
        between(
            "sample_rate", *AUDIO_SAMPLE_RATE_RANGE, "sample_rate is an audio rate the features resample", _WITH_AUDIO
        ),
        Rule(
            "ExpectColumnValuesToBeNull",
            {"column": "sample_rate"},
            "sample_rate is empty when the video has no audio",
            _WITHOUT_AUDIO,
        ),
    ),
)

VIDEO_METADATA_COLUMNS = (
    "video_id", "title", "description", "tags", "category", "creator_id", "is_product",
    "price", "is_live_host", "published_at",
)  # fmt: skip

VIDEO_METADATA = Suite(
    name="video_metadata",
    columns=VIDEO_METADATA_COLUMNS,
    rules=(
        columns_present(VIDEO_METADATA_COLUMNS),
        not_null("video_id"),
        unique("video_id"),
        not_null("title"),
        Rule(
            "ExpectColumnValueLengthsToBeBetween",
            {"column": "title", "min_value": 1, "max_value": 300},
            "title has 1 to 300 characters",
        ),
        not_null("category"),
        not_null("creator_id"),
        in_set("is_product", [True, False], "is_product is true or false"),
        in_set("is_live_host", [True, False], "is_live_host is true or false"),
        # Between skips nulls, so a missing price passes: not every video sells something.
        between("price", 0, None, "price is not negative"),
        not_null("published_at"),
        Rule(
            "ExpectColumnValuesToBeDateutilParseable",
            {"column": "published_at"},
            "published_at parses as a date and time",
        ),
    ),
)

EVENT_COLUMNS = (
    "event_id", "ts", "user_key", "video_id", "session_id", "position", "surface",
    "propensity", "clicked", "watch_s", "converted",
)  # fmt: skip
# Columns a source may lack (vidrec.sources.OPTIONAL_EVENT_COLUMNS; expectations does not import vidrec).
OPTIONAL_EVENT_COLUMNS = ("position", "propensity", "watch_s", "converted")
_NOT_CLICKED = {"clicked": False}
_WITHOUT = "__no_"  # events__no_propensity__no_watch_s: the suite for a source without those columns


def events_suite(absent: Iterable[str] = ()) -> Suite:
    """The ``events`` suite; with ``absent`` optional columns (the source declares it never recorded them)
    those columns may be NULL. Every other rule stands, so a value that is present is still checked
    (a propensity must be in (0, 1], watch_s > 0 only if clicked, ...)."""
    absent = sorted(set(absent))
    unknown = [c for c in absent if c not in OPTIONAL_EVENT_COLUMNS]
    if unknown:
        raise ValueError(f"events columns {unknown} cannot be absent; only {list(OPTIONAL_EVENT_COLUMNS)} are optional")
    name = "events" + "".join(f"{_WITHOUT}{c}" for c in absent)

    def present_not_null(column: str) -> tuple[Rule, ...]:
        """The not-null rule, unless the source leaves the column out (then NULL means "not logged")."""
        return () if column in absent else (not_null(column),)

    return Suite(
        name=name,
        columns=EVENT_COLUMNS,
        rules=(
            columns_present(EVENT_COLUMNS),
            not_null("event_id"),
            unique("event_id"),
            *(not_null(c) for c in ("ts", "user_key", "video_id", "session_id", "surface")),
            *present_not_null("position"),
            # Between and in-set skip NULLs, so they hold for every value a source does have.
            between("position", 0, None, "position is not negative"),
            *present_not_null("propensity"),
            # A zero propensity would make inverse-propensity weights infinite.
            between("propensity", 0, 1, "propensity is in (0, 1]", strict_min=True),
            not_null("clicked"),
            in_set("clicked", [True, False], "clicked is true or false"),
            *present_not_null("converted"),
            in_set("converted", [True, False], "converted is true or false"),
            *present_not_null("watch_s"),
            between("watch_s", 0, MAX_DURATION_S, "watch_s is between 0 and 4 h"),
            # Cross-column invariants as row conditions: UnexpectedRowsExpectation has no pandas
            # metric provider in GX 1.24 (only SQL and Spark), so SQL over {batch} cannot run here.
            between("watch_s", None, 0, "watch_s > 0 only if clicked", _NOT_CLICKED),
            in_set("converted", [False], "converted only if clicked", _NOT_CLICKED),
        ),
    )


EVENTS = events_suite()

# Commerce tables (vidrec.imports.commerce writes them; docs/import.md#products-and-orders).
_CURRENCY = Rule(
    "ExpectColumnValuesToMatchRegex", {"column": "currency", "regex": "^[A-Z]{3}$"}, "currency is an ISO 4217 code"
)
PRODUCT_COLUMNS = ("sku", "brand", "category", "price", "currency", "video_ids")
PRODUCTS = Suite(
    name="products",
    columns=PRODUCT_COLUMNS,
    rules=(
        columns_present(PRODUCT_COLUMNS),
        *(not_null(c) for c in ("sku", "price", "currency")),
        unique("sku"),
        between("price", 0, None, "price is not negative"),
        _CURRENCY,
    ),
)
ORDER_COLUMNS = (
    "order_id", "ts", "user_key", "sku", "video_id", "session_id", "quantity", "unit_price", "currency",
)  # fmt: skip
ORDERS = Suite(
    name="orders",
    columns=ORDER_COLUMNS,
    rules=(
        columns_present(ORDER_COLUMNS),
        *(not_null(c) for c in ("order_id", "ts", "user_key", "sku", "quantity", "unit_price", "currency")),
        unique("order_id"),
        between("quantity", 1, None, "quantity is at least 1"),
        between("unit_price", 0, None, "unit_price is not negative"),
        _CURRENCY,
    ),
)

VIDEO_TAG_COLUMNS = ("tag_id", "video_id", "rank", "tag", "label", "label_index", "confidence")
VIDEO_TAGS = Suite(
    name="video_tags",
    columns=VIDEO_TAG_COLUMNS,
    rules=(
        columns_present(VIDEO_TAG_COLUMNS),
        not_null("video_id"),
        unique("tag_id"),
        Rule(
            "ExpectCompoundColumnsToBeUnique",
            {"column_list": ["video_id", "tag"]},
            "a video carries each tag once",
        ),
        between("rank", 1, 100, "rank counts from 1"),
        Rule(
            "ExpectColumnValueLengthsToBeBetween",
            {"column": "tag", "min_value": 1, "max_value": 100},
            "tag is a non-empty ImageNet class name",
        ),
        between("label_index", 0, 999, "label_index is an ImageNet-1k class"),
        # A mean of softmax probabilities: inside [0, 1] by construction, so a value outside is a bug.
        between("confidence", 0.0, 1.0, "confidence is a probability"),
    ),
)

SUITES: dict[str, Suite] = {s.name: s for s in (VIDEOS, VIDEO_METADATA, EVENTS, VIDEO_TAGS, PRODUCTS, ORDERS)}


def get_suite(name: str) -> Suite:
    """Return the suite declared for table `name` (``events__no_<column>...`` for ``events_suite``)."""
    if name.startswith(f"events{_WITHOUT}"):
        return events_suite(name.split(_WITHOUT)[1:])
    try:
        return SUITES[name]
    except KeyError:
        raise ValueError(
            f"Unknown expectation suite {name!r}; declared suites are {sorted(SUITES)}. "
            "Add a Suite to expectations/suites.py or fix the name."
        ) from None

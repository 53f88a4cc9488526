"""Bring-your-own-data importers: each format becomes the same items and events tables plus an import report.

Formats: ``native`` (videos + metadata + events contract), ``logs`` (user, item, timestamp[, rating]
interaction logs with a text-only item table), ``sequences`` ("user<TAB>item item ..." in time order),
and cover images treated as one-frame videos (``covers``). See docs/import.md.
"""

"""The closed-loop simulation's Dagster-free parts: the loop's world (with videos held back to arrive as
uploads), the world's users answering slates, and the per-day report. ``benchmarks/loop.py`` drives them
against the real service and pipeline (``make loop DAYS=7``)."""

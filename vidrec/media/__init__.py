"""Media handling for untrusted video files: isolated probing, frame and audio sampling,
feature extraction into content-addressed shards.

Modules: ``probe`` (videos table rows, quarantine rules), ``frames``, ``audio``, ``shards``,
``features`` (batch extraction with caching) and ``pool`` (isolated worker processes).
"""

"""Offline measurement: hold-out scoring of served paths, evaluation runs, baselines, world quality."""

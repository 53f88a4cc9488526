"""What a served model is and how it answers: the bundle, the served path, scoring, weights."""

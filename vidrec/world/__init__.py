"""The demo world: a seeded simulator of a video catalogue (real MP4s), its users, an event log and the ground truth."""

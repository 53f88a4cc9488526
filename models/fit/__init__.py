"""Training: DataModules and Lightning systems, the seeded fit loop, the pipeline's training steps."""

"""tokensmith-dler: DLER (Liu et al., 2025, arXiv 2510.15110) — truncation length penalty, batch-wise
reward whitening, correct-sample boost, clip-higher PPO loss, dynamic sampling and difficulty-aware
truncation for TRL's GRPOTrainer, and update-selective merging of a trained model into its base."""

"""What tests share: fixtures' data builders, composed configs, the W&B record reader, repository paths."""

"""ARN (Li et al., CVPR-W 2018) for reid: shared and private encoders for cross-domain re-ID."""

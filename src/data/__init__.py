"""Data: Omniglot's release listed, decoded and cached as one array; class splits; episodes; a user's own images."""

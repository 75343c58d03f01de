"""Long captures as overlapping time windows, aligned into one world frame."""

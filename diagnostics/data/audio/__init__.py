"""Audio clips to features (librosa), clip sources, and the caches that make a second open cheap."""

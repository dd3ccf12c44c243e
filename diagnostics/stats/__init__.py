"""Per-pixel statistics (one streaming float64 pass), band information, findings, summaries."""

# /// script
# dependencies = []
# ///
"""A tiny script for the uv example workflow."""

import statistics

values = [3, 1, 4, 1, 5, 9, 2, 6]
print(f"mean={statistics.mean(values):.2f} median={statistics.median(values)}")

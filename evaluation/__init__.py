"""Engineering tools: training and judging detectors on recordings (never imported by services)."""

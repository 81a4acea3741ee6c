"""The study's numbers and its write-up: metrics, calibration, statistics, test-time augmentation,
results tables, figures and reports/README.md."""

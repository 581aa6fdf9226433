"""Plumbing: settings, device and distributed launch, errors, outputs written safely, logs and metrics."""

"""Figures of the study: functions from saved tables to image files (never training)."""

"""Builders for tzip's training and benchmark sets, from package names alone (docs/DESIGN.md §4)."""

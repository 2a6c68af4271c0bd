"""Builders for tzip's training and benchmark sets, from package names alone (DESIGN §4)."""

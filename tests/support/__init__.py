"""Helpers shared by every test tier."""

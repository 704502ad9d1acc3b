"""Tests of the deploy recipes (deploy/, docs/deploy.md)."""

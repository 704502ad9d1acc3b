"""The chaos suite: real processes under load and faults (see :mod:`tests.chaos._harness`)."""

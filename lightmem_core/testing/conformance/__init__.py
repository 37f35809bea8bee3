"""Conformance suites, one module per backend kind. A plugin's tests subclass the suite.

Each suite class expects the subclass to define a ``backend`` pytest fixture returning a
ready backend (and, where the suite says so, extra fixtures).
"""

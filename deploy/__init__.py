"""Tooling only `make deploy` runs (not part of the installed package): the alert automations
and keeping a paused schedule paused across a deploy.
"""

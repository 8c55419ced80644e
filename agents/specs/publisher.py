"""The publisher agent (issue #19). Being written."""

"""The commercial agent (issue #19). Being written."""

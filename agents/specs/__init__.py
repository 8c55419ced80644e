"""The shipped core agent specs. Importing this package registers every version of every agent
(`agents.registry._load_specs` imports it); a module per agent type, each version a module-level
constant so tests and the sync step can refer to it."""

from . import brief, copywriting, media_buying, rfp

__all__ = ["brief", "copywriting", "media_buying", "rfp"]

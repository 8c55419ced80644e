"""The shipped core agent specs. Importing this package registers every version of every agent
(`agents.registry._load_specs` imports it); a module per agent type, each version a module-level
constant so tests and the sync step can refer to it."""

from . import brief, commercial, content, copywriting, media_buying, proposal, publisher, resource, rfp

__all__ = ["brief", "commercial", "content", "copywriting", "media_buying", "proposal", "publisher", "resource", "rfp"]
